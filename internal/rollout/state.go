package rollout

import (
	"fmt"
	"strings"
	"time"
)

// ReleaseState is a release's persisted phase:
//
//	draft → rolling (wave i: baking, then gating) → completed
//	                ↘ awaiting-approval (leaving the canary waves) ↗
//	any but halted or rolled-back → halted → rolled-back
//
// Only a person moves a release out of halted, rolled-back or paused.
type ReleaseState string

const (
	StateDraft            ReleaseState = "draft"
	StateRolling          ReleaseState = "rolling"
	StateAwaitingApproval ReleaseState = "awaiting-approval"
	StatePaused           ReleaseState = "paused"
	StateCompleted        ReleaseState = "completed"
	StateHalted           ReleaseState = "halted"
	StateRolledBack       ReleaseState = "rolled-back"
)

// ParseState checks a persisted state string.
func ParseState(s string) (ReleaseState, error) {
	switch st := ReleaseState(s); st {
	case StateDraft, StateRolling, StateAwaitingApproval, StatePaused, StateCompleted, StateHalted, StateRolledBack:
		return st, nil
	}
	return "", fmt.Errorf("unknown release state %q", s)
}

// Live states reach the devices of the waves started so far.
func (s ReleaseState) Live() bool {
	return s == StateRolling || s == StateAwaitingApproval || s == StatePaused
}

// Reaches reports whether devices may be given the release's version at
// all: live or completed.
func (s ReleaseState) Reaches() bool { return s.Live() || s == StateCompleted }

// Bad states are never desired: devices on them are sent back.
func (s ReleaseState) Bad() bool { return s == StateHalted || s == StateRolledBack }

// Lane is how urgent a release is.
type Lane string

const (
	LaneNormal Lane = "normal"
	// LaneEmergency is for urgent threat content: every wave and gate is
	// kept, bake times and deadlines are a quarter, and leaving the canary
	// waves needs two approvers.
	LaneEmergency Lane = "emergency"
)

// ParseLane reads a lane; empty is normal.
func ParseLane(s string) (Lane, error) {
	switch Lane(s) {
	case "", LaneNormal:
		return LaneNormal, nil
	case LaneEmergency:
		return LaneEmergency, nil
	}
	return "", fmt.Errorf("unknown lane %q (want normal or emergency)", s)
}

// Approvals is how many people other than its creator must approve a
// release before it leaves the canary waves.
func (l Lane) Approvals() int {
	if l == LaneEmergency {
		return 2
	}
	return 1
}

// scale shortens a wave's times in the emergency lane.
func (l Lane) scale(d time.Duration) time.Duration {
	if l == LaneEmergency {
		return d / 4
	}
	return d
}

// Phase says what a rolling release waits for in its wave.
type Phase string

const (
	PhaseBaking Phase = "baking" // bake time or minimum confirmed devices not reached
	PhaseGating Phase = "gating" // waiting for every gate to pass
)

// Action is what a person asks of a release.
type Action string

const (
	ActStart   Action = "start"   // draft → rolling
	ActApprove Action = "approve" // sign-off to leave the canary waves
	ActPause   Action = "pause"
	ActResume  Action = "resume" // paused, halted or rolled-back → rolling
	ActHalt    Action = "halt"
	ActPromote Action = "promote" // skip the rest of the bake; gates that fail still refuse
)

// TransitionError is a person's action that the release's state does not
// allow; the server answers it with 409.
type TransitionError struct {
	Action Action
	State  ReleaseState
	Why    string
}

func (e *TransitionError) Error() string {
	article := "a"
	if strings.ContainsRune("aeiou", rune(string(e.State)[0])) {
		article = "an"
	}
	return fmt.Sprintf("cannot %s %s %s release: %s", e.Action, article, e.State, e.Why)
}

// Apply checks a person's action against the state and returns the new
// state. Approvals and promotion have more conditions; see Approve and
// Promote.
func Apply(st ReleaseState, a Action) (ReleaseState, error) {
	bad := func(why string) (ReleaseState, error) { return st, &TransitionError{Action: a, State: st, Why: why} }
	switch a {
	case ActStart:
		if st != StateDraft {
			return bad("only a draft is started")
		}
		return StateRolling, nil
	case ActPause:
		if st != StateRolling && st != StateAwaitingApproval {
			return bad("only a rolling release is paused")
		}
		return StatePaused, nil
	case ActResume:
		if st != StatePaused && st != StateHalted && st != StateRolledBack {
			return bad("only a paused, halted or rolled-back release is resumed")
		}
		return StateRolling, nil
	case ActHalt:
		// A completed release can still turn out bad (a false positive
		// found a week later): halting it sends every device back.
		if st.Bad() {
			return bad("it is already stopped")
		}
		return StateHalted, nil
	case ActApprove:
		if st == StateCompleted || st.Bad() {
			return bad("it is finished")
		}
		return st, nil
	case ActPromote:
		if st != StateRolling && st != StateAwaitingApproval && st != StateDraft {
			return bad("only a draft, rolling or awaiting-approval release is promoted")
		}
		return st, nil
	}
	return bad("unknown action")
}
