package content_test

import (
	"testing"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

// BenchmarkEval measures the indexed interpreter and the naive reference
// evaluator on the same 1,000-instance bundle and events, in one run, so
// the ratio of their events/s is the figure to compare. Run it with
//
//	go test -run '^$' -bench BenchmarkEval -benchmem ./internal/content/
//
// or `go run ./bench/eval` for the ratio printed directly.
func BenchmarkEval(b *testing.B) {
	c := synth.Compiled(1000, 1)
	events := synth.Events(4096, 1000, 2)
	b.Run("indexed", func(b *testing.B) {
		ev, err := content.NewEvaluator(c)
		if err != nil {
			b.Fatal(err)
		}
		benchEval(b, ev.Eval, events)
	})
	b.Run("reference", func(b *testing.B) {
		ref, err := content.NewReference(c)
		if err != nil {
			b.Fatal(err)
		}
		benchEval(b, ref.Eval, events)
	})
}

func benchEval(b *testing.B, eval func(content.Event, *content.Result), events []content.Event) {
	var res content.Result
	matched := 0
	for _, e := range events {
		eval(e, &res)
		matched += min(len(res.Matches), 1)
	}
	// The synthetic events are built so that some match: a benchmark
	// where none do would measure the cheap path only.
	if matched == 0 {
		b.Fatal("no event matched: the benchmark would measure nothing useful")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		eval(events[i%len(events)], &res)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
