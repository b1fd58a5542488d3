package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// panickyStore panics when the controller reads the counters of one
// release: a stand-in for any defect or unexpected stored data that makes
// judging one release panic.
type panickyStore struct {
	store.Store
	bad *atomic.Value // release id
}

func (p panickyStore) CounterTotals(ctx context.Context, release string, sinceMark bool) ([]store.Counter, error) {
	if release == p.bad.Load().(string) {
		var counts []store.Counter
		_ = counts[len(release)] // index out of range, as a defect would
	}
	return p.Store.CounterTotals(ctx, release, sinceMark)
}

// A panic while judging one release halts that release for a person and
// nothing else: the other release is judged as before, the server keeps
// answering, the halt is in the audit log and the metrics.
func TestControllerPanicHaltsThatReleaseOnly(t *testing.T) {
	var bad atomic.Value
	bad.Store("")
	e := newEnvWrapped(t, "", server.Config{ControllerTick: 24 * time.Hour}, start,
		func(st store.Store) store.Store { return panickyStore{Store: st, bad: &bad} })
	e.must(t, http.StatusCreated, "POST", "/v1/channels", e.creds.AdminToken, map[string]string{"vendor": "acme", "name": "feed"}, nil)
	f := standardFleet(t, e)
	victim := e.startRelease(t, quickPlan(), "normal")
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/feed/publish", e.creds.PublisherToken, bundleSource(t, "acme", "feed", 293), nil)
	var other server.ReleaseReport
	e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/feed", "version": 293, "plan": quickPlan(), "lane": "normal"}, &other)
	f.tick(t)
	otherBefore := e.status(t, other.ID)

	bad.Store(victim.ID)
	err := e.srv.ControlOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), victim.ID) || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("ControlOnce: %v, want an error naming the release and the panic", err)
	}
	bad.Store("") // the status page reads the counters too
	st := e.status(t, victim.ID)
	if st.Release.State != "halted" || st.Release.HaltedBy != "controller" || !strings.Contains(st.Summary, "panic") || !strings.Contains(st.Summary, "a person must look") {
		t.Errorf("the release whose judgement panicked: %s by %q (%s), want halted by the controller for a person", st.Release.State, st.Release.HaltedBy, st.Summary)
	}
	if got := e.status(t, other.ID); got.Release.State != otherBefore.Release.State || got.Release.HaltedBy != "" {
		t.Errorf("the other release: %s (%s), want it judged as before", got.Release.State, got.Summary)
	}
	var audit []store.AuditEntry
	e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &audit)
	if last := audit[len(audit)-1]; last.Action != "release.halt" || last.Target != victim.ID || last.Actor != "controller" {
		t.Errorf("last audit entry %+v, want the controller's release.halt of %s", last, victim.ID)
	}
	if got := e.scrape(t).value(t, "ringfence_controller_panics_total"); got != 1 {
		t.Errorf("ringfence_controller_panics_total = %v, want 1", got)
	}
	// The next tick goes on: the halted release is watched for its roll-back.
	bad.Store(victim.ID)
	if err := e.srv.ControlOnce(context.Background()); err != nil {
		t.Errorf("the tick after the halt: %v", err)
	}
	e.must(t, http.StatusOK, "GET", "/healthz", "", nil, nil)
}
