// Command eval benchmarks the content interpreter: the indexed Evaluator
// and the naive Reference evaluator on the same synthetic bundle and events,
// in one run, and prints both rates and their ratio.
//
//	go run ./bench/eval [-instances 1000] [-json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
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
	rate := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	out := result{Instances: *n, IndexedEventsPerS: rate(ri), IndexedAllocs: ri.AllocsPerOp(),
		ReferenceEventsPer: rate(rr), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	out.Ratio = out.IndexedEventsPerS / out.ReferenceEventsPer
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	fmt.Printf("bundle: %d instances, mixed criteria; one core\n", *n)
	fmt.Printf("indexed:   %12.0f events/s  %d allocs/event\n", out.IndexedEventsPerS, out.IndexedAllocs)
	fmt.Printf("reference: %12.0f events/s  %d allocs/event\n", out.ReferenceEventsPer, rr.AllocsPerOp())
	fmt.Printf("ratio:     %12.1fx\n", out.Ratio)
}
