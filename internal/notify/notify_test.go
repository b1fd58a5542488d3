package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/notify"
)

var t0 = time.Date(2026, 7, 19, 4, 9, 0, 0, time.UTC)

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"ev-1"}`)
	good := notify.Sign("rfw_secret", t0, body)
	tests := []struct {
		name    string
		secret  string
		header  string
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"good", "rfw_secret", good, body, t0, nil},
		{"good-within-the-window", "rfw_secret", good, body, t0.Add(notify.Tolerance), nil},
		{"good-receiver-clock-behind", "rfw_secret", good, body, t0.Add(-4 * time.Minute), nil},
		{"second-v1-matches", "rfw_secret", strings.Replace(good, "v1=", "v1=00ff,v1=", 1), body, t0, nil},
		{"replayed-too-late", "rfw_secret", good, body, t0.Add(notify.Tolerance + time.Second), notify.ErrStaleRequest},
		{"other-secret", "rfw_other", good, body, t0, notify.ErrNoSignature},
		{"body-changed", "rfw_secret", good, []byte(`{"id":"ev-2"}`), t0, notify.ErrNoSignature},
		{"timestamp-changed", "rfw_secret", strings.Replace(good, "t=", "t=1", 1), body, time.Unix(t0.Unix()+1e10, 0), notify.ErrNoSignature},
		{"no-timestamp", "rfw_secret", good[strings.Index(good, ",")+1:], body, t0, notify.ErrNoSignature},
		{"no-signature", "rfw_secret", good[:strings.Index(good, ",")], body, t0, notify.ErrNoSignature},
		{"empty", "rfw_secret", "", body, t0, notify.ErrNoSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := notify.Verify(tc.secret, tc.header, tc.body, tc.now, notify.Tolerance)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Verify: got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// The signature is the documented one: HMAC-SHA256 over "t.body", which
// a receiver in any language recomputes (docs/webhooks.md).
func TestSignKnownAnswer(t *testing.T) {
	got := notify.Sign("whsec", time.Unix(1700000000, 0), []byte("{}"))
	// printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec
	want := "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
	if got != want {
		t.Fatalf("Sign: got %s, want %s", got, want)
	}
}

func TestPolicy(t *testing.T) {
	p := notify.Policy{First: 10 * time.Second, Max: time.Minute, Attempts: 5}
	tests := []struct {
		name     string
		attempts int
		rnd      float64
		wait     time.Duration
		done     bool
	}{
		{"first-failure-least-jitter", 1, 0, 5 * time.Second, false},
		{"first-failure-most-jitter", 1, 0.999999, 10 * time.Second, false},
		{"first-failure-half-jitter", 1, 0.5, 7500 * time.Millisecond, false},
		{"second-doubles", 2, 0, 10 * time.Second, false},
		{"third-doubles-again", 3, 1, 40 * time.Second, false},
		{"capped-at-max", 4, 1, time.Minute, false},
		{"capped-at-max-least-jitter", 4, 0, 30 * time.Second, false},
		{"given-up-after-its-attempts", 5, 0.5, 0, true},
		{"given-up-beyond", 9, 0.5, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, done := p.Next(t0, tc.attempts, tc.rnd)
			if done != tc.done || (!done && at.Sub(t0).Round(time.Millisecond) != tc.wait) {
				t.Fatalf("Next(%d, %v): got %v later, done %v; want %v, done %v", tc.attempts, tc.rnd, at.Sub(t0), done, tc.wait, tc.done)
			}
		})
	}
	// No overflow however many attempts a long outage makes.
	if d := notify.DefaultPolicy.Delay(1000, 1); d > notify.DefaultPolicy.Max || d <= 0 {
		t.Fatalf("Delay(1000): %v, want at most %v", d, notify.DefaultPolicy.Max)
	}
}

func TestBodies(t *testing.T) {
	wave := 1
	e := notify.NewEvent("rel-1.halted.7", notify.ReleaseHalted, "/v1/releases/rel-1", "rel-1", t0,
		notify.Data{Release: "rel-1", Channel: "acme/ipc", Version: 293, State: "halted", Wave: &wave, WaveName: "canary", Reason: "crash rate 4.1% > 0.5%"})
	b, ct, err := e.Body(notify.FormatCloudEvents)
	if err != nil || ct != "application/cloudevents+json" {
		t.Fatalf("Body: %v, %s", err, ct)
	}
	var ce map[string]any
	if err := json.Unmarshal(b, &ce); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"specversion": "1.0", "id": "rel-1.halted.7", "type": "dev.ringfence.release.halted",
		"source": "/v1/releases/rel-1", "subject": "rel-1", "time": "2026-07-19T04:09:00Z", "datacontenttype": "application/json"} {
		if ce[k] != want {
			t.Errorf("%s: got %v, want %v", k, ce[k], want)
		}
	}
	data, _ := ce["data"].(map[string]any)
	if data["release"] != "rel-1" || data["version"] != 293.0 || data["wave"] != 1.0 || data["state"] != "halted" || data["channel"] != "acme/ipc" {
		t.Errorf("data: got %v", data)
	}
	b, ct, err = e.Body(notify.FormatSlack)
	if err != nil || ct != "application/json" {
		t.Fatalf("Body slack: %v, %s", err, ct)
	}
	var slack map[string]string
	if err := json.Unmarshal(b, &slack); err != nil || len(slack) != 1 {
		t.Fatalf("slack body %s: want only text (%v)", b, err)
	}
	if want := "Ringfence: release rel-1 (acme/ipc@293) is halted in wave canary: crash rate 4.1% > 0.5%"; slack["text"] != want {
		t.Errorf("slack text: got %q, want %q", slack["text"], want)
	}
	if _, _, err := e.Body("xml"); err == nil {
		t.Error("Body(xml): no error")
	}
}

// The sender signs what it sends, refuses to be redirected elsewhere and
// does not pass a receiver's answer on.
func TestSend(t *testing.T) {
	var got struct {
		header, ct, id string
		body           []byte
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hook":
			got.header, got.ct, got.id = r.Header.Get(notify.SignatureHeader), r.Header.Get("Content-Type"), r.Header.Get("Ringfence-Event-Id")
			got.body, _ = io.ReadAll(r.Body)
			w.WriteHeader(http.StatusNoContent)
		case "/same-host":
			http.Redirect(w, r, "/hook", http.StatusTemporaryRedirect)
		case "/elsewhere":
			http.Redirect(w, r, "http://localhost.invalid/hook", http.StatusTemporaryRedirect)
		case "/big":
			w.WriteHeader(500)
			w.Write([]byte(strings.Repeat("x", 1<<20)))
		}
	}))
	defer recv.Close()
	s := &notify.Sender{Client: notify.NewClient(true), Now: func() time.Time { return time.Now() }} // the receiver is on loopback
	ctx := context.Background()
	body := []byte(`{"a":1}`)
	r := s.Send(ctx, recv.URL+"/hook", "application/cloudevents+json", "sec", body, map[string]string{"Ringfence-Event-Id": "ev-1"})
	if !r.OK() || r.Status != 204 {
		t.Fatalf("Send: %+v", r)
	}
	if err := notify.Verify("sec", got.header, got.body, time.Now(), notify.Tolerance); err != nil {
		t.Fatalf("receiver's verification: %v", err)
	}
	if got.ct != "application/cloudevents+json" || got.id != "ev-1" || string(got.body) != string(body) {
		t.Fatalf("receiver got %+v", got)
	}
	if r := s.Send(ctx, recv.URL+"/same-host", "application/json", "sec", body, nil); !r.OK() {
		t.Fatalf("redirect to the same host: %+v", r)
	}
	r = s.Send(ctx, recv.URL+"/elsewhere", "application/json", "sec", body, nil)
	if r.OK() || r.Err == nil || !strings.Contains(r.Err.Error(), "redirect to http://localhost.invalid refused") {
		t.Fatalf("redirect to another host: %+v, want refused", r)
	}
	if strings.Contains(r.Err.Error(), "/elsewhere") {
		t.Fatalf("error names the subscription's path: %v", r.Err)
	}
	if r := s.Send(ctx, recv.URL+"/big", "application/json", "sec", body, nil); r.OK() || r.Status != 500 || r.Err != nil {
		t.Fatalf("500 with a large body: %+v", r)
	}
}

func TestPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "93.184.216.34": true,
		"127.0.0.1": false, "::1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.0.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "100.64.0.1": false, "0.0.0.0": false,
		"::": false, "224.0.0.1": false, "255.255.255.255": false, "::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true,
		"198.18.0.1": false, "192.0.2.1": false,
	} {
		if got := notify.Public(netip.MustParseAddr(s)); got != want {
			t.Errorf("Public(%s) = %v, want %v", s, got, want)
		}
	}
}

// The guard runs on the address dialled: a receiver on loopback is
// refused by default and reached when private addresses are allowed.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	for _, allow := range []bool{false, true} {
		s := notify.Sender{Client: notify.NewClient(allow), Now: time.Now}
		res := s.Send(context.Background(), srv.URL, "application/json", "secret", []byte(`{}`), nil)
		var pe *notify.PrivateAddressError
		switch {
		case allow && !res.OK():
			t.Errorf("allowed: %+v, want delivered", res)
		case !allow && !errors.As(res.Err, &pe):
			t.Errorf("not allowed: %+v, want a PrivateAddressError", res)
		}
	}
}
