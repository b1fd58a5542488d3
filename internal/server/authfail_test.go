package server_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
)

// A source address that keeps failing to authenticate, with API tokens,
// device credentials or enrolment tokens, is answered 429 with a
// Retry-After before its credentials are looked at — a good one too —
// until its allowance refills; every failure is counted.
func TestFailedAuthenticationIsLimited(t *testing.T) {
	e := newEnvAt(t, "", server.Config{AuthFailures: 6}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	d := e.enroll(t, "7.12.0")
	tries := []struct {
		method, path, token string
		body                any
	}{
		{"GET", "/v1/releases", "rft_" + "0000", nil},
		{"POST", "/v1/checkin", d.id + ".wrong", d.report(0)},
		{"POST", "/v1/enroll", "", map[string]string{"token": "rfe_guess", "platform": "windows", "os_build": "22631", "agent_version": "7.12.0"}},
	}
	for i := range 6 {
		tc := tries[i%len(tries)]
		if code, body := e.call(t, tc.method, tc.path, tc.token, tc.body); code != http.StatusUnauthorized {
			t.Fatalf("failure %d (%s %s): got %d %s, want 401", i+1, tc.method, tc.path, code, body)
		}
	}
	if n := e.srv.AuthFailures(); n != 6 {
		t.Errorf("%d failures counted, want 6", n)
	}
	// The seventh try, and a good token from the same address, wait.
	for _, tc := range append(tries, struct {
		method, path, token string
		body                any
	}{"GET", "/v1/releases", e.creds.AdminToken, nil}) {
		resp := e.raw(t, tc.method, tc.path, tc.token, tc.body)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s %s after 6 failures: got %d, want 429", tc.method, tc.path, resp.StatusCode)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 10 {
			t.Errorf("Retry-After %q, want 1 to 10 s (one more try every 10 s)", resp.Header.Get("Retry-After"))
		}
	}
	// Ten seconds later one more try is allowed.
	e.clock.Advance(10 * time.Second)
	e.must(t, http.StatusOK, "GET", "/v1/releases", e.creds.AdminToken, nil, nil)
}

// A device's events are limited per hour: a check-in over the allowance
// is answered 429, names the quota, and stores nothing; retries of stored
// events cost nothing, and a check-in without events is answered as ever,
// so a device over its quota still hears what to run.
func TestEventQuota(t *testing.T) {
	e := newEnvAt(t, "", server.Config{EventsPerHour: 60}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	d := e.enroll(t, "7.12.0")
	e.offered(t, d, 292)
	events := func(from, n int) []server.EventReport {
		var out []server.EventReport
		for i := range n {
			out = append(out, server.EventReport{Seq: uint64(from + i), Type: "worker-crash", Channel: "acme/ipc", Version: 292, Reason: "exit 3"})
		}
		return out
	}
	if resp := e.checkin(t, d, d.report(292, events(1, 1000)...)); resp.AckSeq != 1000 {
		t.Fatalf("a full check-in within the burst: ack %d, want 1000", resp.AckSeq)
	}
	// The refused check-in carries a flood of blocks: refused, it must not
	// use up the device's hourly allowance of action counts either.
	blocks := func(from int) []server.EventReport {
		return []server.EventReport{
			{Seq: uint64(from), Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": 10000}},
			{Seq: uint64(from + 1), Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": 10000}},
		}
	}
	over := e.raw(t, "POST", "/v1/checkin", d.cred, d.report(292, blocks(1001)...))
	if over.StatusCode != http.StatusTooManyRequests || over.Header.Get("Ringfence-Quota") != "events" {
		t.Fatalf("over the quota: %d %s (quota %q), want 429 naming the events quota", over.StatusCode, over.body, over.Header.Get("Ringfence-Quota"))
	}
	if s, err := strconv.Atoi(over.Header.Get("Retry-After")); err != nil || s < 100 || s > 120 {
		t.Errorf("Retry-After %q, want about two minutes (two events at one a minute)", over.Header.Get("Retry-After"))
	}
	// The same stored events again are a retry, and a state-only check-in
	// is answered with what to run.
	if resp := e.checkin(t, d, d.report(292, events(1, 1000)...)); resp.AckSeq != 1000 {
		t.Errorf("a retry of stored events: ack %d, want 1000", resp.AckSeq)
	}
	if resp := e.checkin(t, d, d.report(292)); resp.AckSeq != 1000 || channel(resp, "acme/ipc") == nil {
		t.Errorf("state-only check-in: %+v, want ack 1000 and acme/ipc's answer", resp)
	}
	e.srv.Drain()
	var n int
	if err := e.st.DB().QueryRow(`SELECT COUNT(*) FROM events WHERE device = '` + d.id + `'`).Scan(&n); err != nil || n != 1000 {
		t.Errorf("%d events stored (%v), want the 1000 within the quota", n, err)
	}
	e.clock.Advance(2 * time.Minute)
	if resp := e.checkin(t, d, d.report(292, blocks(1001)...)); resp.AckSeq != 1002 {
		t.Errorf("two minutes later: ack %d, want 1002", resp.AckSeq)
	}
	e.srv.Drain()
	if got := e.figures(t, e.creds.AdminToken, seedRelease).sum("action-block"); got != 10000 {
		t.Errorf("blocks counted after the refused check-in: %d, want the hour's allowance of 10000", got)
	}
}
