// Package store is where the control plane keeps its state: tenants,
// channels, artifacts, releases, policies, tokens, devices, telemetry
// counters and the audit log. One interface, Store, has two SQL
// implementations in package sqlstore: embedded SQLite (the default, no
// setup) and PostgreSQL (shared by several server replicas). The
// conformance suite in package storetest runs against both.
package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
)

// Sentinel errors; implementations wrap them so callers use errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrStale is returned by an update whose expected revision is not the
	// stored one: someone else changed the row first.
	ErrStale = errors.New("changed concurrently")
	// ErrUnavailable wraps errors that mean the database cannot be reached.
	ErrUnavailable = errors.New("store unavailable")
)

// TenantKind distinguishes vendors from organisations.
type TenantKind string

const (
	TenantVendor TenantKind = "vendor"
	TenantOrg    TenantKind = "org"
)

// Tenant is a vendor (publishes to its channels) or an organisation (owns
// devices).
type Tenant struct {
	ID   string // short name: acme, contoso
	Kind TenantKind
	Name string
	// Internal organisations are the vendor's own machines: the first,
	// internal-only wave of a plan reaches them before any customer.
	Internal bool
	// HourlyCap is the share of an organisation's fleet, in basis points,
	// that new releases of all vendors together may reach per hour (0:
	// no cap).
	HourlyCap int
	CreatedAt time.Time
}

// ChannelKind is what a channel carries.
type ChannelKind string

const (
	ChannelContent ChannelKind = "content"
	ChannelAgent   ChannelKind = "agent"
)

// Channel is a vendor's stream of artifacts of one kind, versions strictly
// increasing. ID is "vendor/name".
type Channel struct {
	ID       string
	Vendor   string
	Name     string
	Kind     ChannelKind
	Category string // free text such as "detection" or "system-critical"
	// Unpausable channels ignore an organisation's "paused" track: content
	// that keeps the sensor working must not be frozen out.
	Unpausable bool
	CreatedAt  time.Time
}

// Artifact is an immutable, installable thing: a compiled bundle or an
// agent build.
type Artifact struct {
	Channel   string
	Version   uint64
	SHA256    string
	Size      int64
	Bytes     []byte
	CreatedAt time.Time
	// Findings is what validation and preflight said of a content bundle
	// when it was published, as JSON ("" for none or an agent build).
	Findings string
}

// ReleaseState is a release's phase: package rollout's type, which owns
// the transitions between them. The strings are persisted.
type ReleaseState = rollout.ReleaseState

const (
	ReleaseDraft            = rollout.StateDraft
	ReleaseRolling          = rollout.StateRolling
	ReleaseAwaitingApproval = rollout.StateAwaitingApproval
	ReleasePaused           = rollout.StatePaused
	ReleaseCompleted        = rollout.StateCompleted
	ReleaseHalted           = rollout.StateHalted
	ReleaseRolledBack       = rollout.StateRolledBack
)

// CheckRelease refuses what no store keeps: a release in a state no code
// knows, which every reader would then have to guess at.
func CheckRelease(r Release) error {
	if _, err := rollout.ParseState(string(r.State)); err != nil {
		return fmt.Errorf("release %s: %w", r.ID, err)
	}
	return nil
}

// Approval is one person's sign-off on a release.
type Approval struct {
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Token is the approving token's ID and TokenCreator the ID of the
	// token that created it (separation of duties: docs/rollout.md).
	Token        string `json:"token,omitempty"`
	TokenCreator string `json:"token_creator,omitempty"`
}

// Release is the decision to roll one artifact version out on a channel.
type Release struct {
	ID        string
	Channel   string
	Version   uint64
	Plan      []byte // JSON rollout plan, owned by package rollout
	State     ReleaseState
	Wave      int // index of the current wave in the plan
	Reason    string
	Revision  int64 // optimistic concurrency: bumped on every update
	CreatedBy string
	// CreatorToken is the ID of the token that created the release (""
	// for releases from before it was recorded, and the dev seed's).
	CreatorToken string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// WaveStartedAt is when the current wave began (bake times count
	// from it); CompletedAt when the last wave passed.
	WaveStartedAt time.Time
	CompletedAt   time.Time

	Lane  string // normal or emergency
	Phase string // while rolling: baking or gating
	// HaltedBy is "controller" or the person who halted the release.
	HaltedBy  string
	Approvals []Approval
	// GatesSince is when the gates start counting telemetry: the release's
	// start, or the last time a person resumed it.
	GatesSince time.Time
	// Cohort is the stratified canary state (JSON owned by package
	// rollout), computed by the controller when a wave starts.
	Cohort []byte
}

