package rollout

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// The detection floor, counted by hand: the fewest devices n with
// P(Binomial(n, share) >= 10) >= 0.9.
func TestDetectDevices(t *testing.T) {
	tests := []struct {
		share float64
		want  int
	}{
		{0.02, 708},
		{0.01, 1418},
		{0.005, 2839},
		{0.001, 14204},
		{0, 0},
		{1, 0},
		{math.NaN(), 0},
	}
	for _, tc := range tests {
		if got := (Detect{Share: tc.share}).Devices(); got != tc.want {
			t.Errorf("Detect{Share: %v}.Devices() = %d, want %d", tc.share, got, tc.want)
		}
	}
}

// The sizing rule rests on DetectDevices: the default gates halt a
// release once that many devices of one stratum show a defect, each once
// (an unclean reboot and a revert), when the stratum's floor of devices
// has baked among a fleet of nine strata with background reboots and
// reverts in the control group and the previous release. Fewer devices
// showing it do not always halt: the constant is not set lower than it
// needs to be.
func TestDetectDevicesHaltTheDefaultGates(t *testing.T) {
	agents, builds := []string{"7.10.0", "7.11.0", "7.12.0"}, []string{"19045", "22631", "20348"}
	tests := []struct {
		share float64
		size  int // devices of each stratum taking part
	}{
		{0.02, 10_000}, {0.01, 10_000}, {0.005, 10_000},
		{0.01, 100_000}, {0.005, 1_000_000}, {0.01, 3_000},
	}
	for _, tc := range tests {
		for _, showing := range []int64{DetectDevices, 2} {
			t.Run(fmt.Sprintf("share-%v/stratum-%d/showing-%d", tc.share, tc.size, showing), func(t *testing.T) {
				n := min((Detect{Share: tc.share}).Devices(), tc.size/2)
				const bake = 4.0 // hours
				var cur, prev []Count
				bad := "windows/7.11.0/20348"
				for _, a := range agents {
					for _, b := range builds {
						st := "windows/" + a + "/" + b
						treatedH, controlH := float64(n)*bake, float64(tc.size-n)*bake
						x := int64(math.Round(0.001 * treatedH))
						y := int64(math.Round(0.001 * controlH))
						reverts := int64(0)
						if st == bad {
							x += showing
							reverts = showing
						}
						cur = append(cur, ratesSpan(st, 5*time.Minute, treatedH, controlH, map[string]int64{"unclean-reboot": x, "control-unclean-reboot": y})...)
						cur = append(cur, counts(st, "applied", n, "reverted", int(reverts))...)
						prev = append(prev, counts(st, "applied", tc.size, "reverted", tc.size/10_000)...)
					}
				}
				rs := Evaluate(DefaultGates(), "ten-percent", Telemetry{Counts: cur, Previous: prev, HeartbeatSpan: 5 * time.Minute})
				failed := false
				for _, r := range rs {
					failed = failed || r.Outcome == Fail
				}
				if showing == DetectDevices && !failed {
					t.Errorf("%d of %d devices of %s showing a defect halt nothing: %s", showing, n, bad, Summary(rs))
				}
				if showing < DetectDevices && failed && tc.size == 10_000 && tc.share == 0.01 {
					t.Logf("%d devices showing it already halt here", showing)
				}
			})
		}
	}
}

func widenStatus(wave int) ReleaseStatus {
	return ReleaseStatus{State: StateRolling, Wave: wave, Phase: PhaseGating, Plan: DefaultContentPlan(), Targeted: 5000}
}

