package rollout

import (
	"strconv"
	"testing"
	"time"
)

func mustTrack(t *testing.T, s string) Track {
	t.Helper()
	tr, err := ParseTrack(s)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestDesired(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	plan := DefaultContentPlan()
	completed := ReleaseView{ID: "r292", Version: 292, State: StateCompleted, Plan: plan, CompletedAt: now.Add(-10 * time.Hour)}
	canary := ReleaseView{ID: "r293", Version: 293, State: StateRolling, Wave: 1, Plan: plan}
	internal := ReleaseView{ID: "r293", Version: 293, State: StateRolling, Wave: 0, Plan: plan}
	halted := ReleaseView{ID: "r293", Version: 293, State: StateHalted, Wave: 2, Plan: plan}
	tests := []struct {
		name       string
		releases   []ReleaseView
		dev        DeviceView
		unpausable bool
		denied     uint64
		want       uint64
	}{
		{"ga-gets-completed", []ReleaseView{completed}, DeviceView{Position: 5000, Track: mustTrack(t, "ga")}, false, 0, 292},
		{"ga-waits-for-rollout", []ReleaseView{completed, canary}, DeviceView{Position: 3, Track: mustTrack(t, "ga"), Active: 292}, false, 0, 292},
		{"early-in-canary-cohort", []ReleaseView{completed, canary}, DeviceView{Position: 3, Track: mustTrack(t, "early")}, false, 0, 293},
		{"early-at-canary-boundary", []ReleaseView{completed, canary}, DeviceView{Position: 10, Track: mustTrack(t, "early")}, false, 0, 292},
		{"early-outside-canary", []ReleaseView{completed, canary}, DeviceView{Position: 9999, Track: mustTrack(t, "early")}, false, 0, 292},
		{"internal-wave-reaches-internal-org", []ReleaseView{completed, internal}, DeviceView{Position: 9999, Internal: true, Track: mustTrack(t, "ga")}, false, 0, 293},
		{"internal-wave-skips-customers", []ReleaseView{completed, internal}, DeviceView{Position: 0, Track: mustTrack(t, "early")}, false, 0, 292},
		{"halted-sends-devices-back", []ReleaseView{completed, halted}, DeviceView{Position: 3, Track: mustTrack(t, "early"), Active: 293}, false, 0, 292},
		{"denied-version-skipped", []ReleaseView{completed, canary}, DeviceView{Position: 3, Track: mustTrack(t, "early")}, false, 293, 292},
		{"ga-delay-not-yet", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "ga-delay:24"), Active: 291}, false, 0, 291},
		{"ga-delay-elapsed", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "ga-delay:6")}, false, 0, 292},
		{"ga-delay-zero", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "ga-delay:0")}, false, 0, 292},
		{"pinned-older", []ReleaseView{{ID: "r291", Version: 291, State: StateCompleted, Plan: plan}, completed}, DeviceView{Track: mustTrack(t, "pinned:291")}, false, 0, 291},
		{"pinned-to-rolling-waits-for-completion", []ReleaseView{completed, canary}, DeviceView{Position: 3, Track: mustTrack(t, "pinned:293"), Active: 292}, false, 0, 292},
		{"stratified-bound-admits", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateRolling, Wave: 1, Plan: plan, Strata: map[string]int{"windows/7.11.0/19045": 700}}},
			DeviceView{Position: 650, Stratum: "windows/7.11.0/19045", Track: mustTrack(t, "early")}, false, 0, 293},
		{"stratified-bound-other-stratum", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateRolling, Wave: 1, Plan: plan, Strata: map[string]int{"windows/7.11.0/19045": 700}}},
			DeviceView{Position: 650, Stratum: "windows/7.12.0/22631", Track: mustTrack(t, "early")}, false, 0, 292},
		{"stratified-bound-not-in-internal-wave", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateRolling, Wave: 0, Plan: plan, Strata: map[string]int{"windows/7.11.0/19045": 700}}},
			DeviceView{Position: 650, Stratum: "windows/7.11.0/19045", Track: mustTrack(t, "early")}, false, 0, 292},
		{"stratified-bound-needs-early-track", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateRolling, Wave: 1, Plan: plan, Strata: map[string]int{"windows/7.11.0/19045": 700}}},
			DeviceView{Position: 650, Stratum: "windows/7.11.0/19045", Track: mustTrack(t, "ga"), Active: 292}, false, 0, 292},
		{"draft-reaches-nobody", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateDraft, Wave: 1, Plan: plan}}, DeviceView{Position: 0, Track: mustTrack(t, "early")}, false, 0, 292},
		{"awaiting-approval-keeps-reached-waves", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateAwaitingApproval, Wave: 1, Plan: plan}}, DeviceView{Position: 3, Track: mustTrack(t, "early")}, false, 0, 293},
		{"rolled-back-sends-devices-back", []ReleaseView{completed, {ID: "r293", Version: 293, State: StateRolledBack, Wave: 1, Plan: plan}}, DeviceView{Position: 3, Track: mustTrack(t, "early"), Active: 293}, false, 0, 292},
		{"pinned-to-halted-keeps-active", []ReleaseView{completed, halted}, DeviceView{Track: mustTrack(t, "pinned:293"), Active: 292}, false, 0, 292},
		{"paused-keeps-active", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "paused"), Active: 291}, false, 0, 291},
		{"unpausable-ignores-paused", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "paused"), Active: 291}, true, 0, 292},
		{"nothing-released", nil, DeviceView{Track: mustTrack(t, "ga")}, false, 0, 0},
		{"order-independent", []ReleaseView{canary, completed}, DeviceView{Position: 3, Track: mustTrack(t, "early")}, false, 0, 293},
		{"paused-leaves-halted", []ReleaseView{completed, halted}, DeviceView{Track: mustTrack(t, "paused"), Active: 293}, false, 0, 292},
		{"pinned-to-halted-leaves-it", []ReleaseView{completed, halted}, DeviceView{Track: mustTrack(t, "pinned:293"), Active: 293}, false, 0, 292},
		{"halted-only-back-to-lkg", []ReleaseView{halted}, DeviceView{Track: mustTrack(t, "ga"), Active: 293, LKG: 291}, false, 0, 291},
		{"halted-only-nothing-good", []ReleaseView{halted}, DeviceView{Track: mustTrack(t, "paused"), Active: 293, LKG: 293}, false, 0, 0},
		{"denied-active-leaves", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "paused"), Active: 292, LKG: 291}, false, 292, 291},
		{"outside-window-upgrade-waits", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "ga"), Active: 291, OutsideWindow: true}, false, 0, 291},
		{"outside-window-first-install", []ReleaseView{completed}, DeviceView{Track: mustTrack(t, "ga"), OutsideWindow: true}, false, 0, 292},
		{"outside-window-rollback-proceeds", []ReleaseView{completed, halted}, DeviceView{Position: 3, Track: mustTrack(t, "early"), Active: 293, OutsideWindow: true}, false, 0, 292},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denied := func(v uint64) bool { return v == tc.denied }
			got := Desired(now, tc.releases, tc.dev, tc.unpausable, denied)
			if got.Version != tc.want {
				t.Errorf("Desired = %d (%s), want %d", got.Version, got.Reason, tc.want)
			}
		})
	}
}

