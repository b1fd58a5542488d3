package server_test

import (
	"context"
	"database/sql"
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
