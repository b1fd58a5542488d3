package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// BenchmarkTouchBeats is the heartbeat flush of 5,000 devices on SQLite:
// last-seen times alone, and with each device's heartbeat counted once
// per window (one statement a device either way).
func BenchmarkTouchBeats(b *testing.B) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Unix(1700000000, 0)
	_ = s.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantOrg, Name: "a", CreatedAt: t0})
	var ds []store.Device
	for i := range 20000 {
		ds = append(ds, store.Device{ID: fmt.Sprintf("dev-%06d", i), Org: "acme", Platform: "windows", OSBuild: "1", AgentVersion: "7.12.0", EnrolledAt: t0, LastSeen: t0})
	}
	if err := s.CreateDevices(ctx, ds); err != nil {
		b.Fatal(err)
	}
	for _, beats := range []bool{false, true} {
		b.Run(fmt.Sprint("beats=", beats), func(b *testing.B) {
			for n := range b.N {
				var seen []store.DeviceSeen
				for i := range 5000 {
					d := store.DeviceSeen{ID: fmt.Sprintf("dev-%06d", (n*5000+i)%20000), LastSeen: t0.Add(time.Duration(n+1) * time.Second)}
					if beats {
						d.Window, d.Beats = int64(n+1), []store.CounterKey{{Release: "r", Org: "acme", Stratum: "s", Window: t0, Metric: "heartbeat"}}
					}
					seen = append(seen, d)
				}
				if err := s.TouchDevices(ctx, seen, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
