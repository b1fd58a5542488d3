package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// Positions is the size of the cohort space: a device's position on a
// channel is in [0, Positions), and wave shares are in the same units
// (basis points), so 10 means 0.1% of devices.
const Positions = 10000

// CohortPosition is a device's stable place on a channel. It depends only
// on the device and channel ids, so it never changes, differs between
// channels (a device is not first in line for everything), and spreads
// devices uniformly.
func CohortPosition(device, channel string) int {
	h := sha256.New()
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(channel))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Positions)
}

// DefaultStratumMin is K: every stratum with at least K devices taking
// part in the waves gets at least K of them in the canary wave.
const DefaultStratumMin = 20

// CohortDevice is what the cohort computation needs of one device.
type CohortDevice struct {
	Position int // on the release's channel
	Stratum  string
	Internal bool // in an internal organisation
	Early    bool // its organisation's track takes part in public waves
}

// Cohort is a release's stratified canary state, computed by the
// controller from the fleet when a wave starts (and when it widens a
// stratum) and persisted with the release, so every replica answers
// check-ins alike.
type Cohort struct {
	Wave int `json:"wave"` // the wave it was computed for
	K    int `json:"k"`
	// Bounds per stratum: a device of the stratum is in the public waves
	// from the first canary wave on when its position is below the bound.
	Bounds map[string]int `json:"bounds,omitempty"`
	// Targeted is how many devices each wave reaches in total.
	Targeted []int `json:"targeted"`
	Fleet    int   `json:"fleet"`
	// Floors are the least early devices per stratum the public waves
	// reach beyond K: the plan's detection floor (from the wave before the
	// last on) and what the controller added to resolve suspicious
	// evidence. They never shrink.
	Floors map[string]int `json:"floors,omitempty"`
	// Sizes are the early devices per stratum, and Reach how many of them
	// the current wave reaches now, Full at its full reach.
	Sizes map[string]int `json:"sizes,omitempty"`
	Reach map[string]int `json:"reach,omitempty"`
	Full  map[string]int `json:"full,omitempty"`
	// Ramp caps the current wave's reach per stratum (a position bound)
	// while the wave ramps up: a public wave after the first canary wave
	// and before the last starts each stratum at twice its earlier reach
	// (at least K more), and the controller doubles it every widening
	// period while the evidence allows, up to Full. RampTo is the reach
	// each stratum may have now. Nil once every stratum is at Full.
	Ramp   map[string]int `json:"ramp,omitempty"`
	RampTo map[string]int `json:"ramp_to,omitempty"`
	// Before is, per stratum, the early devices the earlier waves reached
	// when this one started: where its ramp starts from.
	Before map[string]int `json:"before,omitempty"`
	// Start is how many devices the wave reached when it started.
	Start int `json:"start,omitempty"`
	// Widened is when the controller last grew a stratum in this wave.
	Widened time.Time `json:"widened,omitzero"`
}

// Growth is what the controller asks of a cohort within a wave: Floors
// reach past the wave's own reach (to resolve suspicious evidence), Ramp
// the reach a stratum may have now while the wave ramps up.
type Growth struct {
	Floors map[string]int
	Ramp   map[string]int
}

// Ramping reports whether the wave is still ramping up.
func (c Cohort) Ramping() bool { return len(c.Ramp) > 0 }

