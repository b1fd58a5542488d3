package server_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// BenchmarkConsoleReleasePage renders the console's page of a release that
// reached 100,000 devices, over HTTP from a real server on SQLite: the
// release and its status judged now (the gates' counter totals and silence
// figures), the timeline of an hour of counters, the actions. Setup writes
// the fleet, the offers and the counters straight into the store (enrolling
// 100,000 devices over HTTP would take minutes). The budget is 100 ms a
// page (docs/benchmarks.md has the figures):
//
//	go test ./internal/server -run '^$' -bench ConsoleReleasePage -benchtime 20x
func BenchmarkConsoleReleasePage(b *testing.B) {
	devices := 100_000
	if f := flag.Lookup("test.benchtime"); f != nil && f.Value.String() == "1x" {
		// scripts/test runs every benchmark once so that none rots; the
		// whole suite is near its time cap, and 100,000 devices take a
		// quarter of a minute to write.
		devices = 10_000
	}
	b.Logf("%d devices", devices)
	e := newEnvConfig(b, "", consoleConfig())
	ctx := context.Background()
	e.must(b, http.StatusCreated, "POST", "/v1/tenants", e.creds.AdminToken, map[string]string{"id": "fabrikam", "kind": "org", "name": "Fabrikam"}, nil)
	e.must(b, http.StatusOK, "PUT", "/v1/orgs/fabrikam/policies/acme/ipc", e.creds.AdminToken, map[string]any{"track": "early"}, nil)
	rel := e.startRelease(b, quickPlan(), "normal")

	now := e.clock.Now()
	strata := []struct{ agent, osBuild string }{{"7.12.0", "22631"}, {"7.12.0", "22621"}, {"7.11.0", "19045"}, {"7.11.0", "22631"}, {"7.12.0", "19045"}}
	var ds []store.Device
	for i := range devices {
		s := strata[i%len(strata)]
		ds = append(ds, store.Device{ID: fmt.Sprintf("dev-%06d", i), Org: orgOf(i), CredHash: strings.Repeat("0", 64), Platform: "windows",
			OSBuild: s.osBuild, AgentVersion: s.agent, EnrolledAt: now, LastSeen: now})
		if len(ds) == 5000 {
			if err := e.st.CreateDevices(ctx, ds); err != nil {
				b.Fatal(err)
			}
			ds = ds[:0]
		}
	}
	// Every device was offered the release in one of its waves and
	// reports running it; an hour of healthy counters per wave,
	// organisation and stratum, as the check-in path writes them.
	var ws []store.CheckinWrite
	for i := range devices {
		id := fmt.Sprintf("dev-%06d", i)
		s := strata[i%len(strata)]
		wave := 1 + i%3
		ws = append(ws, store.CheckinWrite{Device: store.Device{ID: id, Platform: "windows", OSBuild: s.osBuild, AgentVersion: s.agent, LastSeen: now},
			Channels: []store.DeviceChannel{{Device: id, Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: 292, State: "probation", UpdatedAt: now}},
			Offers:   []store.Offer{{Release: rel.ID, Device: id, Org: orgOf(i), Wave: wave, At: now}}})
		if len(ws) == 2000 {
			if _, err := e.st.ApplyCheckins(ctx, ws); err != nil {
				b.Fatal(err)
			}
			ws = ws[:0]
		}
	}
	var cs []store.Counter
	for w := range 60 {
		for wave := 1; wave <= 3; wave++ {
			for _, org := range []string{"fabrikam", "contoso"} {
				for _, s := range strata {
					for _, m := range []string{"applied", "heartbeat", "healthy", "control-heartbeat"} {
						cs = append(cs, store.Counter{CounterKey: store.CounterKey{Release: rel.ID, Wave: wave, Org: org, Stratum: "windows/" + s.agent + "/" + s.osBuild,
							Window: now.Add(time.Duration(w) * time.Minute), Metric: m}, Value: int64(1 + (w+wave)%7)})
					}
				}
			}
		}
	}
	if err := e.st.TouchDevices(ctx, nil, cs); err != nil {
		b.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if err := e.srv.ControlOnce(ctx); err != nil { // the first tick counts who the wave reaches
		b.Fatal(err)
	}
	var st server.ReleaseStatus
	e.must(b, http.StatusOK, "GET", "/v1/releases/"+rel.ID+"/status", e.creds.PublisherToken, nil, &st)
	if st.Release.State != "rolling" {
		b.Fatalf("the release is %s (%s), want rolling", st.Release.State, st.Summary)
	}
	fc := newFormClient(b, e, e.creds.PublisherToken)
	page := "/console/releases/" + rel.ID
	get := func() string {
		resp := fc.get(b, page)
		body := fc.body(b, resp)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d\n%s", page, resp.StatusCode, body)
		}
		return body
	}
	if body := get(); !strings.Contains(body, `id="timeline"`) || !strings.Contains(body, "canary") {
		b.Fatalf("the release page lacks its timeline or waves:\n%s", body)
	}
	// A page shows the controller's judgement of the release from its last
	// tick (WatchStatus); views within half a tick reuse the page's own
	// (console.statusCache). A replica that does not run the controller
	// judges the release for the page: the silence figures read the whole
	// fleet, as the controller's tick does.
	for _, c := range []struct {
		name    string
		advance time.Duration
		tick    bool
	}{
		// Past the page's half-tick cache (5 s here), well within the
		// devices' check-in interval.
		{"first-view-after-a-tick", 6 * time.Second, true},
		{"following-views", 0, false},
		// Past the controller's judgement (a tick is 24 h in this
		// harness, whose stories tick by hand), so the page judges.
		{"judged-for-the-page", 25 * time.Hour, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			var spent time.Duration
			for range b.N {
				b.StopTimer()
				e.clock.Advance(c.advance)
				if c.advance > time.Hour { // the session ended meanwhile
					fc = newFormClient(b, e, e.creds.PublisherToken)
				}
				if c.tick {
					if err := e.srv.ControlOnce(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				get()
				spent += time.Since(start)
			}
			b.ReportMetric(float64(spent.Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}

// orgOf is the organisation the benchmark gives device i.
func orgOf(i int) string {
	if i%2 == 1 {
		return "contoso"
	}
	return "fabrikam"
}
