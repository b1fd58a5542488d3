package server_test

// Who may do what: every admin endpoint, asked by every kind of principal,
// against the expected answer. 2xx: allowed; 403: the principal may see
// the resource but not do this; 404: the principal may not even know the
// resource exists (another organisation's device, another vendor's
// release, another tenant's token); 401: no valid token.

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// Principals: the seed's five roles, a vendor viewer, and a second vendor
// and a second organisation.
const (
	pAdmin       = "admin"
	pPubAcme     = "publisher-acme"
	pApprAcme    = "approver-acme"
	pViewAcme    = "viewer-acme"
	pPubGlobex   = "publisher-globex"
	pOrgContoso  = "org-admin-contoso"
	pViewContoso = "viewer-contoso"
	pOrgFabrikam = "org-admin-fabrikam"
)

var principals = []string{pAdmin, pPubAcme, pApprAcme, pViewAcme, pPubGlobex, pOrgContoso, pViewContoso, pOrgFabrikam}

// authz is the world the matrix runs in.
type authz struct {
	*env
	tokens  map[string]string
	devC    *device // a contoso device
	devF    *device // a fabrikam device
	enrollC string  // contoso's enrolment token
	next    map[string]uint64
	n       int
}

func newAuthz(t *testing.T, e *env) *authz {
	a := &authz{env: e, enrollC: e.creds.EnrollToken, next: map[string]uint64{"acme/ipc": 300, "globex/feed": 1}}
	a.tokens = map[string]string{
		pAdmin:       e.creds.AdminToken,
		pPubAcme:     e.creds.PublisherToken,
		pApprAcme:    e.creds.ApproverToken,
		pViewAcme:    e.createToken(t, "acme", store.RoleViewer),
		pPubGlobex:   e.createTenant(t, "globex", "vendor", store.RolePublisher),
		pOrgContoso:  e.creds.OrgAdminToken,
		pViewContoso: e.creds.ViewerToken,
		pOrgFabrikam: e.createTenant(t, "fabrikam", "org", store.RoleOrgAdmin),
	}
	e.must(t, http.StatusCreated, "POST", "/v1/channels", e.creds.AdminToken, map[string]string{"vendor": "globex", "name": "feed"}, nil)
	a.devC = e.enroll(t, "7.12.0")
	_, enrF := e.enrollToken(t, "fabrikam", 0)
	a.devF = e.enrollWith(t, enrF, "7.12.0")
	return a
}

// unique returns a fresh name.
func (a *authz) unique(prefix string) string {
	a.n++
	return fmt.Sprintf("%s-%d", prefix, a.n)
}

// version returns the next unused version on a channel.
func (a *authz) version(ch string) uint64 {
	v := a.next[ch]
	a.next[ch]++
	return v
}

// published publishes a fresh version on a channel as the admin.
func (a *authz) published(t testing.TB, ch string) uint64 {
	t.Helper()
	v := a.version(ch)
	vendor, name, _ := strings.Cut(ch, "/")
	a.must(t, http.StatusCreated, "POST", "/v1/channels/"+ch+"/publish", a.creds.AdminToken, bundleSource(t, vendor, name, v), nil)
	return v
}

// release starts a fresh release on acme/ipc as the admin.
func (a *authz) release(t testing.TB) string {
	t.Helper()
	var rel releaseJSON
	a.must(t, http.StatusCreated, "POST", "/v1/releases", a.creds.AdminToken, map[string]any{"channel": "acme/ipc", "version": a.published(t, "acme/ipc")}, &rel)
	return rel.ID
}

// token creates a fresh token for tenant, to be revoked.
func (a *authz) tokenID(t testing.TB, tenant string) string {
	t.Helper()
	var tok struct {
		ID string `json:"id"`
	}
	a.must(t, http.StatusCreated, "POST", "/v1/tokens", a.creds.AdminToken, map[string]string{"tenant": tenant, "role": "viewer"}, &tok)
	return tok.ID
}

type request struct {
	method, path string
	body         any
}

// codes is the expected status for each principal.
type codes map[string]int

// all answers the same to everyone.
func all(code int) codes {
	c := codes{}
	for _, p := range principals {
		c[p] = code
	}
	return c
}

// only answers yes to some principals and no to the rest.
func only(yes int, no int, who ...string) codes {
	c := all(no)
	for _, p := range who {
		c[p] = yes
	}
	return c
}

