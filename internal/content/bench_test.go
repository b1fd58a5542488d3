package content_test

import (
	"context"
	"fmt"
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

// BenchmarkPreflight measures preflight at growing bundle sizes; ns/op
// divided by the instance count should stay flat (linear growth). Run
//
//	go test -run '^$' -bench BenchmarkPreflight -benchtime 1x ./internal/content/
//
// or `go run ./bench/preflight` for seconds per size and the ratios.
func BenchmarkPreflight(b *testing.B) {
	tt := synth.TemplateType()
	ref := tt.Ref()
	mk := func(minor uint32, inputs int) *content.Manifest {
		return &content.Manifest{AgentVersion: content.AgentVersion{Major: 7, Minor: minor}, Platform: "windows",
			Supplies: map[content.TypeRef]int{ref: inputs}, Limits: content.DefaultLimits}
	}
	cat := &content.Catalog{Types: map[content.TypeRef]*content.TemplateType{ref: tt},
		Manifests: []*content.Manifest{mk(11, 20), mk(12, 21)}}
	for _, n := range []int{1000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			c := synth.Compiled(n, 1)
			for b.Loop() {
				rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if e := rep.Findings.Errors(); e > 0 {
					b.Fatalf("synthetic bundle rejected: %v", rep.Findings[0])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/instance")
		})
	}
}