// A shadow wave offers the version in shadow, the first enforcing wave
// after it enforces it on every device reached so far, and a completed
// release is never in shadow.
func TestDesiredShadow(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	plan := DefaultContentPlan().WithShadowCanaries()
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	early := DeviceView{Position: 3, Track: mustTrack(t, "early"), Active: 292, LKG: 292}
	internalDev := DeviceView{Position: 9000, Internal: true, Track: mustTrack(t, "ga"), Active: 292, LKG: 292}
	completed := ReleaseView{ID: "r292", Version: 292, State: StateCompleted, Plan: plan}
	at := func(wave int, st ReleaseState) ReleaseView {
		return ReleaseView{ID: "r293", Version: 293, State: st, Wave: wave, Plan: plan}
	}
	tests := []struct {
		name       string
		rel        ReleaseView
		dev        DeviceView
		want       uint64
		wantShadow bool
	}{
		{"internal-wave-in-shadow", at(0, StateRolling), internalDev, 293, true},
		{"canary-wave-in-shadow", at(1, StateRolling), early, 293, true},
		{"canary-awaiting-approval-still-shadow", at(1, StateAwaitingApproval), early, 293, true},
		{"internal-device-during-canary-still-shadow", at(1, StateRolling), internalDev, 293, true},
		{"first-enforcing-wave-enforces-the-canary-devices", at(2, StateRolling), early, 293, false},
		{"first-enforcing-wave-enforces-internal-devices", at(2, StateRolling), internalDev, 293, false},
		{"completed-enforces", ReleaseView{ID: "r293", Version: 293, State: StateCompleted, Plan: plan}, early, 293, false},
		{"halted-in-shadow-goes-back-enforcing-lkg", at(1, StateHalted), DeviceView{Position: 3, Track: mustTrack(t, "early"), Active: 293, LKG: 292}, 292, false},
		{"outside-the-wave-keeps-its-version", at(1, StateRolling), DeviceView{Position: 5000, Track: mustTrack(t, "early"), Active: 292, LKG: 292}, 292, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Desired(now, []ReleaseView{completed, tc.rel}, tc.dev, false, nil)
			if got.Version != tc.want || got.Shadow != tc.wantShadow {
				t.Errorf("Desired = %d shadow %v (%s), want %d shadow %v", got.Version, got.Shadow, got.Reason, tc.want, tc.wantShadow)
			}
		})
	}
}

