package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// Webhooks are tested against real HTTP receivers on loopback: the server
// signs what it sends, retries on the test's clock until the receiver
// takes it, routes each event to the scopes it concerns and refuses
// subscriptions it must not make. The kill -9 story is in package cli
// (TestKill9WebhookDeliveredAfterRestart): it needs a process to kill.

// receiver is a webhook endpoint that answers fail times 503, then 204.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	fail int
	got  []received
}

type received struct {
	body                   []byte
	signature, contentType string
	eventID, eventType     string
}

func newReceiver(t *testing.T, fail int) *receiver {
	rc := &receiver{fail: fail}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.got = append(rc.got, received{body: b, signature: r.Header.Get(notify.SignatureHeader), contentType: r.Header.Get("Content-Type"),
			eventID: r.Header.Get("Ringfence-Event-Id"), eventType: r.Header.Get("Ringfence-Event-Type")})
		if rc.fail > 0 {
			rc.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// subscribe creates a webhook as token and returns it with its secret.
func (e *env) subscribe(t testing.TB, token string, req map[string]any) server.WebhookInfo {
	t.Helper()
	var out server.WebhookInfo
	e.must(t, http.StatusCreated, "POST", "/v1/webhooks", token, req, &out)
	if !strings.HasPrefix(out.Secret, "rfw_") || out.ID == "" {
		t.Fatalf("created webhook %+v: want an id and a secret shown once", out)
	}
	return out
}

func (e *env) deliver(t testing.TB) int {
	t.Helper()
	n, err := e.srv.DeliverWebhooks(context.Background())
	if err != nil {
		t.Fatalf("deliver webhooks: %v", err)
	}
	return n
}

func (e *env) deliveries(t testing.TB, token, id string) []server.DeliveryInfo {
	t.Helper()
	var out []server.DeliveryInfo
	e.must(t, http.StatusOK, "GET", "/v1/webhooks/"+id+"/deliveries", token, nil, &out)
	return out
}

// retryPolicy with WebhookRand at 0.5 waits 7.5 s, then 15 s, then 30 s.
var retryPolicy = notify.Policy{First: 10 * time.Second, Max: time.Minute, Attempts: 4}

func webhookConfig() server.Config {
	// The receivers are on loopback.
	return server.Config{ControllerTick: 24 * time.Hour, WebhookRetry: retryPolicy, WebhookRand: func() float64 { return 0.5 }, WebhookAllowPrivate: true}
}

// A publisher halts a release; acme's subscription gets one signed
// CloudEvent, delivered on the third attempt after two 503s, each retry
// when the back-off says and not before; the log shows all three.
func TestWebhookHaltDeliveredSignedWithRetries(t *testing.T) {
	forEachStoreConfig(t, webhookConfig(), func(t *testing.T, e *env) {
		rc := newReceiver(t, 2)
		hook := e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": rc.URL + "/hooks/ringfence", "events": []string{"release.halted"}})
		rel := e.publishRelease(t, 293)
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "bad canary"}, nil)

		if n := e.deliver(t); n != 1 {
			t.Fatalf("first pass attempted %d deliveries, want 1", n)
		}
		ds := e.deliveries(t, e.creds.PublisherToken, hook.ID)
		if len(ds) != 1 || ds[0].State != "pending" || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].Status != 503 || ds[0].NextAttempt == nil ||
			!ds[0].NextAttempt.Equal(e.clock.Now().Add(7500*time.Millisecond)) {
			t.Fatalf("after a 503: got %+v, want pending with one 503 attempt, next in 7.5 s", ds)
		}
		e.clock.Advance(7 * time.Second)
		if n := e.deliver(t); n != 0 {
			t.Fatalf("a retry went out %d early", n)
		}
		e.clock.Advance(500 * time.Millisecond)
		if n := e.deliver(t); n != 1 {
			t.Fatalf("second attempt: %d deliveries, want 1", n)
		}
		e.clock.Advance(15 * time.Second)
		if n := e.deliver(t); n != 1 {
			t.Fatalf("third attempt: %d deliveries, want 1", n)
		}
		if n := e.deliver(t); n != 0 {
			t.Fatalf("a delivered event went out again (%d)", n)
		}

		got := rc.requests()
		if len(got) != 3 {
			t.Fatalf("receiver got %d requests, want 3", len(got))
		}
		for i, r := range got {
			if r.eventID != got[0].eventID || string(r.body) != string(got[0].body) {
				t.Fatalf("attempt %d carried event %s, want the same event and body as the first (%s)", i+1, r.eventID, got[0].eventID)
			}
		}
		last := got[2]
		if err := notify.Verify(hook.Secret, last.signature, last.body, e.clock.Now(), notify.Tolerance); err != nil {
			t.Fatalf("signature of the delivered event: %v", err)
		}
		if err := notify.Verify("rfw_someone-else", last.signature, last.body, e.clock.Now(), notify.Tolerance); err == nil {
			t.Fatal("signature verifies with another secret")
		}
		var ev notify.Event
		if err := json.Unmarshal(last.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.SpecVersion != "1.0" || ev.Type != "dev.ringfence.release.halted" || ev.ID != last.eventID || ev.Subject != rel.ID ||
			ev.Source != "/v1/releases/"+rel.ID || last.contentType != "application/cloudevents+json" || last.eventType != ev.Type {
			t.Fatalf("event %+v (content type %s): want a CloudEvent of the halt", ev, last.contentType)
		}
		if d := ev.Data; d.Release != rel.ID || d.Channel != "acme/ipc" || d.Version != 293 || d.State != "halted" || d.Wave == nil || *d.Wave != 0 ||
			!strings.Contains(d.Reason, "bad canary") || d.WaveName == "" {
			t.Fatalf("event data %+v: want release, channel, version, state, wave and reason", d)
		}

		ds = e.deliveries(t, e.creds.ApproverToken, hook.ID)
		if len(ds) != 1 || ds[0].State != "delivered" || len(ds[0].Attempts) != 3 || ds[0].EventID != ev.ID ||
			ds[0].Attempts[0].Status != 503 || ds[0].Attempts[1].Status != 503 || ds[0].Attempts[2].Status != 204 ||
			ds[0].Attempts[0].Error == "" || ds[0].NextAttempt != nil {
			t.Fatalf("delivery log: got %+v, want delivered after 503, 503, 204", ds)
		}
	})
}

