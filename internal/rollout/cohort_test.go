package rollout

import (
	"strconv"
	"testing"
	"time"
)

const (
	bigStratum   = "windows/7.11.0/19045" // 100,000 early devices
	smallStratum = "linux/7.11.0/6.8"     // 30 early devices: K of them in the canary
	tinyStratum  = "macos/7.11.0/14.5"    // 10 early devices, fewer than K
)

type fleetDevice struct {
	CohortDevice
	id string
}

// testFleet is early devices of three strata, devices of the same strata
// on other tracks, and internal devices, placed on channel acme/ipc.
func testFleet() []fleetDevice {
	var out []fleetDevice
	n := 0
	add := func(count int, stratum string, internal, early bool) {
		for range count {
			id := "dev-" + strconv.Itoa(n)
			n++
			out = append(out, fleetDevice{id: id, CohortDevice: CohortDevice{
				Position: CohortPosition(id, "acme/ipc"), Stratum: stratum, Internal: internal, Early: early}})
		}
	}
	add(100_000, bigStratum, false, true)
	add(30, smallStratum, false, true)
	add(10, tinyStratum, false, true)
	// Not early: never in a public wave, and not counted towards K.
	add(20_000, bigStratum, false, false)
	add(500, smallStratum, false, false)
	add(500, tinyStratum, false, false)
	// Internal organisations: reached by the internal wave whatever their
	// track.
	add(40, bigStratum, true, false)
	add(5, tinyStratum, true, true)
	return out
}

func cohortDevices(fleet []fleetDevice) []CohortDevice {
	out := make([]CohortDevice, len(fleet))
	for i, d := range fleet {
		out[i] = d.CohortDevice
	}
	return out
}

// reached counts, per stratum, the devices Desired gives a release in
// wave w with the cohort's bounds.
func reached(t *testing.T, plan Plan, w int, bounds map[string]int, fleet []fleetDevice) (map[string]int, int) {
	t.Helper()
	return reachedView(t, ReleaseView{ID: "r2", Version: 2, State: StateRolling, Wave: w, Plan: plan, Strata: bounds}, fleet)
}

// reachedCohort is reached with a cohort's bounds and, for its own wave,
// its ramp.
func reachedCohort(t *testing.T, plan Plan, w int, c Cohort, fleet []fleetDevice) (map[string]int, int) {
	t.Helper()
	v := ReleaseView{ID: "r2", Version: 2, State: StateRolling, Wave: w, Plan: plan, Strata: c.Bounds}
	if c.Wave == w {
		v.Ramp = c.Ramp
	}
	return reachedView(t, v, fleet)
}

func reachedView(t *testing.T, v ReleaseView, fleet []fleetDevice) (map[string]int, int) {
	t.Helper()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rel := []ReleaseView{v}
	per, total := map[string]int{}, 0
	for _, d := range fleet {
		tr := Track{Kind: TrackGA}
		if d.Early {
			tr = Track{Kind: TrackEarly}
		}
		dv := DeviceView{Position: d.Position, Stratum: d.Stratum, Internal: d.Internal, Track: tr, Active: 1}
		if Desired(now, rel, dv, false, nil).Version == 2 {
			per[d.Stratum]++
			total++
		}
	}
	return per, total
}

