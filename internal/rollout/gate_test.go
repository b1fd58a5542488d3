package rollout

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// spec is the default gate for a metric, changed by fn.
func spec(t *testing.T, m Metric, fn func(*GateSpec)) GateSpec {
	t.Helper()
	for _, g := range DefaultGates() {
		if g.Metric == m {
			if fn != nil {
				fn(&g)
			}
			return g
		}
	}
	t.Fatalf("no default gate for %s", m)
	return GateSpec{}
}

// rates builds the counters of one stratum for a rate gate: treated and
// control device-hours (as one heartbeat per device-minute), and events
// per counter name (a "control-" prefix for the control group).
func rates(stratum string, treatedHours, controlHours float64, events map[string]int64) []Count {
	cs := []Count{
		{Wave: 1, Stratum: stratum, Metric: "heartbeat", Value: int64(math.Round(treatedHours * 60))},
		{Wave: 1, Stratum: stratum, Metric: "control-heartbeat", Value: int64(math.Round(controlHours * 60))},
	}
	for m, v := range events {
		cs = append(cs, Count{Wave: 1, Stratum: stratum, Metric: m, Value: v})
	}
	return cs
}

// counts builds counters of one stratum from name/value pairs.
func counts(stratum string, kv ...any) []Count {
	var cs []Count
	for i := 0; i < len(kv); i += 2 {
		cs = append(cs, Count{Stratum: stratum, Metric: kv[i].(string), Value: int64(kv[i+1].(int))})
	}
	return cs
}

func join(css ...[]Count) []Count {
	var out []Count
	for _, cs := range css {
		out = append(out, cs...)
	}
	return out
}

type gateCase struct {
	name string
	gate GateSpec
	tel  Telemetry
	want Outcome
	// msg is the exact message, if set; parts must all be in it.
	msg   string
	parts []string
	// relative: the relative test decided (evidence above 1/alpha); for
	// fails without it, the absolute limit did.
	relative bool
}

func runGateCases(t *testing.T, cases []gateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs := Evaluate([]GateSpec{tc.gate}, "canary", tc.tel)
			if len(rs) != 1 {
				t.Fatalf("Evaluate gave %d results, want 1", len(rs))
			}
			r := rs[0]
			if r.Metric != tc.gate.Metric {
				t.Errorf("metric %q, want %q", r.Metric, tc.gate.Metric)
			}
			if r.Outcome != tc.want {
				t.Errorf("outcome %s, want %s (%s)", r.Outcome, tc.want, r.Message)
			}
			if tc.msg != "" && r.Message != tc.msg {
				t.Errorf("message\n  %q\nwant\n  %q", r.Message, tc.msg)
			}
			for _, p := range tc.parts {
				if !strings.Contains(r.Message, p) {
					t.Errorf("message %q lacks %q", r.Message, p)
				}
			}
			if tc.want == Fail {
				if strong := r.Evidence >= 1/tc.gate.Alpha; strong != tc.relative {
					t.Errorf("evidence %g: relative test decided = %v, want %v", r.Evidence, strong, tc.relative)
				}
			}
			if math.IsNaN(r.Treated) || math.IsNaN(r.Control) || math.IsNaN(r.Evidence) || math.IsInf(r.Evidence, 0) {
				t.Errorf("figures not finite: %+v", r)
			}
		})
	}
}

// errNoFigures stands for any error reading the figures.
var errNoFigures = errors.New("telemetry unavailable")

// errorCases are the error outcomes every gate has: unreadable figures and
// a bad spec.
func errorCases(t *testing.T, m Metric, tel Telemetry) []gateCase {
	broken := tel
	broken.Err = fmt.Errorf("counter totals: %w", errNoFigures)
	return []gateCase{
		{name: "error/telemetry", gate: spec(t, m, nil), tel: broken, want: Error,
			msg: string(m) + ": could not measure: counter totals: telemetry unavailable"},
		{name: "error/bad-alpha", gate: spec(t, m, func(g *GateSpec) { g.Alpha = 0 }), tel: tel, want: Error,
			msg: string(m) + ": bad gate: " + string(m) + ": alpha 0 must be between 0 and 0.5"},
		{name: "error/bad-ratio", gate: spec(t, m, func(g *GateSpec) { g.Ratio = 1 }), tel: tel, want: Error,
			parts: []string{"bad gate", "ratio 1 must be above 1"}},
	}
}

var minute = time.Minute