// A receiver that never takes an event: after the policy's attempts the
// delivery is failed and nothing more is sent.
func TestWebhookGivesUp(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	rc := newReceiver(t, 1000)
	hook := e.subscribe(t, e.creds.AdminToken, map[string]any{"url": rc.URL})
	e.must(t, http.StatusOK, "PUT", "/v1/kill-switch", e.creds.AdminToken, map[string]any{"engaged": true, "reason": "drill"}, nil)
	for range 10 {
		e.deliver(t)
		e.clock.Advance(time.Minute)
	}
	if n := len(rc.requests()); n != retryPolicy.Attempts {
		t.Fatalf("receiver got %d attempts, want %d", n, retryPolicy.Attempts)
	}
	ds := e.deliveries(t, e.creds.AdminToken, hook.ID)
	if len(ds) != 1 || ds[0].State != "failed" || len(ds[0].Attempts) != retryPolicy.Attempts || ds[0].EventType != notify.KillSwitchEngaged {
		t.Fatalf("delivery log: got %+v, want failed after %d attempts", ds, retryPolicy.Attempts)
	}
	s := e.scrape(t)
	for outcome, want := range map[string]float64{"delivered": 0, "failed": float64(retryPolicy.Attempts - 1), "abandoned": 1} {
		if got := s.value(t, "ringfence_webhook_deliveries_total", "outcome", outcome); got != want {
			t.Errorf("ringfence_webhook_deliveries_total{outcome=%q}: got %v, want %v", outcome, got, want)
		}
	}
}