func TestComputeCohort(t *testing.T) {
	plan := DefaultContentPlan() // internal, canary 0.1% (public canary wave 1), early 1%, ten-percent 10%, broad
	fleet := testFleet()
	devs := cohortDevices(fleet)
	const k = DefaultStratumMin
	c := ComputeCohort(plan, 1, devs, 0, nil, Growth{}) // 0: the default K
	if c.K != k || c.Wave != 1 || c.Fleet != len(fleet) || len(c.Targeted) != len(plan.Waves) {
		t.Fatalf("cohort K %d, wave %d, fleet %d, %d targeted; want %d, 1, %d, %d", c.K, c.Wave, c.Fleet, len(c.Targeted), k, len(fleet), len(plan.Waves))
	}

	// Only strata with at least K early devices get a bound.
	if _, ok := c.Bounds[tinyStratum]; ok {
		t.Errorf("stratum with %d early devices got a bound: %v", 10, c.Bounds)
	}
	if len(c.Bounds) != 2 {
		t.Errorf("bounds %v, want the big and the small stratum", c.Bounds)
	}

	// Counted by hand, by early devices' positions (internal ones on the
	// early track included: they take part in the public waves too).
	below := func(stratum string, bound int) int {
		n := 0
		for _, d := range fleet {
			if d.Early && d.Stratum == stratum && d.Position < bound {
				n++
			}
		}
		return n
	}
	canary, total := reached(t, plan, 1, c.Bounds, fleet)
	t.Logf("canary reaches %d devices: %v; bounds %v; targeted %v", total, canary, c.Bounds, c.Targeted)

	// Every stratum with at least K early devices has at least K in the
	// canary wave: the small one exactly its K lowest positions.
	for _, st := range []string{bigStratum, smallStratum} {
		if canary[st] < k {
			t.Errorf("canary reaches %d devices of %s, want at least %d", canary[st], st, k)
		}
	}
	if got := below(smallStratum, c.Bounds[smallStratum]); got != k || canary[smallStratum] != k {
		t.Errorf("small stratum: %d below its bound, %d in the canary; want %d", got, canary[smallStratum], k)
	}
	// The tiny stratum (10 early devices and 5 internal ones on the early
	// track: 15, fewer than K) gets what the share gives it and no more,
	// plus its internal devices.
	inShare := 0
	for _, d := range fleet {
		if d.Stratum == tinyStratum && d.Early && !d.Internal && d.Position < plan.Waves[1].Share {
			inShare++
		}
	}
	if want := inShare + 5; canary[tinyStratum] != want {
		t.Errorf("canary reaches %d devices of the tiny stratum, want %d", canary[tinyStratum], want)
	}
	// The big stratum's K lowest are already below the 0.1% share: the
	// canary takes about 0.1% of it, not more.
	if b := c.Bounds[bigStratum]; b > plan.Waves[1].Share {
		t.Errorf("big stratum bound %d above the canary share %d", b, plan.Waves[1].Share)
	}
	if want := below(bigStratum, plan.Waves[1].Share) + 40; canary[bigStratum] != want {
		t.Errorf("canary reaches %d devices of the big stratum, want %d (share and internal)", canary[bigStratum], want)
	}
	if n := canary[bigStratum] - 40; n < 70 || n > 130 {
		t.Errorf("canary reaches %d early devices of 100,000 in the big stratum, want about 100 (0.1%%)", n)
	}

	// Targeted matches Desired, wave by wave.
	for w := range plan.Waves {
		_, n := reached(t, plan, w, c.Bounds, fleet)
		if c.Targeted[w] != n {
			t.Errorf("wave %d (%s): targeted %d, Desired reaches %d", w, plan.Waves[w].Name, c.Targeted[w], n)
		}
	}
	// Internal devices from wave 0, and only they; non-early devices in
	// no public wave; the last wave reaches every early or internal one.
	internal, earlyOrInternal := 0, 0
	for _, d := range fleet {
		if d.Internal {
			internal++
		}
		if d.Internal || d.Early {
			earlyOrInternal++
		}
	}
	if c.Targeted[0] != internal {
		t.Errorf("internal wave targets %d, want the %d internal devices", c.Targeted[0], internal)
	}
	if last := c.Targeted[len(plan.Waves)-1]; last != earlyOrInternal {
		t.Errorf("last wave targets %d, want %d: early or internal devices only", last, earlyOrInternal)
	}
	for w := 1; w < len(c.Targeted); w++ {
		if c.Targeted[w] < c.Targeted[w-1] {
			t.Errorf("targeted shrinks from wave %d to %d: %v", w-1, w, c.Targeted)
		}
	}

	// The same fleet with K = 10 gives the tiny stratum a bound too.
	c10 := ComputeCohort(plan, 1, devs, 10, nil, Growth{})
	if got := below(tinyStratum, c10.Bounds[tinyStratum]); got != 10 {
		t.Errorf("K = 10: %d tiny-stratum devices below its bound %d, want 10", got, c10.Bounds[tinyStratum])
	}
}

