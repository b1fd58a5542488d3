package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The schema published for people and editors is the one apply uses.
func TestPublishedSchemaIsTheOneUsed(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "objects.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, Schema) {
		t.Error("docs/objects.schema.json differs from internal/manifest/schema.json: copy it")
	}
}

func parse(t *testing.T, src string) []Object {
	t.Helper()
	objs, err := Parse("f.yaml", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestPlan(t *testing.T) {
	have := parse(t, `kind: Policy
org: contoso
channel: acme/ipc
track: early
---
kind: Policy
org: fabrikam
channel: acme/ipc
track: early
---
kind: Policy
org: contoso
channel: acme/dns
track: ga
---
kind: Budget
org: contoso
hourly_cap_bp: 0
---
kind: KillSwitch
scope: "*"
engaged: true
reason: r
---
kind: Webhook
org: contoso
url: https://a.example/x
events: [release.halted, release.completed]
---
kind: Plan
vendor: acme
name: slow
plan: {waves: [{name: all, share: 10000, bake: 1h}]}
`)
	tests := []struct {
		name  string
		want  string
		prune bool
		plan  []string // Op Key, in order
	}{
		{"same-is-nothing", "kind: Policy\norg: contoso\nchannel: acme/ipc\ntrack: early\n", false, nil},
		{"defaults-are-absent", "kind: Budget\norg: contoso\nhourly_cap_bp: 0\n---\nkind: Policy\norg: contoso\nchannel: acme/x\ntrack: ga\n", false, nil},
		{"events-order-is-no-change", "kind: Webhook\norg: contoso\nurl: https://a.example/x\nevents: [release.completed, release.halted]\n", false, nil},
		{"prune-within-the-orgs-named", "kind: Policy\norg: contoso\nchannel: acme/x\ntrack: early\n", true,
			[]string{"prune Policy contoso acme/ipc", "create Policy contoso acme/x"}},
		{"prune-leaves-kinds-not-declared", "kind: Budget\norg: contoso\nhourly_cap_bp: 10\n", true, []string{"update Budget contoso"}},
		{"prune-releases-a-switch", "kind: KillSwitch\nscope: acme/ipc\nengaged: false\nreason: r\n", true, []string{"prune KillSwitch *"}},
		{"filter-change-replaces", "kind: Webhook\norg: contoso\nurl: https://a.example/x\nevents: [release.halted]\n", false, []string{"replace Webhook org contoso https://a.example/x"}},
		{"enabled-change-updates", "kind: Webhook\norg: contoso\nurl: https://a.example/x\nevents: [release.halted, release.completed]\nenabled: false\n", false,
			[]string{"update Webhook org contoso https://a.example/x"}},
		{"plan-spelled-otherwise-is-no-change", "kind: Plan\nvendor: acme\nname: slow\nplan: {waves: [{name: all, share: 10000, bake: 60m, min_devices: 0}]}\n", false, nil},
		{"plan-prune-within-the-vendor", "kind: Plan\nvendor: acme\nname: fast\nplan: {waves: [{name: all, share: 10000, bake: 1m}]}\n", true,
			[]string{"create Plan acme/fast", "prune Plan acme/slow"}},
		{"plan-prune-not-other-vendors", "kind: Plan\nvendor: globex\nname: fast\nplan: {waves: [{name: all, share: 10000, bake: 1m}]}\n", true,
			[]string{"create Plan globex/fast"}},
		{"channel-change-refused", "kind: Channel\nvendor: acme\nname: ipc\ncategory: network\n", false, []string{"refuse Channel acme/ipc"}},
	}
	have = append(have, Object{Kind: KindChannel, Vendor: "acme", Name: "ipc", Type: "content", Category: "detection"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range Plan(parse(t, tc.want), have, tc.prune) {
				got = append(got, string(c.Op)+" "+c.Want.Key())
			}
			if strings.Join(got, "; ") != strings.Join(tc.plan, "; ") {
				t.Errorf("plan %q, want %q", got, tc.plan)
			}
		})
	}
}

// What get writes, apply reads back as the same objects.
func TestMarshalRoundTrips(t *testing.T) {
	cap, on := 40, true
	objs := []Object{
		{Kind: KindWebhook, Vendor: "acme", URL: "https://h.example/a", Events: []string{"release.halted"}, Format: "slack", Enabled: &on},
		{Kind: KindBudget, Org: "contoso", HourlyCapBP: &cap},
		{Kind: KindPolicy, Org: "contoso", Channel: "acme/ipc", Track: "pinned:292", Windows: []string{"daily 01:00-02:00"}},
		{Kind: KindKillSwitch, Scope: "*", Engaged: &on, Reason: "frozen"},
		{Kind: KindChannel, Vendor: "acme", Name: "ipc", Type: "agent", Category: "sensor", Unpausable: true},
	}
	var buf bytes.Buffer
	if err := Marshal(&buf, objs); err != nil {
		t.Fatal(err)
	}
	back := parse(t, buf.String())
	if p := Plan(back, objs, true); len(p) != 0 {
		t.Errorf("round trip changes %v:\n%s", p, buf.String())
	}
	if len(back) != len(objs) || back[0].Kind != KindChannel || back[len(back)-1].Kind != KindKillSwitch {
		t.Errorf("order of get: %v", back)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("kind: Policy\norg: contoso\nchannel: acme/ipc\ntrack: early\nwindows: [\"sat 02:00-06:00\"]\n")
	f.Add("kind: Webhook\nvendor: acme\nurl: https://h.example\nevents: []\n---\nkind: Budget\norg: x\nhourly_cap_bp: 5\n")
	f.Add(`{"kind": "KillSwitch", "scope": "*", "engaged": true, "reason": "r"}`)
	f.Add("kind: [\n")
	f.Add("- a\n- b\n")
	f.Fuzz(func(t *testing.T, src string) {
		objs, err := Parse("f.yaml", strings.NewReader(src))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Marshal(&buf, objs); err != nil {
			t.Fatalf("Marshal of parsed objects: %v", err)
		}
		back, err := Parse("g.yaml", &buf)
		if err != nil {
			t.Fatalf("what Marshal wrote does not parse: %v\n%s", err, buf.String())
		}
		if Dedupe(objs) == nil {
			if p := Plan(back, objs, true); len(p) != 0 {
				t.Fatalf("round trip changes %v", p)
			}
		}
	})
}