// Each subscription hears of its scope: the vendor of its releases and
// channels, an organisation of what it follows, the operator everything;
// a filter narrows it; a disabled subscription gets nothing new; the
// Slack format posts {"text": ...} alone.
func TestWebhookRouting(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	vendorAll := newReceiver(t, 0)
	vendorHalts := newReceiver(t, 0)
	otherVendor := newReceiver(t, 0)
	contosoSlack := newReceiver(t, 0)
	fabrikam := newReceiver(t, 0)
	operator := newReceiver(t, 0)
	disabled := newReceiver(t, 0)
	globexPub := e.createTenant(t, "globex", "vendor", store.RolePublisher)
	fabrikamAdmin := e.createTenant(t, "fabrikam", "org", store.RoleOrgAdmin)

	e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": vendorAll.URL})
	e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": vendorHalts.URL, "events": []string{"dev.ringfence.release.halted"}})
	e.subscribe(t, globexPub, map[string]any{"vendor": "globex", "url": otherVendor.URL})
	slack := e.subscribe(t, e.creds.OrgAdminToken, map[string]any{"org": "contoso", "url": contosoSlack.URL, "format": "slack"})
	e.subscribe(t, fabrikamAdmin, map[string]any{"org": "fabrikam", "url": fabrikam.URL})
	e.subscribe(t, e.creds.AdminToken, map[string]any{"url": operator.URL})
	off := e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": disabled.URL, "enabled": false})
	if off.Enabled == nil || *off.Enabled {
		t.Fatalf("created disabled: %+v", off)
	}

	// contoso follows acme/ipc (a policy); fabrikam follows nothing.
	e.setPolicy(t, "ga")
	e.must(t, http.StatusOK, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.AdminToken, map[string]any{"engaged": true, "reason": "bad feed"}, nil)
	e.must(t, http.StatusOK, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.AdminToken, map[string]any{"engaged": false, "reason": "fixed"}, nil)
	e.must(t, http.StatusOK, "PUT", "/v1/kill-switch", e.creds.AdminToken, map[string]any{"engaged": true, "reason": "all stop"}, nil)
	rel := e.publishRelease(t, 293)
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "bad"}, nil)
	for e.deliver(t) > 0 {
	}

	types := func(rc *receiver) []string {
		var out []string
		for _, r := range rc.requests() {
			out = append(out, strings.TrimPrefix(r.eventType, notify.TypePrefix))
		}
		slices.Sort(out)
		return out
	}
	want := map[string]struct {
		rc    *receiver
		types []string
	}{
		"acme, all events":           {vendorAll, []string{"kill-switch.engaged", "kill-switch.engaged", "kill-switch.released", "release.halted"}},
		"acme, halts only":           {vendorHalts, []string{"release.halted"}},
		"globex: global switch only": {otherVendor, []string{"kill-switch.engaged"}},
		"contoso follows acme/ipc":   {contosoSlack, []string{"kill-switch.engaged", "kill-switch.engaged", "kill-switch.released", "release.halted"}},
		"fabrikam follows nothing":   {fabrikam, []string{"kill-switch.engaged"}},
		"operator: everything":       {operator, []string{"kill-switch.engaged", "kill-switch.engaged", "kill-switch.released", "release.halted"}},
		"disabled":                   {disabled, nil},
	}
	for name, w := range want {
		if got := types(w.rc); !slices.Equal(got, w.types) {
			t.Errorf("%s: got %v, want %v", name, got, w.types)
		}
	}

	for _, r := range contosoSlack.requests() {
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 {
			t.Fatalf("slack body %s: want {\"text\": ...} alone (%v)", r.body, err)
		}
		text, _ := body["text"].(string)
		if !strings.HasPrefix(text, "Ringfence: ") || r.contentType != "application/json" {
			t.Fatalf("slack body %s (%s)", r.body, r.contentType)
		}
		if err := notify.Verify(slack.Secret, r.signature, r.body, e.clock.Now(), notify.Tolerance); err != nil {
			t.Fatalf("slack delivery signature: %v", err)
		}
		if strings.HasSuffix(r.eventType, "release.halted") && !strings.Contains(text, rel.ID) {
			t.Errorf("slack text %q does not name the release", text)
		}
	}

	// Enabled again, the disabled subscription hears of what comes next,
	// not of what happened while it was off.
	e.must(t, http.StatusOK, "PUT", "/v1/webhooks/"+off.ID+"/enabled", e.creds.PublisherToken, map[string]any{"enabled": true}, nil)
	e.must(t, http.StatusOK, "PUT", "/v1/kill-switch", e.creds.AdminToken, map[string]any{"engaged": false, "reason": "resume"}, nil)
	for e.deliver(t) > 0 {
	}
	if got := types(disabled); !slices.Equal(got, []string{"kill-switch.released"}) {
		t.Errorf("re-enabled: got %v, want the release of the global switch only", got)
	}
}

