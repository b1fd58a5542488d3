// Command eval benchmarks the content interpreter: the indexed Evaluator,
// the naive Reference evaluator and, as the approach a team would reach for,
// one github.com/expr-lang/expr program per instance, on the same synthetic
// bundle and events, in one run. It first checks that the expr programs
// match exactly what the interpreter matches on every event, then prints
// each rate, allocations per event and the ratios.
//
// expr is a dependency of this program only: nothing under cmd/ or the
// product packages imports it, so the shipped binaries do not link it.
//
//	go run ./bench/eval [-instances 1000] [-json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

type result struct {
	Instances          int     `json:"instances"`
	IndexedEventsPerS  float64 `json:"indexed_events_per_s"`
	IndexedAllocs      int64   `json:"indexed_allocs_per_event"`
	ReferenceEventsPer float64 `json:"reference_events_per_s"`
	Ratio              float64 `json:"ratio"`
	ExprEventsPerS     float64 `json:"expr_events_per_s"`
	ExprAllocs         int64   `json:"expr_allocs_per_event"`
	ExprRatio          float64 `json:"expr_ratio"` // indexed / expr
	Events             int     `json:"equivalence_events"`
	Matches            int     `json:"equivalence_matches"`
	WitnessMatches     int     `json:"equivalence_witness_matches"` // over one event built per instance
	WitnessOwn         int     `json:"witnesses_matching_their_instance"`
	GOMAXPROCS         int     `json:"gomaxprocs"`
}

func main() {
	n := flag.Int("instances", 1000, "instances in the synthetic bundle")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()
	// One core, as the target is stated per core.
	runtime.GOMAXPROCS(1)

	c := synth.Compiled(*n, 1)
	events := synth.Events(4096, *n, 2)
	ev, err := content.NewEvaluator(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ref, err := content.NewReference(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := result{Instances: *n, Events: len(events), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	x, err := newExprEval(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "expr baseline:", err)
		os.Exit(1)
	}
	// A rate is only worth comparing if both evaluators decide the same,
	// on the bench events and on one event built to match each instance.
	wit := witnesses(c, events[0])
	out.Matches, err = sameMatches(events, ev.Eval, x.Eval)
	if err == nil {
		out.WitnessMatches, err = sameMatches(wit, ev.Eval, x.Eval)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "expr baseline disagrees with the interpreter:", err)
		os.Exit(1)
	}
	var res content.Result
	for i, e := range wit {
		if ev.Eval(e, &res); slices.Contains(res.Matches, int32(i)) {
			out.WitnessOwn++
		}
	}
	measure := func(eval func(content.Event, *content.Result)) testing.BenchmarkResult {
		return testing.Benchmark(func(b *testing.B) {
			var res content.Result
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				eval(events[i%len(events)], &res)
			}
		})
	}
	ri := measure(ev.Eval)
	rr := measure(ref.Eval)
	rx := measure(x.Eval)
	rate := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	out.IndexedEventsPerS, out.IndexedAllocs = rate(ri), ri.AllocsPerOp()
	out.ReferenceEventsPer = rate(rr)
	out.ExprEventsPerS, out.ExprAllocs = rate(rx), rx.AllocsPerOp()
	out.Ratio = out.IndexedEventsPerS / out.ReferenceEventsPer
	out.ExprRatio = out.IndexedEventsPerS / out.ExprEventsPerS
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	fmt.Printf("bundle: %d instances, mixed criteria; one core\n", *n)
	fmt.Printf("equivalence: expr and indexed match the same instances on every event: %d bench events (%d matches), %d events built to match one instance each (%d matches)\n",
		len(events), out.Matches, len(wit), out.WitnessMatches)
	fmt.Printf("             %d of the %d built events match the instance they were built for\n", out.WitnessOwn, len(wit))
	fmt.Printf("indexed:   %12.0f events/s  %d allocs/event\n", out.IndexedEventsPerS, out.IndexedAllocs)
	fmt.Printf("reference: %12.0f events/s  %d allocs/event\n", out.ReferenceEventsPer, rr.AllocsPerOp())
	fmt.Printf("expr:      %12.0f events/s  %d allocs/event  (one expr-lang program per instance)\n", out.ExprEventsPerS, out.ExprAllocs)
	fmt.Printf("ratio:     %12.1fx indexed/reference\n", out.Ratio)
	fmt.Printf("ratio:     %12.1fx indexed/expr\n", out.ExprRatio)
}

// sameMatches runs both evaluators on every event and returns the number
// of matches, or an error naming the first event on which they differ.
// The interpreter must report no instance errors here, since the expr
// translation does not model them.
func sameMatches(events []content.Event, want, got func(content.Event, *content.Result)) (int, error) {
	var w, g content.Result
	total := 0
	for i, e := range events {
		want(e, &w)
		got(e, &g)
		if len(w.Errors) > 0 {
			return 0, fmt.Errorf("event %d: the interpreter reports instance errors %v", i, w.Errors)
		}
		if !slices.Equal(w.Matches, g.Matches) {
			return 0, fmt.Errorf("event %d: interpreter matches %v, expr matches %v", i, w.Matches, g.Matches)
		}
		total += len(w.Matches)
	}
	return total, nil
}
