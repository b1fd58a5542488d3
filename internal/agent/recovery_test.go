package agent

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
)

// confirmed is acme/ipc running 292 from slot a, confirmed healthy.
func confirmed() *ChannelState {
	return &ChannelState{Name: "acme/ipc", ActiveVersion: 292, ActiveSlot: SlotA, LKGVersion: 292, LKGSlot: SlotA, State: StateActive}
}

// onProbation is acme/ipc running 293 from slot b since t0, over
// last-known-good 292 in slot a.
func onProbation() *ChannelState {
	return &ChannelState{
		Name: "acme/ipc", ActiveVersion: 293, ActiveSlot: SlotB, LKGVersion: 292, LKGSlot: SlotA, State: StateProbation,
		Pending: &Pending{Version: 293, Slot: SlotB, ActivatedAt: t0},
	}
}

// firstInstall is acme/ipc running its first version, 293, from slot a
// since t0, with nothing to fall back to.
func firstInstall() *ChannelState {
	return &ChannelState{
		Name: "acme/ipc", ActiveVersion: 293, ActiveSlot: SlotA, State: StateProbation,
		Pending: &Pending{Version: 293, Slot: SlotA, ActivatedAt: t0},
	}
}

func with(ch *ChannelState, f func(*ChannelState)) *ChannelState {
	f(ch)
	return ch
}

func TestPolicyWithDefaults(t *testing.T) {
	want := Policy{CrashLimit: 3, CrashWindow: 5 * time.Minute, BootLimit: 3, HangLimit: 2, Probation: 10 * time.Minute}
	if got := (Policy{}).WithDefaults(); got != want {
		t.Errorf("zero policy: got %+v, want %+v", got, want)
	}
	if got := (Policy{CrashLimit: -1, CrashWindow: -time.Second, BootLimit: -2, HangLimit: -3, Probation: -time.Hour}).WithDefaults(); got != want {
		t.Errorf("negative policy: got %+v, want %+v", got, want)
	}
	custom := Policy{CrashLimit: 1, CrashWindow: time.Second, BootLimit: 5, HangLimit: 4, Probation: time.Hour}
	if got := custom.WithDefaults(); got != custom {
		t.Errorf("custom policy: got %+v, want it kept", got)
	}
}

func TestBeginActivation(t *testing.T) {
	tests := []struct {
		name    string
		ch      *ChannelState
		version uint64
		slot    Slot
		refused []uint64
	}{
		{"fresh-device", &ChannelState{Name: "acme/ipc"}, 293, SlotA, nil},
		{"over-lkg-in-a", confirmed(), 293, SlotB, nil},
		{"over-lkg-in-b", with(confirmed(), func(c *ChannelState) { c.ActiveSlot, c.LKGSlot = SlotB, SlotB }), 293, SlotA, nil},
		// The unconfirmed 293 is not worth keeping, the last-known-good is.
		{"supersedes-probation", onProbation(), 294, SlotB, nil},
		{"supersedes-first-install", firstInstall(), 294, SlotB, nil},
		{"after-revert-without-lkg", &ChannelState{Name: "acme/ipc", State: StateReverted, Refused: []uint64{293}}, 294, SlotA, nil},
		{"newer-than-refused-clears", with(confirmed(), func(c *ChannelState) { c.State, c.Refused = StateReverted, []uint64{293, 291} }), 294, SlotB, nil},
		{"not-newer-than-refused-keeps", with(confirmed(), func(c *ChannelState) { c.State, c.Refused = StateReverted, []uint64{295} }), 294, SlotB, []uint64{295}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lkg, lkgSlot := tc.ch.LKGVersion, tc.ch.LKGSlot
			slot := BeginActivation(tc.ch, tc.version, t0)
			if slot != tc.slot {
				t.Errorf("slot: got %q, want %q", slot, tc.slot)
			}
			want := ChannelState{
				Name: "acme/ipc", ActiveVersion: tc.version, ActiveSlot: tc.slot, LKGVersion: lkg, LKGSlot: lkgSlot,
				Pending: &Pending{Version: tc.version, Slot: tc.slot, ActivatedAt: t0}, State: StatePending, Refused: tc.refused,
			}
			if !reflect.DeepEqual(*tc.ch, want) {
				t.Errorf("channel:\ngot  %+v %+v\nwant %+v %+v", *tc.ch, tc.ch.Pending, want, want.Pending)
			}
			if err := tc.ch.validate("acme/ipc"); err != nil {
				t.Errorf("the journal would refuse the result: %v", err)
			}
		})
	}
}