func TestWorkerCrashGate(t *testing.T) {
	m := GateWorkerCrash
	crash := func(x, y int64) map[string]int64 {
		return map[string]int64{"worker-crash": x, "control-worker-crash": y}
	}
	tel := func(css ...[]Count) Telemetry { return Telemetry{Counts: join(css...), HeartbeatSpan: minute} }
	healthy := tel(rates("windows/7.11.0/19045", 100, 1000, crash(1, 10)))
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "worker-crash rate 0.01 vs 0.01 per device-hour in control (canary, 100.0 device-hours)"},
		{name: "pass/no-crash", gate: spec(t, m, nil), tel: tel(rates("a", 50, 500, crash(0, 0))), want: Pass,
			msg: "worker-crash rate 0 vs 0 per device-hour in control (canary, 50.0 device-hours)"},
		{name: "fail/absolute-limit", gate: spec(t, m, nil), tel: tel(rates("a", 20, 200, crash(10, 2))), want: Fail,
			msg: "worker-crash rate 0.5 vs 0.01 per device-hour in control, above the limit of 0.05 (canary, 20.0 device-hours)"},
		{name: "fail/relative-sprt", gate: spec(t, m, nil), tel: tel(rates("a", 1000, 10000, crash(40, 100))), want: Fail, relative: true,
			parts: []string{"worker-crash rate 0.04 vs 0.01 per device-hour in control (canary, 1000.0 device-hours; evidence ratio ", " for a 3x rate, limit 1000)"}},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil), tel: tel(rates("a", 2, 100, crash(0, 1))), want: Inconclusive,
			msg: "worker-crash rate 0 vs 0.01 per device-hour in control (canary, 2.0 device-hours; judged from 5)"},
		{name: "pass/at-min-exposure", gate: spec(t, m, nil), tel: tel(rates("a", 5, 100, crash(0, 1))), want: Pass,
			msg: "worker-crash rate 0 vs 0.01 per device-hour in control (canary, 5.0 device-hours)"},
		{name: "inconclusive/leaning-worse-evidence", gate: spec(t, m, nil), tel: tel(rates("a", 200, 2000, crash(9, 20))), want: Inconclusive,
			msg: "worker-crash rate 0.045 vs 0.01 per device-hour in control (canary, 200.0 device-hours; leaning worse, waiting for more data)"},
		{name: "inconclusive/over-limit-few-events", gate: spec(t, m, nil), tel: tel(rates("a", 20, 20, crash(2, 2))), want: Inconclusive,
			msg: "worker-crash rate 0.1 vs 0.1 per device-hour in control (canary, 20.0 device-hours; leaning worse, waiting for more data)"},
		{name: "no-data/nothing", gate: spec(t, m, nil), tel: tel(), want: NoData,
			msg: "worker-crash: no device on the release has reported yet (canary)"},
		{name: "no-data/control-only", gate: spec(t, m, nil), tel: tel(rates("a", 0, 1000, crash(0, 10))), want: NoData,
			msg: "worker-crash: no device on the release has reported yet (canary)"},
		{name: "other-metrics-ignored", gate: spec(t, m, nil),
			tel:  tel(rates("a", 100, 1000, map[string]int64{"worker-crash": 1, "control-worker-crash": 10, "unclean-reboot": 500, "boot-loop": 500, "action-block": 1e6})),
			want: Pass, msg: "worker-crash rate 0.01 vs 0.01 per device-hour in control (canary, 100.0 device-hours)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

func TestUncleanRebootGate(t *testing.T) {
	m := GateUncleanReboot
	reboots := func(x, loops, y, yloops int64) map[string]int64 {
		return map[string]int64{"unclean-reboot": x, "boot-loop": loops, "control-unclean-reboot": y, "control-boot-loop": yloops}
	}
	tel := func(css ...[]Count) Telemetry { return Telemetry{Counts: join(css...), HeartbeatSpan: minute} }
	healthy := tel(rates("linux/7.11.0/6.8", 100, 1000, reboots(1, 0, 8, 2)))
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "unclean-reboot rate 0.01 vs 0.01 per device-hour in control (canary, 100.0 device-hours)"},
		{name: "fail/absolute-limit-boot-loops-count", gate: spec(t, m, nil), tel: tel(rates("a", 20, 200, reboots(5, 5, 1, 1))), want: Fail,
			msg: "unclean-reboot rate 0.5 vs 0.01 per device-hour in control, above the limit of 0.02 (canary, 20.0 device-hours)"},
		{name: "fail/relative-sprt", gate: spec(t, m, nil), tel: tel(rates("a", 1000, 10000, reboots(15, 10, 25, 25))), want: Fail, relative: true,
			parts: []string{"unclean-reboot rate 0.025 vs 0.005 per device-hour in control (canary, 1000.0 device-hours; evidence ratio ", "for a 3x rate, limit 1000)"}},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil), tel: tel(rates("a", 4.5, 100, reboots(0, 0, 1, 0))), want: Inconclusive,
			msg: "unclean-reboot rate 0 vs 0.01 per device-hour in control (canary, 4.5 device-hours; judged from 5)"},
		{name: "inconclusive/leaning-worse", gate: spec(t, m, nil), tel: tel(rates("a", 400, 4000, reboots(3, 3, 10, 0))), want: Inconclusive,
			parts: []string{"unclean-reboot rate 0.015 vs 0.0025 per device-hour in control (canary, 400.0 device-hours; leaning worse, waiting for more data)"}},
		{name: "no-data", gate: spec(t, m, nil), tel: tel(), want: NoData,
			msg: "unclean-reboot: no device on the release has reported yet (canary)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

func TestActionRateGate(t *testing.T) {
	m := GateActionRate
	actions := func(alerts, blocks, calerts, cblocks int64) map[string]int64 {
		return map[string]int64{"action-alert": alerts, "action-block": blocks, "control-action-alert": calerts, "control-action-block": cblocks,
			"action-log": 1_000_000, "control-action-log": 10} // logs are not actions
	}
	tel := func(css ...[]Count) Telemetry { return Telemetry{Counts: join(css...), HeartbeatSpan: minute} }
	healthy := tel(rates("windows/7.11.0/19045", 10, 100, actions(60, 40, 600, 400)))
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "action-rate rate 10 vs 10 per device-hour in control (canary, 10.0 device-hours)"},
		{name: "fail/absolute-limit", gate: spec(t, m, nil), tel: tel(rates("a", 10, 100, actions(1000, 1000, 500, 500))), want: Fail,
			msg: "action-rate rate 200 vs 10 per device-hour in control, above the limit of 100 (canary, 10.0 device-hours)"},
		{name: "fail/relative-exact-test", gate: spec(t, m, nil), tel: tel(rates("a", 10, 100, actions(40, 40, 50, 50))), want: Fail, relative: true,
			parts: []string{"action-rate rate 8 vs 1 per device-hour in control (canary, 10.0 device-hours; 8.0x the control strata's rate, p="}},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil), tel: tel(rates("a", 1, 100, actions(100, 0, 100, 0))), want: Inconclusive,
			msg: "action-rate rate 100 vs 1 per device-hour in control (canary, 1.0 device-hours; judged from 5)"},
		{name: "inconclusive/leaning-worse", gate: spec(t, m, nil), tel: tel(rates("a", 100, 1000, actions(5, 0, 8, 0))), want: Inconclusive,
			msg: "action-rate rate 0.05 vs 0.008 per device-hour in control (canary, 100.0 device-hours; leaning worse, waiting for more data)"},
		{name: "no-data", gate: spec(t, m, nil), tel: tel(), want: NoData,
			msg: "action-rate: no device on the release has reported yet (canary)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

func TestSilenceGate(t *testing.T) {
	m := GateSilence
	tel := func(ss ...SilenceCount) Telemetry { return Telemetry{Silence: ss, SilentAfter: 15 * time.Minute} }
	healthy := tel(SilenceCount{Stratum: "a", Offered: 1000, OfferedSilent: 10, Control: 10000, ControlSilent: 100})
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "silence rate 1.0% vs 1.0% in control (canary, 1000 devices, 15 min window)"},
		// 309 of 812 is 38.05%, which prints as 38.1%.
		{name: "fail/absolute-limit", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "windows/7.11.0/19045", Offered: 812, OfferedSilent: 309, Control: 10000, ControlSilent: 40}),
			want: Fail, msg: "silence rate 38.1% vs 0.4% in control (canary, 812 devices, 15 min window)"},
		{name: "fail/relative-exact-test", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 1000, OfferedSilent: 50, Control: 10000, ControlSilent: 100}),
			want: Fail, relative: true, msg: "silence rate 5.0% vs 1.0% in control (canary, 1000 devices, 15 min window)"},
		// An outage: the control plane heard nobody for half an hour. The
		// release's devices are no quieter than the rest: no halt.
		{name: "inconclusive/fleet-silent-outage", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 147, OfferedSilent: 144, Control: 19000, ControlSilent: 18753}),
			want: Inconclusive, msg: "silence rate 98.0% vs 98.7% in control (canary, 147 devices, 15 min window): the control group is as quiet, so the fleet went silent, not the release's devices (an outage or a network cut?)"},
		// The release's devices far quieter than a silent fleet still fail.
		{name: "fail/excess-over-a-silent-fleet", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 1000, OfferedSilent: 1000, Control: 10000, ControlSilent: 2000}),
			want: Fail, relative: true, msg: "silence rate 100.0% vs 20.0% in control (canary, 1000 devices, 15 min window)"},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 5, OfferedSilent: 0, Control: 10000, ControlSilent: 100}),
			want: Inconclusive, msg: "silence rate 0.0% vs 1.0% in control (canary, 5 devices, 15 min window; judged from 10 devices)"},
		{name: "inconclusive/leaning-worse-evidence", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 200, OfferedSilent: 7, Control: 10000, ControlSilent: 100}),
			want: Inconclusive, msg: "silence rate 3.5% vs 1.0% in control (canary, 200 devices, 15 min window; leaning worse, waiting for more data)"},
		{name: "inconclusive/partition-beside-a-small-control", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 66, OfferedSilent: 16, Control: 54, ControlSilent: 8}),
			want: Inconclusive, msg: "silence rate 24.2% vs 14.8% in control (canary, 66 devices, 15 min window; leaning worse, waiting for more data)"},
		{name: "inconclusive/over-limit-few-devices", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 20, OfferedSilent: 3, Control: 10000, ControlSilent: 1000}),
			want: Inconclusive, msg: "silence rate 15.0% vs 10.0% in control (canary, 20 devices, 15 min window; leaning worse, waiting for more data)"},
		// Half a silent device is added to an empty control, so one
		// silent device against a control with none waits rather than
		// halts.
		{name: "inconclusive/one-silent-against-empty-control", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 100, OfferedSilent: 1, Control: 10000, ControlSilent: 0}),
			want: Inconclusive, msg: "silence rate 1.0% vs 0.0% in control (canary, 100 devices, 15 min window; leaning worse, waiting for more data)"},
		{name: "pass/at-min-exposure", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 10, OfferedSilent: 0, Control: 10000, ControlSilent: 100}),
			want: Pass, msg: "silence rate 0.0% vs 1.0% in control (canary, 10 devices, 15 min window)"},
		{name: "no-data/nothing", gate: spec(t, m, nil), tel: tel(), want: NoData,
			msg: "silence: no device has been offered the release yet (canary)"},
		{name: "no-data/control-only", gate: spec(t, m, nil), tel: tel(SilenceCount{Stratum: "a", Control: 500, ControlSilent: 5}), want: NoData,
			msg: "silence: no device has been offered the release yet (canary)"},
		{name: "error/more-silent-than-offered", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 10, OfferedSilent: 5, Control: 100}, SilenceCount{Stratum: "b", Offered: 10, OfferedSilent: 11, Control: 100}),
			want: Error, msg: "silence: inconsistent figures for stratum b"},
		{name: "error/more-control-silent-than-control", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: 10, Control: 100, ControlSilent: 101}),
			want: Error, msg: "silence: inconsistent figures for stratum a"},
		{name: "error/negative", gate: spec(t, m, nil),
			tel:  tel(SilenceCount{Stratum: "a", Offered: -1, Control: 100}),
			want: Error, msg: "silence: inconsistent figures for stratum a"},
		{name: "error/bad-limit", gate: spec(t, m, func(g *GateSpec) { g.Limit = 1.5 }), tel: healthy, want: Error,
			msg: "silence: bad gate: silence: limit 1.5 is a fraction of devices, at most 1"},
		// The window is the silence threshold rounded up to minutes.
		{name: "window-rounds-up", gate: spec(t, m, nil),
			tel: Telemetry{SilentAfter: 14*time.Minute + 30*time.Second,
				Silence: []SilenceCount{{Stratum: "a", Offered: 1000, OfferedSilent: 10, Control: 10000, ControlSilent: 100}}},
			want: Pass, msg: "silence rate 1.0% vs 1.0% in control (canary, 1000 devices, 15 min window)"},
		// Strata sum; each stratum's control predicts its own treated
		// devices: a noisy stratum's silences are expected there.
		{name: "stratified", gate: spec(t, m, nil),
			tel: tel(SilenceCount{Stratum: "noisy", Offered: 900, OfferedSilent: 72, Control: 1000, ControlSilent: 80},
				SilenceCount{Stratum: "quiet", Offered: 100, OfferedSilent: 0, Control: 10000, ControlSilent: 10}),
			want: Pass, msg: "silence rate 7.2% vs 0.8% in control (canary, 1000 devices, 15 min window)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

func TestApplyFailureGate(t *testing.T) {
	m := GateApplyFailure
	tel := func(cur, prev []Count) Telemetry { return Telemetry{Counts: cur, Previous: prev} }
	prev1 := counts("a", "applied", 9900, "apply-failed", 100) // 1%
	healthy := tel(counts("a", "applied", 990, "apply-failed", 10), prev1)
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "apply-failure rate 1.0% vs 1.0% for the previous release (canary, 1000 devices)"},
		{name: "pass/no-previous-release", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 990, "apply-failed", 10), nil), want: Pass,
			msg: "apply-failure rate 1.0% (no previous release to compare with) (canary, 1000 devices)"},
		{name: "pass/strata-summed", gate: spec(t, m, nil),
			tel:  tel(join(counts("a", "applied", 495, "apply-failed", 5), counts("b", "applied", 495, "apply-failed", 5)), prev1),
			want: Pass, msg: "apply-failure rate 1.0% vs 1.0% for the previous release (canary, 1000 devices)"},
		{name: "fail/absolute-limit", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 70, "apply-failed", 30), prev1), want: Fail,
			msg: "apply-failure rate 30.0% vs 1.0% for the previous release, above the limit of 5.0% (canary, 100 devices)"},
		{name: "fail/absolute-limit-no-previous", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 70, "apply-failed", 30), nil), want: Fail,
			msg: "apply-failure rate 30.0% (no previous release to compare with), above the limit of 5.0% (canary, 100 devices)"},
		{name: "fail/relative-exact-test", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 960, "apply-failed", 40), prev1), want: Fail, relative: true,
			msg: "apply-failure rate 4.0% vs 1.0% for the previous release (canary, 1000 devices)"},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 5, "apply-failed", 0), prev1), want: Inconclusive,
			msg: "apply-failure rate 0.0% vs 1.0% for the previous release (canary, 5 devices; judged from 10 devices)"},
		{name: "inconclusive/leaning-worse-evidence", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 193, "apply-failed", 7), prev1), want: Inconclusive,
			msg: "apply-failure rate 3.5% vs 1.0% for the previous release (canary, 200 devices; leaning worse, waiting for more data)"},
		{name: "inconclusive/over-limit-few-devices", gate: spec(t, m, nil),
			tel:  tel(counts("a", "applied", 18, "apply-failed", 2), counts("a", "applied", 900, "apply-failed", 100)),
			want: Inconclusive, msg: "apply-failure rate 10.0% vs 10.0% for the previous release (canary, 20 devices; leaning worse, waiting for more data)"},
		// Half a failure is added to a flawless previous release, so one
		// failure is not infinitely worse than none.
		{name: "pass/one-failure-against-flawless-previous", gate: spec(t, m, nil),
			tel: tel(counts("a", "applied", 999, "apply-failed", 1), counts("a", "applied", 10000)), want: Pass,
			msg: "apply-failure rate 0.1% vs 0.0% for the previous release (canary, 1000 devices)"},
		{name: "pass/at-min-exposure", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 10), prev1), want: Pass,
			msg: "apply-failure rate 0.0% vs 1.0% for the previous release (canary, 10 devices)"},
		{name: "no-data", gate: spec(t, m, nil), tel: tel(counts("a", "heartbeat", 1000, "healthy", 3), prev1), want: NoData,
			msg: "apply-failure: no device has applied the release yet (canary)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

func TestRevertGate(t *testing.T) {
	m := GateRevert
	tel := func(cur, prev []Count) Telemetry { return Telemetry{Counts: cur, Previous: prev} }
	prev := counts("a", "applied", 10000, "reverted", 20) // 0.2%
	healthy := tel(counts("a", "applied", 1000, "reverted", 2), prev)
	cases := []gateCase{
		{name: "pass", gate: spec(t, m, nil), tel: healthy, want: Pass,
			msg: "revert rate 0.2% vs 0.2% for the previous release (canary, 1000 devices)"},
		{name: "pass/no-previous-release", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 1000, "reverted", 2), nil), want: Pass,
			msg: "revert rate 0.2% (no previous release to compare with) (canary, 1000 devices)"},
		{name: "fail/absolute-limit", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 100, "reverted", 20), prev), want: Fail,
			msg: "revert rate 20.0% vs 0.2% for the previous release, above the limit of 2.0% (canary, 100 devices)"},
		{name: "fail/more-reverts-than-applies", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 10, "reverted", 12), prev), want: Fail,
			msg: "revert rate 100.0% vs 0.2% for the previous release, above the limit of 2.0% (canary, 10 devices)"},
		{name: "fail/relative-exact-test", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 2000, "reverted", 30), prev), want: Fail, relative: true,
			msg: "revert rate 1.5% vs 0.2% for the previous release (canary, 2000 devices)"},
		{name: "inconclusive/min-exposure", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 9), prev), want: Inconclusive,
			msg: "revert rate 0.0% vs 0.2% for the previous release (canary, 9 devices; judged from 10 devices)"},
		{name: "inconclusive/leaning-worse-evidence", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 1000, "reverted", 7), prev), want: Inconclusive,
			msg: "revert rate 0.7% vs 0.2% for the previous release (canary, 1000 devices; leaning worse, waiting for more data)"},
		{name: "inconclusive/over-limit-few-devices", gate: spec(t, m, nil), tel: tel(counts("a", "applied", 20, "reverted", 1), nil), want: Inconclusive,
			msg: "revert rate 5.0% (no previous release to compare with) (canary, 20 devices; leaning worse, waiting for more data)"},
		{name: "no-data", gate: spec(t, m, nil), tel: tel(counts("a", "apply-failed", 3), prev), want: NoData,
			msg: "revert: no device has applied the release yet (canary)"},
	}
	cases = append(cases, errorCases(t, m, healthy)...)
	runGateCases(t, cases)
}

