package cli_test

import (
	"strings"
	"testing"
)

// writeText is writeFile of a string.
func writeText(t *testing.T, dir, name, body string) string {
	t.Helper()
	return writeFile(t, dir, name, []byte(body))
}

const fleetYAML = `kind: Channel
vendor: acme
name: dns
category: network
---
kind: Plan
vendor: acme
name: cautious
plan:
  waves:
    - {name: canary, share: 50, canary: true, shadow: true, min_devices: 20, bake: 60m}
    - {name: all, share: 10000, bake: 4h}
---
kind: Policy
org: contoso
channel: acme/ipc
track: early
windows: ["sat 02:00-06:00"]
---
kind: Budget
org: contoso
hourly_cap_bp: 50
---
kind: KillSwitch
scope: acme/dns
engaged: true
reason: dns content frozen until the vendor's review
---
kind: Webhook
org: contoso
url: https://hooks.example.com/ringfence
events: [release.halted]
`

// apply makes the server what the files declare, through the API, once:
// applied twice, or applied from get's output, it changes nothing.
func TestApplyRoundTripsAndIsIdempotent(t *testing.T) {
	s := startDevServer(t, manualControl...)
	admin := s.creds.Admin
	dir := t.TempDir()

	// Today's state, exported and applied back: no change.
	before := ok(t, s.as(t, admin, "get", "all"))
	exported := writeText(t, dir, "exported.yaml", before.stdout)
	if r := ok(t, s.as(t, admin, "apply", "-f", exported, "--dry-run")); !strings.Contains(r.stdout, "no change") {
		t.Fatalf("get all | apply --dry-run:\n%s", r)
	}

	fleet := writeText(t, dir, "fleet.yaml", fleetYAML)
	dry := ok(t, s.as(t, admin, "apply", "-f", fleet, "--dry-run"))
	for _, want := range []string{"+ create Channel acme/dns (" + fleet + ":1)", "+ create Policy contoso acme/ipc", `track: "early"`,
		"~ update Budget contoso", "hourly_cap_bp: 0 → 50", "+ create KillSwitch acme/dns", "+ create Webhook org contoso https://hooks.example.com/ringfence", "+ create Plan acme/cautious", "dry run: 6 change(s), none made"} {
		if !strings.Contains(dry.stdout, want) {
			t.Errorf("dry run does not say %q:\n%s", want, dry.stdout)
		}
	}
	if r := ok(t, s.as(t, admin, "get", "channels")); strings.Contains(r.stdout, "name: dns") {
		t.Fatalf("the dry run made a channel:\n%s", r.stdout)
	}

	r := ok(t, s.as(t, admin, "apply", "-f", fleet))
	if !strings.Contains(r.stdout, "secret (shown once") {
		t.Errorf("the new webhook's secret is not shown:\n%s", r.stdout)
	}
	if r := ok(t, s.as(t, admin, "apply", "-f", fleet)); !strings.Contains(r.stdout, "no change") {
		t.Errorf("applied twice:\n%s", r)
	}
	after := ok(t, s.as(t, admin, "get", "all"))
	for _, want := range []string{"name: dns", "name: cautious", "bake: 1h0m0s", "track: early", "hourly_cap_bp: 50", "scope: acme/dns", "url: https://hooks.example.com/ringfence"} {
		if !strings.Contains(after.stdout, want) {
			t.Errorf("get all does not show %q:\n%s", want, after.stdout)
		}
	}
	again := writeText(t, t.TempDir(), "again.yaml", after.stdout)
	if r := ok(t, s.as(t, admin, "apply", "-f", again, "--dry-run")); !strings.Contains(r.stdout, "no change") {
		t.Errorf("get all | apply --dry-run after apply:\n%s", r)
	}
	// Every change is in the audit log, as if made by hand.
	audit := ok(t, s.as(t, admin, "audit", "list", "--json"))
	for _, action := range []string{"channel.create", "plan.set", "policy.set", "org.budget", "kill-switch.engage", "webhook.create"} {
		if !strings.Contains(audit.stdout, `"`+action+`"`) {
			t.Errorf("no %s in the audit log", action)
		}
	}

	// A change shows as a diff, and a dry run does not make it.
	changed := writeText(t, t.TempDir(), "changed.yaml", strings.NewReplacer("track: early", "track: ga-delay:24", "bake: 4h", "bake: 6h").Replace(fleetYAML))
	r = ok(t, s.as(t, admin, "apply", "-f", changed, "--dry-run"))
	for _, want := range []string{"~ update Policy contoso acme/ipc (" + changed + ":14)", `track: "early" → "ga-delay:24"`,
		"~ update Plan acme/cautious", `plan.waves[1].bake: "4h0m0s" → "6h0m0s"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run of changes does not say %q:\n%s", want, r.stdout)
		}
	}

	// Prune: a declaration of contoso's policies and webhooks without the
	// old ones removes them (policy back to ga), and touches no other kind.
	pruneDir := t.TempDir()
	writeText(t, pruneDir, "contoso.yaml", `kind: Policy
org: contoso
channel: acme/dns
track: ga-delay:6
---
kind: Webhook
org: contoso
url: https://hooks.example.com/other
events: []
`)
	r = ok(t, s.as(t, admin, "apply", "-f", pruneDir, "--prune"))
	for _, want := range []string{"- prune Policy contoso acme/ipc", "- prune Webhook org contoso https://hooks.example.com/ringfence", "+ create Policy contoso acme/dns"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("prune does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "KillSwitch") || strings.Contains(r.stdout, "Budget") || strings.Contains(r.stdout, "Channel") {
		t.Errorf("prune touched kinds the files do not declare:\n%s", r.stdout)
	}
	got := ok(t, s.as(t, admin, "get", "policies")).stdout
	if !strings.Contains(got, "channel: acme/ipc\ntrack: ga\n") || strings.Contains(got, "Sat 02:00") {
		t.Errorf("policies after prune:\n%s", got)
	}
	if hooks := ok(t, s.as(t, admin, "get", "webhooks")).stdout; strings.Contains(hooks, "/ringfence") || !strings.Contains(hooks, "/other") {
		t.Errorf("webhooks after prune:\n%s", hooks)
	}
	if r := ok(t, s.as(t, admin, "apply", "-f", pruneDir, "--prune")); !strings.Contains(r.stdout, "no change") {
		t.Errorf("prune applied twice:\n%s", r)
	}
}

// An invalid file is refused whole, every problem named with its file and
// line, and nothing is changed.
func TestApplyRefusesAnInvalidFileWithLocatedErrors(t *testing.T) {
	s := startDevServer(t, manualControl...)
	dir := t.TempDir()
	bad := writeText(t, dir, "bad.yaml", `kind: Policy
org: contoso
channel: acme/ipc
track: sometimes
---
kind: Budget
org: contoso
hourly_cap_bp: 20000
colour: blue
---
kind: Webhook
vendor: acme
org: contoso
url: ftp://example.com
events: []
---
kind: Channel
vendor: acme
name: ipc
---
kind: Channel
vendor: acme
name: ipc
---
kind: Gadget
`)
	r := s.as(t, s.creds.Admin, "apply", "-f", bad)
	wantCode(t, r, 1)
	for _, want := range []string{
		bad + ":4: Policy /track:",
		bad + ":8: Budget /hourly_cap_bp: maximum: got 20,000, want 10,000",
		bad + ":9: Budget /: additional properties 'colour' not allowed",
		bad + ":14: Webhook /url:",
		bad + ":11: Webhook /: ",
		bad + ":21: Channel acme/ipc is declared again (first at " + bad + ":17)",
		bad + ":25: Gadget /kind:",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q:\n%s", want, r.stderr)
		}
	}
	if got := ok(t, s.as(t, s.creds.Admin, "get", "budgets")).stdout; strings.Contains(got, "20000") {
		t.Errorf("an invalid file changed something:\n%s", got)
	}
	// A track the schema's pattern lets through but the rules refuse.
	late := writeText(t, dir, "late.yaml", "kind: Policy\norg: contoso\nchannel: acme/ipc\ntrack: ga-delay:100\n")
	r = s.as(t, s.creds.Admin, "apply", "-f", late)
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, late+":4: Policy /track:") {
		t.Errorf("ga-delay:100:\n%s", r)
	}
}

// apply is authorised per object as the API is: an organisation's admin
// may set its policies but not create a vendor's channel; what it may do
// is done, what it may not is named.
func TestApplyIsAuthorisedLikeTheAPI(t *testing.T) {
	s := startDevServer(t, manualControl...)
	f := writeText(t, t.TempDir(), "mixed.yaml", `kind: Channel
vendor: acme
name: dns
---
kind: Policy
org: contoso
channel: acme/ipc
track: early
`)
	r := s.as(t, s.creds.OrgAdmin, "apply", "-f", f)
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, f+":1: Channel acme/dns: ") || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("the refused channel is not named:\n%s", r)
	}
	if got := ok(t, s.as(t, s.creds.OrgAdmin, "get", "policies")).stdout; !strings.Contains(got, "track: early") {
		t.Errorf("the allowed policy was not set:\n%s", got)
	}
	// A viewer changes nothing.
	r = s.as(t, s.creds.Viewer, "apply", "-f", f)
	wantCode(t, r, 1)
}