func TestStartProbation(t *testing.T) {
	ch := confirmed()
	BeginActivation(ch, 293, t0)
	StartProbation(ch, t0.Add(3*time.Second))
	if ch.State != StateProbation || !ch.Pending.ActivatedAt.Equal(t0.Add(3*time.Second)) {
		t.Errorf("after StartProbation: state %s, activated at %v; want probation from t0+3s", ch.State, ch.Pending.ActivatedAt)
	}
	c := confirmed()
	StartProbation(c, t0)
	if !reflect.DeepEqual(c, confirmed()) {
		t.Errorf("StartProbation changed confirmed content: %+v", c)
	}
}

func TestOnStart(t *testing.T) {
	now := t0.Add(time.Hour)
	reverted := func(ch *ChannelState, lkg uint64, slot Slot, reason string) *ChannelState {
		return &ChannelState{Name: ch.Name, ActiveVersion: lkg, ActiveSlot: slot, LKGVersion: lkg, LKGSlot: slot,
			State: StateReverted, Refused: []uint64{293}, LastError: reason}
	}
	tests := []struct {
		name   string
		policy Policy
		ch     *ChannelState
		want   []Decision
		after  *ChannelState
	}{
		{"confirmed-untouched", Policy{}, confirmed(), nil, confirmed()},
		{"reverted-untouched", Policy{}, with(confirmed(), func(c *ChannelState) { c.State = StateReverted }), nil,
			with(confirmed(), func(c *ChannelState) { c.State = StateReverted })},
		{"first-start-resumes", Policy{}, with(onProbation(), func(c *ChannelState) { c.State = StatePending }),
			[]Decision{{Kind: DecisionResumed, Channel: "acme/ipc", Version: 293, Attempts: 1,
				Reason: "resumed probation of acme/ipc@293: 1 of 3 starts without reaching healthy"}},
			with(onProbation(), func(c *ChannelState) { c.Pending.Attempts, c.Pending.ActivatedAt = 1, now })},
		{"second-start-resumes-keeping-crashes", Policy{},
			with(onProbation(), func(c *ChannelState) { c.Pending.Attempts, c.Pending.Crashes = 1, []time.Time{t0} }),
			[]Decision{{Kind: DecisionResumed, Channel: "acme/ipc", Version: 293, Attempts: 2,
				Reason: "resumed probation of acme/ipc@293: 2 of 3 starts without reaching healthy"}},
			with(onProbation(), func(c *ChannelState) {
				c.Pending.Attempts, c.Pending.ActivatedAt, c.Pending.Crashes = 2, now, []time.Time{t0}
			})},
		{"third-start-reverts", Policy{}, with(onProbation(), func(c *ChannelState) { c.Pending.Attempts = 2 }),
			[]Decision{{Kind: DecisionReverted, Cause: CauseBootLoop, Channel: "acme/ipc", Version: 293, To: 292, Attempts: 3,
				Reason: "boot loop: acme/ipc@293 started 3 times without reaching healthy; back to last-known-good acme/ipc@292"}},
			reverted(onProbation(), 292, SlotA, "boot loop: acme/ipc@293 started 3 times without reaching healthy; back to last-known-good acme/ipc@292")},
		{"boot-limit-one", Policy{BootLimit: 1}, onProbation(),
			[]Decision{{Kind: DecisionReverted, Cause: CauseBootLoop, Channel: "acme/ipc", Version: 293, To: 292, Attempts: 1,
				Reason: "boot loop: acme/ipc@293 started once without reaching healthy; back to last-known-good acme/ipc@292"}},
			reverted(onProbation(), 292, SlotA, "boot loop: acme/ipc@293 started once without reaching healthy; back to last-known-good acme/ipc@292")},
		{"first-install-unloads", Policy{}, with(firstInstall(), func(c *ChannelState) { c.Pending.Attempts = 2 }),
			[]Decision{{Kind: DecisionReverted, Cause: CauseBootLoop, Channel: "acme/ipc", Version: 293, To: 0, Attempts: 3,
				Reason: "boot loop: acme/ipc@293 started 3 times without reaching healthy; no last-known-good version to return to: content unloaded"}},
			reverted(firstInstall(), 0, SlotNone, "boot loop: acme/ipc@293 started 3 times without reaching healthy; no last-known-good version to return to: content unloaded")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJournal()
			j.Channels["acme/ipc"] = tc.ch
			got := OnStart(j, tc.policy, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decisions:\ngot  %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(tc.ch, tc.after) {
				t.Errorf("channel:\ngot  %+v %+v\nwant %+v %+v", tc.ch, tc.ch.Pending, tc.after, tc.after.Pending)
			}
			if err := j.validate(); err != nil {
				t.Errorf("the journal would refuse the result: %v", err)
			}
		})
	}
}