// A defect confined to one stratum fails the crash gate, while the same
// number of crashes spread as each stratum's control predicts passes:
// the test compares treated and control devices within each stratum.
// Pooled, both would look some 65 times worse than the control (0.02
// against 0.0003 crashes per device-hour), because the treated devices
// sit mostly in the noisy stratum.
func TestWorkerCrashGateStratified(t *testing.T) {
	crash := func(x, y int64) map[string]int64 {
		return map[string]int64{"worker-crash": x, "control-worker-crash": y}
	}
	const (
		noisy = "windows/7.10.2/19045" // 0.02 crashes per device-hour in control
		quiet = "windows/7.11.0/22631" // 0.0001
	)
	tests := []struct {
		name         string
		noisyX, quiX int64
		want         Outcome
	}{
		{"defect-confined-to-one-stratum", 0, 22, Fail},
		{"spread-as-control-predicts", 22, 0, Pass},
		{"spread-with-one-in-quiet", 21, 1, Pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tel := Telemetry{HeartbeatSpan: minute, Counts: join(
				rates(noisy, 1000, 1000, crash(tc.noisyX, 20)),
				rates(quiet, 100, 100_000, crash(tc.quiX, 10)))}
			r := Evaluate([]GateSpec{spec(t, GateWorkerCrash, nil)}, "canary", tel)[0]
			if r.Outcome != tc.want {
				t.Errorf("outcome %s, want %s (%s)", r.Outcome, tc.want, r.Message)
			}
			if r.Events != 22 || r.Exposure != 1100 {
				t.Errorf("events %d over %g device-hours, want 22 over 1100", r.Events, r.Exposure)
			}
		})
	}
}

