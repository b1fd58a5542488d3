package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// testWebhooks: subscriptions are stored as given; the outbox keeps one
// delivery per (subscription, event id), hands out the due ones of
// enabled subscriptions in order, records each attempt once, and goes
// with its subscription.
func testWebhooks(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	vendor := store.Webhook{ID: "wh-1", Tenant: "acme", Kind: store.TenantVendor, URL: "https://hooks.example/acme",
		Events: []string{"release.halted"}, Format: "cloudevents", Secret: "rfw_secret", Enabled: true, CreatedAt: t0, CreatedBy: "tok-1"}
	org := store.Webhook{ID: "wh-2", Tenant: "contoso", Kind: store.TenantOrg, URL: "http://hooks.example/contoso",
		Format: "slack", Secret: "rfw_other", Enabled: true, CreatedAt: t0.Add(time.Second)}
	operator := store.Webhook{ID: "wh-0", URL: "https://ops.example", Events: []string{}, Format: "cloudevents", Secret: "s", Enabled: true, CreatedAt: t0.Add(2 * time.Second)}
	must(t, s.CreateWebhook(ctx, vendor))
	must(t, s.CreateWebhook(ctx, org))
	must(t, s.CreateWebhook(ctx, operator))
	wantErr(t, s.CreateWebhook(ctx, vendor), store.ErrConflict)
	wantErr(t, s.CreateWebhook(ctx, store.Webhook{ID: "wh-x", Tenant: "nobody", Kind: store.TenantOrg, URL: "https://x", Format: "slack", CreatedAt: t0}), store.ErrNotFound)

	got, err := s.GetWebhook(ctx, "wh-1")
	must(t, err)
	if !webhookEqual(got, vendor) {
		t.Fatalf("GetWebhook: got %+v, want %+v", got, vendor)
	}
	_, err = s.GetWebhook(ctx, "wh-nope")
	wantErr(t, err, store.ErrNotFound)
	all, err := s.ListWebhooks(ctx)
	must(t, err)
	if len(all) != 3 || all[0].ID != "wh-1" || all[1].ID != "wh-2" || all[2].ID != "wh-0" {
		t.Fatalf("ListWebhooks: got %+v, want wh-1, wh-2, wh-0 by creation", all)
	}
	if len(all[1].Events) != 0 || all[2].Tenant != "" || all[2].Kind != "" {
		t.Fatalf("ListWebhooks: got %+v and %+v, want no events filter and an operator's subscription", all[1], all[2])
	}

	at := t0.Add(time.Minute)
	d := func(hook, id string, next time.Time) store.WebhookDelivery {
		return store.WebhookDelivery{Webhook: hook, EventID: id, EventType: "release.halted", Body: []byte(`{"id":"` + id + `"}`),
			State: store.DeliveryPending, NextAttempt: next, CreatedAt: at, UpdatedAt: at}
	}
	must(t, s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{d("wh-1", "ev-1", at), d("wh-2", "ev-1", at), d("wh-1", "ev-2", at.Add(time.Second))}))
	// The same event again, in another transaction: stored once.
	must(t, s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{d("wh-1", "ev-1", at.Add(time.Hour))}))
	wantErr(t, s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{d("wh-nope", "ev-1", at)}), store.ErrNotFound)

	due := func(now time.Time) []string {
		t.Helper()
		ds, err := s.DueWebhookDeliveries(ctx, now, 10)
		must(t, err)
		var out []string
		for _, d := range ds {
			out = append(out, d.Webhook+"/"+d.EventID)
		}
		return out
	}
	if got, want := due(at.Add(-time.Millisecond)), []string(nil); !slices.Equal(got, want) {
		t.Fatalf("due before: got %v, want none", got)
	}
	if got, want := due(at), []string{"wh-1/ev-1", "wh-2/ev-1"}; !slices.Equal(got, want) {
		t.Fatalf("due at %v: got %v, want %v", at, got, want)
	}
	if got, want := due(at.Add(time.Second)), []string{"wh-1/ev-1", "wh-2/ev-1", "wh-1/ev-2"}; !slices.Equal(got, want) {
		t.Fatalf("due a second later: got %v, want %v", got, want)
	}
	ds, err := s.DueWebhookDeliveries(ctx, at, 1)
	must(t, err)
	if len(ds) != 1 || string(ds[0].Body) != `{"id":"ev-1"}` || ds[0].EventType != "release.halted" || !ds[0].NextAttempt.Equal(at) {
		t.Fatalf("DueWebhookDeliveries limit 1: got %+v", ds)
	}

	// A failed attempt moves the delivery on; the same attempt recorded
	// again (a second sender) is stale.
	fail := store.WebhookAttempt{Webhook: "wh-1", EventID: "ev-1", At: at, Status: 503, Duration: 1500 * time.Millisecond}
	must(t, s.RecordWebhookAttempt(ctx, fail, store.DeliveryPending, 1, at.Add(10*time.Second)))
	wantErr(t, s.RecordWebhookAttempt(ctx, fail, store.DeliveryPending, 1, at.Add(10*time.Second)), store.ErrStale)
	wantErr(t, s.RecordWebhookAttempt(ctx, store.WebhookAttempt{Webhook: "wh-1", EventID: "ev-9", At: at}, store.DeliveryDelivered, 1, at), store.ErrNotFound)
	if got, want := due(at.Add(time.Second)), []string{"wh-2/ev-1", "wh-1/ev-2"}; !slices.Equal(got, want) {
		t.Fatalf("due after a failed attempt: got %v, want %v", got, want)
	}
	ok := store.WebhookAttempt{Webhook: "wh-1", EventID: "ev-1", At: at.Add(10 * time.Second), Status: 204, Duration: 20 * time.Millisecond}
	must(t, s.RecordWebhookAttempt(ctx, ok, store.DeliveryDelivered, 2, at.Add(10*time.Second)))
	gone := store.WebhookAttempt{Webhook: "wh-1", EventID: "ev-2", At: at.Add(10 * time.Second), Error: "connection refused"}
	must(t, s.RecordWebhookAttempt(ctx, gone, store.DeliveryFailed, 1, at.Add(10*time.Second)))
	if got := due(at.Add(time.Hour)); !slices.Equal(got, []string{"wh-2/ev-1"}) {
		t.Fatalf("due after delivery and failure: got %v, want only wh-2/ev-1", got)
	}

	// A disabled subscription's deliveries wait.
	must(t, s.SetWebhookEnabled(ctx, "wh-2", false))
	if got := due(at.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("due with wh-2 disabled: got %v, want none", got)
	}
	wantErr(t, s.SetWebhookEnabled(ctx, "wh-nope", true), store.ErrNotFound)
	if w, err := s.GetWebhook(ctx, "wh-2"); err != nil || w.Enabled {
		t.Fatalf("GetWebhook after disabling: got %+v, %v", w, err)
	}

	log, err := s.WebhookDeliveries(ctx, "wh-1", 10)
	must(t, err)
	if len(log) != 2 || log[0].EventID != "ev-2" || log[1].EventID != "ev-1" {
		t.Fatalf("WebhookDeliveries: got %+v, want ev-2 then ev-1", log)
	}
	if log[0].State != store.DeliveryFailed || log[0].Attempts != 1 || len(log[0].History) != 1 || log[0].History[0].Error != "connection refused" {
		t.Fatalf("ev-2: got %+v, want failed after one refused attempt", log[0])
	}
	h := log[1].History
	if log[1].State != store.DeliveryDelivered || log[1].Attempts != 2 || len(h) != 2 ||
		h[0].Status != 503 || h[0].Duration != 1500*time.Millisecond || !h[0].At.Equal(at) || h[1].Status != 204 {
		t.Fatalf("ev-1: got %+v, want delivered on the second attempt after a 503", log[1])
	}
	if log, err := s.WebhookDeliveries(ctx, "wh-1", 1); err != nil || len(log) != 1 || log[0].EventID != "ev-2" {
		t.Fatalf("WebhookDeliveries limit 1: got %+v, %v", log, err)
	}

	// Deleting a subscription takes its outbox and log with it.
	must(t, s.DeleteWebhook(ctx, "wh-1"))
	wantErr(t, s.DeleteWebhook(ctx, "wh-1"), store.ErrNotFound)
	if log, err := s.WebhookDeliveries(ctx, "wh-1", 10); err != nil || len(log) != 0 {
		t.Fatalf("deliveries of a deleted webhook: got %+v, %v", log, err)
	}
	// Its id may be used again, and the old event is not remembered.
	must(t, s.CreateWebhook(ctx, vendor))
	must(t, s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{d("wh-1", "ev-1", at)}))
	if got := due(at); !slices.Equal(got, []string{"wh-1/ev-1"}) {
		t.Fatalf("due after re-creating wh-1: got %v", got)
	}
}