func TestOnStartDecidesEveryChannelInOrder(t *testing.T) {
	j := NewJournal()
	for _, name := range []string{"zeta/rules", "acme/ipc", "acme/fw"} {
		ch := j.Channel(name)
		BeginActivation(ch, 10, t0)
	}
	j.Channel("acme/fw").Pending.Attempts = 2
	ds := OnStart(j, Policy{}, t0)
	var got []string
	for _, d := range ds {
		got = append(got, d.Channel+" "+string(d.Kind))
	}
	want := []string{"acme/fw reverted", "acme/ipc resumed-probation", "zeta/rules resumed-probation"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decisions: got %q, want %q", got, want)
	}
}

// The story of 19 July on a Ringfence device: new content takes the host
// down on every boot and the server is unreachable. Each start goes
// through the journal on disk, and the Nth start reverts before loading
// anything.
func TestBootLoopRevertsOffline(t *testing.T) {
	dir := t.TempDir()
	j := NewJournal()
	ch := j.Channel("acme/ipc")
	*ch = *confirmed()
	BeginActivation(ch, 293, t0)
	if err := j.Save(dir); err != nil { // before the worker loads 293
		t.Fatal(err)
	}
	now := t0
	for start := 1; start <= DefaultBootLimit; start++ {
		now = now.Add(2 * time.Minute) // the host's reboot
		j, err := LoadJournal(dir)
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		ds := OnStart(j, Policy{}, now)
		if err := j.Save(dir); err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("start %d: got decisions %+v, want one", start, ds)
		}
		ch := j.Channel("acme/ipc")
		if start < DefaultBootLimit {
			if ds[0].Kind != DecisionResumed || ch.ActiveSlot != SlotB {
				t.Fatalf("start %d: got %s running slot %s, want resumed probation in slot b", start, ds[0].Kind, ch.ActiveSlot)
			}
			continue
		}
		if ds[0].Kind != DecisionReverted || ds[0].Cause != CauseBootLoop {
			t.Fatalf("start %d: got %+v, want a boot-loop revert", start, ds[0])
		}
		if ch.ActiveVersion != 292 || ch.ActiveSlot != SlotA || ch.State != StateReverted {
			t.Errorf("start %d: running %d from slot %s in state %s, want 292 from slot a, reverted", start, ch.ActiveVersion, ch.ActiveSlot, ch.State)
		}
	}
	// And it stays there: the next start has nothing to decide, and the
	// server's next offer of 293 is refused.
	j, err := LoadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds := OnStart(j, Policy{}, now.Add(time.Minute)); ds != nil {
		t.Errorf("start after the revert: got %+v, want no decisions", ds)
	}
	if ok, why := Accept(j.Channel("acme/ipc"), 293); ok {
		t.Errorf("Accept(293) after the revert: got ok (%s), want refused", why)
	}
}

// Planned restarts (the agent stopped cleanly: a service restart, an
// update, an orderly reboot) during probation are not failed starts: any
// number of them resumes the probation without counting towards the
// boot-loop limit, and a crash after them still counts from where the
// crashes left off.
func TestCleanRestartsDuringProbationDoNotRevert(t *testing.T) {
	j := NewJournal()
	ch := j.Channel("acme/ipc")
	*ch = *confirmed()
	BeginActivation(ch, 293, t0)
	StartProbation(ch, t0)
	OnStart(j, Policy{}, t0.Add(time.Minute)) // one crash
	for i := range 2 * DefaultBootLimit {
		ds := OnStartAfterCleanStop(j, t0.Add(time.Duration(i+2)*time.Minute))
		if len(ds) != 1 || ds[0].Kind != DecisionResumed || ch.ActiveVersion != 293 || ch.Pending == nil || ch.Pending.Attempts != 1 || ch.State != StateProbation {
			t.Fatalf("clean restart %d: %+v, channel %+v; want 293 resumed on probation, still 1 failed start", i+1, ds, ch)
		}
	}
	if ds := OnStart(j, Policy{}, t0.Add(time.Hour)); ds[0].Kind != DecisionResumed || ch.Pending.Attempts != 2 {
		t.Fatalf("a crash after the clean restarts: %+v, attempts %d; want resumed at 2", ds, ch.Pending.Attempts)
	}
	if ds := OnStartAfterCleanStop(NewJournal(), t0); ds != nil {
		t.Errorf("nothing pending: %+v, want no decisions", ds)
	}
}