// poisson draws from a Poisson distribution with a small mean (Knuth).
func poisson(r *rand.Rand, mean float64) int64 {
	l, k, p := math.Exp(-mean), int64(0), 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// simulate runs releases whose treated devices crash effect times as
// often as control devices of their stratum (1: a healthy release),
// judged by the crash gate at every look as exposure grows, and counts
// the releases it ever failed.
func simulate(g GateSpec, effect float64, releases, looks int, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	// Two strata with different baselines and different treated shares.
	type stratum struct {
		name                 string
		rate, treated, contr float64 // crashes per device-hour; device-hours per look
	}
	strata := []stratum{{"a", 0.01, 10, 100}, {"b", 0.03, 20, 40}}
	failed := 0
	for range releases {
		x := make([]int64, len(strata))
		y := make([]int64, len(strata))
		for look := 1; look <= looks; look++ {
			var cs []Count
			for i, s := range strata {
				x[i] += poisson(r, effect*s.rate*s.treated)
				y[i] += poisson(r, s.rate*s.contr)
				cs = append(cs, rates(s.name, s.treated*float64(look), s.contr*float64(look),
					map[string]int64{"worker-crash": x[i], "control-worker-crash": y[i]})...)
			}
			if evaluate(g, "canary", Telemetry{Counts: cs, HeartbeatSpan: time.Minute}).Outcome == Fail {
				failed++
				break
			}
		}
	}
	return failed
}

// The crash gate stays within its false-alarm rate however often it is
// looked at: 2,000 healthy releases, each judged at 20 looks, fail at
// most 0.5% of the time at alpha = 0.001. The same simulation with alpha
// applied as 0.05 fails far more often, so this test would catch a
// boundary set too low.
func TestWorkerCrashGateFalseAlarms(t *testing.T) {
	const releases, looks, most = 2000, 20, 10 // 0.5%
	g := spec(t, GateWorkerCrash, nil)
	if n := simulate(g, 1, releases, looks, 1); n > most {
		t.Errorf("%d of %d healthy releases failed the crash gate at alpha %g, want at most %d", n, releases, g.Alpha, most)
	} else {
		t.Logf("%d of %d healthy releases failed at alpha %g", n, releases, g.Alpha)
	}
	loose := g
	loose.Alpha = 0.05
	if n := simulate(loose, 1, releases, looks, 1); n <= 2*most {
		t.Errorf("the simulation cannot tell: at alpha 0.05, %d of %d failed, want more than %d", n, releases, 2*most)
	} else {
		t.Logf("%d of %d healthy releases failed at alpha %g", n, releases, loose.Alpha)
	}
	// A release that triples the crash rate is caught by the same looks
	// most of the time (the gate is not quiet because it never fails).
	if n := simulate(g, 3, 200, looks, 2); n < 100 {
		t.Errorf("only %d of 200 releases tripling the crash rate failed the gate", n)
	} else {
		t.Logf("%d of 200 releases tripling the crash rate failed", n)
	}
}

func TestGateSpecValidate(t *testing.T) {
	for _, g := range DefaultGates() {
		if err := g.Validate(); err != nil {
			t.Errorf("default gate %s invalid: %v", g.Metric, err)
		}
	}
	ok := GateSpec{Metric: GateWorkerCrash, Limit: 0.05, Ratio: 3, Alpha: 0.001, MinExposure: 5}
	with := func(fn func(*GateSpec)) GateSpec { g := ok; fn(&g); return g }
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		g    GateSpec
		want string // "" for valid
	}{
		{"valid", ok, ""},
		{"valid/zero-min-exposure", with(func(g *GateSpec) { g.MinExposure = 0 }), ""},
		{"valid/share-limit-1", with(func(g *GateSpec) { g.Metric, g.Limit = GateSilence, 1 }), ""},
		{"valid/rate-limit-above-1", with(func(g *GateSpec) { g.Metric, g.Limit = GateActionRate, 500 }), ""},
		{"unknown-metric", with(func(g *GateSpec) { g.Metric = "cpu" }), `unknown metric "cpu"`},
		{"empty-metric", with(func(g *GateSpec) { g.Metric = "" }), `unknown metric ""`},
		{"limit-zero", with(func(g *GateSpec) { g.Limit = 0 }), "worker-crash: limit 0 must be above 0"},
		{"limit-negative", with(func(g *GateSpec) { g.Limit = -1 }), "worker-crash: limit -1 must be above 0"},
		{"limit-nan", with(func(g *GateSpec) { g.Limit = nan }), "worker-crash: limit NaN must be above 0"},
		{"limit-inf", with(func(g *GateSpec) { g.Limit = inf }), "worker-crash: limit +Inf must be above 0"},
		{"share-limit-above-1", with(func(g *GateSpec) { g.Metric, g.Limit = GateRevert, 2 }), "revert: limit 2 is a fraction of devices, at most 1"},
		{"apply-failure-limit-above-1", with(func(g *GateSpec) { g.Metric, g.Limit = GateApplyFailure, 1.01 }), "apply-failure: limit 1.01 is a fraction of devices, at most 1"},
		{"ratio-1", with(func(g *GateSpec) { g.Ratio = 1 }), "worker-crash: ratio 1 must be above 1"},
		{"ratio-below-1", with(func(g *GateSpec) { g.Ratio = 0.5 }), "worker-crash: ratio 0.5 must be above 1"},
		{"ratio-nan", with(func(g *GateSpec) { g.Ratio = nan }), "worker-crash: ratio NaN must be above 1"},
		{"ratio-inf", with(func(g *GateSpec) { g.Ratio = inf }), "worker-crash: ratio +Inf must be above 1"},
		{"alpha-zero", with(func(g *GateSpec) { g.Alpha = 0 }), "worker-crash: alpha 0 must be between 0 and 0.5"},
		{"alpha-half", with(func(g *GateSpec) { g.Alpha = 0.5 }), "worker-crash: alpha 0.5 must be between 0 and 0.5"},
		{"alpha-negative", with(func(g *GateSpec) { g.Alpha = -0.01 }), "worker-crash: alpha -0.01 must be between 0 and 0.5"},
		{"alpha-nan", with(func(g *GateSpec) { g.Alpha = nan }), "worker-crash: alpha NaN must be between 0 and 0.5"},
		{"min-exposure-negative", with(func(g *GateSpec) { g.MinExposure = -1 }), "worker-crash: min_exposure -1 must be 0 or more"},
		{"min-exposure-nan", with(func(g *GateSpec) { g.MinExposure = nan }), "worker-crash: min_exposure NaN must be 0 or more"},
		{"min-exposure-inf", with(func(g *GateSpec) { g.MinExposure = inf }), "worker-crash: min_exposure +Inf must be 0 or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate accepted %+v, want %q", tc.g, tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Errorf("Validate: %q, want %q", err, tc.want)
			}
		})
	}
	// A plan names the wave and gate of a bad gate.
	p := DefaultContentPlan()
	p.Waves[2].Gates = []GateSpec{ok, with(func(g *GateSpec) { g.Alpha = 0.7 })}
	if err := p.Validate(); err == nil || err.Error() != `wave "early": gate 2: worker-crash: alpha 0.7 must be between 0 and 0.5` {
		t.Errorf("plan with a bad gate: %v", err)
	}
}

