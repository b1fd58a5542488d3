package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// Notifications: each change that subscribers hear of (a release halted,
// awaiting approval, completed or rolled back; a kill switch engaged or
// released; the audit log failing to verify) writes one outbox row per
// matching subscription in the transaction of the change itself
// (store.Atomically), so a stored change is always notified, whatever
// happens to the process after. The sender loop then delivers the rows,
// at least once, with back-off; receivers de-duplicate on the event id.
//
// Who hears of what (docs/webhooks.md):
//   - a vendor's subscriptions: its releases and its channels' kill
//     switches, and the global kill switch;
//   - an organisation's: the releases and channel kill switches of the
//     channels it follows (a policy for the channel, or a device of its
//     that reports it: store.ChannelOrgs), and the global kill switch;
//   - the operator's: everything, the audit log included.

// notice is one event and who it concerns.
type notice struct {
	event notify.Event
	// vendor's subscriptions hear of it; so do those of the
	// organisations following channel ("" none), and everyone's when
	// everyone is set.
	vendor, channel string
	everyone        bool
}

// releaseNotices are the events an update of rel with these audit
// entries makes: one per entry whose action is one subscribers hear of.
// revision is the release's revision once updated: with the action, it
// names the change, so the event id is the same however often the change
// is enqueued.
func (s *Server) releaseNotices(rel store.Release, revision int64, audit []store.AuditEntry) []notice {
	var out []notice
	for _, e := range audit {
		typ, ok := releaseEventTypes[e.Action]
		if !ok {
			continue
		}
		vendor, _, _ := strings.Cut(rel.Channel, "/")
		wave := rel.Wave
		d := notify.Data{Release: rel.ID, Channel: rel.Channel, Version: rel.Version, State: string(rel.State), Wave: &wave,
			Reason: e.Reason, Actor: e.Actor}
		if plan, err := rollout.ParsePlan(rel.Plan); err == nil && wave >= 0 && wave < len(plan.Waves) {
			d.WaveName = plan.Waves[wave].Name
		}
		id := fmt.Sprintf("%s/%s/%d", rel.ID, typ, revision)
		out = append(out, notice{event: notify.NewEvent(id, typ, s.cfg.BaseURL+"/v1/releases/"+rel.ID, rel.ID, e.Time, d),
			vendor: vendor, channel: rel.Channel})
	}
	return out
}

// releaseEventTypes maps the audit log's release actions to event types.
var releaseEventTypes = map[string]string{
	"release.halt":           notify.ReleaseHalted,
	"release.await-approval": notify.ReleaseAwaitingApproval,
	"release.complete":       notify.ReleaseCompleted,
	"release.rolled-back":    notify.ReleaseRolledBack,
}

// updateRelease is store.UpdateRelease with the notifications of the
// change enqueued in its transaction.
func (s *Server) updateRelease(ctx context.Context, rel store.Release, audit ...store.AuditEntry) (int64, error) {
	ns := s.releaseNotices(rel, rel.Revision+1, audit)
	if len(ns) == 0 {
		return s.store.UpdateRelease(ctx, rel, audit...)
	}
	var rev int64
	err := s.store.Atomically(ctx, func(ctx context.Context) error {
		var err error
		if rev, err = s.store.UpdateRelease(ctx, rel, audit...); err != nil {
			return err
		}
		return s.enqueue(ctx, ns...)
	})
	if err != nil {
		return 0, err
	}
	s.wakeWebhooks()
	return rev, nil
}

// killSwitchNotice is the event of a kill switch set so.
func (s *Server) killSwitchNotice(k store.KillSwitch) notice {
	typ, path := notify.KillSwitchReleased, "/v1/kill-switch"
	if k.Engaged {
		typ = notify.KillSwitchEngaged
	}
	n := notice{everyone: k.Scope == "*"}
	if !n.everyone {
		n.vendor, _, _ = strings.Cut(k.Scope, "/")
		n.channel = k.Scope
		path = "/v1/channels/" + k.Scope + "/kill-switch"
	}
	id := fmt.Sprintf("kill-switch/%s/%s/%d", k.Scope, strings.TrimPrefix(typ, "kill-switch."), k.At.UnixMilli())
	n.event = notify.NewEvent(id, typ, s.cfg.BaseURL+path, k.Scope, k.At, notify.Data{Scope: k.Scope, Reason: k.Reason, Actor: k.Actor})
	return n
}