func TestWiden(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	const a, b, other = "w/7.11.0/20348", "w/7.12.0/20348", "w/7.10.0/19045"
	leaning := []GateResult{
		{Metric: GateWorkerCrash, Outcome: Pass},
		{Metric: GateUncleanReboot, Outcome: Inconclusive, Suspect: []string{a, b}},
	}
	// The early wave, fully ramped: a reaches 50 of its 5,000 devices, b
	// 25 of 30, other 90 of 9,000; the next wave would add 9,800.
	cohort := func() Cohort {
		return Cohort{Wave: 2, K: 20, Targeted: []int{10, 300, 1200, 11000, 100000},
			Sizes: map[string]int{a: 5000, b: 30, other: 9000},
			Reach: map[string]int{a: 50, b: 25, other: 90},
			Full:  map[string]int{a: 50, b: 25, other: 90}}
	}
	ramping := func(c *Cohort) {
		c.Full = map[string]int{a: 400, b: 30, other: 900}
		c.RampTo = map[string]int{a: 50, b: 25, other: 90}
		c.Ramp = map[string]int{a: 101, b: 8000, other: 100}
	}
	tests := []struct {
		name         string
		st           ReleaseStatus
		gates        []GateResult
		c            func(*Cohort)
		ramp, floors map[string]int // nil ramp: no widening
		why          string
	}{
		{name: "doubles-suspects-within-their-size", st: widenStatus(2), gates: leaning,
			ramp: map[string]int{a: 100, b: 30}, floors: map[string]int{a: 100, b: 30},
			why: "wave early widened to resolve unclean-reboot evidence leaning worse: w/7.11.0/20348 from 50 to 100 devices, w/7.12.0/20348 from 25 to 30 devices"},
		{name: "at-least-K-more", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Reach[a], c.Full[a] = 5, 5 },
			ramp: map[string]int{a: 25, b: 30}, floors: map[string]int{a: 25, b: 30}},
		{name: "budget-is-what-the-next-wave-adds", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Targeted[3] = c.Targeted[2] + 30 },
			ramp: map[string]int{a: 80}, floors: map[string]int{a: 80}},
		{name: "no-budget-left", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Targeted[3] = c.Targeted[2] }},
		// Suspects that cannot grow do not hold a ramping wave forever.
		{name: "suspects-that-cannot-grow-let-the-ramp-go-on", st: widenStatus(2), gates: leaning, c: func(c *Cohort) {
			ramping(c)
			c.Reach[a], c.Reach[b], c.Sizes[a], c.Full[a] = 400, 30, 400, 400
			delete(c.RampTo, a)
			delete(c.Ramp, a)
		}, ramp: map[string]int{b: 30, other: 180}, floors: map[string]int{}},
		// While the wave ramps, a suspect grows within the wave's own
		// reach (no budget needed) and every other stratum holds.
		{name: "ramping-suspects-grow-others-hold", st: widenStatus(2), gates: leaning, c: ramping,
			ramp: map[string]int{a: 100, b: 30}, floors: map[string]int{}},
		{name: "ramping-without-suspicion-doubles-everyone", st: widenStatus(2), gates: []GateResult{{Metric: GateWorkerCrash, Outcome: Pass}}, c: ramping,
			ramp: map[string]int{a: 100, b: 30, other: 180}, floors: map[string]int{}},
		// A revert gate leaning across every stratum and a crash gate
		// naming a build: the build's strata are what both point at.
		{name: "strata-every-leaning-gate-names-first", st: widenStatus(2), gates: []GateResult{
			{Metric: GateRevert, Outcome: Inconclusive, Suspect: []string{a, b, other}},
			{Metric: GateWorkerCrash, Outcome: Inconclusive, Suspect: []string{a, b}},
		}, ramp: map[string]int{a: 100, b: 30}, floors: map[string]int{a: 100, b: 30},
			why: "wave early widened to resolve revert and worker-crash evidence leaning worse: w/7.11.0/20348 from 50 to 100 devices, w/7.12.0/20348 from 25 to 30 devices"},
		// Suspicions with nothing in common: every stratum either names.
		{name: "disjoint-suspicions-widen-both", st: widenStatus(2), gates: []GateResult{
			{Metric: GateRevert, Outcome: Inconclusive, Suspect: []string{other}},
			{Metric: GateWorkerCrash, Outcome: Inconclusive, Suspect: []string{a}},
		}, ramp: map[string]int{a: 100, other: 180}, floors: map[string]int{a: 100, other: 180}},
		// What they share cannot grow: the others' strata are widened.
		{name: "common-strata-reached-widen-the-rest", st: widenStatus(2), gates: []GateResult{
			{Metric: GateRevert, Outcome: Inconclusive, Suspect: []string{b, other}},
			{Metric: GateWorkerCrash, Outcome: Inconclusive, Suspect: []string{b}},
		}, c: func(c *Cohort) { c.Reach[b] = 30 }, ramp: map[string]int{other: 180}, floors: map[string]int{other: 180}},
		{name: "not-again-too-soon", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Widened = now.Add(-5 * time.Minute) }},
		{name: "again-after-a-while", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Widened = now.Add(-30 * time.Minute) },
			ramp: map[string]int{a: 100, b: 30}, floors: map[string]int{a: 100, b: 30}},
		{name: "nothing-leaning-nothing-ramping", st: widenStatus(2), gates: []GateResult{{Metric: GateWorkerCrash, Outcome: Inconclusive}}},
		{name: "suspects-of-a-passing-gate-ignored", st: widenStatus(2), gates: []GateResult{{Metric: GateWorkerCrash, Outcome: Pass, Suspect: []string{a}}}},
		{name: "internal-wave", st: widenStatus(0), gates: leaning, c: func(c *Cohort) { c.Wave = 0 }},
		{name: "last-wave", st: widenStatus(4), gates: leaning, c: func(c *Cohort) { c.Wave = 4 }},
		{name: "stale-cohort", st: widenStatus(2), gates: leaning, c: func(c *Cohort) { c.Wave = 1 }},
		{name: "paused", st: func() ReleaseStatus { s := widenStatus(2); s.State = StatePaused; return s }(), gates: leaning},
		{name: "frozen", st: func() ReleaseStatus { s := widenStatus(2); s.Frozen = true; return s }(), gates: leaning},
		{name: "whole-stratum-reached", st: widenStatus(2), gates: leaning, c: func(c *Cohort) {
			c.Reach[a], c.Reach[b] = 5000, 30
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cohort()
			if tc.c != nil {
				tc.c(&c)
			}
			w, ok := Widen(now, tc.st, tc.gates, c, 15*time.Minute)
			if ok != (tc.ramp != nil) {
				t.Fatalf("Widen = %+v, %v; want ramp %v, floors %v", w, ok, tc.ramp, tc.floors)
			}
			if !ok {
				return
			}
			if fmt.Sprint(w.Ramp) != fmt.Sprint(tc.ramp) || fmt.Sprint(w.Floors) != fmt.Sprint(tc.floors) {
				t.Errorf("ramp %v, floors %v; want %v, %v", w.Ramp, w.Floors, tc.ramp, tc.floors)
			}
			if tc.why != "" && w.Why != tc.why {
				t.Errorf("why\n  %q\nwant\n  %q", w.Why, tc.why)
			}
			if (len(w.Floors) > 0 || strings.HasPrefix(tc.name, "ramping-suspects")) != (w.Why != "") {
				t.Errorf("why %q: a widening for suspects says why, a ramp step does not", w.Why)
			}
		})
	}
}

