package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/whoami", s.api(func(w http.ResponseWriter, r *http.Request, p Principal) error {
		writeJSON(w, http.StatusOK, p)
		return nil
	}))
	mux.Handle("POST /v1/tenants", s.api(s.createTenant))
	mux.Handle("GET /v1/tenants", s.api(s.listTenants))
	mux.Handle("POST /v1/channels", s.api(s.createChannel))
	mux.Handle("GET /v1/channels", s.api(s.listChannels))
	mux.Handle("POST /v1/tokens", s.api(s.createToken))
	mux.Handle("GET /v1/tokens", s.api(s.listTokens))
	mux.Handle("DELETE /v1/tokens/{id}", s.api(s.revokeToken))
	mux.Handle("POST /v1/orgs/{org}/enroll-tokens", s.api(s.createEnrollToken))
	mux.Handle("GET /v1/orgs/{org}/enroll-tokens", s.api(s.listEnrollTokens))
	mux.Handle("POST /v1/orgs/{org}/enroll-tokens/{id}/revoke", s.api(s.revokeEnrollToken))
	mux.Handle("GET /v1/orgs/{org}/policies", s.api(s.listPolicies))
	mux.Handle("PUT /v1/orgs/{org}/policies/{vendor}/{channel}", s.api(s.putPolicy))
	mux.Handle("GET /v1/vendors/{vendor}/plans", s.api(s.listPlanTemplates))
	mux.Handle("PUT /v1/vendors/{vendor}/plans/{name}", s.api(s.putPlanTemplate))
	mux.Handle("DELETE /v1/vendors/{vendor}/plans/{name}", s.api(s.deletePlanTemplate))
	mux.Handle("GET /v1/devices", s.api(s.listDevices))
	mux.Handle("GET /v1/devices/{id}", s.api(s.getDevice))
	mux.Handle("POST /v1/devices/{id}/revoke", s.api(s.revokeDevice))
	mux.Handle("POST /v1/channels/{vendor}/{channel}/publish", s.api(s.publish))
	mux.Handle("POST /v1/releases", s.api(s.createRelease))
	mux.Handle("GET /v1/releases", s.api(s.listReleases))
	mux.Handle("GET /v1/releases/{id}", s.api(s.getRelease))
	mux.Handle("GET /v1/releases/{id}/status", s.api(s.releaseStatus))
	mux.Handle("POST /v1/releases/{id}/approve", s.api(s.releaseAction(ActApprove)))
	mux.Handle("POST /v1/releases/{id}/pause", s.api(s.releaseAction(ActPause)))
	mux.Handle("POST /v1/releases/{id}/resume", s.api(s.releaseAction(ActResume)))
	mux.Handle("POST /v1/releases/{id}/halt", s.api(s.releaseAction(ActHalt)))
	mux.Handle("POST /v1/releases/{id}/promote", s.api(s.releaseAction(ActPromote)))
	mux.Handle("GET /v1/kill-switches", s.api(s.listKillSwitches))
	mux.Handle("PUT /v1/kill-switch", s.api(s.setKillSwitch))
	mux.Handle("PUT /v1/channels/{vendor}/{channel}/kill-switch", s.api(s.setKillSwitch))
	mux.Handle("GET /v1/vendors/{vendor}/signing-request", s.api(s.signingRequest))
	mux.Handle("POST /v1/vendors/{vendor}/signatures", s.api(s.uploadSignatures))
	mux.Handle("GET /v1/orgs/{org}/budget", s.api(s.getBudget))
	mux.Handle("PUT /v1/orgs/{org}/budget", s.api(s.setBudget))
	mux.Handle("GET /v1/audit", s.api(s.listAudit))
	mux.Handle("GET /v1/audit/verify", s.api(s.handleAuditVerify))
	mux.Handle("GET /v1/audit/key", s.api(s.handleAuditKey))
	mux.Handle("GET /v1/audit/checkpoints", s.api(s.handleAuditCheckpoints))
}

