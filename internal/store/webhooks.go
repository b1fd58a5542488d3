package store

import (
	"context"
	"time"
)

// Webhook is a subscription to notifications: the events of one vendor's
// releases and channels (Kind vendor), of the releases and channels one
// organisation follows (Kind org), or of everything (Tenant "", the
// operator's). Secret keys the HMAC each delivery is signed with; unlike
// a token's, it is kept as it is, because the server signs with it.
type Webhook struct {
	ID     string
	Tenant string     // "" for the operator's subscriptions
	Kind   TenantKind // vendor or org; "" with Tenant ""
	URL    string
	// Events are the event types delivered (release.halted, ...); empty
	// means all.
	Events    []string
	Format    string // cloudevents or slack
	Secret    string
	Enabled   bool
	CreatedAt time.Time
	CreatedBy string
}

// DeliveryState is where a webhook delivery is: pending until a receiver
// accepts it (delivered) or its attempts run out (failed).
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// WebhookDelivery is one event for one subscription in the outbox. It is
// written in the transaction of the change it reports, so a change that
// is stored is also notified; (Webhook, EventID) is unique, so enqueueing
// an event twice delivers it once.
type WebhookDelivery struct {
	Webhook   string
	EventID   string // the CloudEvents id: receivers de-duplicate on it
	EventType string
	// Body is exactly what is posted, rendered when enqueued, so that
	// every attempt sends the same bytes.
	Body        []byte
	State       DeliveryState
	Attempts    int
	NextAttempt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// History is the delivery's attempts, oldest first; filled by
	// WebhookDeliveries only.
	History []WebhookAttempt
}

// WebhookAttempt is one try at a delivery: the receiver's status code, or
// why there was none.
type WebhookAttempt struct {
	Webhook  string
	EventID  string
	At       time.Time
	Status   int // 0: no response (Error says why)
	Error    string
	Duration time.Duration // kept to the millisecond
}

// WebhookStore is the part of Store that keeps subscriptions and their
// outbox.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w Webhook) error
	GetWebhook(ctx context.Context, id string) (Webhook, error)
	// ListWebhooks lists every subscription, oldest first (by creation,
	// then id): there are few, and the server filters them.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	SetWebhookEnabled(ctx context.Context, id string, enabled bool) error
	// DeleteWebhook removes a subscription with its outbox and log.
	DeleteWebhook(ctx context.Context, id string) error
	// EnqueueWebhookDeliveries adds deliveries to the outbox; one whose
	// (Webhook, EventID) is there already is ignored.
	EnqueueWebhookDeliveries(ctx context.Context, ds []WebhookDelivery) error
	// DueWebhookDeliveries lists pending deliveries of enabled
	// subscriptions whose next attempt is at or before now, earliest
	// first, at most limit.
	DueWebhookDeliveries(ctx context.Context, now time.Time, limit int) ([]WebhookDelivery, error)
	// RecordWebhookAttempt logs an attempt and sets its delivery's state,
	// attempt count and next attempt, in one transaction. It returns
	// ErrStale if the delivery is no longer pending at attempts-1 attempts
	// (someone else recorded this attempt), ErrNotFound if it is gone.
	RecordWebhookAttempt(ctx context.Context, a WebhookAttempt, state DeliveryState, attempts int, next time.Time) error
	// WebhookDeliveries lists a subscription's deliveries, newest first,
	// at most limit, each with its attempts.
	WebhookDeliveries(ctx context.Context, webhook string, limit int) ([]WebhookDelivery, error)
	// ChannelOrgs lists the organisations that follow a channel: those
	// with a policy for it, or with a device that reports it; sorted.
	ChannelOrgs(ctx context.Context, channel string) ([]string, error)
}
