package rollout

import (
	"errors"
	"testing"
)

var allStates = []ReleaseState{StateDraft, StateRolling, StateAwaitingApproval, StatePaused, StateCompleted, StateHalted, StateRolledBack}

func TestParseState(t *testing.T) {
	for _, st := range allStates {
		got, err := ParseState(string(st))
		if err != nil || got != st {
			t.Errorf("ParseState(%q) = %q, %v", st, got, err)
		}
	}
	for _, bad := range []string{"", "rolling-out", "Rolling", "done", "halted "} {
		got, err := ParseState(bad)
		if err == nil || got != "" {
			t.Errorf("ParseState(%q) = %q, %v; want an error", bad, got, err)
			continue
		}
		if want := `unknown release state "` + bad + `"`; err.Error() != want {
			t.Errorf("ParseState(%q): %q, want %q", bad, err, want)
		}
	}
}

func TestStateKinds(t *testing.T) {
	tests := []struct {
		st                 ReleaseState
		live, reaches, bad bool
	}{
		{StateDraft, false, false, false},
		{StateRolling, true, true, false},
		{StateAwaitingApproval, true, true, false},
		{StatePaused, true, true, false},
		{StateCompleted, false, true, false},
		{StateHalted, false, false, true},
		{StateRolledBack, false, false, true},
	}
	for _, tc := range tests {
		if tc.st.Live() != tc.live || tc.st.Reaches() != tc.reaches || tc.st.Bad() != tc.bad {
			t.Errorf("%s: live %v, reaches %v, bad %v; want %v, %v, %v", tc.st, tc.st.Live(), tc.st.Reaches(), tc.st.Bad(), tc.live, tc.reaches, tc.bad)
		}
	}
}

func TestParseLane(t *testing.T) {
	tests := []struct {
		in        string
		want      Lane
		approvals int
		err       string
	}{
		{"", LaneNormal, 1, ""},
		{"normal", LaneNormal, 1, ""},
		{"emergency", LaneEmergency, 2, ""},
		{"Emergency", "", 0, `unknown lane "Emergency" (want normal or emergency)`},
		{"urgent", "", 0, `unknown lane "urgent" (want normal or emergency)`},
	}
	for _, tc := range tests {
		got, err := ParseLane(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || got != "" {
				t.Errorf("ParseLane(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.Approvals() != tc.approvals {
			t.Errorf("ParseLane(%q) = %q (%d approvals), %v; want %q (%d)", tc.in, got, got.Approvals(), err, tc.want, tc.approvals)
		}
	}
}

// TestApply covers every action in every state: the new state, or the
// refusal with its message.
func TestApply(t *testing.T) {
	type outcome struct {
		to  ReleaseState // "" when refused
		why string       // the refusal's reason
	}
	ok := func(st ReleaseState) outcome { return outcome{to: st} }
	no := func(why string) outcome { return outcome{why: why} }
	const (
		notDraft    = "only a draft is started"
		notRolling  = "only a rolling release is paused"
		notStopped  = "only a paused, halted or rolled-back release is resumed"
		stopped     = "it is already stopped"
		finished    = "it is finished"
		notPromoted = "only a draft, rolling or awaiting-approval release is promoted"
		unknown     = "unknown action"
	)
	matrix := map[Action]map[ReleaseState]outcome{
		ActStart: {
			StateDraft: ok(StateRolling), StateRolling: no(notDraft), StateAwaitingApproval: no(notDraft), StatePaused: no(notDraft),
			StateCompleted: no(notDraft), StateHalted: no(notDraft), StateRolledBack: no(notDraft),
		},
		ActApprove: {
			StateDraft: ok(StateDraft), StateRolling: ok(StateRolling), StateAwaitingApproval: ok(StateAwaitingApproval), StatePaused: ok(StatePaused),
			StateCompleted: no(finished), StateHalted: no(finished), StateRolledBack: no(finished),
		},
		ActPause: {
			StateDraft: no(notRolling), StateRolling: ok(StatePaused), StateAwaitingApproval: ok(StatePaused), StatePaused: no(notRolling),
			StateCompleted: no(notRolling), StateHalted: no(notRolling), StateRolledBack: no(notRolling),
		},
		ActResume: {
			StateDraft: no(notStopped), StateRolling: no(notStopped), StateAwaitingApproval: no(notStopped), StatePaused: ok(StateRolling),
			StateCompleted: no(notStopped), StateHalted: ok(StateRolling), StateRolledBack: ok(StateRolling),
		},
		ActHalt: {
			StateDraft: ok(StateHalted), StateRolling: ok(StateHalted), StateAwaitingApproval: ok(StateHalted), StatePaused: ok(StateHalted),
			StateCompleted: ok(StateHalted), StateHalted: no(stopped), StateRolledBack: no(stopped),
		},
		ActPromote: {
			StateDraft: ok(StateDraft), StateRolling: ok(StateRolling), StateAwaitingApproval: ok(StateAwaitingApproval), StatePaused: no(notPromoted),
			StateCompleted: no(notPromoted), StateHalted: no(notPromoted), StateRolledBack: no(notPromoted),
		},
		"rollback": {
			StateDraft: no(unknown), StateRolling: no(unknown), StateAwaitingApproval: no(unknown), StatePaused: no(unknown),
			StateCompleted: no(unknown), StateHalted: no(unknown), StateRolledBack: no(unknown),
		},
	}
	for a, row := range matrix {
		if len(row) != len(allStates) {
			t.Fatalf("matrix row %s covers %d states, want %d", a, len(row), len(allStates))
		}
		for _, st := range allStates {
			want := row[st]
			t.Run(string(a)+"/"+string(st), func(t *testing.T) {
				got, err := Apply(st, a)
				if want.to != "" {
					if err != nil || got != want.to {
						t.Errorf("Apply(%s, %s) = %s, %v; want %s", st, a, got, err, want.to)
					}
					return
				}
				var te *TransitionError
				if !errors.As(err, &te) {
					t.Fatalf("Apply(%s, %s) = %s, %v; want a *TransitionError", st, a, got, err)
				}
				if got != st {
					t.Errorf("refused Apply(%s, %s) returned state %s, want it unchanged", st, a, got)
				}
				if te.Action != a || te.State != st || te.Why != want.why {
					t.Errorf("TransitionError %+v, want action %s, state %s, why %q", te, a, st, want.why)
				}
				article := "a"
				if st == StateAwaitingApproval {
					article = "an"
				}
				if msg := "cannot " + string(a) + " " + article + " " + string(st) + " release: " + want.why; err.Error() != msg {
					t.Errorf("error %q, want %q", err, msg)
				}
			})
		}
	}
}