func TestParseTrack(t *testing.T) {
	good := map[string]string{"early": "early", "ga": "ga", "ga-delay:0": "ga-delay:0", "ga-delay:72": "ga-delay:72", "pinned:292": "pinned:292", "paused": "paused"}
	for in, want := range good {
		tr, err := ParseTrack(in)
		if err != nil || tr.String() != want {
			t.Errorf("ParseTrack(%q) = %v, %v; want %s", in, tr, err, want)
		}
	}
	for _, bad := range []string{"", "beta", "ga-delay:73", "ga-delay:-1", "ga-delay:x", "pinned:", "pinned:0", "ga:1", "early:2"} {
		if _, err := ParseTrack(bad); err == nil {
			t.Errorf("ParseTrack(%q) accepted", bad)
		}
	}
}

func TestPlanValidate(t *testing.T) {
	for _, p := range []Plan{DefaultContentPlan(), DefaultAgentPlan()} {
		if err := p.Validate(); err != nil {
			t.Errorf("default plan invalid: %v", err)
		}
	}
	bad := []Plan{
		{},
		{Waves: []Wave{{Name: "a", Share: 10}}},
		{Waves: []Wave{{Name: "a", Share: 100}, {Name: "b", Share: 10}, {Name: "c", Share: Positions}}},
		{Waves: []Wave{{Name: "", Share: Positions}}},
		{Waves: []Wave{{Name: "a", Share: Positions + 1}}},
		{Waves: []Wave{{Name: "a", Share: Positions, InternalOnly: true}}},
	}
	for i, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("bad plan %d accepted", i)
		}
	}
	for _, tc := range []struct {
		plan Plan
		want string
	}{
		{Plan{Waves: []Wave{{Name: "a", Share: 100}, {Name: "b", Share: 1000, Shadow: true}, {Name: "c", Share: Positions}}},
			`wave "b": shadow waves must come first (wave "a" before it enforces)`},
		{Plan{Waves: []Wave{{Name: "a", Share: 100, Shadow: true}, {Name: "all", Share: Positions, Shadow: true}}},
			`the last wave "all" runs in shadow: a release must end enforcing its content`},
	} {
		if err := tc.plan.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	if err := DefaultAgentPlan().WithShadowCanaries().Validate(); err != nil {
		t.Errorf("shadow canaries of the agent plan: %v", err)
	}
	b := []byte(`{"waves":[{"name":"canary","share":10,"min_devices":20,"bake":"30m"},{"name":"all","share":10000,"min_devices":0,"bake":"1h"}]}`)
	p, err := ParsePlan(b)
	if err != nil || time.Duration(p.Waves[0].Bake) != 30*time.Minute {
		t.Errorf("ParsePlan = %+v, %v", p, err)
	}
	if _, err := ParsePlan([]byte(`{"waves":[{"name":"x","share":10000,"bake":"soon"}]}`)); err == nil {
		t.Error("bad bake accepted")
	}
}

