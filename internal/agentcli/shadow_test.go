package agentcli_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
)

// A release whose first wave runs in shadow, with real processes: the
// agent stages 293, its worker evaluates it beside 292, which stays
// enforced and last-known-good even once 293 is healthy; the server
// counts what 293 would have done as the release's action figures. When
// the release leaves the shadow wave the agent enforces 293 and it
// becomes last-known-good.
func TestAgentRunsAShadowWaveThenEnforces(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	events := filepath.Join("..", "..", "examples", "content", "events", "ipc-sample.jsonl")
	d.start(t, "", "--events", events, "--events-rate", "200")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))

	s.publishOnly(t, 293)
	plan := map[string]any{"waves": []map[string]any{
		{"name": "shadow", "share": 10000, "canary": true, "shadow": true, "min_devices": 1, "bake": "1h"},
		{"name": "everyone", "share": 10000, "min_devices": 1, "bake": "1h"},
	}}
	var rel struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.api(t, "POST", "/v1/releases", s.creds.Publisher, map[string]any{"channel": "acme/ipc", "version": 293, "plan": plan}, 201), &rel); err != nil {
		t.Fatal(err)
	}
	c := d.waitFor(t, "healthy on 293 in shadow", func(c agent.ChannelStatus) bool {
		return c.ActiveVersion == 293 && c.State == agent.StateActive
	})
	if !c.Shadow || c.LKGVersion != 292 {
		t.Fatalf("after its probation in shadow: %+v; want 293 in shadow, 292 enforced and last-known-good", c)
	}
	actionGate := func() rollout.GateResult {
		var st server.ReleaseStatus
		if err := json.Unmarshal(s.api(t, "GET", "/v1/releases/"+rel.ID+"/status", s.creds.Publisher, nil, 200), &st); err != nil {
			t.Fatal(err)
		}
		for _, g := range st.Gates {
			if g.Metric == rollout.GateActionRate {
				return g
			}
		}
		t.Fatalf("no action-rate gate in %+v", st)
		return rollout.GateResult{}
	}
	waitUntil(t, "the release's action figures count what 293 would do", func() bool { return actionGate().Events > 0 })

	// Leaving the canary wave takes an approval and the vendor's second
	// signature; then a person promotes it past its bake.
	s.api(t, "POST", "/v1/releases/"+rel.ID+"/approve", s.creds.Approver, map[string]string{"reason": "shadow figures reviewed"}, 200)
	sigs := filepath.Join(t.TempDir(), "sigs.json")
	for _, args := range [][]string{{"sign", "acme", "--key", s.creds.SigningKey, "--out", sigs}, {"publish", "--signatures", sigs}} {
		cmd := exec.Command(serverBin, args...)
		cmd.Env = cleanEnv("RINGFENCE_SERVER="+s.url, "RINGFENCE_TOKEN="+s.creds.Approver)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ringfence %v: %v\n%s", args, err, out)
		}
	}
	s.api(t, "POST", "/v1/releases/"+rel.ID+"/promote", s.creds.Publisher, map[string]string{"reason": "enforce after the shadow wave"}, 200)
	c = d.waitFor(t, "enforcing 293", func(c agent.ChannelStatus) bool { return c.ActiveVersion == 293 && !c.Shadow })
	if c.LKGVersion != 293 || c.State != agent.StateActive {
		t.Errorf("after the shadow wave: %+v; want 293 enforced and last-known-good", c)
	}
	waitUntil(t, "the enforcing wave's action figures count 293's actions", func() bool { return actionGate().Events > 0 })
}

// waitUntil polls cond for up to 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 30 s: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
