package sqlstore

import "strings"

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released migration: append a new one. {{blob}} is the
// dialect's byte-string type.
var migrations = []string{
	// 1: the control plane's first schema.
	`
CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	kind       TEXT NOT NULL CHECK (kind IN ('vendor', 'org')),
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE channels (
	id          TEXT PRIMARY KEY,
	vendor      TEXT NOT NULL REFERENCES tenants(id),
	name        TEXT NOT NULL,
	kind        TEXT NOT NULL CHECK (kind IN ('content', 'agent')),
	category    TEXT NOT NULL,
	unpausable  BOOLEAN NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE TABLE artifacts (
	channel    TEXT NOT NULL REFERENCES channels(id),
	version    BIGINT NOT NULL,
	sha256     TEXT NOT NULL,
	size       BIGINT NOT NULL,
	bytes      {{blob}} NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (channel, version)
);
CREATE TABLE releases (
	id              TEXT PRIMARY KEY,
	channel         TEXT NOT NULL,
	version         BIGINT NOT NULL,
	plan            TEXT NOT NULL,
	state           TEXT NOT NULL,
	wave            INTEGER NOT NULL,
	reason          TEXT NOT NULL,
	revision        BIGINT NOT NULL,
	created_by      TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	wave_started_at BIGINT NOT NULL,
	completed_at    BIGINT NOT NULL,
	FOREIGN KEY (channel, version) REFERENCES artifacts(channel, version),
	UNIQUE (channel, version)
);
CREATE TABLE policies (
	org        TEXT NOT NULL REFERENCES tenants(id),
	channel    TEXT NOT NULL REFERENCES channels(id),
	track      TEXT NOT NULL,
	windows    TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (org, channel)
);
CREATE TABLE api_tokens (
	id         TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	role       TEXT NOT NULL,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL
);
CREATE TABLE enroll_tokens (
	id         TEXT PRIMARY KEY,
	org        TEXT NOT NULL REFERENCES tenants(id),
	hash       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL
);
CREATE TABLE devices (
	id            TEXT PRIMARY KEY,
	org           TEXT NOT NULL REFERENCES tenants(id),
	cred_hash     TEXT NOT NULL,
	platform      TEXT NOT NULL,
	os_build      TEXT NOT NULL,
	agent_version TEXT NOT NULL,
	enrolled_at   BIGINT NOT NULL,
	last_seen     BIGINT NOT NULL,
	last_seq      BIGINT NOT NULL,
	revoked       BOOLEAN NOT NULL
);
CREATE INDEX devices_org ON devices (org, id);
CREATE TABLE device_channels (
	device         TEXT NOT NULL REFERENCES devices(id),
	channel        TEXT NOT NULL,
	active_version BIGINT NOT NULL,
	lkg_version    BIGINT NOT NULL,
	state          TEXT NOT NULL,
	updated_at     BIGINT NOT NULL,
	PRIMARY KEY (device, channel)
);
CREATE TABLE events (
	device  TEXT NOT NULL,
	seq     BIGINT NOT NULL,
	at      BIGINT NOT NULL,
	type    TEXT NOT NULL,
	channel TEXT NOT NULL,
	version BIGINT NOT NULL,
	reason  TEXT NOT NULL,
	counts  TEXT NOT NULL,
	PRIMARY KEY (device, seq)
);
CREATE TABLE counters (
	release TEXT NOT NULL,
	wave    INTEGER NOT NULL,
	org     TEXT NOT NULL,
	stratum TEXT NOT NULL,
	win     BIGINT NOT NULL,
	metric  TEXT NOT NULL,
	value   BIGINT NOT NULL,
	PRIMARY KEY (release, wave, org, stratum, win, metric)
);
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	at        BIGINT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	reason    TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
`,
	// 2: internal organisations, reached by a plan's internal-only waves.
	`ALTER TABLE tenants ADD COLUMN internal BOOLEAN NOT NULL DEFAULT FALSE`,
	// 3: staged rollouts: release lanes, phases, approvals and canary
	// cohorts; offers (the exposure the silence gate and the hourly
	// budgets count); kill switches. "rolling-out" is now "rolling".
	// SQLite adds one column per ALTER TABLE.
	`
ALTER TABLE releases ADD COLUMN lane TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN phase TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN halted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';
ALTER TABLE releases ADD COLUMN gates_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE releases ADD COLUMN cohort TEXT NOT NULL DEFAULT '';
UPDATE releases SET state = 'rolling' WHERE state = 'rolling-out';
ALTER TABLE tenants ADD COLUMN hourly_cap INTEGER NOT NULL DEFAULT 0;
CREATE TABLE offers (
	release TEXT NOT NULL,
	device  TEXT NOT NULL,
	org     TEXT NOT NULL,
	wave    INTEGER NOT NULL,
	at      BIGINT NOT NULL,
	PRIMARY KEY (release, device)
);
CREATE INDEX offers_org_at ON offers (org, at);
CREATE INDEX device_channels_version ON device_channels (channel, active_version);
CREATE TABLE kill_switches (
	scope   TEXT PRIMARY KEY,
	engaged BOOLEAN NOT NULL,
	reason  TEXT NOT NULL,
	actor   TEXT NOT NULL,
	at      BIGINT NOT NULL
);
`,
	// 4: running totals of the counters per release, wave, organisation,
	// stratum and metric, kept with every increment, so the controller's
	// tick reads a few rows rather than every minute of a release's life;
	// and the totals at the last resume, which the gates subtract.
	`
CREATE TABLE counter_totals (
	release TEXT NOT NULL,
	wave    INTEGER NOT NULL,
	org     TEXT NOT NULL,
	stratum TEXT NOT NULL,
	metric  TEXT NOT NULL,
	value   BIGINT NOT NULL,
	PRIMARY KEY (release, wave, org, stratum, metric)
);
INSERT INTO counter_totals (release, wave, org, stratum, metric, value)
	SELECT release, wave, org, stratum, metric, SUM(value) FROM counters GROUP BY release, wave, org, stratum, metric;
CREATE TABLE counter_marks (
	release TEXT NOT NULL,
	wave    INTEGER NOT NULL,
	org     TEXT NOT NULL,
	stratum TEXT NOT NULL,
	metric  TEXT NOT NULL,
	value   BIGINT NOT NULL,
	PRIMARY KEY (release, wave, org, stratum, metric)
);
`,
	// 5: devices' testimony: the Once marks that make the gates count a
	// device once, and how many of its reports were not believed.
	`
CREATE TABLE testimony (
	release TEXT NOT NULL,
	device  TEXT NOT NULL,
	once    TEXT NOT NULL,
	PRIMARY KEY (release, device, once)
);
ALTER TABLE devices ADD COLUMN anomalies BIGINT NOT NULL DEFAULT 0;
`,
	// 6: enrolment tokens with a use limit and their uses; the token each
	// device enrolled with.
	`
ALTER TABLE enroll_tokens ADD COLUMN max_uses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE enroll_tokens ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN enroll_token TEXT NOT NULL DEFAULT '';
`,
	// 7: separation of duties: who created each token, and which token
	// created each release.
	`
ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN creator_token TEXT NOT NULL DEFAULT '';
`,
	// 8: the audit chain keyed with the server's audit key, and signed
	// checkpoints of it.
	`
ALTER TABLE audit_log ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE audit_checkpoints (
	seq       BIGINT PRIMARY KEY,
	hash      TEXT NOT NULL,
	at        BIGINT NOT NULL,
	key_id    TEXT NOT NULL,
	signature TEXT NOT NULL
);
`,
	// 9: webhook subscriptions, their outbox (written in the transaction
	// of the change it notifies) and each delivery's attempts.
	`
CREATE TABLE webhooks (
	id         TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	url        TEXT NOT NULL,
	events     TEXT NOT NULL,
	format     TEXT NOT NULL,
	secret     TEXT NOT NULL,
	enabled    BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL,
	created_by TEXT NOT NULL
);
CREATE TABLE webhook_outbox (
	seq          {{serial}},
	webhook      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	event_id     TEXT NOT NULL,
	event_type   TEXT NOT NULL,
	body         {{blob}} NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts     INTEGER NOT NULL,
	next_attempt BIGINT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL,
	UNIQUE (webhook, event_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt);
CREATE TABLE webhook_attempts (
	webhook     TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	attempt     INTEGER NOT NULL,
	at          BIGINT NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration_ms BIGINT NOT NULL,
	PRIMARY KEY (webhook, event_id, attempt),
	FOREIGN KEY (webhook, event_id) REFERENCES webhook_outbox (webhook, event_id) ON DELETE CASCADE
);
CREATE INDEX policies_channel ON policies (channel, org);
`,
	// 10: what validation and preflight said of a bundle when it was
	// published (warnings and notes: a bundle with an error is never
	// stored), for the console's published content.
	`
ALTER TABLE artifacts ADD COLUMN findings TEXT NOT NULL DEFAULT '';
`,
	// 11: the last heartbeat window counted for each device, so that a
	// device whose check-ins land on two replicas in one window counts one
	// heartbeat, not two.
	`
ALTER TABLE devices ADD COLUMN hb_window BIGINT NOT NULL DEFAULT 0;
`,
	// 12: vendors' named rollout plans, which releases name.
	`
CREATE TABLE plan_templates (
	vendor     TEXT NOT NULL,
	name       TEXT NOT NULL,
	plan       TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL,
	PRIMARY KEY (vendor, name)
);
`,
}

func (d dialect) migration(i int) string {
	return strings.NewReplacer("{{blob}}", d.blob, "{{serial}}", d.serial).Replace(migrations[i])
}