// with overrides some principals' answers.
func (c codes) with(code int, who ...string) codes {
	out := codes{}
	for k, v := range c {
		out[k] = v
	}
	for _, p := range who {
		out[p] = code
	}
	return out
}

// matrix is every admin endpoint. A request is built afresh for each
// principal, so that a change one principal makes (a revocation, a halt)
// does not change what the next one is asked.
func matrix() []struct {
	name string
	req  func(t testing.TB, a *authz) request
	want codes
} {
	return []struct {
		name string
		req  func(t testing.TB, a *authz) request
		want codes
	}{
		{"whoami", func(t testing.TB, a *authz) request { return request{"GET", "/v1/whoami", nil} }, all(200)},
		{"create-tenant", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tenants", map[string]string{"id": a.unique("org"), "kind": "org", "name": "New"}}
		}, only(201, 403, pAdmin)},
		{"list-tenants", func(t testing.TB, a *authz) request { return request{"GET", "/v1/tenants", nil} }, all(200)},
		{"create-channel-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/channels", map[string]string{"vendor": "acme", "name": a.unique("ch")}}
		}, only(201, 403, pAdmin, pPubAcme)},
		{"list-channels", func(t testing.TB, a *authz) request { return request{"GET", "/v1/channels", nil} }, all(200)},
		{"create-token-contoso-viewer", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tokens", map[string]string{"tenant": "contoso", "role": "viewer"}}
		}, only(201, 403, pAdmin, pOrgContoso)},
		{"create-token-contoso-org-admin", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tokens", map[string]string{"tenant": "contoso", "role": "org-admin"}}
		}, only(201, 403, pAdmin, pOrgContoso)},
		{"create-token-acme-publisher", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tokens", map[string]string{"tenant": "acme", "role": "publisher"}}
		}, only(201, 403, pAdmin)},
		{"create-token-admin", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tokens", map[string]string{"role": "admin"}}
		}, only(201, 403, pAdmin)},
		// Only the operator may learn whether a tenant exists.
		{"create-token-unknown-tenant", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/tokens", map[string]string{"tenant": "initech", "role": "viewer"}}
		}, only(400, 403, pAdmin)},
		{"list-tokens", func(t testing.TB, a *authz) request { return request{"GET", "/v1/tokens", nil} }, only(200, 403, pAdmin, pOrgContoso, pOrgFabrikam)},
		{"revoke-contoso-token", func(t testing.TB, a *authz) request {
			return request{"DELETE", "/v1/tokens/" + a.tokenID(t, "contoso"), nil}
		}, only(200, 404, pAdmin, pOrgContoso)},
		{"revoke-acme-token", func(t testing.TB, a *authz) request {
			return request{"DELETE", "/v1/tokens/" + a.tokenID(t, "acme"), nil}
		}, only(200, 404, pAdmin)},
		{"create-enroll-token-contoso", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/orgs/contoso/enroll-tokens", map[string]int{}}
		}, only(201, 403, pAdmin, pOrgContoso)},
		{"list-enroll-tokens-contoso", func(t testing.TB, a *authz) request { return request{"GET", "/v1/orgs/contoso/enroll-tokens", nil} }, only(200, 403, pAdmin, pOrgContoso, pViewContoso)},
		{"revoke-enroll-token-contoso", func(t testing.TB, a *authz) request {
			id, _ := a.enrollToken(t, "contoso", 0)
			return request{"POST", "/v1/orgs/contoso/enroll-tokens/" + id + "/revoke", map[string]string{"reason": "leaked"}}
		}, only(200, 403, pAdmin, pOrgContoso)},
		{"list-policies-contoso", func(t testing.TB, a *authz) request { return request{"GET", "/v1/orgs/contoso/policies", nil} }, only(200, 403, pAdmin, pOrgContoso, pViewContoso)},
		{"set-policy-contoso", func(t testing.TB, a *authz) request {
			return request{"PUT", "/v1/orgs/contoso/policies/acme/ipc", map[string]string{"track": "ga"}}
		}, only(200, 403, pAdmin, pOrgContoso)},
		{"set-policy-fabrikam", func(t testing.TB, a *authz) request {
			return request{"PUT", "/v1/orgs/fabrikam/policies/acme/ipc", map[string]string{"track": "early"}}
		}, only(200, 403, pAdmin, pOrgFabrikam)},
		// Vendors see aggregate figures of their releases, never devices.
		{"list-devices", func(t testing.TB, a *authz) request { return request{"GET", "/v1/devices", nil} }, only(200, 403, pAdmin, pOrgContoso, pViewContoso, pOrgFabrikam)},
		{"list-devices-of-contoso", func(t testing.TB, a *authz) request { return request{"GET", "/v1/devices?org=contoso", nil} }, only(200, 403, pAdmin, pOrgContoso, pViewContoso)},
		{"list-devices-of-acme", func(t testing.TB, a *authz) request { return request{"GET", "/v1/devices?org=acme", nil} }, only(200, 403, pAdmin)},
		{"get-contoso-device", func(t testing.TB, a *authz) request { return request{"GET", "/v1/devices/" + a.devC.id, nil} }, only(200, 404, pAdmin, pOrgContoso, pViewContoso)},
		{"get-fabrikam-device", func(t testing.TB, a *authz) request { return request{"GET", "/v1/devices/" + a.devF.id, nil} }, only(200, 404, pAdmin, pOrgFabrikam)},
		{"revoke-contoso-device", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/devices/" + a.enrollWith(t, a.enrollC, "7.12.0").id + "/revoke", nil}
		}, only(200, 404, pAdmin, pOrgContoso).with(403, pViewContoso)},
		{"publish-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/channels/acme/ipc/publish", bundleSource(t, "acme", "ipc", a.version("acme/ipc"))}
		}, only(201, 403, pAdmin, pPubAcme)},
		{"publish-globex", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/channels/globex/feed/publish", bundleSource(t, "globex", "feed", a.version("globex/feed"))}
		}, only(201, 403, pAdmin, pPubGlobex)},
		{"create-release-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases", map[string]any{"channel": "acme/ipc", "version": a.published(t, "acme/ipc")}}
		}, only(201, 403, pAdmin, pPubAcme)},
		{"create-release-globex", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases", map[string]any{"channel": "globex/feed", "version": a.published(t, "globex/feed")}}
		}, only(201, 403, pAdmin, pPubGlobex)},
		{"list-releases", func(t testing.TB, a *authz) request { return request{"GET", "/v1/releases", nil} }, all(200)},
		// Organisations see every vendor's releases: any may touch their
		// fleet. Another vendor does not learn that a release exists.
		{"get-release-acme", func(t testing.TB, a *authz) request { return request{"GET", "/v1/releases/" + seedRelease, nil} }, all(200).with(404, pPubGlobex)},
		{"promote-release-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases/" + a.release(t) + "/promote", map[string]string{"reason": "bake passed"}}
		}, all(403).with(200, pAdmin, pPubAcme).with(404, pPubGlobex)},
		// Stopping is always safe: approvers may halt too.
		{"halt-release-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases/" + a.release(t) + "/halt", map[string]string{"reason": "looks bad"}}
		}, all(403).with(200, pAdmin, pPubAcme, pApprAcme).with(404, pPubGlobex)},
		// Two-person rule: only the vendor's approvers sign off, not even
		// the operator.
		{"approve-release-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases/" + a.release(t) + "/approve", map[string]string{"reason": "reviewed"}}
		}, all(403).with(200, pApprAcme).with(404, pPubGlobex)},
		{"pause-release-acme", func(t testing.TB, a *authz) request {
			return request{"POST", "/v1/releases/" + a.release(t) + "/pause", map[string]string{"reason": "weekend"}}
		}, all(403).with(200, pAdmin, pPubAcme).with(404, pPubGlobex)},
		{"resume-release-acme", func(t testing.TB, a *authz) request {
			id := a.release(t)
			a.must(t, http.StatusOK, "POST", "/v1/releases/"+id+"/pause", a.creds.AdminToken, map[string]string{"reason": "weekend"}, nil)
			return request{"POST", "/v1/releases/" + id + "/resume", map[string]string{"reason": "monday"}}
		}, all(403).with(200, pAdmin, pPubAcme).with(404, pPubGlobex)},
		// Gate figures are fleet-wide: the vendor and the operator see them.
		{"release-status-acme", func(t testing.TB, a *authz) request {
			return request{"GET", "/v1/releases/" + seedRelease + "/status", nil}
		},
			all(403).with(200, pAdmin, pPubAcme, pApprAcme, pViewAcme).with(404, pPubGlobex)},
		{"list-kill-switches", func(t testing.TB, a *authz) request { return request{"GET", "/v1/kill-switches", nil} }, all(200)},
		{"kill-switch-global", func(t testing.TB, a *authz) request {
			return request{"PUT", "/v1/kill-switch", map[string]any{"engaged": false, "reason": "drill"}}
		}, only(200, 403, pAdmin)},
		{"kill-switch-acme-ipc", func(t testing.TB, a *authz) request {
			return request{"PUT", "/v1/channels/acme/ipc/kill-switch", map[string]any{"engaged": false, "reason": "drill"}}
		}, only(200, 403, pAdmin)},
		{"read-budget-contoso", func(t testing.TB, a *authz) request { return request{"GET", "/v1/orgs/contoso/budget", nil} },
			only(200, 403, pAdmin, pOrgContoso, pViewContoso)},
		{"budget-contoso", func(t testing.TB, a *authz) request {
			return request{"PUT", "/v1/orgs/contoso/budget", map[string]any{"hourly_cap_bp": 0}}
		}, only(200, 403, pAdmin, pOrgContoso)},
		{"read-audit", func(t testing.TB, a *authz) request { return request{"GET", "/v1/audit", nil} }, only(200, 403, pAdmin)},
		// The device API takes device credentials only.
		{"checkin-with-api-token", func(t testing.TB, a *authz) request { return request{"POST", "/v1/checkin", a.devC.report(292)} }, all(401)},
		{"download-with-api-token", func(t testing.TB, a *authz) request { return request{"GET", "/v1/artifacts/acme/ipc/292", nil} }, all(401)},
		{"vendors-are-not-orgs", func(t testing.TB, a *authz) request { return request{"GET", "/v1/orgs/acme/policies", nil} }, only(200, 403, pAdmin)},
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		a := newAuthz(t, e)
		// An org admin's token, revoked by itself.
		revoked := e.createToken(t, "contoso", store.RoleOrgAdmin)
		var who struct {
			TokenID string `json:"token_id"`
		}
		e.must(t, http.StatusOK, "GET", "/v1/whoami", revoked, nil, &who)
		e.must(t, http.StatusOK, "DELETE", "/v1/tokens/"+who.TokenID, revoked, nil, nil)

		unauthenticated := map[string]string{"no-token": "", "revoked-token": revoked, "garbage-token": "rft_" + strings.Repeat("0", 64)}
		for _, row := range matrix() {
			t.Run(row.name, func(t *testing.T) {
				for _, p := range append(slices.Clone(principals), "no-token", "revoked-token", "garbage-token") {
					t.Run(p, func(t *testing.T) {
						want, token := row.want[p], a.tokens[p]
						if tok, ok := unauthenticated[p]; ok {
							want, token = http.StatusUnauthorized, tok
						}
						if want == 0 {
							t.Fatalf("the matrix has no answer for %s", p)
						}
						req := row.req(t, a)
						code, body := e.call(t, req.method, req.path, token, req.body)
						if code != want {
							t.Fatalf("%s %s: got %d, want %d\n%s", req.method, req.path, code, want, body)
						}
						if code >= 400 {
							wantError(t, code, body, want, "")
						}
					})
				}
			})
		}
	})
}