// --- tenants and channels ---

// The admin API's wire types, shared with the CLI. Fields the server sets
// itself are omitted when zero, so that requests built from these types
// carry only what the client says; responses always have them set.

// TenantInfo is a vendor or an organisation.
type TenantInfo struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Internal  bool      `json:"internal,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.isAdmin() {
		return forbidden("only the operator's admin tokens create tenants")
	}
	var req TenantInfo
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if !validName(req.ID) {
		return badRequest("id: %q is not a valid name (lowercase letters, digits, '-', '_')", req.ID)
	}
	if req.Kind != string(store.TenantVendor) && req.Kind != string(store.TenantOrg) {
		return badRequest("kind: want vendor or org, got %q", req.Kind)
	}
	if err := checkText("name", req.Name, 200, true); err != nil {
		return err
	}
	if req.Internal && req.Kind != string(store.TenantOrg) {
		return badRequest("internal: only organisations are internal (the vendor's own machines)")
	}
	t := store.Tenant{ID: req.ID, Kind: store.TenantKind(req.Kind), Name: req.Name, Internal: req.Internal, CreatedAt: s.now()}
	if err := s.audited(r.Context(), p, "tenant.create", req.ID, req.Kind+" "+req.Name, func(ctx context.Context) error {
		return asStoreError("tenant "+req.ID, s.store.CreateTenant(ctx, t))
	}); err != nil {
		return err
	}
	s.changed(r.Context())
	writeJSON(w, http.StatusCreated, TenantInfo{ID: t.ID, Kind: string(t.Kind), Name: t.Name, Internal: t.Internal, CreatedAt: t.CreatedAt})
	return nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p Principal) error {
	ts, err := s.store.ListTenants(r.Context())
	if err != nil {
		return storeError("tenants", err)
	}
	out := []TenantInfo{}
	for _, t := range ts {
		if p.isAdmin() || t.ID == p.Tenant {
			out = append(out, TenantInfo{ID: t.ID, Kind: string(t.Kind), Name: t.Name, Internal: t.Internal, CreatedAt: t.CreatedAt})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ChannelInfo is a vendor's channel.
type ChannelInfo struct {
	ID         string `json:"id,omitempty"`
	Vendor     string `json:"vendor"`
	Name       string `json:"name"`
	Kind       string `json:"kind,omitempty"`
	Category   string `json:"category,omitempty"`
	Unpausable bool   `json:"unpausable"`
}

func toChannelInfo(c store.Channel) ChannelInfo {
	return ChannelInfo{ID: c.ID, Vendor: c.Vendor, Name: c.Name, Kind: string(c.Kind), Category: c.Category, Unpausable: c.Unpausable}
}

func (s *Server) createChannel(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req ChannelInfo
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if !p.vendorAccess(req.Vendor, true) {
		return forbidden("token may not create channels for vendor %q", req.Vendor)
	}
	if !validName(req.Name) {
		return badRequest("name: %q is not a valid name", req.Name)
	}
	if req.Kind == "" {
		req.Kind = string(store.ChannelContent)
	}
	if req.Kind != string(store.ChannelContent) && req.Kind != string(store.ChannelAgent) {
		return badRequest("kind: want content or agent, got %q", req.Kind)
	}
	if req.Category == "" {
		req.Category = "detection"
	}
	if !validName(req.Category) {
		return badRequest("category: %q is not a valid name", req.Category)
	}
	t, err := s.store.GetTenant(r.Context(), req.Vendor)
	if err != nil || t.Kind != store.TenantVendor {
		return badRequest("vendor: %q is not a vendor tenant", req.Vendor)
	}
	c := store.Channel{ID: req.Vendor + "/" + req.Name, Vendor: req.Vendor, Name: req.Name, Kind: store.ChannelKind(req.Kind),
		Category: req.Category, Unpausable: req.Unpausable, CreatedAt: s.now()}
	if err := s.audited(r.Context(), p, "channel.create", c.ID, fmt.Sprintf("kind %s, category %s, unpausable %v", c.Kind, c.Category, c.Unpausable), func(ctx context.Context) error {
		return asStoreError("channel "+c.ID, s.store.CreateChannel(ctx, c))
	}); err != nil {
		return err
	}
	s.changed(r.Context())
	writeJSON(w, http.StatusCreated, toChannelInfo(c))
	return nil
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, p Principal) error {
	cs, err := s.store.ListChannels(r.Context(), "")
	if err != nil {
		return storeError("channels", err)
	}
	orgRole := p.Role == store.RoleOrgAdmin || (p.Role == store.RoleViewer && s.tenantKind(p.Tenant) == store.TenantOrg)
	out := []ChannelInfo{}
	for _, c := range cs {
		// Organisations see every vendor's channels: releases on any of
		// them may touch their fleet.
		if p.isAdmin() || orgRole || p.vendorAccess(c.Vendor, false) {
			out = append(out, toChannelInfo(c))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) tenantKind(id string) store.TenantKind {
	if t, ok := s.snap.Load().tenants[id]; ok {
		return t.Kind
	}
	return ""
}

// --- tokens ---

// TokenInfo is an API token; the secret is shown only when it is created.
type TokenInfo struct {
	ID        string    `json:"id,omitempty"`
	Tenant    string    `json:"tenant"`
	Role      string    `json:"role"`
	Name      string    `json:"name"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	Revoked   bool      `json:"revoked"`
	// CreatedBy is the ID of the token that created it: approvals count
	// only from tokens whose creators are distinct (docs/rollout.md).
	CreatedBy string `json:"created_by,omitempty"`
}

