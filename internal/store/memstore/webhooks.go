package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Webhook subscriptions and their outbox: a few subscriptions, and
// deliveries kept in order of enqueueing.

// webhooks is every subscription with its deliveries.
type webhooks struct {
	subs       map[string]store.Webhook
	deliveries []*store.WebhookDelivery // enqueue order
	byKey      map[[2]string]*store.WebhookDelivery
}

func newWebhooks() webhooks {
	return webhooks{subs: map[string]store.Webhook{}, byKey: map[[2]string]*store.WebhookDelivery{}}
}

func copyWebhook(w store.Webhook) store.Webhook {
	w.Events = slices.Clone(w.Events)
	w.CreatedAt = norm(w.CreatedAt)
	return w
}

func copyDelivery(d store.WebhookDelivery) store.WebhookDelivery {
	d.Body = slices.Clone(d.Body)
	d.History = slices.Clone(d.History)
	return d
}

func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.webhooks.subs[w.ID]; ok {
		return fmt.Errorf("create webhook %s: %w", w.ID, store.ErrConflict)
	}
	if _, ok := st.tenants[w.Tenant]; w.Tenant != "" && !ok {
		return fmt.Errorf("create webhook %s: tenant %s: %w", w.ID, w.Tenant, store.ErrNotFound)
	}
	st.webhooks.subs[w.ID] = copyWebhook(w)
	return nil
}

func (s *Store) GetWebhook(ctx context.Context, id string) (store.Webhook, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Webhook{}, err
	}
	defer s.mu.RUnlock()
	w, ok := st.webhooks.subs[id]
	if !ok {
		return store.Webhook{}, fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
	}
	return copyWebhook(w), nil
}

func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Webhook
	for _, w := range st.webhooks.subs {
		out = append(out, copyWebhook(w))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Webhook) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (s *Store) SetWebhookEnabled(ctx context.Context, id string, enabled bool) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	w, ok := st.webhooks.subs[id]
	if !ok {
		return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
	}
	w.Enabled = enabled
	st.webhooks.subs[id] = w
	return nil
}

func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.webhooks.subs[id]; !ok {
		return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
	}
	delete(st.webhooks.subs, id)
	st.webhooks.deliveries = slices.DeleteFunc(st.webhooks.deliveries, func(d *store.WebhookDelivery) bool {
		if d.Webhook == id {
			delete(st.webhooks.byKey, [2]string{d.Webhook, d.EventID})
			return true
		}
		return false
	})
	return nil
}

func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, d := range ds {
		if _, ok := st.webhooks.subs[d.Webhook]; !ok {
			return fmt.Errorf("enqueue delivery of %s: webhook %s: %w", d.EventID, d.Webhook, store.ErrNotFound)
		}
	}
	for _, d := range ds {
		k := [2]string{d.Webhook, d.EventID}
		if st.webhooks.byKey[k] != nil {
			continue
		}
		d = copyDelivery(d)
		d.History = nil
		d.NextAttempt, d.CreatedAt, d.UpdatedAt = norm(d.NextAttempt), norm(d.CreatedAt), norm(d.UpdatedAt)
		st.webhooks.deliveries = append(st.webhooks.deliveries, &d)
		st.webhooks.byKey[k] = &d
	}
	return nil
}

func (s *Store) DueWebhookDeliveries(ctx context.Context, now time.Time, limit int) ([]store.WebhookDelivery, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.WebhookDelivery
	at := ms(now)
	for _, d := range st.webhooks.deliveries {
		if d.State == store.DeliveryPending && ms(d.NextAttempt) <= at && st.webhooks.subs[d.Webhook].Enabled {
			c := copyDelivery(*d)
			c.History = nil
			out = append(out, c)
		}
	}
	s.mu.RUnlock()
	// Stable: deliveries due at the same time keep their enqueue order.
	slices.SortStableFunc(out, func(a, b store.WebhookDelivery) int { return a.NextAttempt.Compare(b.NextAttempt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *Store) RecordWebhookAttempt(ctx context.Context, a store.WebhookAttempt, state store.DeliveryState, attempts int, next time.Time) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	d := st.webhooks.byKey[[2]string{a.Webhook, a.EventID}]
	if d == nil {
		return fmt.Errorf("delivery of %s to %s: %w", a.EventID, a.Webhook, store.ErrNotFound)
	}
	if d.State != store.DeliveryPending || d.Attempts != attempts-1 {
		return fmt.Errorf("delivery of %s to %s at attempt %d: %w", a.EventID, a.Webhook, attempts, store.ErrStale)
	}
	a.At, a.Duration = norm(a.At), a.Duration.Truncate(time.Millisecond)
	d.History = append(d.History, a)
	d.State, d.Attempts, d.NextAttempt, d.UpdatedAt = state, attempts, norm(next), a.At
	return nil
}

func (s *Store) WebhookDeliveries(ctx context.Context, webhook string, limit int) ([]store.WebhookDelivery, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.WebhookDelivery
	for i := len(st.webhooks.deliveries) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if d := st.webhooks.deliveries[i]; d.Webhook == webhook {
			out = append(out, copyDelivery(*d))
		}
	}
	return out, nil
}