// TestListingsAreScoped: what a list shows each principal.
func TestListingsAreScoped(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		a := newAuthz(t, e)
		a.published(t, "globex/feed")
		a.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.AdminToken, map[string]any{"channel": "globex/feed", "version": 1}, nil)
		a.must(t, http.StatusOK, "PUT", "/v1/kill-switch", e.creds.AdminToken, map[string]any{"engaged": false, "reason": "drill"}, nil)
		a.must(t, http.StatusOK, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.AdminToken, map[string]any{"engaged": false, "reason": "drill"}, nil)
		tests := []struct {
			name, principal, path, field string
			want                         []string // the field's values, in order
		}{
			{"admin-sees-all-tenants", pAdmin, "/v1/tenants", "id", []string{"acme", "contoso", "fabrikam", "globex"}},
			{"vendor-sees-itself", pPubGlobex, "/v1/tenants", "id", []string{"globex"}},
			{"org-sees-itself", pOrgFabrikam, "/v1/tenants", "id", []string{"fabrikam"}},
			{"vendor-sees-own-channels", pPubGlobex, "/v1/channels", "id", []string{"globex/feed"}},
			{"vendor-viewer-sees-own-channels", pViewAcme, "/v1/channels", "id", []string{"acme/ipc", "acme/sensor-darwin", "acme/sensor-linux", "acme/sensor-windows"}},
			{"org-sees-every-vendors-channels", pViewContoso, "/v1/channels", "id", []string{"acme/ipc", "acme/sensor-darwin", "acme/sensor-linux", "acme/sensor-windows", "globex/feed"}},
			{"vendor-sees-own-releases", pPubGlobex, "/v1/releases", "channel", []string{"globex/feed"}},
			{"approver-sees-own-releases", pApprAcme, "/v1/releases", "channel", []string{"acme/ipc"}},
			{"org-sees-every-release", pOrgFabrikam, "/v1/releases", "channel", []string{"acme/ipc", "globex/feed"}},
			{"org-sees-own-devices", pOrgFabrikam, "/v1/devices", "id", []string{a.devF.id}},
			{"org-viewer-sees-own-devices", pViewContoso, "/v1/devices", "org", []string{"contoso"}},
			{"org-admin-sees-own-tokens", pOrgFabrikam, "/v1/tokens", "tenant", []string{"fabrikam"}},
			{"vendor-sees-global-and-own-kill-switches", pPubGlobex, "/v1/kill-switches", "scope", []string{"*"}},
			{"channel-vendor-sees-its-kill-switch", pViewAcme, "/v1/kill-switches", "scope", []string{"*", "acme/ipc"}},
			{"org-sees-every-kill-switch", pOrgFabrikam, "/v1/kill-switches", "scope", []string{"*", "acme/ipc"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var items []map[string]any
				e.must(t, http.StatusOK, "GET", tc.path, a.tokens[tc.principal], nil, &items)
				var got []string
				for _, it := range items {
					got = append(got, fmt.Sprint(it[tc.field]))
				}
				if strings.Join(got, " ") != strings.Join(tc.want, " ") {
					t.Errorf("%s GET %s: got %s %v, want %v", tc.principal, tc.path, tc.field, got, tc.want)
				}
			})
		}
	})
}