// Policy is an organisation's choice for one channel.
type Policy struct {
	Org     string
	Channel string
	Track   string // early, ga, ga-delay:H, pinned:V, paused
	// Windows are maintenance windows as "DAYS HH:MM-HH:MM" in UTC, for
	// example "mon-fri 01:00-05:00"; empty means any time.
	Windows   []string
	UpdatedAt time.Time
}

// Role is what an API token may do.
type Role string

const (
	RoleAdmin     Role = "admin"
	RolePublisher Role = "publisher"
	RoleApprover  Role = "approver"
	RoleOrgAdmin  Role = "org-admin"
	RoleViewer    Role = "viewer"
)

// APIToken grants one role scoped to one tenant ("" for the operator's
// admin tokens, which are not scoped). Only the hash of the secret is kept.
type APIToken struct {
	ID        string
	Tenant    string
	Role      Role
	Name      string
	Hash      string
	CreatedAt time.Time
	Revoked   bool
	// CreatedBy is the ID of the token that created this one ("" for the
	// tokens an operator bootstraps the server with).
	CreatedBy string
}

// EnrollToken lets devices of one organisation enrol.
type EnrollToken struct {
	ID        string
	Org       string
	Hash      string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Revoked   bool
	// MaxUses is how many devices may enrol with the token (0: no limit);
	// Uses is how many did. CreateDevices counts them.
	MaxUses int64
	Uses    int64
}

// ErrEnrollToken is a device that cannot enrol with the token it names:
// used up, revoked, expired or not its organisation's. CreateDevices
// checks it in its transaction, so two replicas cannot both use the last
// use.
var ErrEnrollToken = errors.New("enrolment token cannot enrol another device")

// Device is one enrolled endpoint.
type Device struct {
	ID           string
	Org          string
	CredHash     string
	Platform     string
	OSBuild      string
	AgentVersion string
	EnrolledAt   time.Time
	LastSeen     time.Time
	LastSeq      uint64 // highest event sequence number stored
	Revoked      bool
	// EnrolledWith is the enrolment token the device used ("" for one
	// created otherwise); CreateDevices counts it as one use.
	EnrolledWith string
	// Anomalies counts the device's reports the gates did not believe:
	// events about a release it was never offered, or about a version it
	// was not running. One device's forgery moves no gate; a count here
	// is for a person to look at.
	Anomalies int64
}

// DeviceChannel is what a device reports for one channel.
type DeviceChannel struct {
	Device        string    `json:"-"`
	Channel       string    `json:"channel"`
	ActiveVersion uint64    `json:"active_version"`
	LKGVersion    uint64    `json:"lkg_version"`
	State         string    `json:"state"` // active, pending, probation, reverted
	UpdatedAt     time.Time `json:"updated_at"`
	// Offered says whether a release of ActiveVersion on Channel was
	// offered to the device: only then does the device's time on that
	// version count as the release's exposure (a device that claims a
	// version it was never given dilutes no crash rate). Stores fill it in
	// DeviceChannels; it is not written.
	Offered bool `json:"-"`
	// Release, when the server sets it on a written channel, is the
	// release of ActiveVersion: the store answers in CheckinResult.Offered
	// whether it was offered to the device, in the write's transaction.
	Release string `json:"-"`
}

// DeviceFilter selects devices; empty fields match all.
type DeviceFilter struct {
	Org          string
	Platform     string
	AgentVersion string
	Limit        int
	After        string // device id to continue after
}

// Event is one device event, idempotent by (Device, Seq).
type Event struct {
	Device  string
	Seq     uint64
	Time    time.Time
	Type    string // applied, apply-failed, reverted, worker-crash, unclean-reboot, actions, heartbeat
	Channel string
	Version uint64
	Reason  string
	Counts  map[string]int64 // action counts: log, alert, block
	// Counters are the increments this event makes; they are applied only
	// when the event is new, so a retried check-in never double-counts.
	Counters []Counter `json:"-"`
}

