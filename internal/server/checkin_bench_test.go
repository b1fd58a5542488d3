package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
)

// BenchmarkCheckinHandler is the check-in path as the HTTP handler runs it,
// in process and without a network: a fleet's plain check-ins (state
// unchanged, nothing to write but the heartbeat), one device after
// another, on two goroutines per core. bench/checkin measures the same
// over loopback HTTP against a trivial handler; this one is steadier on a
// busy machine, so two builds can be compared by ns/op (docs/benchmarks.md).
func BenchmarkCheckinHandler(b *testing.B) {
	e := newEnvConfig(b, "", server.Config{ControllerTick: 24 * time.Hour, EventsPerHour: -1})
	const devices = 1000
	type dev struct {
		auth string
		body []byte
	}
	devs := make([]dev, devices)
	for i := range devs {
		d := e.enroll(b, "7.12.0")
		e.checkin(b, d, d.report(292))
		body, err := json.Marshal(d.report(292))
		if err != nil {
			b.Fatal(err)
		}
		devs[i] = dev{"Bearer " + d.cred, body}
	}
	e.srv.Drain()
	h := e.srv.Handler()
	b.ReportAllocs()
	b.SetParallelism(2)
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := devs[int(next.Add(1))%devices]
			r := httptest.NewRequest(http.MethodPost, "/v1/checkin", bytes.NewReader(d.body))
			r.Header.Set("Authorization", d.auth)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("check-in: %d %s", w.Code, w.Body)
			}
		}
	})
}