// The controller's own halt and the roll-back after it reach the vendor
// and the organisation whose devices took the release.
func TestWebhookControllerHaltAndRollback(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	f := standardFleet(t, e) // fabrikam, early on acme/ipc
	f.onRelease = func(d *fleetDevice) []server.EventReport { return []server.EventReport{{Type: "worker-crash"}} }
	vendor := newReceiver(t, 0)
	org := newReceiver(t, 0)
	e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": vendor.URL})
	fabrikamAdmin := e.createToken(t, "fabrikam", store.RoleOrgAdmin)
	e.subscribe(t, fabrikamAdmin, map[string]any{"org": "fabrikam", "url": org.URL, "events": []string{"release.halted", "release.rolled-back"}})
	haltStory(t, e, f, "worker-crash rate")
	for e.deliver(t) > 0 {
	}
	for name, rc := range map[string]*receiver{"vendor": vendor, "fabrikam": org} {
		var got []string
		for _, r := range rc.requests() {
			var ev notify.Event
			if err := json.Unmarshal(r.body, &ev); err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.ShortType()+" by "+ev.Data.Actor)
		}
		if want := []string{"release.halted by controller", "release.rolled-back by controller"}; !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
	}
}

// Refusals: a non-http URL (400 naming url), another scope (403), an
// unknown event or format (400 naming the field); another tenant's
// subscription is not found; readers see no secret and no URL path.
func TestWebhookRefusals(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	e.createTenant(t, "globex", "vendor", store.RolePublisher)
	ok := "https://hooks.example.com/ringfence?k=v"
	cases := []struct {
		name, token string
		req         map[string]any
		code        int
		mention     string
	}{
		{"ftp-url", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "ftp://hooks.example.com/x"}, 400, "url: scheme \"ftp\""},
		{"file-url", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "file:///etc/passwd"}, 400, "url: scheme \"file\""},
		{"javascript-url", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "javascript:alert(1)"}, 400, "url: scheme"},
		{"relative-url", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "/hooks"}, 400, "url:"},
		{"no-host", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "https:///x"}, 400, "names no host"},
		{"no-url", e.creds.PublisherToken, map[string]any{"vendor": "acme"}, 400, "url:"},
		{"another-vendor", e.creds.PublisherToken, map[string]any{"vendor": "globex", "url": ok}, 403, "globex"},
		{"org-admin-for-a-vendor", e.creds.OrgAdminToken, map[string]any{"vendor": "acme", "url": ok}, 403, "acme"},
		{"publisher-for-an-org", e.creds.PublisherToken, map[string]any{"org": "contoso", "url": ok}, 403, "contoso"},
		{"viewer-may-not-manage", e.creds.ViewerToken, map[string]any{"org": "contoso", "url": ok}, 403, "contoso"},
		{"approver-may-not-manage", e.creds.ApproverToken, map[string]any{"vendor": "acme", "url": ok}, 403, "acme"},
		{"no-scope-not-admin", e.creds.PublisherToken, map[string]any{"url": ok}, 403, "vendor or org"},
		{"both-scopes", e.creds.AdminToken, map[string]any{"vendor": "acme", "org": "contoso", "url": ok}, 400, "not both"},
		{"vendor-is-an-org", e.creds.AdminToken, map[string]any{"vendor": "contoso", "url": ok}, 400, "vendor: \"contoso\" is not a vendor"},
		{"unknown-event", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": ok, "events": []string{"release.halted", "release.exploded"}}, 400, "events[1]"},
		{"audit-for-a-vendor", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": ok, "events": []string{"audit.verification-failed"}}, 400, "operator's subscriptions only"},
		{"unknown-format", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": ok, "format": "xml"}, 400, "format:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.call(t, "POST", "/v1/webhooks", c.token, c.req)
			wantError(t, code, body, c.code, c.mention)
		})
	}

	hook := e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": ok})
	if hook.URL != ok {
		t.Errorf("creator sees URL %q, want %q", hook.URL, ok)
	}
	globexPub := e.createToken(t, "globex", store.RolePublisher)
	for _, c := range []struct{ method, path string }{{"GET", ""}, {"DELETE", ""}, {"GET", "/deliveries"}, {"PUT", "/enabled"}} {
		code, body := e.call(t, c.method, "/v1/webhooks/"+hook.ID+c.path, globexPub, map[string]any{"enabled": false})
		wantError(t, code, body, http.StatusNotFound, hook.ID)
	}
	var list []server.WebhookInfo
	e.must(t, http.StatusOK, "GET", "/v1/webhooks", globexPub, nil, &list)
	if len(list) != 0 {
		t.Errorf("another vendor lists %+v", list)
	}
	// acme's approver reads, but sees neither the secret nor the path.
	e.must(t, http.StatusOK, "GET", "/v1/webhooks", e.creds.ApproverToken, nil, &list)
	if len(list) != 1 || list[0].Secret != "" || list[0].URL != "https://hooks.example.com/…" {
		t.Errorf("approver lists %+v, want the hook with its URL redacted and no secret", list)
	}
	code, body := e.call(t, "DELETE", "/v1/webhooks/"+hook.ID, e.creds.ApproverToken, nil)
	wantError(t, code, body, http.StatusForbidden, "vendor acme")
	e.must(t, http.StatusOK, "DELETE", "/v1/webhooks/"+hook.ID, e.creds.PublisherToken, nil, nil)
	code, body = e.call(t, "GET", "/v1/webhooks/"+hook.ID, e.creds.PublisherToken, nil)
	wantError(t, code, body, http.StatusNotFound, hook.ID)

	// Every change is in the audit log, and no secret is.
	var es []store.AuditEntry
	e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &es)
	var actions []string
	for _, a := range es {
		if strings.HasPrefix(a.Action, "webhook.") {
			actions = append(actions, a.Action)
		}
		if strings.Contains(a.Reason, hook.Secret) || strings.Contains(a.Reason, "?k=v") {
			t.Errorf("audit entry %+v shows the secret or the URL's query", a)
		}
	}
	if !slices.Equal(actions, []string{"webhook.create", "webhook.delete"}) {
		t.Errorf("audit actions %v, want create and delete", actions)
	}
}

