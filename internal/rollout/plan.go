package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Wave is one stage of a plan.
type Wave struct {
	Name string `json:"name"`
	// Share is the cumulative cohort share in basis points (0-10000): a
	// device whose cohort position is below it is in this wave or an
	// earlier one.
	Share int `json:"share"`
	// InternalOnly waves reach only the vendor's internal organisations.
	InternalOnly bool `json:"internal_only,omitempty"`
	// MinDevices must have applied and confirmed healthy before the wave
	// may pass.
	MinDevices int `json:"min_devices"`
	// Bake is the least time the wave runs before its gates may pass it.
	Bake Duration `json:"bake"`
	// Deadline: a wave whose gates have not all passed this long after it
	// started halts for a person to look (0: four times the bake time,
	// at least an hour).
	Deadline Duration `json:"deadline,omitempty"`
	// Canary waves are the first, small ones. Leaving the last canary wave
	// needs approval by a second person; public canary waves give every
	// stratum of the fleet at least K devices.
	Canary bool `json:"canary,omitempty"`
	// Shadow waves run the content observe-only: devices evaluate it and
	// report what it would have done (its action counts, judged by the
	// action-rate gate) while they enforce their last-known-good. The
	// first enforcing wave after them enforces on every device reached so
	// far. Shadow waves come first, and the last wave enforces. The
	// content still loads and runs, so crashes and hangs are caught as in
	// any wave.
	Shadow bool `json:"shadow,omitempty"`
	// Gates judge the wave; empty means DefaultGates.
	Gates []GateSpec `json:"gates,omitempty"`
}

// Label names the wave in gate figures: "canary, in shadow" for a shadow
// wave, whose action figures are what the content would have done.
func (w Wave) Label() string {
	if w.Shadow {
		return w.Name + ", in shadow"
	}
	return w.Name
}

// deadline is the wave's effective deadline.
func (w Wave) deadline() time.Duration {
	if w.Deadline > 0 {
		return time.Duration(w.Deadline)
	}
	return max(4*time.Duration(w.Bake), time.Hour)
}

// gates is the wave's effective gate list.
func (w Wave) gates() []GateSpec {
	if len(w.Gates) > 0 {
		return w.Gates
	}
	return DefaultGates()
}

// stratifiedFrom is the index of the first public canary wave, from which
// on stratified bounds apply, or -1.
func (p Plan) stratifiedFrom() int {
	for i, w := range p.Waves {
		if w.Canary && !w.InternalOnly {
			return i
		}
	}
	return -1
}

// exitNeedsApproval reports whether moving on from wave i leaves the
// canary waves.
func (p Plan) exitNeedsApproval(i int) bool {
	return i+1 < len(p.Waves) && p.Waves[i].Canary && !p.Waves[i+1].Canary
}

// Plan is an ordered list of waves; a release passes them in order.
type Plan struct {
	Waves []Wave `json:"waves"`
	// Detect is the smallest defect the plan must catch before any stratum
	// goes broad (nil: no such promise; waves reach their shares and K).
	Detect *Detect `json:"detect,omitempty"`
}

// Detect states the smallest defect a plan must catch: one that crashes
// (or reverts, or silences) Share of the devices of any one stratum with
// at least MinStratum devices taking part in the public waves. From the
// wave before the last on, every such stratum is reached by enough of its
// devices that a defect of that size shows on DetectDevices of them with
// probability DetectPower (at most half the stratum), so its gates have
// seen it before the stratum goes broad; the public waves before it reach
// a part of that in proportion to their shares (docs/rollout.md,
// "Power-aware waves").
type Detect struct {
	Share      float64 `json:"share"`
	MinStratum int     `json:"min_stratum"`
}

// DetectDevices is how many devices showing a defect the gates need to
// halt a release on one stratum, each counted once (an unclean reboot and
// a revert), when the floor is a large part of its stratum and the
// previous release's record of it is thin: TestDetectDevicesHaltTheDefaultGates
// checks that the default gates halt on this many (8 is not enough there). DetectPower is the chance the floor must give
// that so many show it.
const (
	DetectDevices = 10
	DetectPower   = 0.9
)

