package console

// The pure parts of the console: sessions and CSRF tokens, the origin
// checks, redirects after sign-in, and the timeline chart. The pages
// themselves are tested in a browser against a real server
// (internal/server/console_test.go).

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func TestSessions(t *testing.T) {
	s := newSessions([]byte("key one"))
	value, se := s.issue("tok-1", t0)
	if got, err := s.check(value, t0.Add(time.Hour)); err != nil || got.tokenID != "tok-1" {
		t.Fatalf("a fresh session: got %+v, %v; want tok-1", got, err)
	}
	body, sig, _ := strings.Cut(value, ".")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "tok-1", "tok-2", 1)))
	for _, c := range []struct {
		name, value string
		at          time.Time
	}{
		{"expired", value, t0.Add(sessionTTL)},
		{"other-key", func() string { v, _ := newSessions([]byte("key two")).issue("tok-1", t0); return v }(), t0},
		{"other-token-same-signature", forged + "." + sig, t0},
		{"no-signature", body, t0},
		{"garbage", "x.y", t0},
		{"empty", "", t0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, err := s.check(c.value, c.at); err == nil {
				t.Fatalf("accepted: %+v", got)
			}
		})
	}
	s.end(se, t0)
	if _, err := s.check(value, t0.Add(time.Minute)); err == nil {
		t.Fatal("a signed-out session is still accepted")
	}
	// CSRF tokens are per session.
	_, other := s.issue("tok-1", t0)
	if s.csrf(se) == s.csrf(other) || !validToken(s.csrf(se), s.csrf(se)) || validToken("", s.csrf(se)) {
		t.Fatal("CSRF tokens must differ between sessions and match only their own")
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		name   string
		header map[string]string
		ok     bool
	}{
		{"no-headers", nil, true},
		{"same-origin", map[string]string{"Origin": "http://console.example:8080", "Sec-Fetch-Site": "same-origin"}, true},
		{"other-origin", map[string]string{"Origin": "http://evil.example"}, false},
		{"other-port", map[string]string{"Origin": "http://console.example:9999"}, false},
		{"null-origin", map[string]string{"Origin": "null"}, false},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://console.example:8080/console/signout", nil)
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			if err := sameOrigin(r); (err == nil) != c.ok {
				t.Fatalf("sameOrigin: %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/fleet?org=a":   "/console/fleet?org=a",
		"":                       "/console/releases",
		"https://evil.example/":  "/console/releases",
		"//evil.example/console": "/console/releases",
		"/v1/releases":           "/console/releases",
		"/console/\\evil":        "/console/releases",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimeline(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	points := []server.TimelinePoint{
		{Window: at(0), Wave: 1, Metric: "applied", Value: 10},
		{Window: at(0), Wave: 1, Metric: "heartbeat", Value: 10},
		{Window: at(5), Wave: 1, Metric: "worker-crash", Value: 3},
		{Window: at(5), Wave: 1, Metric: "unclean-reboot", Value: 2},
		{Window: at(10), Wave: 2, Metric: "applied", Value: 20},
		{Window: at(10), Wave: 2, Metric: "reverted", Value: 4},
		{Window: at(10), Wave: 2, Metric: "heartbeat", Value: 6},
	}
	c := drawTimeline(points, []string{"internal", "canary", "early"}, 5*time.Minute, []timelineMark{{At: at(12), Label: "halted", Class: "halt"}})
	last := map[string]int64{}
	for _, s := range c.Series {
		last[s.Class] = s.Last
		if n := len(strings.Fields(s.Points)); n != 3 {
			t.Errorf("series %s has %d points, want one per window (3)", s.Class, n)
		}
	}
	// exposed: 30 applied; crashed: 5 (worker crashes and unclean
	// reboots); reverted 4; silent: 30 exposed - 4 reverted - 6 reporting
	// in the last 5 minutes = 20.
	want := map[string]int64{"exposed": 30, "crashed": 5, "reverted": 4, "silent": 20}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("%s at the end: %d, want %d", k, last[k], v)
		}
	}
	var labels []string
	for _, m := range c.Marks {
		labels = append(labels, m.Label)
		if m.X < c.Left || m.X > c.Right {
			t.Errorf("mark %s at x=%d, outside the plot %d-%d", m.Label, m.X, c.Left, c.Right)
		}
	}
	if strings.Join(labels, ",") != "early,halted" {
		t.Errorf("marks %v, want the early wave's start and the halt", labels)
	}
	if c.Marks[1].X != c.Right {
		t.Errorf("the halt, the last moment, is at x=%d, want the right edge %d", c.Marks[1].X, c.Right)
	}
	if empty := drawTimeline(nil, nil, time.Minute, nil); !empty.Empty {
		t.Error("no telemetry should draw no chart")
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[int64]int64{1: 1, 3: 5, 7: 10, 11: 20, 40: 50, 120: 200, 100000: 100000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestStaticFiles serves the embedded assets, with the console's security
// headers, and no listing of them.
func TestStaticFiles(t *testing.T) {
	c := New(fakeBackend{})
	for path, want := range map[string]int{"/console/static/live.js": 200, "/console/static/console.css": 200, "/console/static/": 404, "/console/static/nope.js": 404} {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}

// fakeBackend serves nothing: enough for what needs no server.
type fakeBackend struct{ backend }

func (fakeBackend) DeriveKey(string) []byte       { return []byte("key") }
func (fakeBackend) Now() time.Time                { return t0 }
func (fakeBackend) Log() *slog.Logger             { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (fakeBackend) ControllerTick() time.Duration { return 5 * time.Second }
func (fakeBackend) HeartbeatSpan() time.Duration  { return 5 * time.Minute }