// A good release notifies its vendor twice: when it waits for sign-off
// and when it completes.
func TestWebhookAwaitingApprovalAndCompleted(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	f := standardFleet(t, e)
	rc := newReceiver(t, 0)
	e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": rc.URL,
		"events": []string{"release.awaiting-approval", "release.completed"}})
	rel := e.startRelease(t, quickPlan(), "normal")
	f.until(t, 24, "awaiting approval", inState("awaiting-approval"), rel.ID)
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "canary figures reviewed"}, nil)
	f.until(t, 200, "completed", inState("completed"), rel.ID)
	for e.deliver(t) > 0 {
	}
	var got []string
	for _, r := range rc.requests() {
		var ev notify.Event
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ShortType()+" "+ev.Data.State)
		if ev.Data.Release != rel.ID || ev.Data.Version != 293 {
			t.Errorf("event %+v is not about %s", ev, rel.ID)
		}
	}
	if want := []string{"release.awaiting-approval awaiting-approval", "release.completed completed"}; !slices.Equal(got, want) {
		t.Fatalf("vendor got %v, want %v", got, want)
	}
}

// An audit log that does not verify is told to the operator's
// subscriptions, once however often it is verified, and to no tenant's.
func TestWebhookAuditVerificationFailed(t *testing.T) {
	e := newEnvConfig(t, "", webhookConfig())
	operator := newReceiver(t, 0)
	vendor := newReceiver(t, 0)
	e.subscribe(t, e.creds.AdminToken, map[string]any{"url": operator.URL, "events": []string{"audit.verification-failed"}})
	e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": vendor.URL})
	var v server.AuditVerdict
	e.must(t, http.StatusOK, "GET", "/v1/audit/verify", e.creds.AdminToken, nil, &v)
	if !v.Verified || e.deliver(t) != 0 {
		t.Fatalf("a sound log: %+v, and something to deliver", v)
	}
	if _, err := e.st.DB().Exec(`UPDATE audit_log SET reason = 'rewritten' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e.must(t, http.StatusOK, "GET", "/v1/audit/verify", e.creds.AdminToken, nil, &v)
	}
	for e.deliver(t) > 0 {
	}
	got := operator.requests()
	if v.Verified || len(got) != 1 {
		t.Fatalf("verdict %+v; operator got %d deliveries, want 1", v, len(got))
	}
	var ev notify.Event
	if err := json.Unmarshal(got[0].body, &ev); err != nil || ev.ShortType() != notify.AuditVerifyFailed || ev.Data.AuditSeq != v.BrokenSeq || ev.Data.Reason != v.Reason {
		t.Fatalf("event %+v (%v), want the break at entry %d", ev, err, v.BrokenSeq)
	}
	if n := len(vendor.requests()); n != 0 {
		t.Fatalf("a vendor heard of the audit log (%d deliveries)", n)
	}
}

// Two replicas on one PostgreSQL: only the controller's sends, so each
// event reaches the receiver once.
func TestWebhookTwoReplicasOneSender(t *testing.T) {
	url := storetest.PostgresURL(t)
	rc := newReceiver(t, 0)
	var servers []*server.Server
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := sqlstore.Open(ctx, url, "")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		srv := server.New(server.Config{ControllerTick: 20 * time.Millisecond, WebhookPoll: 10 * time.Millisecond, WebhookAllowPrivate: true}, st, time.Now, quietLogger())
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); srv.Wait(); st.Close() })
		servers = append(servers, srv)
		if len(servers) == 1 {
			now := time.Now()
			if err := st.CreateWebhook(ctx, store.Webhook{ID: "wh-1", URL: rc.URL, Format: notify.FormatCloudEvents, Secret: "s", Enabled: true, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			var ds []store.WebhookDelivery
			for i := range 40 {
				ds = append(ds, store.WebhookDelivery{Webhook: "wh-1", EventID: fmt.Sprintf("ev-%02d", i), EventType: notify.KillSwitchEngaged,
					Body: []byte("{}"), State: store.DeliveryPending, NextAttempt: now, CreatedAt: now, UpdatedAt: now})
			}
			if err := st.EnqueueWebhookDeliveries(ctx, ds); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(rc.requests()) < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 40 events delivered within 15s", len(rc.requests()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Both replicas keep polling a while longer: nothing goes out twice.
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, r := range rc.requests() {
		seen[r.eventID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(seen) != 40 {
		t.Errorf("%d distinct events delivered, want 40", len(seen))
	}
}

// Without --webhook-allow-private a subscription cannot make the server
// reach its own network: a private, loopback or link-local address
// written out is refused when subscribing (400 naming url), and a name
// that resolves to one (localhost here) is refused where it is dialled,
// so the receiver gets nothing and the log says why.
func TestWebhookPrivateAddressesRefused(t *testing.T) {
	cfg := webhookConfig()
	cfg.WebhookAllowPrivate = false
	e := newEnvConfig(t, "", cfg)
	for _, u := range []string{"http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://[::1]:8080/", "http://[::ffff:192.168.1.1]/", "https://100.64.0.1/"} {
		code, body := e.call(t, "POST", "/v1/webhooks", e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": u})
		wantError(t, code, body, http.StatusBadRequest, "is not a public address")
	}
	rc := newReceiver(t, 0)
	_, port, _ := strings.Cut(strings.TrimPrefix(rc.URL, "http://"), ":")
	hook := e.subscribe(t, e.creds.PublisherToken, map[string]any{"vendor": "acme", "url": "http://localhost:" + port + "/hooks"})
	rel := e.publishRelease(t, 293)
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "bad canary"}, nil)
	if n := e.deliver(t); n != 1 {
		t.Fatalf("attempted %d deliveries, want 1", n)
	}
	if got := rc.requests(); len(got) != 0 {
		t.Fatalf("a receiver on loopback got %d requests", len(got))
	}
	ds := e.deliveries(t, e.creds.PublisherToken, hook.ID)
	if len(ds) != 1 || len(ds[0].Attempts) != 1 || !strings.Contains(ds[0].Attempts[0].Error, "is not public") {
		t.Fatalf("delivery log %+v, want one attempt refused for its address", ds)
	}
}
