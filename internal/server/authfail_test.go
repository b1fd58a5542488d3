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
