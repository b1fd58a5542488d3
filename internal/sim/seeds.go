package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"sync"
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

// RunSeeds runs a scenario once per seed, from the scenario's seed on,
// o.Parallel at a time (every core when zero). Runs share nothing but the
// process, so their figures are the sequential runs' figures; only the
// memory ones (peak RSS, heap per device) are the process's while several
// ran at once.
func RunSeeds(ctx context.Context, sc *Scenario, o Options, seeds int, progress io.Writer) (*Summary, error) {
	first := sc.Seed
	if o.Seed != 0 {
		first = o.Seed
	}
	workers := o.Parallel
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, seeds)
	sum := &Summary{Scenario: sc.Name, Seeds: seeds, Figures: map[string]Spread{}, Runs: make([]*Result, seeds)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				r, err := runSeed(ctx, sc, o, first+uint64(k), progress, workers > 1, &mu)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("seed %d: %w", first+uint64(k), err)
					cancel()
				}
				sum.Runs[k] = r
				mu.Unlock()
			}
		}()
	}
feed:
	for k := range seeds {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, r := range sum.Runs {
		sum.Devices = r.Devices
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

// runSeed runs one seed. With runs side by side, their progress lines
// would interleave mid-line: each run then says only, in one line, how it
// ended.
func runSeed(ctx context.Context, sc *Scenario, o Options, seed uint64, progress io.Writer, side bool, mu *sync.Mutex) (*Result, error) {
	scc := *sc
	o.Seed = seed
	s, err := New(ctx, &scc, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if !side || progress == nil {
		return s.Run(ctx, progress)
	}
	r, err := s.Run(ctx, nil)
	if err == nil {
		mu.Lock()
		fmt.Fprintf(progress, "seed %d: exposed %d, crashed %d, %s in %.0f s\n", seed, r.ExposedDevices, r.CrashedDevices, r.Why, r.WallS)
		mu.Unlock()
	}
	return r, err
}