var roleKinds = map[store.Role]store.TenantKind{
	store.RolePublisher: store.TenantVendor, store.RoleApprover: store.TenantVendor, store.RoleOrgAdmin: store.TenantOrg,
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req TokenInfo
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	role := store.Role(req.Role)
	switch role {
	case store.RoleAdmin, store.RolePublisher, store.RoleApprover, store.RoleOrgAdmin, store.RoleViewer:
	default:
		return badRequest("role: want admin, publisher, approver, org-admin or viewer, got %q", req.Role)
	}
	if role == store.RoleAdmin && req.Tenant != "" {
		return badRequest("tenant: admin tokens are the operator's and take no tenant")
	}
	// Org admins may hand out their own organisation's roles; everything
	// else is the operator's. Checked before the tenant is looked up, so
	// that only the operator learns which tenants exist.
	if !p.isAdmin() && !(p.Role == store.RoleOrgAdmin && p.Tenant == req.Tenant && (role == store.RoleOrgAdmin || role == store.RoleViewer)) {
		return forbidden("token may not create %s tokens for %q", role, req.Tenant)
	}
	if role != store.RoleAdmin {
		t, err := s.store.GetTenant(r.Context(), req.Tenant)
		if err != nil {
			return badRequest("tenant: %q does not exist", req.Tenant)
		}
		if want, ok := roleKinds[role]; ok && t.Kind != want {
			return badRequest("role %s belongs to %s tenants; %s is a %s", role, want, t.ID, t.Kind)
		}
	}
	if err := checkText("name", req.Name, 200, false); err != nil {
		return err
	}
	sec := "rft_" + secret(32)
	t := store.APIToken{ID: "tok-" + secret(8), Tenant: req.Tenant, Role: role, Name: req.Name, Hash: hashSecret(sec), CreatedAt: s.now(), CreatedBy: p.TokenID}
	if err := s.audited(r.Context(), p, "token.create", t.ID, fmt.Sprintf("%s for %q (%s)", role, req.Tenant, req.Name), func(ctx context.Context) error {
		return asStoreError("token", s.store.CreateAPIToken(ctx, t))
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TokenInfo{ID: t.ID, Tenant: t.Tenant, Role: string(t.Role), Name: t.Name, Token: sec, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy})
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenant := p.Tenant
	if p.isAdmin() {
		tenant = r.URL.Query().Get("tenant")
	} else if p.Role != store.RoleOrgAdmin {
		return forbidden("token may not list tokens")
	}
	ts, err := s.store.ListAPITokens(r.Context(), tenant)
	if err != nil {
		return storeError("tokens", err)
	}
	out := []TokenInfo{}
	for _, t := range ts {
		if p.isAdmin() || t.Tenant == p.Tenant {
			out = append(out, TokenInfo{ID: t.ID, Tenant: t.Tenant, Role: string(t.Role), Name: t.Name, CreatedAt: t.CreatedAt, Revoked: t.Revoked, CreatedBy: t.CreatedBy})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.PathValue("id")
	t, err := s.store.GetAPIToken(r.Context(), id)
	if err != nil && !isNotFound(err) {
		return storeError("token", err)
	}
	// Another tenant's token is "not found", not "forbidden": ids do not
	// leak across tenants.
	if err != nil || !(p.isAdmin() || (p.Role == store.RoleOrgAdmin && t.Tenant == p.Tenant)) {
		return notFound("token %s", id)
	}
	if err := s.audited(r.Context(), p, "token.revoke", id, "", func(ctx context.Context) error {
		return asStoreError("token "+id, s.store.RevokeAPIToken(ctx, id))
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	return nil
}

func (s *Server) createEnrollToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	if !p.orgAccess(org, true) {
		return forbidden("token may not create enrolment tokens for %q", org)
	}
	var req struct {
		ExpiresInHours int   `json:"expires_in_hours"`
		MaxUses        int64 `json:"max_uses"`
	}
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if req.ExpiresInHours < 0 || req.ExpiresInHours > 24*365 {
		return badRequest("expires_in_hours: 0 (never) to 8760")
	}
	if req.MaxUses < 0 || req.MaxUses > 10_000_000 {
		return badRequest("max_uses: 0 (no limit) to 10000000")
	}
	t, err := s.store.GetTenant(r.Context(), org)
	if err != nil || t.Kind != store.TenantOrg {
		return notFound("organisation %s", org)
	}
	sec := "rfe_" + secret(32)
	et := store.EnrollToken{ID: "enr-" + secret(8), Org: org, Hash: hashSecret(sec), CreatedAt: s.now(), MaxUses: req.MaxUses}
	if req.ExpiresInHours > 0 {
		et.ExpiresAt = et.CreatedAt.Add(time.Duration(req.ExpiresInHours) * time.Hour)
	}
	why := "org " + org
	if et.MaxUses > 0 {
		why += fmt.Sprintf(", at most %d devices", et.MaxUses)
	}
	if err := s.audited(r.Context(), p, "enroll-token.create", et.ID, why, func(ctx context.Context) error {
		return asStoreError("enrolment token", s.store.CreateEnrollToken(ctx, et))
	}); err != nil {
		return err
	}
	resp := map[string]any{"id": et.ID, "org": org, "token": sec}
	if !et.ExpiresAt.IsZero() {
		resp["expires_at"] = et.ExpiresAt
	}
	if et.MaxUses > 0 {
		resp["max_uses"] = et.MaxUses
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// EnrollTokenInfo is an enrolment token as listed: never its secret.
type EnrollTokenInfo struct {
	ID        string     `json:"id"`
	Org       string     `json:"org"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	MaxUses   int64      `json:"max_uses"` // 0: no limit
	Uses      int64      `json:"uses"`
	Revoked   bool       `json:"revoked"`
	// State is usable, used-up, expired or revoked.
	State string `json:"state"`
}

func (s *Server) listEnrollTokens(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	if !p.orgAccess(org, false) {
		return forbidden("token may not see enrolment tokens of %q", org)
	}
	ts, err := s.store.ListEnrollTokens(r.Context(), org)
	if err != nil {
		return storeError("enrolment tokens", err)
	}
	now := s.now()
	out := []EnrollTokenInfo{}
	for _, t := range ts {
		i := EnrollTokenInfo{ID: t.ID, Org: t.Org, CreatedAt: t.CreatedAt, MaxUses: t.MaxUses, Uses: t.Uses, Revoked: t.Revoked, State: "usable"}
		if !t.ExpiresAt.IsZero() {
			i.ExpiresAt = &t.ExpiresAt
		}
		switch why := unusable(t, now); {
		case t.Revoked:
			i.State = "revoked"
		case strings.HasPrefix(why, "expired"):
			i.State = "expired"
		case why != "":
			i.State = "used-up"
		}
		out = append(out, i)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeEnrollToken stops a token enrolling devices; devices it enrolled
// stay (revoke them one by one).
func (s *Server) revokeEnrollToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	org, id := r.PathValue("org"), r.PathValue("id")
	if !p.orgAccess(org, true) {
		return forbidden("token may not revoke enrolment tokens of %q", org)
	}
	reason, err := s.decodeReason(w, r)
	if err != nil {
		return err
	}
	ts, err := s.store.ListEnrollTokens(r.Context(), org)
	if err != nil {
		return storeError("enrolment tokens", err)
	}
	if !slices.ContainsFunc(ts, func(t store.EnrollToken) bool { return t.ID == id }) {
		return notFound("enrolment token %s of %s", id, org)
	}
	if err := s.audited(r.Context(), p, "enroll-token.revoke", id, reason, func(ctx context.Context) error {
		return asStoreError("enrolment token", s.store.RevokeEnrollToken(ctx, id))
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "org": org, "revoked": true})
	return nil
}

// --- policies ---

// PolicyInfo is an organisation's policy for one channel.
type PolicyInfo struct {
	Org     string   `json:"org,omitempty"`
	Channel string   `json:"channel,omitempty"`
	Track   string   `json:"track"`
	Windows []string `json:"windows"`
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	ch := r.PathValue("vendor") + "/" + r.PathValue("channel")
	if !p.orgAccess(org, true) {
		return forbidden("token may not set policies for %q", org)
	}
	var req PolicyInfo
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if _, err := rollout.ParseTrack(req.Track); err != nil {
		return badRequest("track: %v", err)
	}
	for i, win := range req.Windows {
		if _, err := rollout.ParseWindow(win); err != nil {
			return badRequest("windows[%d]: %v", i, err)
		}
	}
	t, err := s.store.GetTenant(r.Context(), org)
	if err != nil || t.Kind != store.TenantOrg {
		return notFound("organisation %s", org)
	}
	c, err := s.store.GetChannel(r.Context(), ch)
	if err != nil {
		return notFound("channel %s", ch)
	}
	if strings.HasPrefix(req.Track, "paused") && c.Unpausable {
		// Accepted, but say plainly that it will not freeze this channel.
		w.Header().Set("Warning", `299 ringfence "channel is unpausable: paused reads as ga"`)
	}
	if req.Windows == nil {
		req.Windows = []string{}
	}
	pol := store.Policy{Org: org, Channel: ch, Track: req.Track, Windows: req.Windows, UpdatedAt: s.now()}
	if err := s.audited(r.Context(), p, "policy.set", org+" "+ch, req.Track, func(ctx context.Context) error {
		return asStoreError("policy", s.store.PutPolicy(ctx, pol))
	}); err != nil {
		return err
	}
	s.changed(r.Context())
	writeJSON(w, http.StatusOK, PolicyInfo{Org: org, Channel: ch, Track: req.Track, Windows: req.Windows})
	return nil
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	if !s.mayReadOrg(p, org) {
		return forbidden("token may not read policies of %q", org)
	}
	ps, err := s.store.ListPolicies(r.Context(), org)
	if err != nil {
		return storeError("policies", err)
	}
	out := []PolicyInfo{}
	for _, pol := range ps {
		out = append(out, PolicyInfo{Org: pol.Org, Channel: pol.Channel, Track: pol.Track, Windows: pol.Windows})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- devices ---

// DeviceInfo is an enrolled device, with its channels when shown alone.
type DeviceInfo struct {
	ID           string    `json:"id"`
	Org          string    `json:"org"`
	Platform     string    `json:"platform"`
	OSBuild      string    `json:"os_build"`
	AgentVersion string    `json:"agent_version"`
	EnrolledAt   time.Time `json:"enrolled_at"`
	LastSeen     time.Time `json:"last_seen"`
	Revoked      bool      `json:"revoked"`
	// LastSeq is the highest event sequence number stored for the device:
	// equal to the agent's own, nothing it sent is missing.
	LastSeq uint64 `json:"last_seq"`
	// Anomalies counts the device's reports the gates did not believe:
	// about a release it was never offered or a version it does not run.
	// A healthy agent sends none; more than a few is a device to look at.
	Anomalies int64                 `json:"anomalies"`
	Channels  []store.DeviceChannel `json:"channels,omitempty"`
}

func toDeviceInfo(d store.Device) DeviceInfo {
	return DeviceInfo{ID: d.ID, Org: d.Org, Platform: d.Platform, OSBuild: d.OSBuild, AgentVersion: d.AgentVersion,
		EnrolledAt: d.EnrolledAt, LastSeen: d.LastSeen, Revoked: d.Revoked, LastSeq: d.LastSeq, Anomalies: d.Anomalies}
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	org := q.Get("org")
	if org == "" && !p.isAdmin() {
		org = p.Tenant
	}
	if !s.mayReadOrg(p, org) {
		return forbidden("token may not list devices of %q; vendors see aggregate figures of their releases only", org)
	}
	limit := 1000
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return badRequest("limit: a number from 1 to 10000")
		}
		limit = n
	}
	ds, err := s.store.ListDevices(r.Context(), store.DeviceFilter{Org: org, Platform: q.Get("platform"), AgentVersion: q.Get("agent_version"), After: q.Get("after"), Limit: limit})
	if err != nil {
		return storeError("devices", err)
	}
	out := []DeviceInfo{}
	for _, d := range ds {
		out = append(out, toDeviceInfo(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// mayReadOrg: may p read org's devices and policies? Only organisations
// have them: a vendor's viewer is no organisation's viewer.
func (s *Server) mayReadOrg(p Principal, org string) bool {
	return p.isAdmin() || (p.orgAccess(org, false) && s.tenantKind(org) == store.TenantOrg)
}

// deviceFor loads a device the principal may see; others are not found.
func (s *Server) deviceFor(ctx context.Context, p Principal, id string, write bool) (store.Device, error) {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return d, notFound("device %s", id)
		}
		return d, storeError("device", err)
	}
	if !p.orgAccess(d.Org, false) {
		return d, notFound("device %s", id)
	}
	if write && !p.orgAccess(d.Org, true) {
		return d, forbidden("token may not change devices of %q", d.Org)
	}
	return d, nil
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, err := s.deviceFor(r.Context(), p, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	dj := toDeviceInfo(d)
	if dj.Channels, err = s.store.DeviceChannels(r.Context(), d.ID); err != nil {
		return storeError("device channels", err)
	}
	writeJSON(w, http.StatusOK, dj)
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, err := s.deviceFor(r.Context(), p, r.PathValue("id"), true)
	if err != nil {
		return err
	}
	if err := s.audited(r.Context(), p, "device.revoke", d.ID, "org "+d.Org, func(ctx context.Context) error {
		return asStoreError("device", s.store.RevokeDevice(ctx, d.ID))
	}); err != nil {
		return err
	}
	s.forgetDevice(d.ID)
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "revoked": true})
	return nil
}

// --- publishing and releases ---

// PublishResult is an accepted artifact.
type PublishResult struct {
	Channel  string           `json:"channel"`
	Version  uint64           `json:"version"`
	SHA256   string           `json:"sha256"`
	Size     int              `json:"size"`
	Findings content.Findings `json:"findings"`
	// Signing is how far the vendor signed it: "production", "canary" or
	// "unsigned" ("" without a signed-update repository); SigningNote
	// says what is missing.
	Signing     string `json:"signing,omitempty"`
	SigningNote string `json:"signing_note,omitempty"`
	// Target is the artifact's name in the signed-update repository.
	Target string `json:"target"`
}

// publish validates a bundle against the server's catalog and every
// targeted agent, and stores the compiled artifact. A rejected bundle is a
// 422 carrying the validator's findings.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor, name := r.PathValue("vendor"), r.PathValue("channel")
	ch := vendor + "/" + name
	if !p.vendorAccess(vendor, true) {
		return forbidden("token may not publish to %s", ch)
	}
	c, err := s.store.GetChannel(r.Context(), ch)
	if err != nil {
		return storeError("channel "+ch, err)
	}
	if c.Kind == store.ChannelAgent {
		return s.publishAgentBuild(w, r, p, ch)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, content.MaxSourceSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: "request too large", Detail: fmt.Sprintf("bundle is larger than %d bytes", content.MaxSourceSize)}
		}
		return badRequest("read body: %v", err)
	}
	b, err := content.ParseBundle("bundle", body)
	if err != nil {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "bundle rejected", Detail: err.Error()}
	}
	if b.Vendor != vendor || b.Channel != name {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "bundle rejected",
			Detail: fmt.Sprintf("bundle is for %s/%s, published to %s", b.Vendor, b.Channel, ch)}
	}
	current, err := s.store.LatestArtifactVersion(r.Context(), ch)
	if err != nil {
		return storeError("channel "+ch, err)
	}
	v := s.cfg.Catalog.Validate(b, current)
	fleet, err := s.store.AgentVersions(r.Context())
	if err != nil {
		return storeError("agent versions", err)
	}
	counts := make([]content.AgentCount, len(fleet))
	for i, c := range fleet {
		counts[i] = content.AgentCount{Platform: c.Platform, AgentVersion: c.AgentVersion, Devices: c.Devices}
	}
	s.cfg.Catalog.CheckFleet(b, v, counts)
	if v.Accepted() {
		// What validate passed also runs through the agents' interpreter
		// as each targeted agent would, before anything ships: validation
		// alone let the 2024 content reach every host.
		select {
		case s.preflightSlot <- struct{}{}:
		case <-r.Context().Done():
			return fmt.Errorf("preflight of %s@%d: %w", ch, b.Version, r.Context().Err())
		}
		rep, err := s.cfg.Catalog.Preflight(r.Context(), v.Compiled, content.PreflightOptions{Current: current, AllocBudget: -1})
		<-s.preflightSlot
		if err != nil {
			return fmt.Errorf("preflight of %s@%d: %w", ch, b.Version, err)
		}
		v.Findings = append(v.Findings, rep.Findings...)
	}
	resp := PublishResult{Channel: ch, Version: b.Version, Findings: v.Findings}
	if resp.Findings == nil {
		resp.Findings = content.Findings{}
	}
	if !v.Accepted() {
		var lines []string
		for _, f := range v.Findings {
			if f.Level == content.LevelError {
				lines = append(lines, f.String())
			}
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "bundle rejected", "detail": strings.Join(lines, "\n"), "findings": resp.Findings})
		return nil
	}
	bytes := v.Encoded
	resp.SHA256, resp.Size = content.Hash(bytes), len(bytes)
	a := store.Artifact{Channel: ch, Version: b.Version, SHA256: resp.SHA256, Size: int64(len(bytes)), Bytes: bytes, CreatedAt: s.now()}
	if len(resp.Findings) > 0 {
		// Kept for the console: what was said of the bundle when it shipped.
		f, err := json.Marshal(resp.Findings)
		if err != nil {
			return fmt.Errorf("findings of %s@%d: %w", ch, b.Version, err)
		}
		a.Findings = string(f)
	}
	if err := s.audited(r.Context(), p, "artifact.publish", fmt.Sprintf("%s@%d", ch, b.Version), "sha256 "+resp.SHA256, func(ctx context.Context) error {
		return asStoreError(fmt.Sprintf("artifact %s@%d", ch, b.Version), s.store.PutArtifact(ctx, a))
	}); err != nil {
		return err
	}
	resp.Target = targetName(ch, store.ChannelContent, b.Version)
	if resp.Signing, resp.SigningNote, err = s.stageArtifact(vendor, resp.Target, bytes); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// maxAgentBuild caps an uploaded agent build.
const maxAgentBuild = 64 << 20

// publishAgentBuild stores an agent build: an envelope (package
// agentbuild) whose signed header names the platform, architecture and
// agent version, with the channel's version given in the query
// (?version=N). Devices are offered builds of their own platform only.
func (s *Server) publishAgentBuild(w http.ResponseWriter, r *http.Request, p Principal, ch string) error {
	v, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 63)
	if err != nil || v == 0 {
		return badRequest("version: an agent build needs ?version=N with N from 1")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAgentBuild))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: "request too large", Detail: fmt.Sprintf("agent build is larger than %d bytes", maxAgentBuild)}
		}
		return badRequest("read body: %v", err)
	}
	if len(body) == 0 {
		return badRequest("empty agent build")
	}
	h, _, _, err := agentbuild.Parse(body)
	if err != nil {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "build rejected", Detail: err.Error()}
	}
	if _, err := content.ParseAgentVersion(h.AgentVersion); err != nil {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "build rejected", Detail: fmt.Sprintf("agent build header: agent_version: %v", err)}
	}
	current, err := s.store.LatestArtifactVersion(r.Context(), ch)
	if err != nil {
		return storeError("channel "+ch, err)
	}
	if v <= current {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "build rejected", Detail: fmt.Sprintf("version %d is not above the channel's current version %d", v, current)}
	}
	sum := content.Hash(body)
	a := store.Artifact{Channel: ch, Version: v, SHA256: sum, Size: int64(len(body)), Bytes: body, CreatedAt: s.now()}
	if err := s.audited(r.Context(), p, "artifact.publish", fmt.Sprintf("%s@%d", ch, v), "agent build, sha256 "+sum, func(ctx context.Context) error {
		return asStoreError(fmt.Sprintf("artifact %s@%d", ch, v), s.store.PutArtifact(ctx, a))
	}); err != nil {
		return err
	}
	vendor, _, _ := strings.Cut(ch, "/")
	res := PublishResult{Channel: ch, Version: v, SHA256: sum, Size: len(body), Findings: content.Findings{}, Target: targetName(ch, store.ChannelAgent, v)}
	if res.Signing, res.SigningNote, err = s.stageArtifact(vendor, res.Target, body); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// MayReadAudit: only the operator's admin tokens read the audit log.
func MayReadAudit(p Principal) bool { return p.isAdmin() }

// Audit is up to limit audit entries after sequence number after.
func (s *Server) Audit(ctx context.Context, p Principal, after int64, limit int) ([]store.AuditEntry, error) {
	if !MayReadAudit(p) {
		return nil, forbidden("only the operator's admin tokens read the audit log")
	}
	es, err := s.store.ListAudit(ctx, after, limit)
	if err != nil {
		return nil, storeError("audit log", err)
	}
	if es == nil {
		es = []store.AuditEntry{}
	}
	return es, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !MayReadAudit(p) {
		return forbidden("only the operator's admin tokens read the audit log")
	}
	var after int64
	limit := 1000
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after: want a sequence number from 0, got %q", v)
		}
		after = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return badRequest("limit: want a number from 1 to 10000, got %q", v)
		}
		limit = n
	}
	es, err := s.Audit(r.Context(), p, after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, es)
	return nil
}
