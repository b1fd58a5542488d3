package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Webhook subscriptions, their outbox and its attempts.

const webhookColumns = `id, tenant, kind, url, events, format, secret, enabled, created_at, created_by`

func scanWebhook(sc interface{ Scan(...any) error }) (store.Webhook, error) {
	var w store.Webhook
	var kind, events string
	var at int64
	if err := sc.Scan(&w.ID, &w.Tenant, &kind, &w.URL, &events, &w.Format, &w.Secret, &w.Enabled, &at, &w.CreatedBy); err != nil {
		return w, err
	}
	w.Kind, w.CreatedAt = store.TenantKind(kind), fromMS(at)
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return w, fmt.Errorf("webhook %s: stored events: %w", w.ID, err)
	}
	return w, nil
}

func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if w.Tenant != "" {
		// The tenant is checked here rather than by a foreign key: the
		// operator's subscriptions have none.
		if _, err := s.GetTenant(ctx, w.Tenant); err != nil {
			return fmt.Errorf("create webhook %s: %w", w.ID, err)
		}
	}
	events, _ := json.Marshal(w.Events)
	if w.Events == nil {
		events = []byte("[]")
	}
	_, err := s.exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Tenant, string(w.Kind), w.URL, string(events), w.Format, w.Secret, w.Enabled, ms(w.CreatedAt), w.CreatedBy)
	if err != nil {
		return fmt.Errorf("create webhook %s: %w", w.ID, err)
	}
	return nil
}

func (s *Store) GetWebhook(ctx context.Context, id string) (store.Webhook, error) {
	w, err := scanWebhook(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`), id))
	if err != nil {
		return w, fmt.Errorf("webhook %s: %w", id, s.wrap(err))
	}
	return w, nil
}

func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, w)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) SetWebhookEnabled(ctx context.Context, id string, enabled bool) error {
	r, err := s.exec(ctx, `UPDATE webhooks SET enabled = ? WHERE id = ?`, enabled, id)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", id, err)
	}
	return notFoundIfNone(r, "webhook "+id)
}

func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Explicitly, not only by ON DELETE CASCADE: SQLite databases
		// opened without foreign keys would keep the rows.
		for _, q := range []string{`DELETE FROM webhook_attempts WHERE webhook = ?`, `DELETE FROM webhook_outbox WHERE webhook = ?`} {
			if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
				return fmt.Errorf("delete webhook %s: %w", id, err)
			}
		}
		r, err := tx.ExecContext(ctx, s.q(`DELETE FROM webhooks WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, err)
		}
		return notFoundIfNone(r, "webhook "+id)
	})
}

func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO webhook_outbox (webhook, event_id, event_type, body, state, attempts, next_attempt, created_at, updated_at)
				SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?)
				ON CONFLICT (webhook, event_id) DO NOTHING`),
				d.Webhook, d.EventID, d.EventType, d.Body, string(d.State), d.Attempts, ms(d.NextAttempt), ms(d.CreatedAt), ms(d.UpdatedAt), d.Webhook)
			if err != nil {
				return fmt.Errorf("enqueue delivery of %s to %s: %w", d.EventID, d.Webhook, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				if _, err := s.GetWebhook(ctx, d.Webhook); err != nil {
					return fmt.Errorf("enqueue delivery of %s: %w", d.EventID, err)
				}
			}
		}
		return nil
	})
	return s.wrap(err)
}

const deliveryColumns = `o.webhook, o.event_id, o.event_type, o.body, o.state, o.attempts, o.next_attempt, o.created_at, o.updated_at`

func scanDelivery(sc interface{ Scan(...any) error }) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var state string
	var next, created, updated int64
	if err := sc.Scan(&d.Webhook, &d.EventID, &d.EventType, &d.Body, &state, &d.Attempts, &next, &created, &updated); err != nil {
		return d, err
	}
	d.State, d.NextAttempt, d.CreatedAt, d.UpdatedAt = store.DeliveryState(state), fromMS(next), fromMS(created), fromMS(updated)
	return d, nil
}

func (s *Store) deliveries(ctx context.Context, query string, args ...any) ([]store.WebhookDelivery, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("webhook deliveries: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, d)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) DueWebhookDeliveries(ctx context.Context, now time.Time, limit int) ([]store.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	return s.deliveries(ctx, `SELECT `+deliveryColumns+` FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook
		WHERE o.state = 'pending' AND o.next_attempt <= ? AND w.enabled ORDER BY o.next_attempt, o.seq LIMIT ?`, ms(now), limit)
}

func (s *Store) RecordWebhookAttempt(ctx context.Context, a store.WebhookAttempt, state store.DeliveryState, attempts int, next time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q(`UPDATE webhook_outbox SET state = ?, attempts = ?, next_attempt = ?, updated_at = ?
			WHERE webhook = ? AND event_id = ? AND state = 'pending' AND attempts = ?`),
			string(state), attempts, ms(next), ms(a.At), a.Webhook, a.EventID, attempts-1)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM webhook_outbox WHERE webhook = ? AND event_id = ?`), a.Webhook, a.EventID).Scan(&one); err != nil {
				return err // sql.ErrNoRows: not found
			}
			return fmt.Errorf("at attempt %d: %w", attempts, store.ErrStale)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO webhook_attempts (webhook, event_id, attempt, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			a.Webhook, a.EventID, attempts, ms(a.At), a.Status, a.Error, a.Duration.Milliseconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("delivery of %s to %s: %w", a.EventID, a.Webhook, s.wrap(err))
	}
	return nil
}

func (s *Store) WebhookDeliveries(ctx context.Context, webhook string, limit int) ([]store.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	out, err := s.deliveries(ctx, `SELECT `+deliveryColumns+` FROM webhook_outbox o WHERE o.webhook = ? ORDER BY o.seq DESC LIMIT ?`, webhook, limit)
	if err != nil || len(out) == 0 {
		return out, err
	}
	idx := map[string]int{}
	for i, d := range out {
		idx[d.EventID] = i
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT event_id, at, status, error, duration_ms FROM webhook_attempts WHERE webhook = ? ORDER BY event_id, attempt`), webhook)
	if err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", s.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		a := store.WebhookAttempt{Webhook: webhook}
		var at, dur int64
		if err := rows.Scan(&a.EventID, &at, &a.Status, &a.Error, &dur); err != nil {
			return nil, s.wrap(err)
		}
		a.At, a.Duration = fromMS(at), time.Duration(dur)*time.Millisecond
		if i, ok := idx[a.EventID]; ok {
			out[i].History = append(out[i].History, a)
		}
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) ChannelOrgs(ctx context.Context, channel string) ([]string, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT org FROM policies WHERE channel = ?
		UNION SELECT d.org FROM device_channels c JOIN devices d ON d.id = c.device WHERE c.channel = ? AND NOT d.revoked
		ORDER BY 1`), channel, channel)
	if err != nil {
		return nil, fmt.Errorf("organisations on %s: %w", channel, s.wrap(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var org string
		if err := rows.Scan(&org); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, org)
	}
	return out, s.wrap(rows.Err())
}
