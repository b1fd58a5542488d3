package rollout

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzParsePlan: any bytes either fail with an error or give a plan that
// keeps the invariants the controller relies on, and survives a round trip.
func FuzzParsePlan(f *testing.F) {
	for _, p := range []Plan{DefaultContentPlan(), DefaultAgentPlan()} {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte(`{"waves":[{"name":"all","share":10000,"min_devices":0,"bake":"1h","gates":[{"metric":"silence","limit":0.1,"ratio":3,"alpha":0.001,"min_exposure":10}]}]}`))
	f.Add([]byte(`{"waves":[{"name":"a","share":100,"bake":"1h"},{"name":"b","share":10000,"canary":true,"bake":"1h"}]}`))
	f.Add([]byte(`{"waves":[{"name":"x","share":10000,"bake":"-1h","deadline":"1ns"}]}`))
	f.Add([]byte(`{"waves":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan(b)
		if err != nil {
			return
		}
		last := p.Waves[len(p.Waves)-1]
		if last.InternalOnly || last.Share != Positions {
			t.Fatalf("accepted plan whose last wave does not reach everyone: %+v", last)
		}
		for i, w := range p.Waves {
			if w.Bake < 0 || w.Deadline < 0 || w.MinDevices < 0 || w.Share < 0 || w.Share > Positions {
				t.Fatalf("accepted wave %d with out-of-range figures: %+v", i, w)
			}
			if w.deadline() < time.Duration(w.Bake) {
				t.Fatalf("wave %d: deadline %s before the bake %s", i, w.deadline(), time.Duration(w.Bake))
			}
			for _, g := range w.gates() {
				if err := g.Validate(); err != nil {
					t.Fatalf("accepted an invalid gate: %v", err)
				}
			}
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePlan(again); err != nil {
			t.Fatalf("a parsed plan does not parse again: %v\n%s", err, again)
		}
	})
}

// FuzzEvaluate: whatever the figures, every gate gives one of the five
// outcomes with a message, finite figures, and Step halts on exactly the
// failures.
func FuzzEvaluate(f *testing.F) {
	f.Add(int64(100), int64(10000), int64(3), int64(10), int64(40), int64(40), int64(1000), int64(4), uint8(0), false)
	f.Add(int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), uint8(1), false)
	f.Add(int64(5), int64(0), int64(900), int64(0), int64(812), int64(309), int64(10000), int64(40), uint8(2), false)
	f.Add(int64(-1), int64(1<<40), int64(-7), int64(1<<62), int64(3), int64(9), int64(-2), int64(5), uint8(3), true)
	f.Fuzz(func(t *testing.T, hb, chb, ev, cev, offered, silent, control, csilent int64, wave uint8, broken bool) {
		tel := Telemetry{HeartbeatSpan: 5 * time.Minute, SilentAfter: 15 * time.Minute, Counts: []Count{
			{Wave: int(wave % 3), Stratum: "s", Metric: "heartbeat", Value: hb},
			{Wave: int(wave % 3), Stratum: "s", Metric: "control-heartbeat", Value: chb},
			{Wave: int(wave % 3), Stratum: "s", Metric: "worker-crash", Value: ev},
			{Wave: int(wave % 3), Stratum: "s", Metric: "control-worker-crash", Value: cev},
			{Wave: 0, Stratum: "s", Metric: "action-block", Value: ev},
			{Wave: 0, Stratum: "s", Metric: "applied", Value: offered},
			{Wave: 0, Stratum: "s", Metric: "apply-failed", Value: silent},
			{Wave: 0, Stratum: "s", Metric: "reverted", Value: csilent},
		}, Previous: []Count{{Stratum: "s", Metric: "applied", Value: control}, {Stratum: "s", Metric: "reverted", Value: cev}},
			Silence: []SilenceCount{{Stratum: "s", Offered: offered, OfferedSilent: silent, Control: control, ControlSilent: csilent}}}
		if broken {
			tel.Err = errors.New("store down")
		}
		rs := Evaluate(DefaultGates(), "canary", tel)
		failed := false
		for _, r := range rs {
			switch r.Outcome {
			case Pass, Fail, Inconclusive, NoData, Error:
			default:
				t.Fatalf("%s: outcome %q", r.Metric, r.Outcome)
			}
			if r.Message == "" {
				t.Fatalf("%s: no message", r.Metric)
			}
			for _, x := range []float64{r.Treated, r.Control, r.Exposure, r.Evidence} {
				if math.IsNaN(x) {
					t.Fatalf("%s: NaN figure in %+v", r.Metric, r)
				}
			}
			if broken && r.Outcome != Error {
				t.Fatalf("%s: %s although the figures could not be read", r.Metric, r.Outcome)
			}
			failed = failed || r.Outcome == Fail
		}
		st := ReleaseStatus{State: StateRolling, Wave: 1, Plan: DefaultContentPlan(), WaveStartedAt: time.Unix(0, 0), Targeted: -1}
		v := Step(time.Unix(0, 0).Add(time.Duration(wave)*time.Hour), st, rs)
		if v.State == StateHalted && !failed && !strings.Contains(v.Reason, "deadline") {
			t.Fatalf("Step halted without a failing gate or a deadline: %s", v.Reason)
		}
		if failed && v.State != StateHalted {
			t.Fatalf("a gate failed but Step says %s: %s", v.State, v.Reason)
		}
	})
}