// Hangs have their own limit: the second within the window reverts
// content on probation; hangs further apart than the window do not; a
// hang on confirmed content is reported and reverts nothing.
func TestOnWorkerHang(t *testing.T) {
	ch := onProbation()
	if d := OnWorkerHang(ch, Policy{}, t0.Add(time.Minute)); d.Kind != DecisionCrashed || ch.ActiveVersion != 293 {
		t.Fatalf("first hang: %+v, running %d; want reported, still on 293", d, ch.ActiveVersion)
	}
	d := OnWorkerHang(ch, Policy{}, t0.Add(3*time.Minute))
	if d.Kind != DecisionReverted || d.Cause != CauseHang || ch.ActiveVersion != 292 || ch.State != StateReverted {
		t.Fatalf("second hang within the window: %+v, channel %+v; want a hang revert to 292", d, ch)
	}
	if evs := d.Events(t0); len(evs) != 2 || evs[0].Type != EventWorkerCrash || evs[1].Type != EventReverted {
		t.Errorf("events %+v, want the crash the server counts and the revert", evs)
	}
	apart := onProbation()
	OnWorkerHang(apart, Policy{}, t0.Add(time.Minute))
	if d := OnWorkerHang(apart, Policy{}, t0.Add(7*time.Minute)); d.Kind != DecisionCrashed {
		t.Errorf("hangs 6 minutes apart (window 5): %+v, want no revert", d)
	}
	if d := OnWorkerHang(confirmed(), Policy{}, t0); d.Kind != DecisionCrashed || d.Version != 292 {
		t.Errorf("hang on confirmed content: %+v, want reported on 292", d)
	}
}

func TestOnWorkerCrash(t *testing.T) {
	pol := Policy{}
	tests := []struct {
		name    string
		policy  Policy
		ch      *ChannelState
		crashes []time.Duration // after t0
		kind    DecisionKind    // of the last crash
		reason  string
	}{
		{"third-crash-at-4m59s-reverts", pol, onProbation(), []time.Duration{0, time.Minute, 4*time.Minute + 59*time.Second}, DecisionReverted,
			"crash loop: worker crashed 3 times within 5m0s of activating acme/ipc@293; back to last-known-good acme/ipc@292"},
		{"third-crash-at-5m01s-does-not", pol, onProbation(), []time.Duration{0, time.Minute, 5*time.Minute + time.Second}, DecisionCrashed,
			"worker crashed running acme/ipc@293 on probation: 3 crashes since activation; 3 within 5m0s revert"},
		{"window-is-inclusive", pol, onProbation(), []time.Duration{0, 2 * time.Minute, 5 * time.Minute}, DecisionReverted,
			"crash loop: worker crashed 3 times within 5m0s of activating acme/ipc@293; back to last-known-good acme/ipc@292"},
		{"window-slides", pol, onProbation(), []time.Duration{0, 5*time.Minute + time.Second, 6 * time.Minute, 7 * time.Minute}, DecisionReverted,
			"crash loop: worker crashed 3 times in 1m59s (limit: 3 within 5m0s) running acme/ipc@293 on probation; back to last-known-good acme/ipc@292"},
		{"two-crashes", pol, onProbation(), []time.Duration{10 * time.Second, 20 * time.Second}, DecisionCrashed,
			"worker crashed running acme/ipc@293 on probation: 2 crashes since activation; 3 within 5m0s revert"},
		{"clock-stepped-back", pol, onProbation(), []time.Duration{4 * time.Minute, time.Minute, 2 * time.Minute}, DecisionReverted,
			"crash loop: worker crashed 3 times within 5m0s of activating acme/ipc@293; back to last-known-good acme/ipc@292"},
		{"crash-limit-one", Policy{CrashLimit: 1}, onProbation(), []time.Duration{time.Second}, DecisionReverted,
			"crash loop: worker crashed once within 5m0s of activating acme/ipc@293; back to last-known-good acme/ipc@292"},
		{"crashes-before-the-worker-reports-running", pol, with(onProbation(), func(c *ChannelState) { c.State = StatePending }),
			[]time.Duration{0, time.Second, 2 * time.Second}, DecisionReverted,
			"crash loop: worker crashed 3 times within 5m0s of activating acme/ipc@293; back to last-known-good acme/ipc@292"},
		{"first-install-unloads", pol, firstInstall(), []time.Duration{0, time.Second, 2 * time.Second}, DecisionReverted,
			"crash loop: worker crashed 3 times within 5m0s of activating acme/ipc@293; no last-known-good version to return to: content unloaded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lkg, lkgSlot := tc.ch.LKGVersion, tc.ch.LKGSlot
			var d Decision
			for i, c := range tc.crashes {
				d = OnWorkerCrash(tc.ch, tc.policy, t0.Add(c))
				if i < len(tc.crashes)-1 && d.Kind != DecisionCrashed {
					t.Fatalf("crash %d: got %s, want crashed", i+1, d.Kind)
				}
			}
			if d.Kind != tc.kind || d.Reason != tc.reason {
				t.Errorf("last crash:\ngot  %s %q\nwant %s %q", d.Kind, d.Reason, tc.kind, tc.reason)
			}
			if d.Channel != "acme/ipc" || d.Version != 293 {
				t.Errorf("decision about %s@%d, want acme/ipc@293", d.Channel, d.Version)
			}
			if tc.kind == DecisionReverted {
				want := ChannelState{Name: "acme/ipc", ActiveVersion: lkg, ActiveSlot: lkgSlot, LKGVersion: lkg, LKGSlot: lkgSlot,
					State: StateReverted, Refused: []uint64{293}, LastError: tc.reason}
				if !reflect.DeepEqual(*tc.ch, want) || d.Cause != CauseCrashLoop || d.To != lkg {
					t.Errorf("after the revert:\ngot  %+v (cause %s, to %d)\nwant %+v (cause crash-loop, to %d)", *tc.ch, d.Cause, d.To, want, lkg)
				}
				return
			}
			if tc.ch.Pending == nil || len(tc.ch.Pending.Crashes) != len(tc.crashes) || tc.ch.ActiveVersion != 293 {
				t.Errorf("channel %+v: want 293 still on probation with %d crashes recorded", tc.ch, len(tc.crashes))
			}
		})
	}
}