// OutboxRollsBack: a delivery enqueued in an Atomically call that fails
// is not stored. For stores whose Atomically is a transaction (not the
// in-memory one, which keeps nothing across a restart anyway).
func OutboxRollsBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateWebhook(ctx, store.Webhook{ID: "wh-1", Tenant: "acme", Kind: store.TenantVendor, URL: "https://x", Format: "cloudevents", Secret: "s", Enabled: true, CreatedAt: t0}))
	boom := errors.New("boom")
	err := s.Atomically(ctx, func(ctx context.Context) error {
		if err := s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{{Webhook: "wh-1", EventID: "ev-1", EventType: "release.halted",
			Body: []byte("{}"), State: store.DeliveryPending, NextAttempt: t0, CreatedAt: t0, UpdatedAt: t0}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Atomically: got %v, want boom", err)
	}
	ds, err := s.DueWebhookDeliveries(ctx, t0, 10)
	must(t, err)
	if len(ds) != 0 {
		t.Fatalf("a delivery of a rolled-back transaction is due: %+v", ds)
	}
}

// testChannelOrgs: an organisation follows a channel by a policy or by a
// device of its that reports it; revoked devices follow nothing.
func testChannelOrgs(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "fabrikam", Kind: store.TenantOrg, Name: "Fabrikam", CreatedAt: t0}))
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "gone", Kind: store.TenantOrg, Name: "Gone", CreatedAt: t0}))
	must(t, s.CreateChannel(ctx, store.Channel{ID: "acme/other", Vendor: "acme", Name: "other", Kind: store.ChannelContent, Category: "detection", CreatedAt: t0}))
	orgs := func(ch string) []string {
		t.Helper()
		out, err := s.ChannelOrgs(ctx, ch)
		must(t, err)
		return out
	}
	if got := orgs("acme/ipc"); len(got) != 0 {
		t.Fatalf("ChannelOrgs of a channel no one follows: got %v", got)
	}
	must(t, s.PutPolicy(ctx, store.Policy{Org: "fabrikam", Channel: "acme/ipc", Track: "ga", Windows: []string{}, UpdatedAt: t0}))
	d := store.Device{ID: "dev-1", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	g := store.Device{ID: "dev-2", Org: "gone", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	must(t, s.CreateDevices(ctx, []store.Device{d, g}))
	ch := []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: 292, LKGVersion: 292, State: "active", UpdatedAt: t0}}
	_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: d, Channels: ch}, {Device: g, Channels: ch}})
	must(t, err)
	must(t, s.RevokeDevice(ctx, "dev-2"))
	if got, want := orgs("acme/ipc"), []string{"contoso", "fabrikam"}; !slices.Equal(got, want) {
		t.Fatalf("ChannelOrgs: got %v, want %v", got, want)
	}
	if got := orgs("acme/other"); len(got) != 0 {
		t.Fatalf("ChannelOrgs of another channel: got %v", got)
	}
}

func webhookEqual(a, b store.Webhook) bool {
	return a.ID == b.ID && a.Tenant == b.Tenant && a.Kind == b.Kind && a.URL == b.URL && slices.Equal(a.Events, b.Events) &&
		a.Format == b.Format && a.Secret == b.Secret && a.Enabled == b.Enabled && a.CreatedAt.Equal(b.CreatedAt) && a.CreatedBy == b.CreatedBy
}