// Devices is how many of a stratum's devices the floor reaches: the
// fewest n with P(Binomial(n, Share) >= DetectDevices) >= DetectPower.
func (d Detect) Devices() int {
	if !(d.Share > 0 && d.Share < 1) {
		return 0
	}
	lo, hi := int64(DetectDevices), int64(DetectDevices)
	for binomialSF(DetectDevices, hi, d.Share) < DetectPower {
		lo, hi = hi, 2*hi
		if hi > 1e9 {
			return int(hi)
		}
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if binomialSF(DetectDevices, mid, d.Share) >= DetectPower {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int(lo)
}

// detectFloor is the least reach of every large enough stratum in wave i
// (before halving for small strata): the plan's full detection floor from
// the wave before the last on, and in the public waves between the first
// canary wave and it a part of that floor in proportion to their shares,
// so exposure grows per stratum towards detection wave by wave rather than
// all at once in the wave before the last.
func (p Plan) detectFloor(i int) int {
	last := len(p.Waves) - 2
	from := p.stratifiedFrom()
	if p.Detect == nil || i < 0 || i >= len(p.Waves) || last < 0 || p.Waves[i].InternalOnly {
		return 0
	}
	n := p.Detect.Devices()
	switch {
	case i >= last:
		return n
	case from < 0 || i <= from || p.Waves[last].Share <= 0:
		return 0
	}
	return n * p.Waves[i].Share / p.Waves[last].Share
}

// DefaultDetect is the default plans' promise: a defect that crashes 1% of
// any stratum of at least 2,000 devices is caught before it goes broad.
func DefaultDetect() *Detect { return &Detect{Share: 0.01, MinStratum: 2000} }

// Duration is a time.Duration written as "30m" in JSON and YAML.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalText reads "30m" from YAML (and any other text format).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// DefaultContentPlan is the plan a content release gets unless its
// publisher gives one: internal organisations first, then 0.1%, 1%, 10%
// and everyone, each wave baking longer than the last.
func DefaultContentPlan() Plan {
	return Plan{Detect: DefaultDetect(), Waves: []Wave{
		{Name: "internal", Share: Positions, InternalOnly: true, Canary: true, MinDevices: 1, Bake: Duration(30 * time.Minute)},
		{Name: "canary", Share: 10, Canary: true, MinDevices: 20, Bake: Duration(1 * time.Hour)},
		{Name: "early", Share: 100, MinDevices: 200, Bake: Duration(2 * time.Hour)},
		{Name: "ten-percent", Share: 1000, MinDevices: 2000, Bake: Duration(4 * time.Hour)},
		{Name: "broad", Share: Positions, MinDevices: 0, Bake: Duration(4 * time.Hour)},
	}}
}

// WithShadowCanaries is p with its canary waves in shadow (Wave.Shadow):
// the plan to release content with new or wider block rules, whose
// false positives would block real work in the canary waves.
func (p Plan) WithShadowCanaries() Plan {
	p.Waves = slices.Clone(p.Waves)
	for i := range p.Waves {
		p.Waves[i].Shadow = p.Waves[i].Shadow || p.Waves[i].Canary
	}
	return p
}

// DefaultAgentPlan is slower: agent builds touch the host itself.
func DefaultAgentPlan() Plan {
	return Plan{Detect: DefaultDetect(), Waves: []Wave{
		{Name: "internal", Share: Positions, InternalOnly: true, Canary: true, MinDevices: 1, Bake: Duration(24 * time.Hour)},
		{Name: "canary", Share: 10, Canary: true, MinDevices: 20, Bake: Duration(24 * time.Hour)},
		{Name: "early", Share: 100, MinDevices: 200, Bake: Duration(48 * time.Hour)},
		{Name: "ten-percent", Share: 1000, MinDevices: 2000, Bake: Duration(72 * time.Hour)},
		{Name: "broad", Share: Positions, MinDevices: 0, Bake: Duration(72 * time.Hour)},
	}}
}

// Validate checks a plan: at least one wave, names set, shares within
// range and never shrinking across the public waves, the last wave
// reaching everyone.
func (p Plan) Validate() error {
	if len(p.Waves) == 0 {
		return errors.New("plan has no waves")
	}
	if d := p.Detect; d != nil {
		if !(d.Share >= 0.0005 && d.Share <= 0.5) {
			return fmt.Errorf("detect.share %v: want a share of a stratum's devices from 0.0005 to 0.5", d.Share)
		}
		if d.MinStratum < 0 {
			return fmt.Errorf("detect.min_stratum %d: want 0 or more devices", d.MinStratum)
		}
	}
	last := 0
	for i, w := range p.Waves {
		if w.Name == "" {
			return fmt.Errorf("wave %d has no name", i+1)
		}
		if w.Share < 0 || w.Share > Positions {
			return fmt.Errorf("wave %q: share %d is outside 0-%d basis points", w.Name, w.Share, Positions)
		}
		if w.MinDevices < 0 || w.Bake < 0 || w.Deadline < 0 {
			return fmt.Errorf("wave %q: negative minimum devices, bake time or deadline", w.Name)
		}
		if w.Deadline > 0 && w.Deadline < w.Bake {
			return fmt.Errorf("wave %q: deadline %s is shorter than the bake time %s", w.Name, time.Duration(w.Deadline), time.Duration(w.Bake))
		}
		if w.Canary && i > 0 && !p.Waves[i-1].Canary {
			return fmt.Errorf("wave %q: canary waves must come first", w.Name)
		}
		// A device enforcing the content never goes back to observing it,
		// so a shadow wave after an enforcing one could not shadow the
		// devices already reached.
		if w.Shadow && i > 0 && !p.Waves[i-1].Shadow {
			return fmt.Errorf("wave %q: shadow waves must come first (wave %q before it enforces)", w.Name, p.Waves[i-1].Name)
		}
		for j, g := range w.Gates {
			if err := g.Validate(); err != nil {
				return fmt.Errorf("wave %q: gate %d: %w", w.Name, j+1, err)
			}
		}
		if w.InternalOnly {
			continue
		}
		if w.Share < last {
			return fmt.Errorf("wave %q: share %d is below the previous wave's %d (shares are cumulative)", w.Name, w.Share, last)
		}
		last = w.Share
	}
	if final := p.Waves[len(p.Waves)-1]; final.InternalOnly || final.Share != Positions {
		return fmt.Errorf("the last wave %q must reach every device (share %d)", final.Name, Positions)
	} else if final.Shadow {
		return fmt.Errorf("the last wave %q runs in shadow: a release must end enforcing its content", final.Name)
	}
	return nil
}

// ParsePlan decodes and validates a JSON plan.
func ParsePlan(b []byte) (Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	return p, p.Validate()
}