func TestOnWorkerCrashWithoutProbation(t *testing.T) {
	tests := []struct {
		name   string
		ch     *ChannelState
		reason string
	}{
		{"confirmed-content", confirmed(), "worker crashed running confirmed acme/ipc@292"},
		{"after-a-revert", with(confirmed(), func(c *ChannelState) { c.State, c.Refused = StateReverted, []uint64{293} }),
			"worker crashed running confirmed acme/ipc@292"},
		{"no-content", &ChannelState{Name: "acme/ipc"}, "worker crashed with no content of acme/ipc loaded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.ch
			var d Decision
			for i := range 5 { // more than any limit: still no revert
				d = OnWorkerCrash(tc.ch, Policy{}, t0.Add(time.Duration(i)*time.Second))
			}
			want := Decision{Kind: DecisionCrashed, Channel: "acme/ipc", Version: before.ActiveVersion, Reason: tc.reason}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("decision:\ngot  %+v\nwant %+v", d, want)
			}
			if !reflect.DeepEqual(*tc.ch, before) {
				t.Errorf("channel changed:\ngot  %+v\nwant %+v", *tc.ch, before)
			}
		})
	}
}

func TestTick(t *testing.T) {
	crashes := func(ds ...time.Duration) func(*ChannelState) {
		return func(c *ChannelState) {
			for _, d := range ds {
				c.Pending.Crashes = append(c.Pending.Crashes, t0.Add(d))
			}
		}
	}
	healthy := &ChannelState{Name: "acme/ipc", ActiveVersion: 293, ActiveSlot: SlotB, LKGVersion: 293, LKGSlot: SlotB, State: StateActive}
	tests := []struct {
		name   string
		policy Policy
		ch     *ChannelState
		at     time.Duration
		want   Decision
		after  *ChannelState
	}{
		{"probation-running", Policy{}, onProbation(), 10*time.Minute - time.Second, Decision{}, onProbation()},
		{"probation-complete", Policy{}, with(onProbation(), func(c *ChannelState) { c.LastError = "old" }), 10 * time.Minute,
			Decision{Kind: DecisionHealthy, Channel: "acme/ipc", Version: 293,
				Reason: "acme/ipc@293 ran its 10m0s probation with 0 worker crashes: now last-known-good"}, healthy},
		{"probation-complete-with-crashes", Policy{}, with(onProbation(), crashes(time.Minute, 7*time.Minute)), time.Hour,
			Decision{Kind: DecisionHealthy, Channel: "acme/ipc", Version: 293,
				Reason: "acme/ipc@293 ran its 10m0s probation with 2 worker crashes: now last-known-good"}, healthy},
		{"first-install-becomes-lkg", Policy{}, firstInstall(), 10 * time.Minute,
			Decision{Kind: DecisionHealthy, Channel: "acme/ipc", Version: 293,
				Reason: "acme/ipc@293 ran its 10m0s probation with 0 worker crashes: now last-known-good"},
			&ChannelState{Name: "acme/ipc", ActiveVersion: 293, ActiveSlot: SlotA, LKGVersion: 293, LKGSlot: SlotA, State: StateActive}},
		{"custom-probation", Policy{Probation: time.Minute}, onProbation(), time.Minute,
			Decision{Kind: DecisionHealthy, Channel: "acme/ipc", Version: 293,
				Reason: "acme/ipc@293 ran its 1m0s probation with 0 worker crashes: now last-known-good"}, healthy},
		{"unstable-reverts", Policy{}, with(onProbation(), crashes(0, 5*time.Minute+time.Second, 9*time.Minute)), 10 * time.Minute,
			Decision{Kind: DecisionReverted, Cause: CauseUnstable, Channel: "acme/ipc", Version: 293, To: 292,
				Reason: "unstable: worker crashed 3 times since activating acme/ipc@293, 3 or more by the end of its 10m0s probation; back to last-known-good acme/ipc@292"},
			&ChannelState{Name: "acme/ipc", ActiveVersion: 292, ActiveSlot: SlotA, LKGVersion: 292, LKGSlot: SlotA, State: StateReverted, Refused: []uint64{293},
				LastError: "unstable: worker crashed 3 times since activating acme/ipc@293, 3 or more by the end of its 10m0s probation; back to last-known-good acme/ipc@292"}},
		{"pending-never-started", Policy{}, with(onProbation(), func(c *ChannelState) { c.State = StatePending }), time.Hour,
			Decision{}, with(onProbation(), func(c *ChannelState) { c.State = StatePending })},
		{"confirmed", Policy{}, confirmed(), time.Hour, Decision{}, confirmed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Tick(tc.ch, tc.policy, t0.Add(tc.at))
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("decision:\ngot  %+v\nwant %+v", d, tc.want)
			}
			if !reflect.DeepEqual(tc.ch, tc.after) {
				t.Errorf("channel:\ngot  %+v %+v\nwant %+v %+v", tc.ch, tc.ch.Pending, tc.after, tc.after.Pending)
			}
		})
	}
}

