package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// results builds gate results with the given outcomes, in DefaultGates
// order.
func results(outcomes ...Outcome) []GateResult {
	var rs []GateResult
	for i, o := range outcomes {
		m := DefaultGates()[i].Metric
		rs = append(rs, GateResult{Metric: m, Outcome: o, Message: string(m) + " " + string(o) + " message"})
	}
	return rs
}

// leaning marks gate i's evidence as leaning worse, with msg if set.
func leaning(rs []GateResult, i int, msg string) []GateResult {
	rs[i].Leaning = true
	if msg != "" {
		rs[i].Message = msg
	}
	return rs
}

func allPass() []GateResult { return results(Pass, Pass, Pass, Pass, Pass, Pass) }

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	plan := DefaultContentPlan() // internal 30m, canary 1h (exit needs approval), early 2h, ten-percent 4h, broad 4h
	silenceFails := results(Pass, Pass, Fail, Pass, Pass, Pass)
	silenceFails[2].Message = "silence rate 38.1% vs 0.4% in control (canary, 812 devices, 15 min window)"
	deadlined := DefaultContentPlan()
	deadlined.Waves[2].Deadline = Duration(90 * time.Minute)
	short := DefaultContentPlan()
	short.Waves[0].Bake = Duration(10 * time.Minute) // default deadline: 4 × 10 min, but at least an hour
	// status is a rolling release in wave w, started elapsed ago; fn
	// changes it.
	status := func(w int, fn func(*ReleaseStatus)) ReleaseStatus {
		st := ReleaseStatus{State: StateRolling, Wave: w, Phase: PhaseBaking, Lane: LaneNormal, Plan: plan,
			WaveStartedAt: t0, Confirmed: 5000, Targeted: 3000}
		if fn != nil {
			fn(&st)
		}
		return st
	}
	tests := []struct {
		name    string
		st      ReleaseStatus
		elapsed time.Duration
		gates   []GateResult
		want    Verdict
	}{
		// Baking.
		{"baking/bake-not-over", status(1, func(s *ReleaseStatus) { s.Confirmed = 25 }), 10 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Reason: "wave canary baking: 10m0s of 1h0m0s, 25 of 20 devices confirmed healthy"}},
		{"baking/min-devices-not-reached", status(1, func(s *ReleaseStatus) { s.Confirmed = 3 }), 2 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Reason: "wave canary baking: 2h0m0s of 1h0m0s, 3 of 20 devices confirmed healthy"}},
		{"baking/required-capped-by-targeted", status(2, func(s *ReleaseStatus) { s.Confirmed, s.Targeted = 141, 150 }), 3 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 3h0m0s of 2h0m0s, 141 of 142 devices confirmed healthy"}},
		// A small wave does not wait for its last devices: 95% is enough.
		{"advance/small-wave-needs-95-percent", status(2, func(s *ReleaseStatus) { s.Confirmed, s.Targeted = 142, 150 }), 3 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "wave early passed: every gate passed; now in wave ten-percent"}},
		{"baking/targeted-unknown-needs-minimum", status(2, func(s *ReleaseStatus) { s.Confirmed, s.Targeted = 150, -1 }), 3 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 3h0m0s of 2h0m0s, 150 of 200 devices confirmed healthy"}},
		{"baking/rounds-to-seconds", status(2, nil), 90*time.Second + 400*time.Millisecond, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 1m30s of 2h0m0s, 5000 of 200 devices confirmed healthy"}},
		{"baking/gates-do-not-matter-yet", status(2, nil), time.Hour, results(Pass, Inconclusive, NoData, Error, Pass, Pass),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 1h0m0s of 2h0m0s, 5000 of 200 devices confirmed healthy"}},
		// Gating.
		{"gating/inconclusive", status(2, nil), 3 * time.Hour, results(Pass, Pass, Inconclusive, Pass, Pass, Pass),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "wave early gating: silence inconclusive"}},
		{"gating/no-data", status(2, nil), 3 * time.Hour, results(Pass, Pass, Pass, NoData, Pass, Pass),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "wave early gating: apply-failure no-data"}},
		{"gating/error", status(2, nil), 3 * time.Hour, results(Error, Error, Error, Error, Error, Error),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "wave early gating: worker-crash error, unclean-reboot error, silence error, apply-failure error, revert error, action-rate error"}},
		{"gating/mixed", status(2, nil), 3 * time.Hour, results(Pass, Inconclusive, Pass, Pass, Error, NoData),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "wave early gating: unclean-reboot inconclusive, revert error, action-rate no-data"}},
		{"gating/no-gate-results-never-pass", status(2, nil), 3 * time.Hour, nil,
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "wave early gating: no gate has judged the wave"}},
		// Advancing.
		{"advance/next-wave", status(2, nil), 2 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "wave early passed: every gate passed; now in wave ten-percent"}},
		{"advance/from-gating", status(3, func(s *ReleaseStatus) { s.Phase = PhaseGating }), 5 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 4, Phase: PhaseBaking, Advanced: true, Reason: "wave ten-percent passed: every gate passed; now in wave broad"}},
		{"advance/internal-to-canary-needs-no-approval", status(0, nil), 30 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Advanced: true, Reason: "wave internal passed: every gate passed; now in wave canary"}},
		{"advance/required-capped-by-targeted", status(2, func(s *ReleaseStatus) { s.Confirmed, s.Targeted = 150, 150 }), 3 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "wave early passed: every gate passed; now in wave ten-percent"}},
		{"complete/after-last-wave", status(4, func(s *ReleaseStatus) { s.Confirmed = 0 }), 4 * time.Hour, allPass(),
			Verdict{State: StateCompleted, Wave: 4, Phase: "", Advanced: true, Reason: "wave broad passed: every gate passed; release completed"}},
		// Empty waves.
		{"skip/empty-internal-wave", status(0, func(s *ReleaseStatus) { s.Targeted, s.Confirmed = 0, 0 }), 0, results(NoData, NoData, NoData, NoData, NoData, NoData),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Advanced: true, Reason: "wave internal reaches no device: skipped; now in wave canary"}},
		{"skip/empty-public-wave", status(2, func(s *ReleaseStatus) { s.Targeted = 0 }), time.Minute, results(NoData),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "wave early reaches no device: skipped; now in wave ten-percent"}},
		{"no-skip/empty-last-canary-wave", status(1, func(s *ReleaseStatus) { s.Targeted, s.Confirmed = 0, 0 }), 2 * time.Hour, results(NoData),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseGating, Reason: "wave canary gating: worker-crash no-data"}},
		{"no-skip/empty-last-wave", status(4, func(s *ReleaseStatus) { s.Targeted, s.Confirmed = 0, 0 }), time.Hour, results(NoData),
			Verdict{State: StateRolling, Wave: 4, Phase: PhaseBaking, Reason: "wave broad baking: 1h0m0s of 4h0m0s, 0 of 0 devices confirmed healthy"}},
		{"no-skip/targeted-unknown", status(2, func(s *ReleaseStatus) { s.Targeted = -1 }), time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 1m0s of 2h0m0s, 5000 of 200 devices confirmed healthy"}},
		// Approvals.
		{"awaiting-approval/normal-lane-none-given", status(1, nil), 2 * time.Hour, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary passed; leaving the canary waves needs 1 approval(s), 0 given"}},
		{"awaiting-approval/emergency-lane-one-given", status(1, func(s *ReleaseStatus) { s.Lane, s.Approvals = LaneEmergency, 1 }), 20 * time.Minute, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary passed; leaving the canary waves needs 2 approval(s), 1 given"}},
		{"awaiting-approval/stays-past-deadline", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 48 * time.Hour, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary passed; leaving the canary waves needs 1 approval(s), 0 given"}},
		{"advance/approved-before-gates-passed", status(1, func(s *ReleaseStatus) { s.Approvals = 1 }), 2 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "wave canary passed: every gate passed; now in wave early"}},
		{"advance/from-awaiting-approval", status(1, func(s *ReleaseStatus) { s.State, s.Phase, s.Approvals = StateAwaitingApproval, PhaseGating, 1 }), 3 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "wave canary passed: every gate passed; now in wave early"}},
		// Signatures: devices past the canary waves verify the vendor's
		// threshold of signatures, so the release waits for them.
		{"awaiting-signatures/approved-canary-signed-only", status(1, func(s *ReleaseStatus) {
			s.Approvals, s.Signing, s.SigningNote = 1, SigningCanary, "acme/ipc/293.bundle has 1 of the 2 vendor signatures it needs"
		}), 2 * time.Hour, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating,
				Reason: "wave canary passed; leaving the canary waves needs the vendor's signatures: acme/ipc/293.bundle has 1 of the 2 vendor signatures it needs"}},
		{"awaiting-signatures/and-approval", status(1, func(s *ReleaseStatus) { s.Signing, s.SigningNote = SigningCanary, "1 of 2" }), 2 * time.Hour, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating,
				Reason: "wave canary passed; leaving the canary waves needs 1 approval(s), 0 given and the vendor's signatures: 1 of 2"}},
		{"advance/canary-signature-enough-inside-canary-waves", status(0, func(s *ReleaseStatus) { s.Signing = SigningCanary }), 30 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Advanced: true, Reason: "wave internal passed: every gate passed; now in wave canary"}},
		{"advance/production-signed-and-approved", status(1, func(s *ReleaseStatus) { s.Approvals, s.Signing = 1, SigningProduction }), 2 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "wave canary passed: every gate passed; now in wave early"}},
		{"advance/from-awaiting-approval-emergency", status(1, func(s *ReleaseStatus) {
			s.State, s.Phase, s.Lane, s.Approvals = StateAwaitingApproval, PhaseGating, LaneEmergency, 2
		}), 20 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "wave canary passed: every gate passed; now in wave early"}},
		// A gate that stops passing while people decide only makes the
		// release wait; it does not send it back to gating.
		{"awaiting-approval/waits-when-a-gate-stops-passing", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 2 * time.Hour,
			results(Pass, Pass, Inconclusive, Pass, Pass, Pass),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary waits for approval and for its gates: silence inconclusive"}},
		{"awaiting-approval/approved-waits-for-gates", status(1, func(s *ReleaseStatus) { s.State, s.Phase, s.Approvals = StateAwaitingApproval, PhaseGating, 1 }), 2 * time.Hour,
			results(Pass, NoData),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary waits for approval and for its gates: unclean-reboot no-data"}},
		// Halting on a failing gate, in every live state and phase.
		{"halt/fail-while-baking", status(1, nil), time.Minute, silenceFails,
			Verdict{State: StateHalted, Wave: 1, Phase: "", Reason: "halted: silence rate 38.1% vs 0.4% in control (canary, 812 devices, 15 min window)"}},
		{"halt/fail-while-gating", status(2, func(s *ReleaseStatus) { s.Phase = PhaseGating }), 3 * time.Hour, results(Inconclusive, Fail),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: unclean-reboot fail message"}},
		{"halt/first-failing-gate-named", status(2, nil), 3 * time.Hour, results(Pass, Fail, Pass, Fail),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: unclean-reboot fail message"}},
		{"halt/fail-awaiting-approval", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 2 * time.Hour, silenceFails,
			Verdict{State: StateHalted, Wave: 1, Phase: "", Reason: "halted: silence rate 38.1% vs 0.4% in control (canary, 812 devices, 15 min window)"}},
		{"halt/fail-paused", status(2, func(s *ReleaseStatus) { s.State = StatePaused }), time.Hour, results(Fail),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: worker-crash fail message"}},
		{"halt/fail-under-kill-switch", status(2, func(s *ReleaseStatus) { s.Frozen = true }), time.Hour, results(Fail),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: worker-crash fail message"}},
		{"halt/fail-in-empty-wave", status(0, func(s *ReleaseStatus) { s.Targeted = 0 }), 0, results(Fail),
			Verdict{State: StateHalted, Wave: 0, Phase: "", Reason: "halted: worker-crash fail message"}},
		// Deadlines.
		{"deadline/gating", status(1, func(s *ReleaseStatus) { s.Confirmed = 25 }), 4 * time.Hour, results(Pass, Pass, Inconclusive, Pass, Pass, Pass),
			Verdict{State: StateHalted, Wave: 1, Phase: "", Reason: "halted: wave canary still undecided at its 4h0m0s deadline (25 of 20 devices confirmed healthy; silence inconclusive); a person must look"}},
		{"deadline/baking-min-devices", status(1, func(s *ReleaseStatus) { s.Confirmed = 7 }), 5 * time.Hour, allPass(),
			Verdict{State: StateHalted, Wave: 1, Phase: "", Reason: "halted: wave canary still undecided at its 4h0m0s deadline (7 of 20 devices confirmed healthy; every gate passed); a person must look"}},
		{"deadline/default-four-bakes", status(0, nil), 2 * time.Hour, results(NoData),
			Verdict{State: StateHalted, Wave: 0, Phase: "", Reason: "halted: wave internal still undecided at its 2h0m0s deadline (5000 of 1 devices confirmed healthy; worker-crash no-data); a person must look"}},
		{"deadline/default-at-least-an-hour", status(0, func(s *ReleaseStatus) { s.Plan = short }), time.Hour, results(NoData),
			Verdict{State: StateHalted, Wave: 0, Phase: "", Reason: "halted: wave internal still undecided at its 1h0m0s deadline (5000 of 1 devices confirmed healthy; worker-crash no-data); a person must look"}},
		{"deadline/leaning-gate-decides", status(0, nil), 2 * time.Hour, leaning(results(Pass, Pass, Inconclusive, Pass, Pass, Pass, Inconclusive), 6, "boot-loop rate 0.0073 vs 0 per device-hour in control (internal, 136.9 device-hours; leaning worse, waiting for more data)"),
			Verdict{State: StateHalted, Wave: 0, Phase: "", Reason: "halted: boot-loop leaning worse at wave internal's 2h0m0s deadline, where the gate decides: boot-loop rate 0.0073 vs 0 per device-hour in control (internal, 136.9 device-hours; leaning worse)"}},
		{"deadline/leaning-waits-before", status(0, nil), 2*time.Hour - time.Second, leaning(results(Pass, Pass, Pass, Pass, Pass, Pass, Inconclusive), 6, ""),
			Verdict{State: StateRolling, Wave: 0, Phase: PhaseGating, Reason: "wave internal gating: boot-loop inconclusive"}},
		{"deadline/leaning-while-awaiting-approval-waits", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 48 * time.Hour, leaning(results(Pass, Pass, Pass, Pass, Pass, Pass, Inconclusive), 6, ""),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary waits for approval and for its gates: boot-loop inconclusive"}},
		{"deadline/not-yet", status(1, func(s *ReleaseStatus) { s.Confirmed = 25 }), 4*time.Hour - time.Second, results(Error),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseGating, Reason: "wave canary gating: worker-crash error"}},
		{"deadline/plan-deadline", status(2, func(s *ReleaseStatus) { s.Plan = deadlined }), 90 * time.Minute, results(Pass),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: wave early still undecided at its 1h30m0s deadline (5000 of 200 devices confirmed healthy; every gate passed); a person must look"}},
		{"deadline/not-for-awaiting-approval", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 5 * time.Hour, results(Inconclusive),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary waits for approval and for its gates: worker-crash inconclusive"}},
		{"deadline/error-outcome-while-awaiting-approval", status(1, func(s *ReleaseStatus) { s.State, s.Phase = StateAwaitingApproval, PhaseGating }), 50 * time.Hour, results(Error),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "wave canary waits for approval and for its gates: worker-crash error"}},
		// Emergency lane: a quarter of the bake and the deadline.
		{"emergency/baking-quarter", status(2, func(s *ReleaseStatus) { s.Lane = LaneEmergency }), 29 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "wave early baking: 29m0s of 30m0s, 5000 of 200 devices confirmed healthy"}},
		{"emergency/advance-after-quarter", status(2, func(s *ReleaseStatus) { s.Lane = LaneEmergency }), 30 * time.Minute, allPass(),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "wave early passed: every gate passed; now in wave ten-percent"}},
		{"emergency/deadline-quarter", status(2, func(s *ReleaseStatus) { s.Lane = LaneEmergency }), 2 * time.Hour, results(Inconclusive),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: wave early still undecided at its 2h0m0s deadline (5000 of 200 devices confirmed healthy; worker-crash inconclusive); a person must look"}},
		{"emergency/plan-deadline-quarter", status(2, func(s *ReleaseStatus) { s.Lane, s.Plan = LaneEmergency, deadlined }), 23 * time.Minute, results(Inconclusive),
			Verdict{State: StateHalted, Wave: 2, Phase: "", Reason: "halted: wave early still undecided at its 22m30s deadline (5000 of 200 devices confirmed healthy; worker-crash inconclusive); a person must look"}},
		// Nothing moves.
		{"paused/stays", status(2, func(s *ReleaseStatus) { s.State, s.Phase = StatePaused, PhaseGating }), 10 * time.Hour, allPass(),
			Verdict{State: StatePaused, Wave: 2, Phase: PhaseGating, Reason: "paused by a person"}},
		{"paused/no-deadline", status(2, func(s *ReleaseStatus) { s.State = StatePaused }), 10 * time.Hour, results(Inconclusive),
			Verdict{State: StatePaused, Wave: 2, Phase: PhaseBaking, Reason: "paused by a person"}},
		{"frozen/stays", status(2, func(s *ReleaseStatus) { s.Frozen = true }), 10 * time.Hour, allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Reason: "kill switch engaged: the release waits"}},
		{"frozen/no-deadline", status(2, func(s *ReleaseStatus) { s.Frozen, s.Phase = true, PhaseGating }), 10 * time.Hour, results(Inconclusive),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "kill switch engaged: the release waits"}},
		{"frozen/empty-wave-not-skipped", status(0, func(s *ReleaseStatus) { s.Frozen, s.Targeted = true, 0 }), 0, results(NoData),
			Verdict{State: StateRolling, Wave: 0, Phase: PhaseBaking, Reason: "kill switch engaged: the release waits"}},
		{"frozen/awaiting-approval-stays", status(1, func(s *ReleaseStatus) {
			s.State, s.Phase, s.Frozen, s.Approvals = StateAwaitingApproval, PhaseGating, true, 1
		}), 3 * time.Hour, allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating, Reason: "kill switch engaged: the release waits"}},
		{"draft/unchanged", status(0, func(s *ReleaseStatus) { s.State, s.Phase = StateDraft, "" }), 10 * time.Hour, results(Fail),
			Verdict{State: StateDraft, Wave: 0}},
		{"completed/unchanged", status(4, func(s *ReleaseStatus) { s.State, s.Phase = StateCompleted, "" }), 10 * time.Hour, results(Fail),
			Verdict{State: StateCompleted, Wave: 4}},
		{"halted/unchanged", status(2, func(s *ReleaseStatus) { s.State, s.Phase = StateHalted, "" }), 10 * time.Hour, allPass(),
			Verdict{State: StateHalted, Wave: 2}},
		{"rolled-back/unchanged", status(2, func(s *ReleaseStatus) { s.State, s.Phase = StateRolledBack, "" }), 10 * time.Hour, allPass(),
			Verdict{State: StateRolledBack, Wave: 2}},
		{"wave-out-of-range/unchanged", status(5, nil), 10 * time.Hour, results(Fail),
			Verdict{State: StateRolling, Wave: 5, Phase: PhaseBaking}},
		{"negative-wave/unchanged", status(-1, nil), 10 * time.Hour, results(Fail),
			Verdict{State: StateRolling, Wave: -1, Phase: PhaseBaking}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Step(t0.Add(tc.elapsed), tc.st, tc.gates)
			if got != tc.want {
				t.Errorf("Step =\n  %+v\nwant\n  %+v", got, tc.want)
			}
			if got.State == StateHalted && tc.st.State != StateHalted && !strings.HasPrefix(got.Reason, "halted: ") {
				t.Errorf("halt reason %q does not start with \"halted: \"", got.Reason)
			}
			if changed := got.Changed(tc.st); changed != (got.State != tc.st.State || got.Wave != tc.st.Wave || got.Phase != tc.st.Phase || got.Advanced) {
				t.Errorf("Changed = %v", changed)
			}
		})
	}
}