// Bounds never shrink from the previous cohort, so a device once in a
// wave stays in it when the fleet changes.
func TestComputeCohortKeepsBounds(t *testing.T) {
	plan := DefaultContentPlan()
	plan.Detect = nil // no detection floors: only K sets bounds here
	fleet := testFleet()
	devs := cohortDevices(fleet)
	first := ComputeCohort(plan, 1, devs, 20, nil, Growth{})
	prev := &Cohort{Wave: 1, K: 20, Bounds: map[string]int{
		smallStratum:        first.Bounds[smallStratum] + 500, // wider than the fleet needs now
		bigStratum:          1,                                // narrower: the new one wins
		"windows/retired/1": 4000,                             // no device left: kept anyway
	}}
	c := ComputeCohort(plan, 2, devs, 20, prev, Growth{})
	want := map[string]int{smallStratum: first.Bounds[smallStratum] + 500, bigStratum: first.Bounds[bigStratum], "windows/retired/1": 4000}
	if len(c.Bounds) != len(want) {
		t.Errorf("bounds %v, want %v", c.Bounds, want)
	}
	for st, b := range want {
		if c.Bounds[st] != b {
			t.Errorf("bound of %s = %d, want %d", st, c.Bounds[st], b)
		}
	}
	// The small stratum's devices reached before are reached still, even
	// if half the fleet left.
	_, before := reached(t, plan, 1, first.Bounds, fleet)
	after := ComputeCohort(plan, 2, devs[:len(devs)/2], 20, &first, Growth{})
	for st, b := range first.Bounds {
		if after.Bounds[st] < b {
			t.Errorf("bound of %s shrank from %d to %d", st, b, after.Bounds[st])
		}
	}
	if _, n := reached(t, plan, 1, after.Bounds, fleet); n < before {
		t.Errorf("the canary wave reached %d devices, then %d", before, n)
	}
}

func TestComputeCohortTargeted(t *testing.T) {
	// A small fleet counted by hand.
	plan := Plan{Waves: []Wave{
		{Name: "internal", Share: Positions, InternalOnly: true, Canary: true},
		{Name: "canary", Share: 10, Canary: true},
		{Name: "half", Share: 5000},
		{Name: "all", Share: Positions},
	}}
	devs := []CohortDevice{
		{Position: 0, Stratum: "a", Internal: true},                 // wave 0
		{Position: 9999, Stratum: "a", Internal: true, Early: true}, // wave 0
		{Position: 5, Stratum: "a", Early: true},                    // canary by share
		{Position: 300, Stratum: "b", Early: true},                  // canary by b's bound (K = 2)
		{Position: 200, Stratum: "b", Early: true},                  // canary by b's bound
		{Position: 4000, Stratum: "b", Early: true},                 // half
		{Position: 7000, Stratum: "a", Early: true},                 // all
		{Position: 1, Stratum: "a"},                                 // never: not early
		{Position: 2, Stratum: "b"},                                 // never: not early
	}
	c := ComputeCohort(plan, 0, devs, 2, nil, Growth{})
	if want := []int{2, 6, 7, 7}; !equalInts(c.Targeted, want) {
		t.Errorf("targeted %v, want %v", c.Targeted, want)
	}
	// a's early devices are at 5, 7000 and 9999 (the internal one): K = 2
	// puts the bound just above 7000; b's at 200, 300 and 4000.
	if want := map[string]int{"a": 7001, "b": 301}; len(c.Bounds) != 2 || c.Bounds["a"] != want["a"] || c.Bounds["b"] != want["b"] {
		t.Errorf("bounds %v, want %v", c.Bounds, want)
	}
	// With a stratum bound reaching past the canary share, a's device at
	// 7000 is in the canary too: bounds apply from the first public
	// canary wave on, and the targeted counts say so.
	if c.Targeted[1] != 6 {
		t.Errorf("canary targets %d", c.Targeted[1])
	}

	// Without canary waves there are no stratified bounds to apply: the
	// 10% wave reaches the early devices at 5, 200 and 300; the internal
	// device off the early track is in no wave.
	flat := Plan{Waves: []Wave{{Name: "ten", Share: 1000}, {Name: "all", Share: Positions}}}
	c = ComputeCohort(flat, 0, devs, 2, nil, Growth{})
	if want := []int{3, 6}; !equalInts(c.Targeted, want) {
		t.Errorf("plan without canaries: targeted %v, want %v", c.Targeted, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