// A resumed probation starts over: a host that was down longer than the
// probation must not come back and call the content healthy at once.
func TestProbationRestartsWithEachStart(t *testing.T) {
	j := NewJournal()
	ch := j.Channel("acme/ipc")
	*ch = *onProbation()
	back := t0.Add(time.Hour)
	OnStart(j, Policy{}, back)
	if d := Tick(ch, Policy{}, back.Add(time.Minute)); d.Kind != DecisionNone {
		t.Errorf("a minute after the restart: got %+v, want probation still running", d)
	}
	if d := Tick(ch, Policy{}, back.Add(10*time.Minute)); d.Kind != DecisionHealthy {
		t.Errorf("a full probation after the restart: got %+v, want healthy", d)
	}
}

func TestAccept(t *testing.T) {
	refusing := with(confirmed(), func(c *ChannelState) { c.State, c.Refused = StateReverted, []uint64{293} })
	tests := []struct {
		name    string
		ch      *ChannelState
		offered uint64
		ok      bool
		why     string
	}{
		{"newer", confirmed(), 293, true, "acme/ipc@293 is newer than the active version 292"},
		{"first-version", &ChannelState{Name: "acme/ipc"}, 1, true, "acme/ipc@1 is newer than the active version 0"},
		{"active", confirmed(), 292, false, "acme/ipc@292 is already active"},
		{"active-on-probation", onProbation(), 293, false, "acme/ipc@293 is already active"},
		{"nothing-offered", confirmed(), 0, false, "no version of acme/ipc offered"},
		{"refused", refusing, 293, false, "acme/ipc@293 was reverted on this device; refused until a version newer than 293 is offered"},
		{"refused-among-several", with(confirmed(), func(c *ChannelState) { c.Refused = []uint64{290, 295} }), 290, false,
			"acme/ipc@290 was reverted on this device; refused until a version newer than 295 is offered"},
		{"newer-than-refused", refusing, 294, true,
			"acme/ipc@294 is newer than the active version 292; newer than every refused version, which are no longer refused once it is activated"},
		{"between-refused", with(confirmed(), func(c *ChannelState) { c.Refused = []uint64{293, 295} }), 294, true,
			"acme/ipc@294 is newer than the active version 292"},
		{"refused-after-revert-without-lkg", &ChannelState{Name: "acme/ipc", State: StateReverted, Refused: []uint64{1}}, 1, false,
			"acme/ipc@1 was reverted on this device; refused until a version newer than 1 is offered"},
		{"back-to-lkg", onProbation(), 292, true, "acme/ipc@292 is the last-known-good, still in slot a"},
		{"older", confirmed(), 291, true, "acme/ipc@291 is older than the active acme/ipc@292: the server moves this device back"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.ch
			ok, why := Accept(tc.ch, tc.offered)
			if ok != tc.ok || why != tc.why {
				t.Errorf("Accept(%d):\ngot  %v %q\nwant %v %q", tc.offered, ok, why, tc.ok, tc.why)
			}
			if !reflect.DeepEqual(*tc.ch, before) {
				t.Errorf("Accept changed the channel: %+v", *tc.ch)
			}
		})
	}
}