// TestFiguresAreScoped: a vendor sees totals per wave and metric, an
// organisation only its own cells, the operator everything.
func TestFiguresAreScoped(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		a := newAuthz(t, e)
		for i, d := range []*device{a.devC, a.devF} {
			e.offered(t, d, 292)
			e.checkin(t, d, d.report(292,
				server.EventReport{Seq: 1, Type: "applied", Channel: "acme/ipc", Version: 292},
				server.EventReport{Seq: 2, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": int64(i + 1)}}))
		}
		e.srv.Drain()
		tests := []struct {
			principal string
			orgs      string // the organisations the figures name
			strata    bool   // whether figures carry strata
			blocks    int64  // action-block total seen
		}{
			{pAdmin, "contoso fabrikam", true, 3},
			{pPubAcme, "", false, 3},
			{pApprAcme, "", false, 3},
			{pViewAcme, "", false, 3},
			{pOrgContoso, "contoso", true, 1},
			{pViewContoso, "contoso", true, 1},
			{pOrgFabrikam, "fabrikam", true, 2},
		}
		for _, tc := range tests {
			t.Run(tc.principal, func(t *testing.T) {
				fs := e.figures(t, a.tokens[tc.principal], seedRelease)
				orgs := map[string]bool{}
				strata := false
				for _, f := range fs {
					if f.Org != "" {
						orgs[f.Org] = true
					}
					strata = strata || f.Stratum != ""
				}
				var got []string
				for _, o := range []string{"contoso", "fabrikam"} {
					if orgs[o] {
						got = append(got, o)
					}
				}
				if strings.Join(got, " ") != tc.orgs || len(orgs) != len(got) || strata != tc.strata {
					t.Errorf("figures name orgs %v, strata %v; want orgs %q, strata %v\n%+v", orgs, strata, tc.orgs, tc.strata, fs)
				}
				if !tc.strata {
					_, raw := e.call(t, "GET", "/v1/releases/"+seedRelease, a.tokens[tc.principal], nil)
					if bytes.Contains(raw, []byte(`"org"`)) || bytes.Contains(raw, []byte(`"stratum"`)) {
						t.Errorf("a vendor's figures carry org or stratum fields: %s", raw)
					}
				}
				if n := fs.sum("action-block"); n != tc.blocks {
					t.Errorf("action-block: got %d, want %d", n, tc.blocks)
				}
				if n := fs.sum("applied"); n != int64(len(strings.Fields(tc.orgs))) && tc.orgs != "" {
					t.Errorf("applied: got %d, want one per organisation shown", n)
				}
			})
		}
	})
}
