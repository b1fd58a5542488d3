package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

func metricsForTest() *metrics {
	return newMetrics(&Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now})
}

// What a check-in adds for the metrics allocates nothing: the counters
// and the histogram are resolved when the server starts.
func TestCheckinMetricsAllocateNothing(t *testing.T) {
	m := metricsForTest()
	if n := testing.AllocsPerRun(1000, func() {
		m.checkinDone(nil, 1500*time.Microsecond)
		m.event("worker-crash")
		m.event("not-a-type")
	}); n != 0 {
		t.Errorf("a check-in's metrics allocate %v times, want 0", n)
	}
}

// BenchmarkCheckinMetrics is what the metrics add to one check-in that
// stores an event: an outcome counter, the latency histogram and an event
// counter (compare bench/checkin, where a check-in takes about 50 µs of a
// core).
func BenchmarkCheckinMetrics(b *testing.B) {
	m := metricsForTest()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			m.event("applied")
			m.checkinDone(nil, time.Since(t0))
		}
	})
}

// Every method of store.Store that can fail is counted by meteredStore:
// a method added to the interface and not to storemetrics.go would pass
// through the embedded store uncounted.
func TestMeteredStoreCoversTheStore(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "storemetrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := map[string]bool{}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil {
			wrapped[fn.Name.Name] = true
		}
	}
	uncounted := map[string]bool{"Close": true, "SetAuditKey": true, "Atomically": true}
	st := reflect.TypeFor[store.Store]()
	for i := range st.NumMethod() {
		name := st.Method(i).Name
		if !wrapped[name] && !uncounted[name] {
			t.Errorf("store.Store.%s is not counted in ringfence_store_errors_total: add it to meteredStore in storemetrics.go", name)
		}
	}
}
