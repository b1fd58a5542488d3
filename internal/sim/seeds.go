package sim

import (
	"context"
	"io"
	"math"
	"sort"
)

// Summary is a scenario run with several seeds: each run's figures and,
// per figure, median, 95th percentile and maximum.
type Summary struct {
	Scenario      string            `json:"scenario"`
	Devices       int               `json:"devices"`
	Seeds         int               `json:"seeds"`
	FalseHaltRate float64           `json:"false_halt_rate"`
	HaltedRuns    int               `json:"halted_runs"`
	CompletedRuns int               `json:"completed_runs"`
	Figures       map[string]Spread `json:"figures"`
	Runs          []*Result         `json:"runs"`
}

// Spread is a figure over the runs.
type Spread struct {
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
}

// RunSeeds runs a scenario once per seed, from the scenario's seed on.
func RunSeeds(ctx context.Context, sc *Scenario, o Options, seeds int, progress io.Writer) (*Summary, error) {
	first := sc.Seed
	if o.Seed != 0 {
		first = o.Seed
	}
	sum := &Summary{Scenario: sc.Name, Seeds: seeds, Figures: map[string]Spread{}}
	for k := 0; k < seeds; k++ {
		scc := *sc
		o.Seed = first + uint64(k)
		s, err := New(ctx, &scc, o)
		if err != nil {
			return nil, err
		}
		r, err := s.Run(ctx, progress)
		s.Close()
		if err != nil {
			return nil, err
		}
		sum.Devices = r.Devices
		sum.Runs = append(sum.Runs, r)
		if r.Halted {
			sum.HaltedRuns++
		}
		if r.Completed {
			sum.CompletedRuns++
		}
	}
	spurious := 0
	for _, r := range sum.Runs {
		if r.SpuriousHalt {
			spurious++
		}
	}
	sum.FalseHaltRate = float64(spurious) / float64(seeds)
	for name, get := range map[string]func(*Result) float64{
		"exposed_devices":      func(r *Result) float64 { return float64(r.ExposedDevices) },
		"crashed_devices":      func(r *Result) float64 { return float64(r.CrashedDevices) },
		"peak_crashed":         func(r *Result) float64 { return float64(r.PeakCrashed) },
		"time_to_halt_s":       func(r *Result) float64 { return r.TimeToHaltS },
		"time_to_recover_s":    func(r *Result) float64 { return r.TimeToRecoverS },
		"manual_interventions": func(r *Result) float64 { return float64(r.ManualInterventions) },
		"wall_s":               func(r *Result) float64 { return r.WallS },
	} {
		var xs []float64
		for _, r := range sum.Runs {
			xs = append(xs, get(r))
		}
		sum.Figures[name] = spread(xs)
	}
	return sum, nil
}

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	sort.Float64s(xs)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(xs)))) - 1
		return xs[max(0, min(i, len(xs)-1))]
	}
	return Spread{Median: q(0.5), P95: q(0.95), Max: xs[len(xs)-1]}
}