// CounterKey is one aggregation cell of the telemetry the rollout
// controller reads.
type CounterKey struct {
	Release string
	Wave    int
	Org     string
	Stratum string // platform/agent version/OS build
	Window  time.Time
	Metric  string // applied, apply-failed, reverted, worker-crash, unclean-reboot, heartbeat, action-log, ...
}

// Counter is a CounterKey with its value.
type Counter struct {
	CounterKey
	Value int64
	// Device, when set, makes the increment one device's testimony about
	// Release, which the store checks in the write's transaction, so that
	// it holds across restarts and replicas: with Offered, it counts only
	// if the release was offered to the device (else it is an anomaly of
	// the device's); with Once, only the first time the device says Once
	// about the release — the gates count devices, not events. With Nth
	// above 1, only the Nth time: a device that rebooted uncleanly three
	// times counts once as a boot loop, however often it says so after.
	Device  string
	Once    string
	Nth     int
	Offered bool
}

// Believe keeps the counters of one event of device that count (see
// Counter): a write speaks for its own device only; with Offered, a
// counter counts only if offered(release) (else it is refused, an anomaly
// of the device's); with Once, only if this is the Nth (at least first)
// time the device says it: the marks once, once#2, once#3 ... are its
// tally, marked in order with mark(release, mark) (which says whether a
// mark is new), one step per event whatever its counters ask, up to the
// largest Nth of the event's counters. Stores call it inside the write's
// transaction, once per event.
func Believe(device string, cs []Counter, offered func(release string) (bool, error), mark func(release, once string) (bool, error)) (kept []Counter, refused int, err error) {
	// This event's place in each tally it steps (0: past its largest Nth).
	type tally struct{ release, once string }
	nth := map[tally]int{}
	depth := map[tally]int{}
	for _, c := range cs {
		if c.Once != "" && c.Device == device {
			k := tally{c.Release, c.Once}
			depth[k] = max(depth[k], c.Nth, 1)
		}
	}
	step := func(k tally) (int, error) {
		if n, ok := nth[k]; ok {
			return n, nil
		}
		nth[k] = 0
		for i := 1; i <= depth[k]; i++ {
			m := k.once
			if i > 1 {
				m += "#" + strconv.Itoa(i)
			}
			first, err := mark(k.release, m)
			if err != nil {
				return 0, err
			}
			if first {
				nth[k] = i
				break
			}
		}
		return nth[k], nil
	}
	for _, c := range cs {
		if c.Device == "" {
			kept = append(kept, c)
			continue
		}
		if c.Device != device {
			refused++
			continue
		}
		if c.Offered {
			ok, err := offered(c.Release)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				refused++
				continue
			}
		}
		if c.Once != "" {
			n, err := step(tally{c.Release, c.Once})
			if err != nil {
				return nil, 0, err
			}
			if n != max(c.Nth, 1) {
				continue
			}
		}
		kept = append(kept, c)
	}
	return kept, refused, nil
}

// Offer records that a device was first told to install a release's
// version. It is stored before the device hears the answer, so a device
// that dies applying it still counts as exposed: the silence gate and the
// organisations' hourly budgets count offers.
type Offer struct {
	Release string
	Device  string
	Org     string
	Wave    int
	At      time.Time
	// Cap, when above 0, is the organisation's hourly budget in devices:
	// the store keeps a new offer only while fewer than Cap of the
	// organisation's offers are at or after At minus an hour, deciding
	// one at a time across every replica (CheckinResult.Capped).
	Cap int64
}

// CheckinWrite is what one check-in changes durably; heartbeats go through
// TouchDevices. The server batches them; ApplyCheckins writes a batch in
// one transaction.
type CheckinWrite struct {
	Device   Device // ID, Platform, OSBuild, AgentVersion, LastSeen
	Channels []DeviceChannel
	Events   []Event
	Offers   []Offer // stored once per (release, device); repeats are ignored
	// Anomalies are reports the server already refused to count (about
	// a version the device was not running); the store adds them, and
	// the counters it refuses, to the device's Anomalies.
	Anomalies int64
}

