package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// hookReceiver is a webhook endpoint that is down (503) until up is set,
// and counts the deliveries it accepted by event id.
type hookReceiver struct {
	*httptest.Server
	up       atomic.Bool
	mu       sync.Mutex
	tried    int
	accepted map[string]int
	last     struct {
		body      []byte
		signature string
	}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rc := &hookReceiver{accepted: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.tried++
		if !rc.up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev notify.Event
		json.Unmarshal(body, &ev)
		rc.accepted[ev.ID]++
		rc.last.body, rc.last.signature = body, r.Header.Get(notify.SignatureHeader)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// TestKill9WebhookDeliveredAfterRestart: a release is halted while the
// receiver is down; once the server has recorded a failed attempt it is
// killed with SIGKILL, and started again on the same store. The receiver gets the
// halt, once, signed, and the delivery log shows the attempts from
// before the crash and the one that succeeded.
func TestKill9WebhookDeliveredAfterRestart(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			rc := newHookReceiver(t)
			s := &crashServer{data: t.TempDir(), listen: "127.0.0.1:0", extra: []string{"--webhook-retry", "50ms"}}
			if dialect == "postgres" {
				s.db = storetest.PostgresURL(t)
			}
			s.start(t)
			pub := s.creds.PublisherToken
			var hook server.WebhookInfo
			s.must(t, 201, "POST", "/v1/webhooks", pub, map[string]any{"vendor": "acme", "url": rc.URL + "/ringfence", "events": []string{"release.halted"}}, &hook)
			src, err := os.ReadFile(ipc292)
			if err != nil {
				t.Fatal(err)
			}
			s.must(t, 201, "POST", "/v1/channels/acme/ipc/publish", pub, strings.Replace(string(src), "version: 292\n", "version: 293\n", 1), nil)
			var rel server.ReleaseReport
			s.must(t, 201, "POST", "/v1/releases", pub, map[string]any{"channel": "acme/ipc", "version": 293}, &rel)
			s.must(t, 200, "POST", "/v1/releases/"+rel.ID+"/halt", pub, map[string]string{"reason": "before the crash"}, nil)
			// The halt is acknowledged; the server tries the receiver,
			// which is down, and records that it failed. Then SIGKILL.
			deadline := time.Now().Add(20 * time.Second)
			var ds []server.DeliveryInfo
			for len(ds) == 0 || len(ds[0].Attempts) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no failed attempt recorded within 20s: %+v\n%s", ds, s.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
				s.must(t, 200, "GET", "/v1/webhooks/"+hook.ID+"/deliveries", pub, nil, &ds)
			}
			if ds[0].State != "pending" || ds[0].Attempts[0].Status != 503 {
				t.Fatalf("before the crash: %+v, want pending after a 503", ds)
			}
			s.kill(t)

			rc.up.Store(true)
			s.start(t)
			deadline = time.Now().Add(20 * time.Second)
			for {
				rc.mu.Lock()
				n := len(rc.accepted)
				rc.mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no delivery within 20s of the restart\n%s", s.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Whatever is still to come would be due by now (the back-off
			// starts at 50ms): the log must say delivered, the receiver
			// must have it once.
			for {
				s.must(t, 200, "GET", "/v1/webhooks/"+hook.ID+"/deliveries", pub, nil, &ds)
				if len(ds) == 1 && ds[0].State == "delivered" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivery log %+v, want one delivered event", ds)
				}
				time.Sleep(20 * time.Millisecond)
			}
			rc.mu.Lock()
			accepted, body, sig := rc.accepted, rc.last.body, rc.last.signature
			rc.mu.Unlock()
			if len(accepted) != 1 || accepted[ds[0].EventID] != 1 {
				t.Fatalf("receiver accepted %v, want event %s exactly once", accepted, ds[0].EventID)
			}
			if err := notify.Verify(hook.Secret, sig, body, time.Now(), notify.Tolerance); err != nil {
				t.Fatalf("signature: %v", err)
			}
			var ev notify.Event
			if err := json.Unmarshal(body, &ev); err != nil || ev.Data.Release != rel.ID || ev.ShortType() != notify.ReleaseHalted {
				t.Fatalf("delivered %s (%v), want the halt of %s", body, err, rel.ID)
			}
			if a := ds[0].Attempts; len(a) == 0 || a[len(a)-1].Status != 204 {
				t.Fatalf("attempts %+v: want the last one accepted", a)
			}

			// The CLI shows the same log.
			env := []string{"RINGFENCE_SERVER=" + s.url, "RINGFENCE_TOKEN=" + pub}
			r := rfEnv(t, env, "webhooks", "deliveries", hook.ID)
			if r.code != 0 || !strings.Contains(r.stdout, ds[0].EventID) || !strings.Contains(r.stdout, "delivered") || !strings.Contains(r.stdout, "204") {
				t.Fatalf("webhooks deliveries: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// The webhooks commands as a user meets them: add prints the secret once,
// list never shows it, a non-http URL and another vendor are refused
// (exit 1, naming what), remove removes.
func TestWebhooksCommands(t *testing.T) {
	s := startDevServer(t)
	env := []string{"RINGFENCE_SERVER=" + s.url, "RINGFENCE_TOKEN=" + s.creds.Publisher}
	r := rfEnv(t, env, "webhooks", "add", "--vendor", "acme", "--events", "release.halted,release.completed", "https://hooks.example.com/x")
	if r.code != 0 || !strings.Contains(r.stdout, "secret: rfw_") || !strings.Contains(r.stdout, "release.halted,release.completed") {
		t.Fatalf("add: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(strings.TrimPrefix(r.stdout, "created webhook "))[0]
	id = strings.TrimSuffix(id, ":")
	r = rfEnv(t, env, "webhooks", "list")
	if r.code != 0 || !strings.Contains(r.stdout, id) || strings.Contains(r.stdout, "rfw_") || !strings.Contains(r.stdout, "vendor acme") {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = rfEnv(t, env, "webhooks", "add", "--vendor", "acme", "ftp://hooks.example.com/x")
	if r.code != 1 || !strings.Contains(r.stderr, "url: scheme \"ftp\"") {
		t.Fatalf("add ftp: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = rfEnv(t, env, "webhooks", "add", "--org", "contoso", "https://hooks.example.com/x")
	if r.code != 1 || !strings.Contains(r.stderr, "contoso") {
		t.Fatalf("add for another tenant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = rfEnv(t, env, "webhooks", "disable", id)
	if r.code != 0 {
		t.Fatalf("disable: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = rfEnv(t, env, "webhooks", "list", "--json")
	var hs []server.WebhookInfo
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil || len(hs) != 1 || hs[0].Enabled == nil || *hs[0].Enabled {
		t.Fatalf("list --json after disable: %v %+v\n%s", err, hs, r.stdout)
	}
	if r = rfEnv(t, env, "webhooks", "remove", id); r.code != 0 {
		t.Fatalf("remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = rfEnv(t, env, "webhooks", "deliveries", id); r.code != 1 || !strings.Contains(r.stderr, id) {
		t.Fatalf("deliveries of a removed webhook: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
