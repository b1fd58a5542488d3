package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/memstore"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// The counter benchmarks run on memstore and, for comparison, on SQLite:
//
//	go test -run '^$' -bench Counter ./internal/store/memstore

type benchStore struct {
	name string
	open func(b *testing.B) store.Store
}

var benchStores = []benchStore{
	{"memstore", func(b *testing.B) store.Store {
		s := memstore.New()
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"sqlite", func(b *testing.B) store.Store {
		s, err := sqlstore.Open(context.Background(), "", b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// cells are the counter keys of one window of one release: every
// organisation, stratum and metric of a wave.
func cells(release string, wave, orgs, strata int, win time.Time) []store.CounterKey {
	var ks []store.CounterKey
	for o := range orgs {
		for st := range strata {
			for _, m := range []string{"heartbeat", "applied", "apply-failed", "worker-crash", "unclean-reboot", "control-heartbeat"} {
				ks = append(ks, store.CounterKey{Release: release, Wave: wave, Org: fmt.Sprintf("org-%02d", o),
					Stratum: fmt.Sprintf("windows/7.%d.0/22631", st), Window: win, Metric: m})
			}
		}
	}
	return ks
}

// BenchmarkTouchDevicesCounters adds a batch of counter increments, as the
// server's heartbeat flush does about once a second: the counters' write
// path. The window moves on every 60 batches, as a minute's would.
func BenchmarkTouchDevicesCounters(b *testing.B) {
	const batch = 1000
	for _, bs := range benchStores {
		b.Run(bs.name, func(b *testing.B) {
			ctx := context.Background()
			s := bs.open(b)
			keys := cells("rel-1", 1, 20, 10, t0) // 1200 cells a window
			cs := make([]store.Counter, batch)
			n := 0
			for b.Loop() {
				win := t0.Add(time.Duration(n/60) * time.Minute)
				for i := range cs {
					k := keys[(n*batch+i)%len(keys)]
					k.Window = win
					cs[i] = store.Counter{CounterKey: k, Value: 1}
				}
				if err := s.TouchDevices(ctx, nil, cs); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/increment")
		})
	}
}

// BenchmarkCounterTotals reads a release's totals since its mark, as the
// controller does every tick, from a store holding the release's 30
// minutes of 1200 cells and 100 other releases.
func BenchmarkCounterTotals(b *testing.B) {
	for _, bs := range benchStores {
		b.Run(bs.name, func(b *testing.B) {
			ctx := context.Background()
			s := bs.open(b)
			for r := range 100 {
				var cs []store.Counter
				for _, k := range cells(fmt.Sprintf("rel-old-%03d", r), 2, 4, 10, t0) {
					cs = append(cs, store.Counter{CounterKey: k, Value: 3})
				}
				if err := s.TouchDevices(ctx, nil, cs); err != nil {
					b.Fatal(err)
				}
			}
			for w := range 30 {
				var cs []store.Counter
				for _, k := range cells("rel-1", 1, 20, 10, t0.Add(time.Duration(w)*time.Minute)) {
					cs = append(cs, store.Counter{CounterKey: k, Value: int64(w + 1)})
				}
				if err := s.TouchDevices(ctx, nil, cs); err != nil {
					b.Fatal(err)
				}
				if w == 10 {
					if err := s.MarkCounters(ctx, "rel-1"); err != nil {
						b.Fatal(err)
					}
				}
			}
			var got int
			for b.Loop() {
				ts, err := s.CounterTotals(ctx, "rel-1", true)
				if err != nil {
					b.Fatal(err)
				}
				got = len(ts)
			}
			if got != 1200 {
				b.Fatalf("%d totals, want 1200", got)
			}
		})
	}
}

// Running totals agree with the cells they sum, whatever order increments
// arrive in, across releases and marks.
func TestCounterTotalsSumCells(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	var all []store.CounterKey
	for _, rel := range []string{"rel-1", "rel-2"} {
		for w := range 3 {
			all = append(all, cells(rel, w%2, 3, 2, t0.Add(time.Duration(w)*time.Minute))...)
		}
	}
	sum := func(rel string) map[string]int64 {
		cs, err := s.Counters(ctx, rel)
		must(t, err)
		m := map[string]int64{}
		for _, c := range cs {
			if c.Release != rel {
				t.Fatalf("Counters(%s) lists %+v", rel, c)
			}
			m[fmt.Sprint(c.Wave, c.Org, c.Stratum, c.Metric)] += c.Value
		}
		return m
	}
	marked := map[string]map[string]int64{}
	for round := range 40 {
		var cs []store.Counter
		for i := range all {
			if (i*7+round)%5 != 0 {
				cs = append(cs, store.Counter{CounterKey: all[(i*13+round)%len(all)], Value: int64(i%3 - 1)})
			}
		}
		must(t, s.TouchDevices(ctx, nil, cs))
		if round%9 == 0 {
			must(t, s.MarkCounters(ctx, "rel-1"))
			marked["rel-1"] = sum("rel-1")
		}
	}
	for _, rel := range []string{"rel-1", "rel-2"} {
		want := sum(rel)
		for _, sinceMark := range []bool{false, true} {
			ts, err := s.CounterTotals(ctx, rel, sinceMark)
			must(t, err)
			got := map[string]int64{}
			for _, c := range ts {
				got[fmt.Sprint(c.Wave, c.Org, c.Stratum, c.Metric)] = c.Value
			}
			for k, v := range want {
				if sinceMark {
					v -= marked[rel][k]
				}
				if got[k] != v {
					t.Errorf("%s sinceMark=%v %s: total %d, cells sum to %d", rel, sinceMark, k, got[k], v)
				}
			}
		}
	}
}