// notifyAuditBroken tells the operator's subscriptions that the audit
// log does not verify. The event id names the broken entry and why, so
// that each later verification finding the same break adds nothing.
func (s *Server) notifyAuditBroken(ctx context.Context, v AuditVerdict) {
	h := sha256.Sum256([]byte(v.Reason))
	id := fmt.Sprintf("audit/broken/%d/%s", v.BrokenSeq, hex.EncodeToString(h[:6]))
	n := notice{event: notify.NewEvent(id, notify.AuditVerifyFailed, s.cfg.BaseURL+"/v1/audit", "audit", s.now(),
		notify.Data{AuditSeq: v.BrokenSeq, Reason: v.Reason})}
	if err := s.enqueue(ctx, n); err != nil {
		s.log.Error("audit log does not verify, and its notification was not stored", "seq", v.BrokenSeq, "err", err)
		return
	}
	s.wakeWebhooks()
}

// enqueue writes a delivery of each notice for every enabled subscription
// it concerns. Called inside the change's transaction.
func (s *Server) enqueue(ctx context.Context, ns ...notice) error {
	hooks, err := s.store.ListWebhooks(ctx)
	if err != nil || len(hooks) == 0 {
		return err
	}
	now := s.now()
	following := map[string][]string{} // channel → organisations, asked once
	var ds []store.WebhookDelivery
	for _, n := range ns {
		typ := n.event.ShortType()
		for _, h := range hooks {
			if !h.Enabled || (len(h.Events) > 0 && !slices.Contains(h.Events, typ)) {
				continue
			}
			ok, err := s.concerns(ctx, h, n, following)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			body, _, err := n.event.Body(h.Format)
			if err != nil {
				return fmt.Errorf("webhook %s: %w", h.ID, err)
			}
			ds = append(ds, store.WebhookDelivery{Webhook: h.ID, EventID: n.event.ID, EventType: typ, Body: body,
				State: store.DeliveryPending, NextAttempt: now, CreatedAt: now, UpdatedAt: now})
		}
	}
	if err := s.store.EnqueueWebhookDeliveries(ctx, ds); err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

// concerns says whether subscription h hears of notice n.
func (s *Server) concerns(ctx context.Context, h store.Webhook, n notice, following map[string][]string) (bool, error) {
	switch {
	case h.Tenant == "":
		return true, nil
	case n.event.ShortType() == notify.AuditVerifyFailed:
		return false, nil
	case n.everyone:
		return true, nil
	case h.Kind == store.TenantVendor:
		return h.Tenant == n.vendor, nil
	case h.Kind == store.TenantOrg && n.channel != "":
		orgs, ok := following[n.channel]
		if !ok {
			var err error
			if orgs, err = s.store.ChannelOrgs(ctx, n.channel); err != nil {
				return false, fmt.Errorf("organisations following %s: %w", n.channel, err)
			}
			following[n.channel] = orgs
		}
		return slices.Contains(orgs, h.Tenant), nil
	}
	return false, nil
}

// --- delivery ---

// webhookSender is the sender loop's state.
type webhookSender struct {
	wake chan struct{}
	// pass serialises delivery passes: the loop's and a test's.
	pass   sync.Mutex
	sender notify.Sender
}

// webhookBatch is how many due deliveries one pass takes, and
// webhookParallel how many it sends at once: one slow receiver holds up
// neither the others nor the next pass for long.
const (
	webhookBatch    = 100
	webhookParallel = 8
)

func (s *Server) wakeWebhooks() {
	select {
	case s.hooks.wake <- struct{}{}:
	default:
	}
}

// webhookLoop delivers the outbox on the replica that holds the
// controller lease (so one replica sends; the store also refuses to
// record one attempt twice): at every WebhookPoll, and at once when a
// change enqueued something.
func (s *Server) webhookLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.WebhookPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.hooks.wake:
		}
		if !s.IsController() {
			continue
		}
		for {
			n, err := s.DeliverWebhooks(ctx)
			if err != nil && ctx.Err() == nil {
				s.markStore(err)
				s.log.Warn("webhook delivery pass failed", "err", err)
			}
			if err != nil || n < webhookBatch || ctx.Err() != nil {
				break
			}
		}
	}
}