func TestCohortPosition(t *testing.T) {
	if a, b := CohortPosition("dev-1", "acme/ipc"), CohortPosition("dev-1", "acme/ipc"); a != b {
		t.Fatalf("not stable: %d then %d", a, b)
	}
	// Uniform enough that a 1% wave gets about 1% of devices, and a device's
	// position differs between channels.
	const n = 100000
	in1, same := 0, 0
	for i := range n {
		id := "dev-" + strconv.Itoa(i)
		p := CohortPosition(id, "acme/ipc")
		if p < 0 || p >= Positions {
			t.Fatalf("position %d out of range", p)
		}
		if p < 100 {
			in1++
		}
		if p == CohortPosition(id, "acme/sensor") {
			same++
		}
	}
	if in1 < 850 || in1 > 1150 {
		t.Errorf("%d of %d devices below 1%%, want about 1000", in1, n)
	}
	if same > 50 {
		t.Errorf("%d devices have the same position on two channels", same)
	}
}

func TestWindow(t *testing.T) {
	at := func(day time.Weekday, hh, mm int) time.Time {
		// 2026-11-22 is a Sunday.
		return time.Date(2026, 11, 22+int(day), hh, mm, 0, 0, time.UTC)
	}
	tests := []struct {
		window string
		t      time.Time
		want   bool
	}{
		{"mon-fri 01:00-05:00", at(time.Monday, 1, 0), true},
		{"mon-fri 01:00-05:00", at(time.Monday, 5, 0), false},
		{"mon-fri 01:00-05:00", at(time.Saturday, 2, 0), false},
		{"sat,sun 00:00-23:59", at(time.Sunday, 12, 0), true},
		{"fri-mon 10:00-11:00", at(time.Sunday, 10, 30), true},
		{"fri-mon 10:00-11:00", at(time.Wednesday, 10, 30), false},
		{"daily 22:00-02:00", at(time.Tuesday, 23, 0), true},
		{"daily 22:00-02:00", at(time.Tuesday, 1, 59), true},
		{"daily 22:00-02:00", at(time.Tuesday, 2, 0), false},
		{"fri 22:00-02:00", at(time.Saturday, 1, 0), true},
		{"fri 22:00-02:00", at(time.Friday, 1, 0), false},
	}
	for _, tc := range tests {
		w, err := ParseWindow(tc.window)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Contains(tc.t); got != tc.want {
			t.Errorf("%q contains %v = %v, want %v", tc.window, tc.t, got, tc.want)
		}
	}
	for _, bad := range []string{"", "mon", "mon 1-2", "funday 01:00-02:00", "mon 25:00-26:00", "mon 01:00-01:00", "mon-xyz 01:00-02:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
	if !InAnyWindow(nil, at(time.Monday, 3, 0)) {
		t.Error("no windows must mean any time")
	}
}
