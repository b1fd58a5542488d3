package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/store"
)

// Webhook subscriptions as the admin API shows them (docs/webhooks.md).
// Who may manage one is who may change its scope: a vendor's publishers
// theirs, an organisation's admins theirs, the operator's admins all, and
// only they the operator's own (no tenant, every event). Who may read a
// scope sees its subscriptions and their delivery logs.

func (s *Server) webhookRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/webhooks", s.api(s.createWebhook))
	mux.Handle("GET /v1/webhooks", s.api(s.listWebhooks))
	mux.Handle("GET /v1/webhooks/{id}", s.api(s.getWebhook))
	mux.Handle("DELETE /v1/webhooks/{id}", s.api(s.deleteWebhook))
	mux.Handle("PUT /v1/webhooks/{id}/enabled", s.api(s.enableWebhook))
	mux.Handle("GET /v1/webhooks/{id}/deliveries", s.api(s.webhookDeliveries))
}

// WebhookInfo is a subscription. Secret is shown once, when it is
// created; URL in full only to who may manage the subscription (a Slack
// URL is itself a credential), to others as scheme and host.
type WebhookInfo struct {
	ID      string   `json:"id,omitempty"`
	Vendor  string   `json:"vendor,omitempty"`
	Org     string   `json:"org,omitempty"`
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Format  string   `json:"format,omitempty"`
	Enabled *bool    `json:"enabled,omitempty"`
	Secret  string   `json:"secret,omitempty"`
	// Operator is set on the operator's own subscriptions.
	Operator  bool      `json:"operator,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// maxWebhookURL bounds a subscription's URL.
const maxWebhookURL = 2048

// checkWebhookURL accepts absolute http and https URLs with a host.
func checkWebhookURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, badRequest("url: say where to deliver, an http:// or https:// URL")
	}
	if len(raw) > maxWebhookURL {
		return nil, badRequest("url: longer than %d characters", maxWebhookURL)
	}
	if at, c, bad := unprintable(raw); bad {
		return nil, badRequest("url: character %U at byte %d is not allowed", c, at)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, badRequest("url: %q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, badRequest("url: scheme %q is not allowed; webhooks are delivered over http:// or https:// only", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, badRequest("url: %q names no host", raw)
	}
	if u.Fragment != "" {
		return nil, badRequest("url: a fragment (#%s) is never sent; leave it out", u.Fragment)
	}
	return u, nil
}

// redactURL is a URL as shown to who may only read the subscription.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req WebhookInfo
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	var tenant string
	var kind store.TenantKind
	switch {
	case req.Vendor != "" && req.Org != "":
		return badRequest("vendor, org: a subscription is a vendor's or an organisation's, not both")
	case req.Vendor != "":
		// Checked before the tenant is looked up, so that only who may
		// manage a scope learns whether it exists.
		if !p.vendorAccess(req.Vendor, true) {
			return forbidden("token may not manage webhooks of vendor %q", req.Vendor)
		}
		tenant, kind = req.Vendor, store.TenantVendor
	case req.Org != "":
		if !p.orgAccess(req.Org, true) {
			return forbidden("token may not manage webhooks of organisation %q", req.Org)
		}
		tenant, kind = req.Org, store.TenantOrg
	default:
		if !p.isAdmin() {
			return forbidden("say vendor or org: only the operator's admin tokens subscribe to every event")
		}
	}
	u, err := checkWebhookURL(req.URL)
	if err != nil {
		return err
	}
	// Names are checked where they are dialled (notify.NewClient); an
	// address written out is refused now, where the subscriber sees why.
	if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !notify.Public(a) && !s.cfg.WebhookAllowPrivate {
		return badRequest("url: %s is not a public address; this server delivers to loopback, private and link-local addresses only when started with --webhook-allow-private", u.Hostname())
	}
	events, err := webhookEvents(req.Events, tenant == "")
	if err != nil {
		return err
	}
	format := req.Format
	if format == "" {
		format = notify.FormatCloudEvents
	}
	if format != notify.FormatCloudEvents && format != notify.FormatSlack {
		return badRequest("format: want %s or %s, got %q", notify.FormatCloudEvents, notify.FormatSlack, req.Format)
	}
	enabled := req.Enabled == nil || *req.Enabled
	if tenant != "" {
		t, err := s.store.GetTenant(r.Context(), tenant)
		if err != nil || t.Kind != kind {
			if err != nil && !isNotFound(err) {
				return storeError("tenant "+tenant, err)
			}
			return badRequest("%s: %q is not a %s", kindField(kind), tenant, kindWord(kind))
		}
	}
	hook := store.Webhook{ID: "wh-" + secret(8), Tenant: tenant, Kind: kind, URL: u.String(), Events: events, Format: format,
		Secret: "rfw_" + secret(32), Enabled: enabled, CreatedAt: s.now(), CreatedBy: p.TokenID}
	why := fmt.Sprintf("%s to %s, %s, events %s", scopeWords(hook), redactURL(hook.URL), format, eventWords(events))
	if err := s.audited(r.Context(), p, "webhook.create", hook.ID, why, func(ctx context.Context) error {
		return asStoreError("webhook", s.store.CreateWebhook(ctx, hook))
	}); err != nil {
		return err
	}
	out := toWebhookInfo(hook, true)
	out.Secret = hook.Secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func kindField(k store.TenantKind) string {
	if k == store.TenantOrg {
		return "org"
	}
	return "vendor"
}

func kindWord(k store.TenantKind) string {
	if k == store.TenantOrg {
		return "organisation"
	}
	return "vendor"
}

func scopeWords(h store.Webhook) string {
	if h.Tenant == "" {
		return "operator"
	}
	return kindWord(h.Kind) + " " + h.Tenant
}

func eventWords(events []string) string {
	if len(events) == 0 {
		return "all"
	}
	return strings.Join(events, ",")
}

// webhookEvents checks a subscription's event filter: known types (with
// or without the CloudEvents prefix), each once; only the operator's
// subscriptions hear of the audit log.
func webhookEvents(in []string, operator bool) ([]string, error) {
	out := []string{}
	for i, e := range in {
		e = strings.TrimPrefix(e, notify.TypePrefix)
		if !notify.KnownType(e) {
			return nil, badRequest("events[%d]: %q is not an event type; want one of %s", i, in[i], strings.Join(notify.Types, ", "))
		}
		if e == notify.AuditVerifyFailed && !operator {
			return nil, badRequest("events[%d]: %s goes to the operator's subscriptions only", i, e)
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func toWebhookInfo(h store.Webhook, manage bool) WebhookInfo {
	enabled := h.Enabled
	out := WebhookInfo{ID: h.ID, URL: h.URL, Events: h.Events, Format: h.Format, Enabled: &enabled,
		Operator: h.Tenant == "", CreatedAt: h.CreatedAt, CreatedBy: h.CreatedBy}
	if out.Events == nil {
		out.Events = []string{}
	}
	switch h.Kind {
	case store.TenantVendor:
		out.Vendor = h.Tenant
	case store.TenantOrg:
		out.Org = h.Tenant
	}
	if !manage {
		out.URL = redactURL(h.URL)
	}
	return out
}

// webhookAccess: may p read (or, with write, manage) a subscription?
// The same rules as for the scope's other resources.
func webhookAccess(p Principal, h store.Webhook, write bool) bool {
	switch {
	case h.Tenant == "":
		return p.isAdmin()
	case h.Kind == store.TenantVendor:
		return p.vendorAccess(h.Tenant, write)
	default:
		return p.orgAccess(h.Tenant, write)
	}
}

// webhookFor loads a subscription the principal may see; another scope's
// is not found, so that ids do not leak across tenants.
func (s *Server) webhookFor(ctx context.Context, p Principal, id string, write bool) (store.Webhook, error) {
	h, err := s.store.GetWebhook(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return h, notFound("webhook %s", id)
		}
		return h, storeError("webhook", err)
	}
	if !webhookAccess(p, h, false) {
		return h, notFound("webhook %s", id)
	}
	if write && !webhookAccess(p, h, true) {
		return h, forbidden("token may not manage webhooks of %s", scopeWords(h))
	}
	return h, nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p Principal) error {
	hs, err := s.store.ListWebhooks(r.Context())
	if err != nil {
		return storeError("webhooks", err)
	}
	q := r.URL.Query()
	out := []WebhookInfo{}
	for _, h := range hs {
		if !webhookAccess(p, h, false) {
			continue
		}
		if (q.Get("vendor") != "" && (h.Kind != store.TenantVendor || h.Tenant != q.Get("vendor"))) ||
			(q.Get("org") != "" && (h.Kind != store.TenantOrg || h.Tenant != q.Get("org"))) {
			continue
		}
		out = append(out, toWebhookInfo(h, webhookAccess(p, h, true)))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	h, err := s.webhookFor(r.Context(), p, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toWebhookInfo(h, webhookAccess(p, h, true)))
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	h, err := s.webhookFor(r.Context(), p, r.PathValue("id"), true)
	if err != nil {
		return err
	}
	if err := s.audited(r.Context(), p, "webhook.delete", h.ID, scopeWords(h)+" to "+redactURL(h.URL), func(ctx context.Context) error {
		return asStoreError("webhook "+h.ID, s.store.DeleteWebhook(ctx, h.ID))
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": h.ID, "deleted": true})
	return nil
}

func (s *Server) enableWebhook(w http.ResponseWriter, r *http.Request, p Principal) error {
	h, err := s.webhookFor(r.Context(), p, r.PathValue("id"), true)
	if err != nil {
		return err
	}
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return badRequest("enabled: say true or false")
	}
	action := "webhook.disable"
	if *req.Enabled {
		action = "webhook.enable"
	}
	if err := s.audited(r.Context(), p, action, h.ID, scopeWords(h), func(ctx context.Context) error {
		return asStoreError("webhook "+h.ID, s.store.SetWebhookEnabled(ctx, h.ID, *req.Enabled))
	}); err != nil {
		return err
	}
	h.Enabled = *req.Enabled
	if h.Enabled {
		s.wakeWebhooks() // deliveries that waited while it was disabled
	}
	writeJSON(w, http.StatusOK, toWebhookInfo(h, true))
	return nil
}

// DeliveryInfo is one event's delivery to a subscription, with its
// attempts, newest delivery first.
type DeliveryInfo struct {
	EventID     string        `json:"event_id"`
	EventType   string        `json:"event_type"`
	State       string        `json:"state"`
	Attempts    []AttemptInfo `json:"attempts"`
	NextAttempt *time.Time    `json:"next_attempt,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
}

// AttemptInfo is one try: the receiver's status code, or why none came.
type AttemptInfo struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, p Principal) error {
	h, err := s.webhookFor(r.Context(), p, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit: want a number from 1 to 1000, got %q", v)
		}
		limit = n
	}
	ds, err := s.store.WebhookDeliveries(r.Context(), h.ID, limit)
	if err != nil {
		return storeError("webhook deliveries", err)
	}
	out := []DeliveryInfo{}
	for _, d := range ds {
		di := DeliveryInfo{EventID: d.EventID, EventType: d.EventType, State: string(d.State), Attempts: []AttemptInfo{}, CreatedAt: d.CreatedAt}
		if d.State == store.DeliveryPending {
			next := d.NextAttempt
			di.NextAttempt = &next
		}
		for _, a := range d.History {
			di.Attempts = append(di.Attempts, AttemptInfo{At: a.At, Status: a.Status, Error: a.Error, DurationMS: a.Duration.Milliseconds()})
		}
		out = append(out, di)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
