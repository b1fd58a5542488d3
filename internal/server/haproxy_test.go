package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// haproxy starts Debian's HAProxy in front of the replicas at backends
// (base URLs such as http://127.0.0.1:PORT), round robin with health
// checks on /readyz, and returns a client whose requests go through it.
// HAProxy listens on a Unix socket, so no port has to be free. Without
// haproxy the test is skipped, or under CI=true fails: scripts/test
// installs it.
func haproxy(t *testing.T, backends ...string) *http.Client {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy is not on PATH under CI=true; scripts/test installs it (Debian's haproxy package)")
		}
		t.Skip("haproxy is not on PATH; scripts/test installs it")
	}
	// A short directory: a Unix socket's path has a limit of about 100 bytes.
	dir, err := os.MkdirTemp("", "lb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "lb.sock")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend devices
    bind %s
    default_backend replicas
    # With every replica unready HAProxy answers 503 itself: devices back
    # off by Retry-After, so its answer carries one too.
    http-after-response set-header Retry-After 30 if { status 503 } !{ res.hdr(Retry-After) -m found }
backend replicas
    balance roundrobin
    option httpchk GET /readyz
`, sock)
	for i, u := range backends {
		fmt.Fprintf(&cfg, "    server r%d %s check inter 500ms\n", i, strings.TrimPrefix(u, "http://"))
	}
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg.String())
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-db", "-f", file) // -db: in the foreground
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy's output:\n%s", logs.String())
		}
	})
	// Up when its socket accepts connections.
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("haproxy does not accept connections on %s after 20 s: %v\n%s", sock, err, logs.String())
		}
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial}}
}

// behindHAProxy starts two more replicas on a's PostgreSQL and returns
// them and an env whose requests go through HAProxy to all three.
func behindHAProxy(t *testing.T, a *env, cfg server.Config) (lb *env, b, c *env) {
	t.Helper()
	b, c = a.replica(t, cfg), a.replica(t, cfg)
	l := *a
	l.client = haproxy(t, a.url, b.url, c.url)
	l.url = "http://ringfence" // the host is ignored: the client dials HAProxy's socket
	l.peers = []*server.Server{b.srv, c.srv}
	return &l, b, c
}

// Three replicas on one PostgreSQL behind HAProxy: a fleet's check-ins
// spread over all three while a release rolls, and a halt made through the
// load balancer is obeyed by every device on every replica, each of which
// hears of it from PostgreSQL (its periodic refresh is an hour away).
func TestThreeReplicasBehindHAProxy(t *testing.T) {
	cfg := server.Config{ControllerTick: 24 * time.Hour, SnapshotRefresh: time.Hour}
	a := newEnvConfig(t, storetest.PostgresURL(t), cfg)
	lb, b, c := behindHAProxy(t, a, cfg)
	f := standardFleet(t, lb)
	rel := lb.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	f.tick(t) // the canary devices apply 293
	for name, e := range map[string]*env{"a": a, "b": b, "c": c} {
		if n := e.scrape(t).value(t, "ringfence_checkins_total", "outcome", "ok"); n < 50 {
			t.Errorf("replica %s answered %v check-ins through the load balancer, want a third of them", name, n)
		}
	}
	var on293 []*fleetDevice
	for _, d := range f.devs {
		if d.active == 293 {
			on293 = append(on293, d)
		}
	}
	if len(on293) == 0 {
		t.Fatal("no device runs 293 in the canary wave")
	}
	lb.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", lb.creds.PublisherToken, map[string]string{"reason": "halted through the load balancer"}, nil)
	// Three check-ins in a row of each device reach the three replicas
	// (round robin); every answer must send it back to 292. The bound is
	// generous, for a loaded machine; the time taken is logged.
	start := time.Now()
	for {
		told := 0
		for _, d := range on293 {
			for range 3 {
				if lb.desired(t, d.device, 293) == 292 {
					told++
				}
			}
		}
		if told == 3*len(on293) {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("20 s after the halt, %d of %d answers through the load balancer still offer 293", 3*len(on293)-told, 3*len(on293))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d devices on 293 told to go back to 292 by all three replicas %v after the halt", len(on293), time.Since(start).Round(time.Millisecond))
}

// An organisation's hourly budget holds across replicas: a fleet's
// check-ins spread over three replicas behind HAProxy, each with a
// snapshot that is not refreshed for an hour, take no more new versions
// than the budget allows.
func TestHourlyBudgetHoldsAcrossReplicas(t *testing.T) {
	cfg := server.Config{ControllerTick: 24 * time.Hour, SnapshotRefresh: time.Hour}
	a := newEnvConfig(t, storetest.PostgresURL(t), cfg)
	lb, _, _ := behindHAProxy(t, a, cfg)
	f := standardFleet(t, lb)
	lb.must(t, http.StatusOK, "PUT", "/v1/orgs/fabrikam/budget", lb.creds.AdminToken, map[string]any{"hourly_cap_bp": 1000}, nil) // 10%: 12 devices
	rel := lb.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	for range 3 {
		f.tick(t)
	}
	if n := onVersion(f, 293); n > 12 || n == 0 {
		t.Fatalf("%d devices got 293 in the first hour through three replicas, want some and at most the budget's 12", n)
	}
}
