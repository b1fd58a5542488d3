package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
)

// A false-positive storm released with shadow canaries: the canary's
// devices run it in shadow, the action-rate gate judges what it would
// have done and halts in the canary, and no device ever enforced it.
func TestShadowCanaryStormHaltsWithNothingEnforced(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		f.onRelease = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": 40, "alert": 10}}}
		}
		f.control = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": 1}}}
		}
		rel := e.startRelease(t, quickPlan().WithShadowCanaries(), "normal")
		st := f.until(t, 12, "halted", inState("halted"), rel.ID)
		if !strings.Contains(st.Summary, "action-rate") || !strings.Contains(st.Summary, "canary, in shadow") {
			t.Fatalf("halt summary %q: want the action-rate gate, in the shadow canary", st.Summary)
		}
		offered := 0
		for _, d := range f.devs {
			if d.offered {
				offered++
			}
		}
		if n := f.enforcedOnRelease.Load(); offered == 0 || n != 0 {
			t.Fatalf("%d devices offered 293, %d of its actions enforced; want some offered, none enforced", offered, n)
		}
		f.onRelease = nil
		f.tick(t)
		for _, d := range f.devs {
			if d.active != 292 || d.shadow {
				t.Fatalf("device %s runs %d (shadow %v) after the halt, want 292 enforced", d.id, d.active, d.shadow)
			}
		}
	})
}

// A good release with shadow canaries: the canary's devices run it in
// shadow; its action figures are the shadow counts, against a control of
// devices not offered it (the canary devices' enforced actions, heavy
// here, are neither); the first wave after the canaries enforces on the
// canary's devices too, and the release completes enforced everywhere.
func TestShadowCanaryFiguresAndEnforcement(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		f.onRelease = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": 1}}}
		}
		f.control = func(d *fleetDevice) []server.EventReport {
			n := int64(1)
			if d.shadow {
				n = 1000 // the last-known-good enforced beside the shadow
			}
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": n}}}
		}
		rel := e.startRelease(t, quickPlan().WithShadowCanaries(), "normal")
		st := f.until(t, 20, "awaiting approval", inState("awaiting-approval"), rel.ID)
		if !st.Waves[1].Shadow || st.Waves[2].Shadow {
			t.Errorf("waves' shadow: canary %v, early %v; want true, false", st.Waves[1].Shadow, st.Waves[2].Shadow)
		}
		inShadow := 0
		for _, d := range f.devs {
			if d.active == 293 {
				if !d.shadow || d.lkg != 292 {
					t.Fatalf("device %s runs 293 with shadow %v, lkg %d in the shadow canary; want shadow, 292 enforced", d.id, d.shadow, d.lkg)
				}
				inShadow++
			}
		}
		if inShadow < 40 {
			t.Fatalf("%d devices run 293 in shadow, want the canary's 40", inShadow)
		}
		var action *rollout.GateResult
		for i, g := range st.Gates {
			if g.Metric == rollout.GateActionRate {
				action = &st.Gates[i]
			}
			if g.Outcome != rollout.Pass {
				t.Errorf("gate %s: %s (%s)", g.Metric, g.Outcome, g.Message)
			}
		}
		// 1 block a round (5 min) is 12 per device-hour, on both sides.
		if action == nil || action.Events == 0 || action.Treated < 6 || action.Treated > 24 || action.Control < 6 || action.Control > 24 ||
			!strings.Contains(action.Message, "canary, in shadow") {
			t.Fatalf("action gate %+v: want shadow figures of about 12 per device-hour against a control of about 12", action)
		}
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "shadow figures reviewed"}, nil)
		f.until(t, 10, "in the early wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "early" }, rel.ID)
		f.tick(t)
		for _, d := range f.devs {
			if d.shadow {
				t.Fatalf("device %s still runs 293 in shadow in an enforcing wave", d.id)
			}
		}
		f.until(t, 200, "completed", inState("completed"), rel.ID)
		for range probationRounds + 1 {
			f.tick(t)
		}
		for _, d := range f.devs {
			if d.active != 293 || d.lkg != 293 || d.shadow {
				t.Fatalf("device %s: active %d, lkg %d, shadow %v after completion; want 293 enforced and confirmed", d.id, d.active, d.lkg, d.shadow)
			}
		}
	})
}

// A shadow canary needs a canary (agent builds are refused shadow in
// TestAgentBuildChannel).
func TestShadowPlansRefused(t *testing.T) {
	e := newEnv(t, "")
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), nil)
	plan := rollout.Plan{Waves: []rollout.Wave{{Name: "all", Share: rollout.Positions}}}
	body, _ := json.Marshal(map[string]any{"channel": "acme/ipc", "version": 293, "plan": plan, "shadow_canary": true})
	code, out := e.call(t, "POST", "/v1/releases", e.creds.PublisherToken, body)
	wantError(t, code, out, http.StatusBadRequest, "no canary wave to run in shadow")
}