func TestReturnToLKG(t *testing.T) {
	tests := []struct {
		name  string
		ch    *ChannelState
		want  Decision
		after *ChannelState
	}{
		{"from-probation", with(onProbation(), func(c *ChannelState) { c.Pending.Crashes = []time.Time{t0} }),
			Decision{Kind: DecisionReturned, Channel: "acme/ipc", Version: 293, To: 292,
				Reason: "the server asked for last-known-good acme/ipc@292; left acme/ipc@293"},
			confirmed()},
		{"already-there", confirmed(), Decision{}, confirmed()},
		{"no-lkg", firstInstall(), Decision{}, firstInstall()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ReturnToLKG(tc.ch)
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("decision:\ngot  %+v\nwant %+v", d, tc.want)
			}
			if !reflect.DeepEqual(tc.ch, tc.after) {
				t.Errorf("channel:\ngot  %+v\nwant %+v", tc.ch, tc.after)
			}
		})
	}
}

func TestDecisionEvents(t *testing.T) {
	at := t0.Add(time.Hour)
	ev := func(typ EventType, v uint64, reason string) Event {
		return Event{Time: at, Type: typ, Channel: "acme/ipc", Version: v, Reason: reason}
	}
	tests := []struct {
		name string
		d    Decision
		want []Event
	}{
		{"none", Decision{}, nil},
		{"resumed", Decision{Kind: DecisionResumed, Channel: "acme/ipc", Version: 293, Reason: "r"}, nil},
		{"boot-loop", Decision{Kind: DecisionReverted, Cause: CauseBootLoop, Channel: "acme/ipc", Version: 293, To: 292, Reason: "r"},
			[]Event{ev(EventBootLoop, 293, "r"), ev(EventReverted, 293, "r")}},
		{"crash-loop", Decision{Kind: DecisionReverted, Cause: CauseCrashLoop, Channel: "acme/ipc", Version: 293, To: 292, Reason: "r"},
			[]Event{ev(EventWorkerCrash, 293, "r"), ev(EventReverted, 293, "r")}},
		{"unstable", Decision{Kind: DecisionReverted, Cause: CauseUnstable, Channel: "acme/ipc", Version: 293, To: 292, Reason: "r"},
			[]Event{ev(EventReverted, 293, "r")}},
		{"crash", Decision{Kind: DecisionCrashed, Channel: "acme/ipc", Version: 292, Reason: "r"}, []Event{ev(EventWorkerCrash, 292, "r")}},
		{"healthy", Decision{Kind: DecisionHealthy, Channel: "acme/ipc", Version: 293, Reason: "r"}, []Event{ev(EventHealthy, 293, "r")}},
		{"returned", Decision{Kind: DecisionReturned, Channel: "acme/ipc", Version: 293, To: 292, Reason: "r"}, []Event{ev(EventApplied, 292, "r")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.Events(at); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events:\ngot  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUncleanStopBlamesTheVersionThatRan(t *testing.T) {
	now := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	j := NewJournal()
	confirmed := j.Channel("acme/ipc")
	confirmed.ActiveVersion, confirmed.ActiveSlot, confirmed.LKGVersion, confirmed.LKGSlot, confirmed.State = 292, SlotA, 292, SlotA, StateActive
	trying := j.Channel("acme/dns")
	trying.ActiveVersion, trying.ActiveSlot, trying.LKGVersion, trying.LKGSlot, trying.State = 7, SlotA, 7, SlotA, StateActive
	BeginActivation(trying, 8, now)
	j.Channel("acme/empty")
	got := UncleanStop(j, now, "host crash")
	want := []Event{
		{Time: now, Type: EventUncleanReboot, Channel: "acme/dns", Version: 8, Reason: "host crash"},
		{Time: now, Type: EventUncleanReboot, Channel: "acme/ipc", Version: 292, Reason: "host crash"},
	}
	if len(got) != len(want) {
		t.Fatalf("UncleanStop = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Channel != want[i].Channel || got[i].Version != want[i].Version || got[i].Type != want[i].Type {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A version in shadow runs its probation as any does, but the
// last-known-good stays the one enforced until the server has it
// enforced; a revert or a return ends the shadow.
func TestShadowLifecycle(t *testing.T) {
	p := Policy{}.WithDefaults()
	ch := confirmed()
	if slot := BeginShadow(ch, 293, t0); slot != SlotB || !ch.Shadow || ch.State != StatePending {
		t.Fatalf("BeginShadow: slot %s, %+v", slot, ch)
	}
	if v, slot := ch.Enforced(); v != 292 || slot != SlotA {
		t.Fatalf("enforced %d in %s while 293 is in shadow, want 292 in a", v, slot)
	}
	if err := ch.validate("acme/ipc"); err != nil {
		t.Fatalf("journal of a shadow activation: %v", err)
	}
	StartProbation(ch, t0)
	d := Tick(ch, p, t0.Add(p.Probation))
	if d.Kind != DecisionHealthy || ch.State != StateActive || ch.LKGVersion != 292 || !ch.Shadow || !strings.Contains(d.Reason, "in shadow") {
		t.Fatalf("probation in shadow: %+v, %+v; want healthy with 292 still last-known-good and enforced", d, ch)
	}
	if len(d.Events(t0)) != 1 || d.Events(t0)[0].Type != EventHealthy {
		t.Errorf("events %+v, want one healthy (min_devices counts it)", d.Events(t0))
	}
	// Answers that do not end the shadow: in shadow still, or naming no
	// release (paused track, spent budget).
	for _, cd := range []protocol.ChannelDesired{
		{Channel: "acme/ipc", DesiredVersion: 293, Release: "r", Shadow: true},
		{Channel: "acme/ipc", DesiredVersion: 293, Reason: "paused by the organisation"},
		{Channel: "acme/ipc", DesiredVersion: 294, Release: "r2"},
	} {
		if LeavesShadow(ch, cd) {
			t.Errorf("%+v ends the shadow", cd)
		}
	}
	cd := protocol.ChannelDesired{Channel: "acme/ipc", DesiredVersion: 293, Release: "r"}
	if !LeavesShadow(ch, cd) {
		t.Fatal("the release enforcing 293 does not end its shadow")
	}
	d = Enforce(ch)
	if d.Kind != DecisionEnforced || ch.Shadow || ch.LKGVersion != 293 || ch.LKGSlot != SlotB {
		t.Fatalf("Enforce after a healthy shadow: %+v, %+v; want 293 enforced and last-known-good", d, ch)
	}
	if d := Enforce(ch); d.Kind != DecisionNone {
		t.Errorf("Enforce twice: %+v", d)
	}

	// Enforced while still on probation: the probation goes on, enforced.
	ch = confirmed()
	BeginShadow(ch, 293, t0)
	StartProbation(ch, t0)
	Enforce(ch)
	if ch.Shadow || ch.LKGVersion != 292 || ch.Pending == nil {
		t.Fatalf("Enforce on probation: %+v; want the probation kept, 292 last-known-good", ch)
	}
	if Tick(ch, p, t0.Add(p.Probation)); ch.LKGVersion != 293 {
		t.Errorf("after the probation, last-known-good %d, want 293", ch.LKGVersion)
	}

	// A crash loop in shadow reverts, and the shadow ends with it.
	ch = confirmed()
	BeginShadow(ch, 293, t0)
	StartProbation(ch, t0)
	for i := range p.CrashLimit {
		d = OnWorkerCrash(ch, p, t0.Add(time.Duration(i)*time.Second))
	}
	if d.Kind != DecisionReverted || ch.Shadow || ch.ActiveVersion != 292 {
		t.Errorf("crash loop in shadow: %+v, %+v; want reverted to 292, no shadow", d, ch)
	}
	// So does a return to last-known-good at the server's word.
	ch = confirmed()
	BeginShadow(ch, 293, t0)
	if d := ReturnToLKG(ch); d.Kind != DecisionReturned || ch.Shadow || ch.ActiveVersion != 292 {
		t.Errorf("return from shadow: %+v, %+v", d, ch)
	}
	// And a new activation, enforced, replaces the shadow version.
	ch = confirmed()
	BeginShadow(ch, 293, t0)
	if BeginActivation(ch, 294, t0); ch.Shadow || ch.ActiveSlot != SlotB {
		t.Errorf("activation over a shadow: %+v", ch)
	}
}