// DeliverWebhooks makes one pass over the outbox: every delivery due by
// the server's clock is attempted once, and its outcome recorded. It
// returns how many it attempted. The loop calls it; tests call it when
// their clock says a retry is due.
func (s *Server) DeliverWebhooks(ctx context.Context) (int, error) {
	s.hooks.pass.Lock()
	defer s.hooks.pass.Unlock()
	due, err := s.store.DueWebhookDeliveries(ctx, s.now(), webhookBatch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	hooks, err := s.store.ListWebhooks(ctx)
	if err != nil {
		return 0, err
	}
	byID := map[string]store.Webhook{}
	for _, h := range hooks {
		byID[h.ID] = h
	}
	// One goroutine per subscription sends its deliveries in order (a
	// receiver that is up sees events in the order they happened);
	// subscriptions are served side by side.
	var order []string
	bySub := map[string][]store.WebhookDelivery{}
	for _, d := range due {
		if _, ok := byID[d.Webhook]; !ok {
			continue // deleted since
		}
		if _, ok := bySub[d.Webhook]; !ok {
			order = append(order, d.Webhook)
		}
		bySub[d.Webhook] = append(bySub[d.Webhook], d)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	slots := make(chan struct{}, webhookParallel)
	for _, id := range order {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			for _, d := range bySub[id] {
				if err := s.attempt(ctx, byID[id], d); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

// attempt sends one delivery and records the outcome.
func (s *Server) attempt(ctx context.Context, h store.Webhook, d store.WebhookDelivery) error {
	_, contentType, err := notify.Event{}.Body(h.Format)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", h.ID, err)
	}
	at := s.now()
	res := s.hooks.sender.Send(ctx, h.URL, contentType, h.Secret, d.Body,
		map[string]string{"Ringfence-Event-Id": d.EventID, "Ringfence-Event-Type": notify.TypePrefix + d.EventType, "Ringfence-Webhook-Id": h.ID})
	if ctx.Err() != nil {
		return nil // shutting down: the attempt did not happen, as far as the outbox knows
	}
	a := store.WebhookAttempt{Webhook: h.ID, EventID: d.EventID, At: at, Status: res.Status, Duration: res.Duration}
	attempts := d.Attempts + 1
	state, next := store.DeliveryDelivered, at
	if !res.OK() {
		a.Error = attemptError(res)
		var done bool
		next, done = s.cfg.WebhookRetry.Next(s.now(), attempts, s.cfg.WebhookRand())
		state = store.DeliveryPending
		if done {
			state = store.DeliveryFailed
		}
	}
	// Logged by subscription and host, never the URL's path or query (a
	// Slack URL is a credential) nor the secret.
	log := s.log.With("webhook", h.ID, "host", hostOf(h.URL), "event", d.EventID, "attempt", attempts)
	switch err := s.store.RecordWebhookAttempt(ctx, a, state, attempts, next); {
	case errors.Is(err, store.ErrStale), isNotFound(err):
		return nil // another sender recorded it, or the subscription was deleted
	case err != nil:
		return fmt.Errorf("webhook %s, event %s: %w", h.ID, d.EventID, err)
	}
	switch state {
	case store.DeliveryDelivered:
		s.CountWebhookDelivery(WebhookDelivered)
	case store.DeliveryPending:
		s.CountWebhookDelivery(WebhookFailed)
		log.Info("webhook delivery failed; will retry", "status", res.Status, "err", a.Error, "next", next)
	case store.DeliveryFailed:
		s.CountWebhookDelivery(WebhookAbandoned)
		log.Warn("webhook delivery given up", "status", res.Status, "err", a.Error)
	}
	return nil
}

func attemptError(r notify.Result) string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("receiver answered %d", r.Status)
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

func defaultWebhookRand() float64 { return rand.Float64() }
