package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

func enrolBody(token string) map[string]string {
	return map[string]string{"token": token, "platform": "windows", "os_build": "22631", "agent_version": "7.12.0"}
}

// A leaked enrolment token mints no more devices than it was made for:
// a use limit, listed with its uses, revocable and audited; enrolments are
// audited per token and minute.
func TestEnrollTokenUsesRevokeAndAudit(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var tok struct {
			ID      string `json:"id"`
			Token   string `json:"token"`
			MaxUses int64  `json:"max_uses"`
		}
		e.must(t, http.StatusCreated, "POST", "/v1/orgs/contoso/enroll-tokens", e.creds.OrgAdminToken, map[string]any{"max_uses": 2}, &tok)
		if tok.MaxUses != 2 {
			t.Fatalf("created %+v, want max_uses 2", tok)
		}
		for range 2 {
			e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", enrolBody(tok.Token), nil)
		}
		code, body := e.call(t, "POST", "/v1/enroll", "", enrolBody(tok.Token))
		wantError(t, code, body, http.StatusUnauthorized, "used up (2 of 2 devices)")

		other, secret := e.enrollToken(t, "contoso", 0)
		e.must(t, http.StatusOK, "POST", "/v1/orgs/contoso/enroll-tokens/"+other+"/revoke", e.creds.OrgAdminToken, map[string]string{"reason": "posted in a chat"}, nil)
		code, body = e.call(t, "POST", "/v1/enroll", "", enrolBody(secret))
		wantError(t, code, body, http.StatusUnauthorized, "revoked")
		// Another organisation's token cannot be revoked through contoso.
		code, body = e.call(t, "POST", "/v1/orgs/contoso/enroll-tokens/nope/revoke", e.creds.OrgAdminToken, map[string]string{"reason": "x"})
		wantError(t, code, body, http.StatusNotFound, "nope")

		var list []server.EnrollTokenInfo
		e.must(t, http.StatusOK, "GET", "/v1/orgs/contoso/enroll-tokens", e.creds.OrgAdminToken, nil, &list)
		states := map[string]server.EnrollTokenInfo{}
		for _, i := range list {
			states[i.ID] = i
		}
		if got := states[tok.ID]; got.Uses != 2 || got.MaxUses != 2 || got.State != "used-up" {
			t.Errorf("listed %+v, want 2 of 2 uses, used-up", got)
		}
		if got := states[other]; !got.Revoked || got.State != "revoked" {
			t.Errorf("listed %+v, want revoked", got)
		}
		if strings.Contains(string(mustBody(t, e, "/v1/orgs/contoso/enroll-tokens")), "rfe_") {
			t.Error("the list shows a secret")
		}

		e.srv.Drain()
		var audit []store.AuditEntry
		e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &audit)
		var enrolled, revoked bool
		for _, a := range audit {
			enrolled = enrolled || a.Action == "device.enroll" && a.Target == tok.ID && strings.HasPrefix(a.Reason, "2 device(s) of contoso")
			revoked = revoked || a.Action == "enroll-token.revoke" && a.Target == other && a.Reason == "posted in a chat"
		}
		if !enrolled || !revoked {
			t.Errorf("audit %+v: want one entry for the 2 enrolments with %s and the revocation of %s", audit, tok.ID, other)
		}
	})
}

func mustBody(t *testing.T, e *env, path string) []byte {
	t.Helper()
	code, body := e.call(t, "GET", path, e.creds.AdminToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

// Enrolment is rate limited per token and per source address.
func TestEnrolmentIsRateLimited(t *testing.T) {
	e := newEnvAt(t, "", server.Config{Enrolments: 3}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	_, a := e.enrollToken(t, "contoso", 0)
	_, b := e.enrollToken(t, "contoso", 0)
	for range 3 {
		e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", enrolBody(a), nil)
	}
	resp := e.raw(t, "POST", "/v1/enroll", "", enrolBody(a))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(resp.body), "this token") || resp.Header.Get("Retry-After") != "20" {
		t.Errorf("4th enrolment with one token in a minute: %d %s (Retry-After %q), want 429 naming the token, Retry-After 20", resp.StatusCode, resp.body, resp.Header.Get("Retry-After"))
	}
	// The address has used its three too.
	resp = e.raw(t, "POST", "/v1/enroll", "", enrolBody(b))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(resp.body), "this address") {
		t.Errorf("another token from the same address: %d %s, want 429 naming the address", resp.StatusCode, resp.body)
	}
	e.clock.Advance(20 * time.Second)
	e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", enrolBody(b), nil)
}