// SilenceQuery asks, per organisation and stratum, how many devices went
// quiet.
type SilenceQuery struct {
	Release string
	// Since bounds the control group to devices seen since then (the
	// release's start), so that long-gone devices count in neither group.
	Since time.Time
	// OverdueBefore: a device last seen before it is silent.
	OverdueBefore time.Time
	// Channel and Version are the release's. An offered device whose
	// last-known-good on Channel is Version or later confirmed the release
	// healthy on its host: it passed the probation in which content that
	// takes a host down shows. It is counted apart (Confirmed), as part of
	// its organisation's reference, not as a device the release may have
	// silenced. Version 0 counts no device as confirmed.
	Channel string
	Version uint64
}

// SilenceStat is one organisation's and stratum's silence figures:
// devices offered the release (Offered, of which Confirmed confirmed it
// and OfferedSilent are quiet without having confirmed it), and as the
// control group devices seen since the release started that were not
// offered it.
type SilenceStat struct {
	Org             string
	Stratum         string // platform/agent version/OS build
	Offered         int64
	OfferedSilent   int64 // quiet, not confirmed
	Confirmed       int64
	ConfirmedSilent int64
	Control         int64
	ControlSilent   int64
}

// CompareSilence orders silence figures by organisation, then stratum.
func CompareSilence(a, b SilenceStat) int {
	if c := strings.Compare(a.Org, b.Org); c != 0 {
		return c
	}
	return strings.Compare(a.Stratum, b.Stratum)
}

// PlanTemplate is a vendor's named rollout plan: a release may name it
// instead of carrying a plan, and takes a copy when it is created.
type PlanTemplate struct {
	Vendor    string
	Name      string
	Plan      []byte // rollout.Plan as JSON, validated by the server
	UpdatedAt time.Time
	UpdatedBy string
}

// KillSwitch stops new versions on one channel, or on all ("*").
type KillSwitch struct {
	Scope   string    `json:"scope"` // "*" or a channel id
	Engaged bool      `json:"engaged"`
	Reason  string    `json:"reason"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
}

// Lease is held by the one active rollout controller.
type Lease interface {
	// Check reports whether the lease is still held; an error means it
	// may have been lost, and the holder must stop acting.
	Check(ctx context.Context) error
	Release() error
}

// ErrNotLeader is returned by Lead when another replica holds the lease.
var ErrNotLeader = errors.New("another replica is the controller")

// DeviceSeen is a device's latest check-in time.
type DeviceSeen struct {
	ID       string
	LastSeen time.Time
	// Window, when above 0, is the counter window (in windows since the
	// epoch) of the device's heartbeat, and Beats the counters it adds
	// to. They are added only if no heartbeat of the device was counted
	// for that window or a later one: a device whose check-ins land on
	// several replicas counts once a window.
	Window int64
	Beats  []CounterKey
}

// AddBeats adds one heartbeat to each of keys' counters. It appends to
// cs: give it a slice of your own (slices.Clip the caller's once, not at
// every call, or every call copies the lot).
func AddBeats(cs []Counter, keys []CounterKey) []Counter {
	for _, k := range keys {
		cs = append(cs, Counter{CounterKey: k, Value: 1})
	}
	return cs
}

// CheckinResult says, per write, which events were new (the rest were
// retries already stored).
type CheckinResult struct {
	NewEvents int
	LastSeq   uint64
	// Refused counts the new events' device counters the store did not
	// count because the release was never offered to the device.
	Refused int
	// Offered are the Releases of the written channels that were offered
	// to the device.
	Offered []string
	// Capped are the Releases of the write's offers not stored because
	// the organisation's hourly budget was spent (Offer.Cap).
	Capped []string
}

// AuditEntry is one state change. Entries form a hash chain: Hash covers
// the entry and PrevHash, so altering or removing one breaks every later
// link. A Keyed entry's hash is an HMAC with the server's audit key, so
// that someone who can write the database but not read the server's key
// cannot rewrite the chain (AuditMAC); entries written before the server
// had a key hash with plain SHA-256 (AuditHash).
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	Reason   string    `json:"reason"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
	Keyed    bool      `json:"keyed"`
}

// AuditCheckpoint is the server's ed25519 signature over one entry's
// sequence number and hash (CheckpointMessage): anyone with the public key
// can check, offline, that the chain up to it is the one the server wrote.
type AuditCheckpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// ErrAuditBroken: the audit log does not verify.
var ErrAuditBroken = errors.New("audit log broken")