func TestEvaluateDefaultGates(t *testing.T) {
	tel := Telemetry{HeartbeatSpan: minute, SilentAfter: 15 * time.Minute,
		Counts: join(rates("a", 100, 1000, map[string]int64{"worker-crash": 1, "control-worker-crash": 10}),
			counts("a", "applied", 1000, "apply-failed", 10)),
		Previous: counts("a", "applied", 10000, "apply-failed", 100, "reverted", 20),
		Silence:  []SilenceCount{{Stratum: "a", Offered: 1010, OfferedSilent: 10, Control: 10000, ControlSilent: 100}}}
	rs := Evaluate(DefaultGates(), "canary", tel)
	want := map[Metric]Outcome{GateWorkerCrash: Pass, GateUncleanReboot: Pass, GateSilence: Pass, GateApplyFailure: Pass, GateRevert: Pass, GateActionRate: Pass}
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		if r.Metric != DefaultGates()[i].Metric {
			t.Errorf("result %d is %s, want %s: results follow the gates", i, r.Metric, DefaultGates()[i].Metric)
		}
		if r.Outcome != want[r.Metric] {
			t.Errorf("%s: %s, want %s (%s)", r.Metric, r.Outcome, want[r.Metric], r.Message)
		}
	}
	if s := Summary(rs); s != "every gate passed" {
		t.Errorf("Summary = %q", s)
	}
	if s := Summary(nil); s != "no gate has judged the wave" {
		t.Errorf("Summary(nil) = %q", s)
	}
	rs[1].Outcome, rs[4].Outcome = Inconclusive, NoData
	if s := Summary(rs); s != "unclean-reboot inconclusive, revert no-data" {
		t.Errorf("Summary = %q", s)
	}
	broken := Evaluate(DefaultGates(), "canary", Telemetry{Err: errNoFigures})
	for _, r := range broken {
		if r.Outcome != Error || !strings.HasSuffix(r.Message, "could not measure: telemetry unavailable") {
			t.Errorf("%s with unreadable figures: %s %q", r.Metric, r.Outcome, r.Message)
		}
	}
}

