package server_test

import (
	"context"
	"database/sql"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// Two replicas on one PostgreSQL never both act as controller, and when the
// controller's replica dies the other takes over.
func TestTwoReplicasNeverBothControl(t *testing.T) {
	url := storetest.PostgresURL(t)
	type replica struct {
		srv    *server.Server
		cancel context.CancelFunc
		close  func() error
	}
	start := func() replica {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := sqlstore.Open(ctx, url, "")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		srv := server.New(server.Config{ControllerTick: 20 * time.Millisecond}, st, time.Now, quietLogger())
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		r := replica{srv: srv, cancel: cancel, close: st.Close}
		t.Cleanup(func() { cancel(); srv.Wait(); st.Close() })
		return r
	}
	a, b := start(), start()
	leaders := map[string]int{}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		la, lb := a.srv.IsController(), b.srv.IsController()
		if la && lb {
			t.Fatal("both replicas act as controller at once")
		}
		if la {
			leaders["a"]++
		}
		if lb {
			leaders["b"]++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(leaders) != 1 {
		t.Fatalf("controller seen on %v; want exactly one replica to hold it throughout", leaders)
	}
	// The controller's database session dies (as when its host loses the
	// network): the advisory lock goes with it. Only this test's database:
	// other packages' tests share the PostgreSQL server. Within a few ticks exactly
	// one replica holds it again.
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	settled := func(what string) *server.Server {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var since time.Time
		var holder *server.Server
		for time.Now().Before(deadline) {
			la, lb := a.srv.IsController(), b.srv.IsController()
			var h *server.Server
			switch {
			case la && !lb:
				h = a.srv
			case lb && !la:
				h = b.srv
			}
			if h == nil || h != holder {
				holder, since = h, time.Now()
			} else if time.Since(since) > time.Second {
				return holder
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s: no single controller for a second within 10s", what)
		return nil
	}
	holder := settled("after the controller's session died")
	// Stop the controller's replica; the other takes over.
	leader, follower := a, b
	if holder == b.srv {
		leader, follower = b, a
	}
	leader.cancel()
	leader.close()
	deadline = time.Now().Add(10 * time.Second)
	for !follower.srv.IsController() {
		if time.Now().After(deadline) {
			t.Fatal("the surviving replica did not take over the controller within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A halt made through one replica reaches the check-in answers of another
// at once (PostgreSQL NOTIFY), not at its next periodic refresh: here the
// refresh is an hour away, so only the notification can carry it.
func TestAnotherReplicaHearsAHaltAtOnce(t *testing.T) {
	cfg := server.Config{ControllerTick: 24 * time.Hour, SnapshotRefresh: time.Hour}
	a := newEnvConfig(t, storetest.PostgresURL(t), cfg)
	f := standardFleet(t, a)
	rel := a.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	f.tick(t) // the canary devices apply 293
	var dev *fleetDevice
	for _, d := range f.devs {
		if d.active == 293 {
			dev = d
			break
		}
	}
	if dev == nil {
		t.Fatal("no device runs 293 in the canary wave")
	}
	b := a.replica(t, cfg)
	if got := b.desired(t, dev.device, 293); got != 293 {
		t.Fatalf("replica b, before the halt: desired %d, want 293 (its first snapshot has the release rolling)", got)
	}
	a.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", a.creds.PublisherToken, map[string]string{"reason": "halted on replica a"}, nil)
	// A generous bound, for a loaded machine: without the notification
	// the answer would not change for an hour.
	start := time.Now()
	for b.desired(t, dev.device, 293) != 292 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("replica b still offers 293 20 s after replica a halted the release")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("replica b answered with the halt %v after it was made on replica a", time.Since(start).Round(time.Millisecond))

	// The listening sessions die (a network blip); a resume made before
	// they listen again is not heard as a notification, and each replica
	// rebuilds once it listens again rather than an hour later.
	admin, err := sql.Open("pgx", a.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()
		AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	a.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/resume", a.creds.PublisherToken, map[string]string{"reason": "resumed while b's listener was down"}, nil)
	start = time.Now()
	for b.desired(t, dev.device, 292) != 293 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("replica b does not offer 293 20 s after the resume made while its listener was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("replica b answered with the resume %v after it was made, its listener having been cut", time.Since(start).Round(time.Millisecond))
}

// replica starts another server on e's store, with e's keys and clock,
// and returns an env that talks to it.
func (e *env) replica(t *testing.T, cfg server.Config) *env {
	t.Helper()
	cfg.AuditKey, cfg.CheckpointKey = e.auditKey, e.checkpointKey
	r := *e
	r.st, r.srv, r.url = startServer(t, e.storeURL, storyConfig(t, cfg), e.clock, nil)
	return &r
}

// A device whose check-in timed out retries it, and a load balancer may
// send the retry to another replica while the first still works on it:
// both answers are 200 (before the device's row was locked for the
// check-in, 2 to 9 of these 1,200 were 409 "check-in already exists").
func TestARetryOnAnotherReplicaIsAnsweredAlike(t *testing.T) {
	cfg := server.Config{ControllerTick: 24 * time.Hour}
	a := newEnvConfig(t, storetest.PostgresURL(t), cfg)
	f := standardFleet(t, a)
	rel := a.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	b := a.replica(t, cfg)
	var failed atomic.Int64
	for round := range 5 {
		var wg sync.WaitGroup
		for i, d := range f.devs {
			// Every device reports 292 and an event: the canary's devices
			// are offered 293 by one replica or the other, or both at once.
			req := d.report(292, server.EventReport{Seq: uint64(1000 + round), Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"alert": int64(1 + i%3)}})
			for _, e := range []*env{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, body := e.call(t, "POST", "/v1/checkin", d.cred, req); code != http.StatusOK {
						if failed.Add(1) <= 3 {
							t.Errorf("round %d, device %s on %s: %d %s", round, d.id, e.url, code, body)
						}
					}
				}()
			}
		}
		wg.Wait()
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d retried check-ins were not answered 200", n, 5*2*len(f.devs))
	}
}

// A device whose check-ins of one counter window land on two replicas
// counts one heartbeat, not two: the store keeps the last window counted
// for each device (before, each replica counted its own, and a device
// balanced round robin added twice its device-hours to the rates).
func TestHeartbeatCountsOncePerWindowAcrossReplicas(t *testing.T) {
	cfg := server.Config{ControllerTick: 24 * time.Hour}
	a := newEnvConfig(t, storetest.PostgresURL(t), cfg)
	f := standardFleet(t, a)
	rel := a.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	f.tick(t)
	offered := f.runningCanary(t)
	b := a.replica(t, cfg)
	a.srv.Drain()
	before := a.figures(t, a.creds.AdminToken, rel.ID).sum("heartbeat")
	req := server.CheckinRequest{Platform: "windows", OSBuild: offered.osBuild, AgentVersion: offered.agent,
		Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: offered.lkg, State: "probation"}}}
	for range 5 {
		a.clock.Advance(time.Minute)
		for _, e := range []*env{a, b, a, b} {
			e.must(t, http.StatusOK, "POST", "/v1/checkin", offered.cred, req, nil)
		}
		a.srv.Drain()
		b.srv.Drain()
	}
	if got := a.figures(t, a.creds.AdminToken, rel.ID).sum("heartbeat") - before; got != 5 {
		t.Errorf("a device checking in on two replicas added %d heartbeats in 5 windows, want 5", got)
	}
}