// Reseal chains entries (the whole log, in order) with key: what
// SealAuditLog stores. It returns the entries that changed, or
// ErrAuditBroken naming the first entry that does not verify.
func Reseal(key []byte, entries []AuditEntry) ([]AuditEntry, error) {
	if seq, why := VerifyChain(nil, "", false, entries); seq != 0 {
		return nil, fmt.Errorf("%w at entry %d: %s", ErrAuditBroken, seq, why)
	}
	for _, e := range entries {
		if e.Keyed && !hmac.Equal([]byte(AuditMAC(key, e)), []byte(e.Hash)) {
			return nil, fmt.Errorf("%w at entry %d: keyed with another key", ErrAuditBroken, e.Seq)
		}
	}
	i := slices.IndexFunc(entries, func(e AuditEntry) bool { return !e.Keyed })
	if i < 0 {
		return nil, nil
	}
	prev := ""
	if i > 0 {
		prev = entries[i-1].Hash
	}
	out := slices.Clone(entries[i:])
	for j := range out {
		out[j].PrevHash = prev
		SealAudit(key, &out[j])
		prev = out[j].Hash
	}
	return out, nil
}

// CheckpointMessage is what a checkpoint signs.
func CheckpointMessage(seq int64, hash string) []byte {
	return []byte("ringfence audit checkpoint\n" + strconv.FormatInt(seq, 10) + "\n" + hash + "\n")
}

