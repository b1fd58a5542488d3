package rollout

import (
	"fmt"
	"strings"
	"time"
)

// ReleaseStatus is what the controller knows of a release when it judges
// it.
type ReleaseStatus struct {
	State         ReleaseState
	Wave          int
	Phase         Phase
	Lane          Lane
	Plan          Plan
	WaveStartedAt time.Time
	// Approvals counts distinct approvers other than the creator.
	Approvals int
	// Frozen: a kill switch covers the release's channel; nothing moves.
	Frozen bool
	// Confirmed is how many devices confirmed the release healthy after
	// their probation, over all waves so far; Targeted how many devices
	// the current wave reaches in total (-1: not known yet).
	Confirmed int64
	Targeted  int
	// Ramping: the wave has not reached every device it will yet (its
	// cohort still caps strata while they ramp up); Ramp says how far.
	Ramping bool
	Ramp    string
	// Signing is how far the vendor signed the release's artifact, and
	// SigningNote what is missing, in words.
	Signing     Signing
	SigningNote string
}

// Signing is how far a release's artifact is signed for devices to verify
// it: devices in canary waves need the vendor's canary signature, all
// others the vendor's threshold of signatures.
type Signing int

const (
	// SigningNotRequired: the server has no signed-update repository.
	SigningNotRequired Signing = iota
	SigningNone
	SigningCanary
	SigningProduction
)

// Covers reports whether devices of a wave can verify the artifact.
func (s Signing) Covers(w Wave) bool {
	switch s {
	case SigningNotRequired, SigningProduction:
		return true
	case SigningCanary:
		return w.Canary
	}
	return false
}

func (st ReleaseStatus) signedFor(i int) bool { return st.Signing.Covers(st.Plan.Waves[i]) }

// exitNeeds says what leaving the current wave still needs from people
// ("leaving the canary waves needs 1 approval(s), 0 given"): approvals,
// and the vendor's signatures for the next wave's devices; "" when
// nothing.
func (st ReleaseStatus) exitNeeds(creator string) string {
	var needs []string
	if st.Plan.exitNeedsApproval(st.Wave) && st.Approvals < st.Lane.Approvals() {
		needs = append(needs, fmt.Sprintf("%d approval(s)%s, %d given", st.Lane.Approvals(), creator, st.Approvals))
	}
	if st.Wave+1 < len(st.Plan.Waves) && !st.signedFor(st.Wave+1) {
		needs = append(needs, "the vendor's signatures: "+st.SigningNote)
	}
	if len(needs) == 0 {
		return ""
	}
	what := "leaving wave " + st.Plan.Waves[st.Wave].Name
	if st.Plan.exitNeedsApproval(st.Wave) {
		what = "leaving the canary waves"
	}
	return what + " needs " + strings.Join(needs, " and ")
}

// Verdict is the controller's verdict for one release in one tick.
type Verdict struct {
	State ReleaseState
	Wave  int
	Phase Phase
	// Reason says why, in words: the halt reason, or what the release
	// waits for.
	Reason string
	// Advanced: the release entered a new wave (or completed); the caller
	// restarts the wave clock and recomputes the cohort.
	Advanced bool
}

// Changed reports whether the decision differs from the status.
func (d Verdict) Changed(st ReleaseStatus) bool {
	return d.State != st.State || d.Wave != st.Wave || d.Phase != st.Phase || d.Advanced
}

// Bake is the wave's bake time in the release's lane.
func (st ReleaseStatus) Bake() time.Duration {
	return st.Lane.scale(time.Duration(st.Plan.Waves[st.Wave].Bake))
}

// Deadline is the wave's deadline in the release's lane.
func (st ReleaseStatus) Deadline() time.Duration {
	return st.Lane.scale(st.Plan.Waves[st.Wave].deadline())
}

// WaveGates are the current wave's gates.
func (st ReleaseStatus) WaveGates() []GateSpec { return st.Plan.Waves[st.Wave].gates() }

// Required is how many confirmed devices the wave needs: its minimum.
// A wave that reaches fewer devices than that needs 95% of them (at least
// one): asking for every last device lets a few laptops closed for the
// day hold a good release until its deadline halts it.
func (st ReleaseStatus) Required() int64 {
	need := int64(st.Plan.Waves[st.Wave].MinDevices)
	if st.Targeted >= 0 && int64(st.Targeted) < need {
		need = int64(st.Targeted) * 95 / 100
		if st.Targeted > 0 {
			need = max(need, 1)
		}
	}
	return need
}