// A fleet-wide crash spike that starts as a wave widens the treated share
// is not the release's doing: each wave's stratum is judged against its
// own control, so the gate passes; pooled over the waves it would fail.
func TestWorkerCrashGateBaselineShiftAcrossWaves(t *testing.T) {
	const st = "windows/7.12.0/22631"
	c := func(wave int, metric string, v int64) Count {
		return Count{Wave: wave, Stratum: st, Metric: metric, Value: v}
	}
	tel := Telemetry{HeartbeatSpan: time.Hour, Counts: []Count{
		// Wave 1: 10 treated device-hours among 10,000, baseline 0.001/h.
		c(1, "heartbeat", 10), c(1, "control-heartbeat", 10_000), c(1, "control-worker-crash", 10),
		// Wave 2: half the fleet treated; the baseline is 50 times higher
		// for everyone.
		c(2, "heartbeat", 5000), c(2, "control-heartbeat", 5000), c(2, "worker-crash", 250), c(2, "control-worker-crash", 250),
	}}
	g := spec(t, GateWorkerCrash, func(g *GateSpec) { g.Limit = 1 })
	if r := Evaluate([]GateSpec{g}, "ten-percent", tel)[0]; r.Outcome != Pass {
		t.Fatalf("outcome %s (%s), want pass: the treated rate equals the control rate in every wave", r.Outcome, r.Message)
	}
	// The same figures filed under one wave: the test sees a treated group
	// with 250 of 510 crashes on a quarter of the exposure, and fails.
	for i := range tel.Counts {
		tel.Counts[i].Wave = 1
	}
	if r := Evaluate([]GateSpec{g}, "ten-percent", tel)[0]; r.Outcome != Fail {
		t.Fatalf("pooled outcome %s (%s), want fail", r.Outcome, r.Message)
	}
}