// Store is the control plane's storage.
type Store interface {
	Ping(ctx context.Context) error
	Close() error

	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)

	CreateChannel(ctx context.Context, c Channel) error
	GetChannel(ctx context.Context, id string) (Channel, error)
	ListChannels(ctx context.Context, vendor string) ([]Channel, error)

	// PutArtifact stores an immutable artifact; storing the same bytes
	// again is a no-op, different bytes for the same version ErrConflict.
	PutArtifact(ctx context.Context, a Artifact) error
	GetArtifact(ctx context.Context, channel string, version uint64) (Artifact, error)
	// LatestArtifactVersion is the highest stored version (0 if none).
	LatestArtifactVersion(ctx context.Context, channel string) (uint64, error)

	CreateRelease(ctx context.Context, r Release) error
	GetRelease(ctx context.Context, id string) (Release, error)
	ListReleases(ctx context.Context, channel string) ([]Release, error)
	// UpdateRelease writes r if the stored revision is r.Revision, and
	// returns the new revision; otherwise ErrStale. The audit entries
	// that say why are appended in the same transaction: the change and
	// its record are stored together or not at all.
	UpdateRelease(ctx context.Context, r Release, audit ...AuditEntry) (int64, error)

	PutPolicy(ctx context.Context, p Policy) error
	ListPolicies(ctx context.Context, org string) ([]Policy, error)
	AllPolicies(ctx context.Context) ([]Policy, error)

	CreateAPIToken(ctx context.Context, t APIToken) error
	APITokenByHash(ctx context.Context, hash string) (APIToken, error)
	GetAPIToken(ctx context.Context, id string) (APIToken, error)
	ListAPITokens(ctx context.Context, tenant string) ([]APIToken, error)
	RevokeAPIToken(ctx context.Context, id string) error

	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	EnrollTokenByHash(ctx context.Context, hash string) (EnrollToken, error)
	RevokeEnrollToken(ctx context.Context, id string) error
	// ListEnrollTokens lists an organisation's enrolment tokens ("": all),
	// oldest first.
	ListEnrollTokens(ctx context.Context, org string) ([]EnrollToken, error)

	CreateDevice(ctx context.Context, d Device) error
	// CreateDevices creates several devices in one transaction, all or
	// none: enrolment bursts are written in batches.
	CreateDevices(ctx context.Context, ds []Device) error
	GetDevice(ctx context.Context, id string) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	DeviceChannels(ctx context.Context, device string) ([]DeviceChannel, error)
	RevokeDevice(ctx context.Context, id string) error

	// ApplyCheckins writes a batch of check-ins in one transaction:
	// device last-seen and reported state, new events (those above the
	// device's stored sequence number) and counter increments for them.
	ApplyCheckins(ctx context.Context, ws []CheckinWrite) ([]CheckinResult, error)
	// TouchDevices records last-seen times (never moving one back), adds
	// each device's heartbeat counters once per window (DeviceSeen) and
	// adds counter increments, in one transaction: the server batches the
	// heartbeats of plain check-ins into it about once a second.
	TouchDevices(ctx context.Context, seen []DeviceSeen, counters []Counter) error
	Counters(ctx context.Context, release string) ([]Counter, error)
	// CounterTotals is a release's counters summed over all windows, per
	// wave, organisation, stratum and metric (Window is zero), read from
	// running totals kept with every increment: what the controller reads
	// every tick. sinceMark subtracts the totals at the last MarkCounters.
	CounterTotals(ctx context.Context, release string, sinceMark bool) ([]Counter, error)
	// MarkCounters remembers a release's totals now: when a person resumes
	// a halted release, its gates judge only what comes after.
	MarkCounters(ctx context.Context, release string) error

	// SetHourlyCap sets an organisation's hourly budget (basis points).
	SetHourlyCap(ctx context.Context, org string, bp int) error
	// OffersSince counts the offers made to an organisation's devices
	// since a time, across all releases.
	OffersSince(ctx context.Context, org string, since time.Time) (int64, error)
	// FleetSizes counts the enrolled, unrevoked devices per organisation.
	FleetSizes(ctx context.Context) (map[string]int64, error)
	// AgentVersions counts the unrevoked devices per platform and agent
	// version they last reported, sorted by platform, then version text.
	AgentVersions(ctx context.Context) ([]AgentVersionCount, error)
	// SilenceStats groups the devices offered a release, and the control
	// group, by organisation and stratum, counting those last seen before
	// OverdueBefore; sorted by organisation, then stratum.
	SilenceStats(ctx context.Context, q SilenceQuery) ([]SilenceStat, error)
	// DevicesOnVersion counts unrevoked devices that report running a
	// version of a channel.
	DevicesOnVersion(ctx context.Context, channel string, version uint64) (int64, error)
	// VersionCounts counts the unrevoked devices (of one organisation, or
	// all for Org "") by the version they report running on each channel,
	// and how many of them were last seen before QuietBefore; sorted by
	// channel, then version.
	VersionCounts(ctx context.Context, q VersionQuery) ([]VersionCount, error)

	// PutPlanTemplate creates or replaces a vendor's named plan.
	PutPlanTemplate(ctx context.Context, t PlanTemplate) error
	// DeletePlanTemplate deletes one; ErrNotFound if there is none.
	DeletePlanTemplate(ctx context.Context, vendor, name string) error
	// PlanTemplates lists a vendor's plans (every vendor's for ""), by
	// vendor and name.
	PlanTemplates(ctx context.Context, vendor string) ([]PlanTemplate, error)

	SetKillSwitch(ctx context.Context, k KillSwitch) error
	// KillSwitches lists every scope ever set, engaged or not.
	KillSwitches(ctx context.Context) ([]KillSwitch, error)

	// Lead tries to become the rollout controller. SQLite is single-node
	// and always grants it; PostgreSQL grants it to one session at a time
	// (an advisory lock, freed when the holder's connection dies).
	// ErrNotLeader means someone else holds it.
	Lead(ctx context.Context) (Lease, error)
	// Announce tells every replica on the store that releases, kill
	// switches or policies changed; WatchChanges calls onChange whenever
	// one did (and once after any gap in which it may have missed one),
	// until ctx ends. PostgreSQL carries it with NOTIFY and LISTEN; a
	// single-node store has no other replica to tell, and WatchChanges
	// returns at once.
	Announce(ctx context.Context) error
	WatchChanges(ctx context.Context, onChange func()) error

	// AppendAudit adds an entry to the chain and returns it with its
	// sequence number and hashes: keyed with the key SetAuditKey gave.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	ListAudit(ctx context.Context, afterSeq int64, limit int) ([]AuditEntry, error)
	// Atomically runs fn with a context in which the store's calls share
	// one transaction: all of their changes are stored, or none. (The
	// in-memory store, which keeps nothing across a restart, runs fn as
	// it is.)
	Atomically(ctx context.Context, fn func(ctx context.Context) error) error
	// SetAuditKey is the key later entries are chained with (nil: none).
	SetAuditKey(key []byte)
	// SealAuditLog chains every entry with key, in one transaction: the
	// entries written before the server had a key are checked with the
	// public hash and sealed, so that from then on every entry is keyed.
	// It returns how many entries it sealed; a chain that does not verify
	// is left as it is (ErrAuditBroken).
	SealAuditLog(ctx context.Context, key []byte) (int, error)
	// AddAuditCheckpoint stores a checkpoint; one per sequence number,
	// a repeat is ignored.
	AddAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]AuditCheckpoint, error)

	WebhookStore
}