// Step judges a release: a failing gate halts it at once, in any live
// state; a wave moves on only when its bake time is over, enough devices
// confirmed healthy, every gate passed and, leaving the canary waves,
// enough people approved. A wave still short of that at its deadline
// halts: in the name of a gate whose evidence leans worse, or else for a
// person to look. It is pure: the server's controller and the
// simulator call it with their own clocks and figures.
func Step(now time.Time, st ReleaseStatus, gates []GateResult) Verdict {
	d := Verdict{State: st.State, Wave: st.Wave, Phase: st.Phase}
	if !st.State.Live() || st.Wave < 0 || st.Wave >= len(st.Plan.Waves) {
		return d
	}
	wave := st.Plan.Waves[st.Wave]
	for _, g := range gates {
		if g.Outcome == Fail {
			d.State, d.Phase = StateHalted, ""
			d.Reason = "halted: " + g.Message
			return d
		}
	}
	if st.State == StatePaused {
		d.Reason = "paused by a person"
		return d
	}
	if st.Frozen {
		d.Reason = "kill switch engaged: the release waits"
		return d
	}
	elapsed := now.Sub(st.WaveStartedAt)
	if st.Targeted == 0 && st.Wave+1 < len(st.Plan.Waves) && !st.Plan.exitNeedsApproval(st.Wave) {
		// An empty wave (no internal organisation, say) has nothing to
		// judge; waiting for its deadline would only halt the release.
		return advance(d, st, fmt.Sprintf("wave %s reaches no device: skipped", wave.Name))
	}
	allPass := len(gates) > 0
	for _, g := range gates {
		allPass = allPass && g.Outcome == Pass
	}
	switch {
	case elapsed < st.Bake() || st.Confirmed < st.Required() || st.Ramping:
		d.Phase = PhaseBaking
		d.Reason = fmt.Sprintf("wave %s baking: %s of %s, %d of %d devices confirmed healthy",
			wave.Name, elapsed.Round(time.Second), st.Bake(), st.Confirmed, st.Required())
		if st.Ramping {
			d.Reason += "; ramping up: " + st.Ramp
		}
	case !allPass:
		d.Phase = PhaseGating
		d.Reason = fmt.Sprintf("wave %s gating: %s", wave.Name, Summary(gates))
	case st.exitNeeds("") != "":
		d.State, d.Phase = StateAwaitingApproval, PhaseGating
		d.Reason = fmt.Sprintf("wave %s passed; %s", wave.Name, st.exitNeeds(""))
		return d
	default:
		return advance(d, st, fmt.Sprintf("wave %s passed: %s", wave.Name, Summary(gates)))
	}
	if st.State == StateAwaitingApproval {
		// The wave passed once and waits for people: a gate that stops
		// passing for a while (a store error, a quiet hour) only makes it
		// wait longer. A failing gate still halts (above).
		d.Reason = fmt.Sprintf("wave %s waits for approval and for its gates: %s", wave.Name, Summary(gates))
		return d
	}
	if elapsed >= st.Deadline() {
		d.State, d.Phase = StateHalted, ""
		// A gate still leaning worse at the deadline decides: the wave's
		// test is truncated there (Wald's truncated SPRT), at 1/sqrt(alpha)
		// rather than 1/alpha. The halt is the one the deadline made
		// anyway, so no good release halts more often; the reason says
		// which gate's evidence stood against it, not just "undecided".
		for _, g := range gates {
			if g.Outcome == Inconclusive && g.Leaning {
				d.Reason = fmt.Sprintf("halted: %s leaning worse at wave %s's %s deadline, where the gate decides: %s",
					g.Metric, wave.Name, st.Deadline(), strings.Replace(g.Message, leaningWaits, "leaning worse", 1))
				return d
			}
		}
		d.Reason = fmt.Sprintf("halted: wave %s still undecided at its %s deadline (%d of %d devices confirmed healthy; %s); a person must look",
			wave.Name, st.Deadline(), st.Confirmed, st.Required(), Summary(gates))
		return d
	}
	return d
}

func advance(d Verdict, st ReleaseStatus, why string) Verdict {
	d.Advanced = true
	if st.Wave+1 >= len(st.Plan.Waves) {
		d.State, d.Phase, d.Reason = StateCompleted, "", why+"; release completed"
		return d
	}
	d.State, d.Wave, d.Phase = StateRolling, st.Wave+1, PhaseBaking
	d.Reason = why + "; now in wave " + st.Plan.Waves[st.Wave+1].Name
	return d
}

// Promote is a person moving a release on by hand, with a reason: it
// skips what remains of the bake time and the wait for undecided gates,
// but never a failing gate or a missing approval.
func Promote(st ReleaseStatus, gates []GateResult) (Verdict, error) {
	d := Verdict{State: st.State, Wave: st.Wave, Phase: st.Phase}
	if _, err := Apply(st.State, ActPromote); err != nil {
		return d, err
	}
	if st.State == StateDraft {
		if !st.signedFor(0) {
			return d, &TransitionError{Action: ActPromote, State: st.State, Why: "its first wave's devices cannot verify it yet: " + st.SigningNote}
		}
		d.State, d.Phase, d.Advanced = StateRolling, PhaseBaking, true
		d.Reason = "started by a person"
		return d, nil
	}
	if st.Frozen {
		return d, &TransitionError{Action: ActPromote, State: st.State, Why: "a kill switch covers its channel"}
	}
	for _, g := range gates {
		if g.Outcome == Fail {
			return d, &TransitionError{Action: ActPromote, State: st.State, Why: "a gate fails: " + g.Message}
		}
	}
	if needs := st.exitNeeds(" by someone other than the creator"); needs != "" {
		return d, &TransitionError{Action: ActPromote, State: st.State, Why: needs}
	}
	return advance(d, st, "promoted by a person"), nil
}