func TestVerdictChanged(t *testing.T) {
	st := ReleaseStatus{State: StateRolling, Wave: 2, Phase: PhaseGating}
	tests := []struct {
		v    Verdict
		want bool
	}{
		{Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Reason: "a new reason alone is no change"}, false},
		{Verdict{State: StateHalted, Wave: 2, Phase: PhaseGating}, true},
		{Verdict{State: StateRolling, Wave: 3, Phase: PhaseGating}, true},
		{Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking}, true},
		{Verdict{State: StateRolling, Wave: 2, Phase: PhaseGating, Advanced: true}, true},
	}
	for i, tc := range tests {
		if got := tc.v.Changed(st); got != tc.want {
			t.Errorf("%d: Changed = %v, want %v", i, got, tc.want)
		}
	}
}

func TestReleaseStatusTimes(t *testing.T) {
	plan := DefaultAgentPlan()
	plan.Waves[3].Deadline = Duration(100 * time.Hour)
	plan.Waves[2].Gates = []GateSpec{{Metric: GateRevert, Limit: 0.01, Ratio: 2, Alpha: 0.01, MinExposure: 50}}
	tests := []struct {
		lane           Lane
		wave           int
		bake, deadline time.Duration
	}{
		{LaneNormal, 0, 24 * time.Hour, 96 * time.Hour},
		{LaneEmergency, 0, 6 * time.Hour, 24 * time.Hour},
		{LaneNormal, 3, 72 * time.Hour, 100 * time.Hour},
		{LaneEmergency, 3, 18 * time.Hour, 25 * time.Hour},
	}
	for _, tc := range tests {
		st := ReleaseStatus{Lane: tc.lane, Wave: tc.wave, Plan: plan}
		if st.Bake() != tc.bake || st.Deadline() != tc.deadline {
			t.Errorf("%s wave %d: bake %s, deadline %s; want %s, %s", tc.lane, tc.wave, st.Bake(), st.Deadline(), tc.bake, tc.deadline)
		}
	}
	if gs := (ReleaseStatus{Plan: plan, Wave: 2}).WaveGates(); len(gs) != 1 || gs[0].Metric != GateRevert {
		t.Errorf("wave gates = %+v, want the plan's", gs)
	}
	if gs := (ReleaseStatus{Plan: plan, Wave: 1}).WaveGates(); len(gs) != len(DefaultGates()) {
		t.Errorf("wave gates = %+v, want the defaults", gs)
	}
	for _, tc := range []struct {
		targeted int
		want     int64
	}{{-1, 20}, {0, 0}, {1, 1}, {5, 4}, {19, 18}, {20, 20}, {5000, 20}} {
		if got := (ReleaseStatus{Plan: plan, Wave: 1, Targeted: tc.targeted}).Required(); got != tc.want {
			t.Errorf("Required with %d targeted = %d, want %d", tc.targeted, got, tc.want)
		}
	}
}

