package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
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
// controller from the fleet when a wave starts and persisted with the
// release, so every replica answers check-ins alike.
type Cohort struct {
	Wave int `json:"wave"` // the wave it was computed for
	K    int `json:"k"`
	// Bounds per stratum: a device of the stratum is in the public waves
	// from the first canary wave on when its position is below the bound.
	Bounds map[string]int `json:"bounds,omitempty"`
	// Targeted is how many devices each wave reaches in total.
	Targeted []int `json:"targeted"`
	Fleet    int   `json:"fleet"`
}

// ComputeCohort finds, for every stratum with at least k early devices,
// the position bound that puts its k lowest-positioned devices in the
// canary wave, and counts the devices each wave reaches. Bounds never
// shrink from prev, so a device once in a wave stays in it.
func ComputeCohort(plan Plan, wave int, devices []CohortDevice, k int, prev *Cohort) Cohort {
	if k <= 0 {
		k = DefaultStratumMin
	}
	byStratum := map[string][]int{}
	for _, d := range devices {
		if d.Early {
			byStratum[d.Stratum] = append(byStratum[d.Stratum], d.Position)
		}
	}
	c := Cohort{Wave: wave, K: k, Bounds: map[string]int{}, Targeted: make([]int, len(plan.Waves)), Fleet: len(devices)}
	for st, ps := range byStratum {
		if len(ps) < k {
			continue
		}
		slices.Sort(ps)
		c.Bounds[st] = ps[k-1] + 1
	}
	if prev != nil {
		for st, b := range prev.Bounds {
			c.Bounds[st] = max(c.Bounds[st], b)
		}
	}
	from := plan.stratifiedFrom()
	for _, d := range devices {
		for i, w := range plan.Waves {
			if reaches(w, i, from, c.Bounds, d) {
				// Waves are cumulative: a device reached by wave i is in
				// every later wave's total too.
				for j := i; j < len(plan.Waves); j++ {
					c.Targeted[j]++
				}
				break
			}
		}
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
