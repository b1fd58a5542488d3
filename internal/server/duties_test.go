package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// The attack of issue 14: the operator's admin alone mints two approver
// tokens for the vendor and approves an emergency-lane release with both.
// The second approval stands for the same person (its token's creator)
// and is refused; the admin cannot approve with its own token, nor have
// its own release approved with tokens it minted; an approver minted by
// someone else counts.
func TestOneAdminCannotSatisfyTwoPersonApproval(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		approve := func(rel, token, reason string) (int, string) {
			code, body := e.call(t, "POST", "/v1/releases/"+rel+"/approve", token, map[string]string{"reason": reason})
			return code, string(body)
		}
		given := func(rel string) int { return e.status(t, rel).ApprovalsGiven }

		a1, a2 := e.createToken(t, "acme", store.RoleApprover), e.createToken(t, "acme", store.RoleApprover)
		rel := e.startRelease(t, rollout.DefaultContentPlan(), "emergency")
		if code, body := approve(rel.ID, a1, "first"); code != http.StatusOK {
			t.Fatalf("first approval: %d %s", code, body)
		}
		code, body := approve(rel.ID, a2, "second, minted by the same admin")
		if code != http.StatusConflict || !strings.Contains(body, "separation of duties") || !strings.Contains(body, "stands behind") {
			t.Errorf("second approval by a token the same admin minted: %d %s; want 409 naming the separation of duties", code, body)
		}
		if n := given(rel.ID); n != 1 {
			t.Errorf("approvals given: %d, want 1", n)
		}
		code, body = approve(rel.ID, e.creds.AdminToken, "the admin itself")
		if code != http.StatusForbidden {
			t.Errorf("the admin's own approval: %d %s, want 403", code, body)
		}
		// The seeded approver was not minted by the admin: it counts.
		if code, body := approve(rel.ID, e.creds.ApproverToken, "a second person"); code != http.StatusOK {
			t.Fatalf("approval by a second person: %d %s", code, body)
		}
		if n := given(rel.ID); n != 2 {
			t.Errorf("approvals given: %d, want 2", n)
		}

		// The admin's own release: tokens it minted cannot approve it.
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 294), nil)
		var own server.ReleaseReport
		e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.AdminToken, map[string]any{"channel": "acme/ipc", "version": 294, "plan": quickPlan(), "lane": "normal", "draft": true}, &own)
		code, body = approve(own.ID, a1, "minted by the release's creator")
		if code != http.StatusConflict || !strings.Contains(body, "which created release") {
			t.Errorf("approval of the admin's release by a token it minted: %d %s; want 409", code, body)
		}

		var toks []server.TokenInfo
		e.must(t, http.StatusOK, "GET", "/v1/tokens?tenant=acme", e.creds.AdminToken, nil, &toks)
		minted := 0
		for _, tk := range toks {
			if tk.Role == "approver" && tk.CreatedBy != "" {
				minted++
			}
		}
		if minted != 2 {
			t.Errorf("token list: %d approver tokens name their creator, want 2 (%+v)", minted, toks)
		}
	})
}