// ComputeCohort finds, for every stratum with at least k early devices,
// the position bound that puts its k lowest-positioned devices in the
// canary wave (more where a floor asks: the plan's detection floor from
// the wave before the last on, the previous cohort's floors, and those
// the controller adds to resolve suspicious evidence), caps the current
// wave's reach while it ramps up, and counts the devices each wave
// reaches. Bounds never shrink from prev, so a device once in a wave
// stays in it.
func ComputeCohort(plan Plan, wave int, devices []CohortDevice, k int, prev *Cohort, g Growth) Cohort {
	if k <= 0 {
		k = DefaultStratumMin
	}
	byStratum := map[string][]int{}
	for _, d := range devices {
		if d.Early {
			byStratum[d.Stratum] = append(byStratum[d.Stratum], d.Position)
		}
	}
	c := Cohort{Wave: wave, K: k, Bounds: map[string]int{}, Targeted: make([]int, len(plan.Waves)), Fleet: len(devices),
		Floors: map[string]int{}, Sizes: map[string]int{}, Reach: map[string]int{}, Full: map[string]int{}}
	same := prev != nil && prev.Wave == wave
	if prev != nil {
		for st, f := range prev.Floors {
			c.Floors[st] = f
		}
		if same {
			c.Start, c.Widened = prev.Start, prev.Widened
		}
	}
	floor := plan.detectFloor(wave)
	for st, f := range g.Floors {
		c.Floors[st] = max(c.Floors[st], f)
	}
	for st, ps := range byStratum {
		slices.Sort(ps)
		c.Sizes[st] = len(ps)
		if floor > 0 && len(ps) >= plan.Detect.MinStratum {
			c.Floors[st] = max(c.Floors[st], min(floor, len(ps)/2))
		}
		if len(ps) < k && c.Floors[st] == 0 {
			continue
		}
		c.Bounds[st] = ps[min(len(ps), max(c.Floors[st], k))-1] + 1
	}
	for st, f := range c.Floors {
		if f == 0 {
			delete(c.Floors, st)
		}
	}
	if prev != nil {
		for st, b := range prev.Bounds {
			c.Bounds[st] = max(c.Bounds[st], b)
		}
	}
	from := plan.stratifiedFrom()
	// Per stratum, the current wave's full reach, and the early devices
	// earlier waves reached: counted with the bounds the wave started
	// from, since this wave's floors raise the bounds of every stratified
	// wave and must not count as reach the ramp already has.
	startBounds := c.Bounds
	if prev != nil {
		startBounds = prev.Bounds
	}
	// A wave in progress keeps what it started from.
	before := map[string]int{}
	if same {
		before = prev.Before
	}
	for _, d := range devices {
		if !d.Early {
			continue
		}
		for i := 0; i <= wave && i < len(plan.Waves); i++ {
			if w := plan.Waves[i]; !w.InternalOnly && reaches(w, i, from, c.Bounds, d) {
				c.Full[d.Stratum]++
				break
			}
		}
		for i := 0; !same && i < wave && i < len(plan.Waves); i++ {
			if w := plan.Waves[i]; !w.InternalOnly && reaches(w, i, from, startBounds, d) {
				before[d.Stratum]++
				break
			}
		}
	}
	c.Before = before
	if from >= 0 && wave > from && wave+1 < len(plan.Waves) && !plan.Waves[wave].InternalOnly {
		c.RampTo = map[string]int{}
		for st, full := range c.Full {
			to := max(2*before[st], before[st]+k)
			if same {
				// A stratum the wave already ramped up to its full reach
				// stays there.
				if r, ok := prev.RampTo[st]; ok {
					to = max(to, r)
				} else {
					to = full
				}
			}
			to = min(full, max(to, g.Ramp[st]))
			if to < full {
				c.RampTo[st] = to
				if c.Ramp == nil {
					c.Ramp = map[string]int{}
				}
				c.Ramp[st] = byStratum[st][to-1] + 1
			}
		}
		if c.Ramp == nil {
			c.RampTo = nil
		}
	}
	for _, d := range devices {
		for i, w := range plan.Waves {
			// The ramp caps every stratified wave up to the current one: the
			// floors raise the bounds of all of them.
			capped := d.Early && !w.InternalOnly && from >= 0 && i >= from && i <= wave && c.Ramp[d.Stratum] > 0 && d.Position >= c.Ramp[d.Stratum]
			if reaches(w, i, from, c.Bounds, d) && !capped {
				// Waves are cumulative: a device reached by wave i is in
				// every later wave's total too.
				for j := i; j < len(plan.Waves); j++ {
					c.Targeted[j]++
				}
				if i <= wave && d.Early && !w.InternalOnly {
					c.Reach[d.Stratum]++
				}
				break
			}
		}
	}
	if !same {
		c.Start = c.Targeted[wave]
	}
	return c
}

func reaches(w Wave, i, from int, bounds map[string]int, d CohortDevice) bool {
	if w.InternalOnly {
		return d.Internal
	}
	if !d.Early {
		return false
	}
	bound := w.Share
	if from >= 0 && i >= from {
		bound = max(bound, bounds[d.Stratum])
	}
	return d.Position < bound
}