func TestPromote(t *testing.T) {
	plan := DefaultContentPlan()
	status := func(state ReleaseState, w int, fn func(*ReleaseStatus)) ReleaseStatus {
		st := ReleaseStatus{State: state, Wave: w, Phase: PhaseBaking, Lane: LaneNormal, Plan: plan, Targeted: 3000}
		if fn != nil {
			fn(&st)
		}
		return st
	}
	tests := []struct {
		name  string
		st    ReleaseStatus
		gates []GateResult
		want  Verdict
		err   string // the TransitionError's message, if refused
	}{
		{"draft-starts", status(StateDraft, 0, func(s *ReleaseStatus) { s.Phase = "" }), nil,
			Verdict{State: StateRolling, Wave: 0, Phase: PhaseBaking, Advanced: true, Reason: "started by a person"}, ""},
		{"draft-starts-whatever-the-gates", status(StateDraft, 0, func(s *ReleaseStatus) { s.Phase = "" }), results(Fail),
			Verdict{State: StateRolling, Wave: 0, Phase: PhaseBaking, Advanced: true, Reason: "started by a person"}, ""},
		{"skips-bake-and-undecided-gates", status(StateRolling, 2, nil), results(Pass, Inconclusive, NoData, Error),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave ten-percent"}, ""},
		{"skips-min-devices", status(StateRolling, 2, func(s *ReleaseStatus) { s.Confirmed = 0 }), allPass(),
			Verdict{State: StateRolling, Wave: 3, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave ten-percent"}, ""},
		{"last-wave-completes", status(StateRolling, 4, nil), allPass(),
			Verdict{State: StateCompleted, Wave: 4, Phase: "", Advanced: true, Reason: "promoted by a person; release completed"}, ""},
		{"canary-exit-with-approval", status(StateRolling, 1, func(s *ReleaseStatus) { s.Approvals = 1 }), results(Inconclusive),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave early"}, ""},
		{"awaiting-approval-approved", status(StateAwaitingApproval, 1, func(s *ReleaseStatus) { s.Phase, s.Approvals = PhaseGating, 1 }), allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave early"}, ""},
		{"emergency-canary-exit-with-two-approvals", status(StateRolling, 1, func(s *ReleaseStatus) { s.Lane, s.Approvals = LaneEmergency, 2 }), allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave early"}, ""},
		{"internal-wave-needs-no-approval", status(StateRolling, 0, nil), allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking, Advanced: true, Reason: "promoted by a person; now in wave canary"}, ""},
		// Refused.
		{"refuses-under-kill-switch", status(StateRolling, 2, func(s *ReleaseStatus) { s.Frozen = true }), allPass(),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking}, "cannot promote a rolling release: a kill switch covers its channel"},
		{"refuses-failing-gate", status(StateRolling, 2, nil), results(Pass, Pass, Fail),
			Verdict{State: StateRolling, Wave: 2, Phase: PhaseBaking}, "cannot promote a rolling release: a gate fails: silence fail message"},
		{"refuses-failing-gate-even-approved", status(StateAwaitingApproval, 1, func(s *ReleaseStatus) { s.Phase, s.Approvals = PhaseGating, 3 }), results(Fail),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating}, "cannot promote an awaiting-approval release: a gate fails: worker-crash fail message"},
		{"refuses-missing-approval", status(StateRolling, 1, nil), allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking}, "cannot promote a rolling release: leaving the canary waves needs 1 approval(s) by someone other than the creator, 0 given"},
		{"refuses-awaiting-approval", status(StateAwaitingApproval, 1, func(s *ReleaseStatus) { s.Phase = PhaseGating }), allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating}, "cannot promote an awaiting-approval release: leaving the canary waves needs 1 approval(s) by someone other than the creator, 0 given"},
		{"refuses-emergency-one-approval", status(StateRolling, 1, func(s *ReleaseStatus) { s.Lane, s.Approvals = LaneEmergency, 1 }), allPass(),
			Verdict{State: StateRolling, Wave: 1, Phase: PhaseBaking}, "cannot promote a rolling release: leaving the canary waves needs 2 approval(s) by someone other than the creator, 1 given"},
		{"refuses-canary-exit-without-production-signatures", status(StateAwaitingApproval, 1, func(s *ReleaseStatus) {
			s.Phase, s.Approvals, s.Signing, s.SigningNote = PhaseGating, 1, SigningCanary, "1 of 2"
		}), allPass(),
			Verdict{State: StateAwaitingApproval, Wave: 1, Phase: PhaseGating}, "cannot promote an awaiting-approval release: leaving the canary waves needs the vendor's signatures: 1 of 2"},
		{"refuses-unsigned-draft", status(StateDraft, 0, func(s *ReleaseStatus) { s.Phase, s.Signing, s.SigningNote = "", SigningNone, "not signed" }), nil,
			Verdict{State: StateDraft}, "cannot promote a draft release: its first wave's devices cannot verify it yet: not signed"},
		{"refuses-paused", status(StatePaused, 2, nil), allPass(),
			Verdict{State: StatePaused, Wave: 2, Phase: PhaseBaking}, "cannot promote a paused release: only a draft, rolling or awaiting-approval release is promoted"},
		{"refuses-completed", status(StateCompleted, 4, func(s *ReleaseStatus) { s.Phase = "" }), allPass(),
			Verdict{State: StateCompleted, Wave: 4}, "cannot promote a completed release: only a draft, rolling or awaiting-approval release is promoted"},
		{"refuses-halted", status(StateHalted, 2, func(s *ReleaseStatus) { s.Phase = "" }), allPass(),
			Verdict{State: StateHalted, Wave: 2}, "cannot promote a halted release: only a draft, rolling or awaiting-approval release is promoted"},
		{"refuses-rolled-back", status(StateRolledBack, 2, func(s *ReleaseStatus) { s.Phase = "" }), allPass(),
			Verdict{State: StateRolledBack, Wave: 2}, "cannot promote a rolled-back release: only a draft, rolling or awaiting-approval release is promoted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Promote(tc.st, tc.gates)
			if got != tc.want {
				t.Errorf("Promote =\n  %+v\nwant\n  %+v", got, tc.want)
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Promote: %v", err)
				}
				return
			}
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Fatalf("Promote error %v (%T), want a *TransitionError", err, err)
			}
			if te.Action != ActPromote || te.State != tc.st.State {
				t.Errorf("TransitionError names %s of %s, want promote of %s", te.Action, te.State, tc.st.State)
			}
			if err.Error() != tc.err {
				t.Errorf("error %q, want %q", err, tc.err)
			}
		})
	}
}