// A widening reaches the new floors, and the floors stay for the later
// waves; the plan's detection floor reaches its devices from the wave
// before the last on, at most half a stratum, and only in strata large
// enough.
func TestComputeCohortFloors(t *testing.T) {
	plan := DefaultContentPlan() // detect 1% on strata of 2,000: 1,418 devices
	fleet := testFleet()
	devs := cohortDevices(fleet)
	c := ComputeCohort(plan, 2, devs, 20, nil, Growth{})
	per, _ := reachedCohort(t, plan, 2, c, fleet)
	if early := per[smallStratum]; early != 20 || c.Reach[smallStratum] != 20 {
		t.Fatalf("early wave: %d of the small stratum (reach %d), want K = 20", early, c.Reach[smallStratum])
	}
	w := ComputeCohort(plan, 2, devs, 20, &c, Growth{Floors: map[string]int{smallStratum: 26}})
	per, total := reachedCohort(t, plan, 2, w, fleet)
	if per[smallStratum] != 26 || w.Reach[smallStratum] != 26 || w.Targeted[2] != total || w.Start != c.Start || w.Floors[smallStratum] != 26 {
		t.Errorf("widened: %d of the small stratum (reach %d, floors %v), targeted %d of %d, start %d then %d",
			per[smallStratum], w.Reach[smallStratum], w.Floors, w.Targeted[2], total, c.Start, w.Start)
	}
	next := ComputeCohort(plan, 3, devs, 20, &w, Growth{})
	per, _ = reachedCohort(t, plan, 3, next, fleet)
	if per[smallStratum] != 26 || next.Start != next.Targeted[3] {
		t.Errorf("ten-percent wave: %d of the small stratum, want the widened 26 (start %d, targeted %d)", per[smallStratum], next.Start, next.Targeted[3])
	}
	// The big stratum (100,000 early devices) gets its detection floor in
	// the wave before the last: more than its 10% share already gives, so
	// no change; a fleet where the big stratum has 5,000 devices gets
	// 1,418 instead of its 500.
	var small []CohortDevice
	n := 0
	for _, d := range devs {
		if d.Stratum == bigStratum && d.Early && !d.Internal {
			if n >= 5000 {
				continue
			}
			n++
		}
		small = append(small, d)
	}
	ten := ComputeCohort(plan, 3, small, 20, nil, Growth{})
	// (Positions collide: a bound may take in a few devices more.)
	if got, want := ten.Reach[bigStratum], (Detect{Share: 0.01}).Devices(); got < want || got > want+5 {
		t.Errorf("ten-percent wave reaches %d of 5,000 big-stratum devices, want the detection floor %d", got, want)
	}
	if ten.Reach[smallStratum] != 20 || ten.Reach[tinyStratum] > 15 {
		t.Errorf("strata below min_stratum got a floor: %v", ten.Reach)
	}
	// The early wave (1%, a tenth of the ten-percent wave's share) gets a
	// tenth of the floor: 141 devices once it ramped up.
	early := ComputeCohort(plan, 2, small, 20, nil, Growth{})
	if got := early.Full[bigStratum]; got < 141 || got > 146 {
		t.Errorf("early wave reaches %d big-stratum devices at full reach, want a tenth of the floor, 141", got)
	}
	half := plan
	half.Detect = &Detect{Share: 0.001, MinStratum: 2000} // 14,204 devices: more than half of 5,000
	if got := ComputeCohort(half, 3, small, 20, nil, Growth{}).Reach[bigStratum]; got < 2500 || got > 2505 {
		t.Errorf("a floor above half the stratum reaches %d of 5,000, want 2,500", got)
	}
	if !strings.Contains(fmt.Sprint(ten.Floors), bigStratum) {
		t.Errorf("floors %v lack the big stratum", ten.Floors)
	}
}

