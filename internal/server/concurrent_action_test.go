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

// interleavingStore lets "the controller" update a release between a
// person's read of it and their write, once per armed action: the race a
// real controller tick makes now and then.
type interleavingStore struct {
	store.Store
	armed *atomic.Bool
}

func (s interleavingStore) UpdateRelease(ctx context.Context, r store.Release, audit ...store.AuditEntry) (int64, error) {
	if len(audit) == 1 && audit[0].Actor != "controller" && s.armed.CompareAndSwap(true, false) {
		cur, err := s.Store.GetRelease(ctx, r.ID)
		if err != nil {
			return 0, err
		}
		cur.Phase = "gating" // a controller tick's write: a new revision
		if _, err := s.Store.UpdateRelease(ctx, cur); err != nil {
			return 0, err
		}
	}
	return s.Store.UpdateRelease(ctx, r, audit...)
}

// A person's halt, pause or approval that meets a release the controller
// changed since it was read is applied to the release as it is now, not
// refused with 409 (a halt in an incident must not bounce); one the new
// state no longer allows is still refused.
func TestAPersonsActionSurvivesAConcurrentControllerWrite(t *testing.T) {
	var armed atomic.Bool
	e := newEnvWrapped(t, "", server.Config{ControllerTick: 24 * time.Hour}, start,
		func(st store.Store) store.Store { return interleavingStore{Store: st, armed: &armed} })
	standardFleet(t, e)
	rel := e.startRelease(t, quickPlan(), "normal")
	path := "/v1/releases/" + rel.ID
	for _, c := range []struct {
		token, action, state string
	}{
		{e.creds.ApproverToken, "approve", "rolling"},
		{e.creds.PublisherToken, "pause", "paused"},
		{e.creds.PublisherToken, "resume", "rolling"},
		{e.creds.PublisherToken, "halt", "halted"},
	} {
		armed.Store(true)
		var got server.ReleaseReport
		e.must(t, http.StatusOK, "POST", path+"/"+c.action, c.token, map[string]string{"reason": c.action + " while the controller ticks"}, &got)
		if armed.Load() {
			t.Fatalf("%s: the controller's write was not interleaved; the test tests nothing", c.action)
		}
		if got.State != c.state {
			t.Errorf("%s: state %s, want %s", c.action, got.State, c.state)
		}
	}
	var st server.ReleaseStatus
	e.must(t, http.StatusOK, "GET", path+"/status", e.creds.PublisherToken, nil, &st)
	if st.ApprovalsGiven != 1 || !strings.Contains(st.Release.Reason, "halt while the controller ticks") {
		t.Errorf("after the actions: %d approvals, reason %q; want the approval kept and the halt's reason", st.ApprovalsGiven, st.Release.Reason)
	}
	// A halt of a release already halted is still refused.
	armed.Store(true)
	code, body := e.call(t, "POST", path+"/halt", e.creds.PublisherToken, map[string]string{"reason": "again"})
	if code != http.StatusConflict || !strings.Contains(string(body), "already stopped") {
		t.Errorf("halting a halted release: %d %s, want 409 already stopped", code, body)
	}
}
