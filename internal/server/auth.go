package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/ringfence/ringfence/internal/store"
)

// Principal is who an admin request acts for.
type Principal struct {
	TokenID string     `json:"token_id"`
	Name    string     `json:"name"`
	Tenant  string     `json:"tenant"` // "" for the operator's admin tokens
	Role    store.Role `json:"role"`
	// CreatedBy is the ID of the token that created this one.
	CreatedBy string `json:"created_by,omitempty"`
}

func (p Principal) actor() string {
	if p.Name != "" {
		return p.Name + " (" + p.TokenID + ")"
	}
	return p.TokenID
}

func (p Principal) isAdmin() bool { return p.Role == store.RoleAdmin && p.Tenant == "" }

// vendorAccess: may p read (or, with write, change) vendor's resources?
// Publishers write; approvers and viewers of the vendor read.
func (p Principal) vendorAccess(vendor string, write bool) bool {
	if p.isAdmin() {
		return true
	}
	if p.Tenant != vendor {
		return false
	}
	switch p.Role {
	case store.RolePublisher:
		return true
	case store.RoleApprover, store.RoleViewer:
		return !write
	}
	return false
}

// orgAccess: may p read (or change) org's resources? Org admins write;
// viewers of the organisation read.
func (p Principal) orgAccess(org string, write bool) bool {
	if p.isAdmin() {
		return true
	}
	if p.Tenant != org {
		return false
	}
	switch p.Role {
	case store.RoleOrgAdmin:
		return true
	case store.RoleViewer:
		return !write
	}
	return false
}

type principalKey struct{}

func (s *Server) authAPI(ctx context.Context, r *http.Request) (Principal, error) {
	return s.authToken(ctx, r, bearer(r))
}

// SignIn authenticates an API token a person typed into the web console:
// the same lookup, failure limit and failure log as a bearer token on the
// API, so the console has no rule of its own.
func (s *Server) SignIn(r *http.Request, token string) (Principal, error) {
	return s.authToken(r.Context(), r, strings.TrimSpace(token))
}

// TokenPrincipal is who token id acts for now: a console session names its
// token, and every request looks it up again, so a revoked token ends its
// sessions at once.
func (s *Server) TokenPrincipal(ctx context.Context, id string) (Principal, error) {
	t, err := s.store.GetAPIToken(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return Principal{}, errUnauthorized
		}
		return Principal{}, storeError("token", err)
	}
	if t.Revoked {
		return Principal{}, errUnauthorized
	}
	return Principal{TokenID: t.ID, Name: t.Name, Tenant: t.Tenant, Role: t.Role, CreatedBy: t.CreatedBy}, nil
}

func (s *Server) authToken(ctx context.Context, r *http.Request, tok string) (Principal, error) {
	if err := s.throttled(r); err != nil {
		return Principal{}, err
	}
	if tok == "" || len(tok) > 256 {
		return Principal{}, s.authFailed(r, "api", "none", errUnauthorized)
	}
	t, err := s.store.APITokenByHash(ctx, hashSecret(tok))
	if err != nil {
		if isNotFound(err) {
			return Principal{}, s.authFailed(r, "api", fingerprint(tok), errUnauthorized)
		}
		return Principal{}, storeError("token", err)
	}
	if t.Revoked {
		return Principal{}, s.authFailed(r, "api", t.ID+" (revoked)", errUnauthorized)
	}
	return Principal{TokenID: t.ID, Name: t.Name, Tenant: t.Tenant, Role: t.Role, CreatedBy: t.CreatedBy}, nil
}

// api wraps an admin handler with token authentication.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request, p Principal) error) http.Handler {
	return s.serve(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authAPI(r.Context(), r)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	})
}

// audit appends an entry for a state change. A change whose audit entry
// cannot be written is reported as failed to the caller.
// audited makes a change and appends its audit entry in one transaction
// (store.Store.Atomically): both are stored, or neither.
func (s *Server) audited(ctx context.Context, p Principal, action, target, reason string, change func(ctx context.Context) error) error {
	return s.store.Atomically(ctx, func(ctx context.Context) error {
		if err := change(ctx); err != nil {
			return err
		}
		return s.audit(ctx, p, action, target, reason)
	})
}

func (s *Server) audit(ctx context.Context, p Principal, action, target, reason string) error {
	_, err := s.store.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: p.actor(), Action: action, Target: target, Reason: reason})
	if err != nil {
		return storeError("audit entry", err)
	}
	return nil
}