// A public wave after the first canary wave ramps up: each stratum starts
// at twice what the earlier waves reached (at least K more), Desired
// reaches exactly what the cohort counts, the controller's ramp steps grow
// it, and once every stratum is at its full reach the cap is gone. The
// devices earlier waves reached stay reached throughout.
func TestComputeCohortRamp(t *testing.T) {
	plan := DefaultContentPlan()
	fleet := testFleet()
	devs := cohortDevices(fleet)
	canary := ComputeCohort(plan, 1, devs, 20, nil, Growth{})
	if canary.Ramping() {
		t.Fatalf("the first canary wave ramps: %v", canary.Ramp)
	}
	before, _ := reachedCohort(t, plan, 1, canary, fleet)
	c := ComputeCohort(plan, 2, devs, 20, &canary, Growth{})
	if !c.Ramping() {
		t.Fatalf("the early wave does not ramp: full %v", c.Full)
	}
	per, total := reachedCohort(t, plan, 2, c, fleet)
	if total != c.Targeted[2] {
		t.Errorf("Desired reaches %d, the cohort counts %d", total, c.Targeted[2])
	}
	for st, n := range c.Reach {
		want := min(c.Full[st], max(2*canary.Reach[st], canary.Reach[st]+20))
		// Positions collide (100,000 devices share 10,000 positions), so a
		// cap takes in the devices at its last position too.
		if n < want || n > want+c.Sizes[st]/Positions+3 || per[st] < before[st] {
			t.Errorf("%s: reach %d (Desired %d, canary %d), want %d of full %d", st, n, per[st], before[st], want, c.Full[st])
		}
	}
	for step := 0; c.Ramping(); step++ {
		if step > 20 {
			t.Fatalf("still ramping after 20 steps: %v of %v", c.RampTo, c.Full)
		}
		g := Growth{Ramp: map[string]int{}}
		for st, to := range c.RampTo {
			g.Ramp[st] = 2 * to
		}
		prev := c
		c = ComputeCohort(plan, 2, devs, 20, &prev, g)
		if c.Targeted[2] < prev.Targeted[2] || c.Start != prev.Start {
			t.Errorf("step %d: targeted %d after %d, start %d after %d", step, c.Targeted[2], prev.Targeted[2], c.Start, prev.Start)
		}
	}
	_, total = reachedCohort(t, plan, 2, c, fleet)
	_, full := reached(t, plan, 2, c.Bounds, fleet)
	if total != full || c.Targeted[2] != full {
		t.Errorf("ramped up: Desired reaches %d, the cohort counts %d, the full wave %d", total, c.Targeted[2], full)
	}
}

// A stratum that ramped up to its full reach stays there when the cohort
// is computed again in the same wave (found by the simulator, where
// strata fell back to twice their canary reach after each step).
func TestComputeCohortRampNeverFallsBack(t *testing.T) {
	plan := DefaultContentPlan()
	fleet := testFleet()
	devs := cohortDevices(fleet)
	canary := ComputeCohort(plan, 1, devs, 20, nil, Growth{})
	c := ComputeCohort(plan, 2, devs, 20, &canary, Growth{})
	// Ramp one stratum to the top, leave the others.
	g := Growth{Ramp: map[string]int{bigStratum: c.Full[bigStratum]}}
	c = ComputeCohort(plan, 2, devs, 20, &c, g)
	if _, still := c.RampTo[bigStratum]; still {
		t.Fatalf("the big stratum still ramps: %v of %v", c.RampTo, c.Full)
	}
	top := c.Reach[bigStratum]
	for range 3 {
		c = ComputeCohort(plan, 2, devs, 20, &c, Growth{})
		if c.Reach[bigStratum] != top {
			t.Fatalf("the big stratum fell back from %d to %d devices", top, c.Reach[bigStratum])
		}
	}
}