// AuditHash is the chain hash of an entry: SHA-256 over the previous hash
// and the entry's fields (time in milliseconds), each length-prefixed so
// that no two different entries hash alike.
func AuditHash(e AuditEntry) string { return auditDigest(sha256.New(), e) }

// AuditMAC is the chain hash of a keyed entry: HMAC-SHA256 with key over
// what AuditHash covers.
func AuditMAC(key []byte, e AuditEntry) string { return auditDigest(hmac.New(sha256.New, key), e) }

// SealAudit sets an entry's hash: keyed when there is a key.
func SealAudit(key []byte, e *AuditEntry) {
	e.Keyed = key != nil
	if e.Keyed {
		e.Hash = AuditMAC(key, *e)
	} else {
		e.Hash = AuditHash(*e)
	}
}

func auditDigest(h hash.Hash, e AuditEntry) string {
	at := int64(0)
	if !e.Time.IsZero() {
		at = e.Time.UnixMilli()
	}
	for _, f := range []string{e.PrevHash, strconv.FormatInt(e.Seq, 10), strconv.FormatInt(at, 10), e.Actor, e.Action, e.Target, e.Reason} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyChain checks that entries, in order from the first, link up; it
// returns the sequence number of the first broken entry and why, or 0.
// keyedBefore says an earlier entry was keyed: after one, every entry must
// be (else it was written without the server's key). Keyed entries are
// checked against key, or only for their links when key is nil (a
// verifier without the key relies on checkpoints for them).
func VerifyChain(key []byte, prev string, keyedBefore bool, entries []AuditEntry) (int64, string) {
	for _, e := range entries {
		if e.PrevHash != prev {
			return e.Seq, fmt.Sprintf("entry %d names previous hash %.12s…, but the entry before it hashes to %.12s…", e.Seq, e.PrevHash, prev)
		}
		switch {
		case !e.Keyed && key != nil:
			return e.Seq, fmt.Sprintf("entry %d is not keyed: it was written without the server's audit key", e.Seq)
		case !e.Keyed && keyedBefore:
			return e.Seq, fmt.Sprintf("entry %d is not keyed, after keyed entries: it was written without the server's audit key", e.Seq)
		case !e.Keyed:
			if h := AuditHash(e); h != e.Hash {
				return e.Seq, fmt.Sprintf("entry %d was altered: its content hashes to %.12s…, not the stored %.12s…", e.Seq, h, e.Hash)
			}
		case key != nil:
			if h := AuditMAC(key, e); !hmac.Equal([]byte(h), []byte(e.Hash)) {
				return e.Seq, fmt.Sprintf("entry %d was altered or written without the server's audit key: its keyed hash is %.12s…, not the stored %.12s…", e.Seq, h, e.Hash)
			}
		}
		keyedBefore = keyedBefore || e.Keyed
		prev = e.Hash
	}
	return 0, ""
}

// Millis is how the stores keep times: Unix milliseconds, the zero time
// kept zero.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis reads a stored time back: UTC, whole milliseconds.
func FromMillis(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// WriteOrder is the order a batch of check-ins is written in: by device
// id. Every writer takes locks in key order, so concurrent batches never
// deadlock.
func WriteOrder(ws []CheckinWrite) []int {
	idx := make([]int, len(ws))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(ws[a].Device.ID, ws[b].Device.ID) })
	return idx
}

// VersionQuery selects the devices VersionCounts counts.
type VersionQuery struct {
	Org         string // "": every organisation
	QuietBefore time.Time
}

// VersionCount is how many unrevoked devices run one version of a channel,
// and how many of them are quiet.
type VersionCount struct {
	Channel         string
	Version         uint64
	Devices, Silent int64
}

// AgentVersionCount is how many unrevoked devices run one agent version on
// one platform.
type AgentVersionCount struct {
	Platform     string
	AgentVersion string
	Devices      int64
}
