package server_test

import (
	"net/http"
	"testing"
)

// The first wave of the default plan is internal-only: it reaches the
// vendor's own machines (organisations marked internal) and no customer,
// whatever its track.
func TestInternalWave(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.must(t, http.StatusCreated, "POST", "/v1/tenants", e.creds.AdminToken,
			map[string]any{"id": "acme-it", "kind": "org", "name": "Acme IT", "internal": true}, nil)
		code, body := e.call(t, "POST", "/v1/tenants", e.creds.AdminToken, map[string]any{"id": "beta", "kind": "vendor", "name": "Beta", "internal": true})
		wantError(t, code, body, http.StatusBadRequest, "internal")

		_, tok := e.enrollToken(t, "acme-it", 0)
		own := e.enrollWith(t, tok, "7.12.0")
		customer := e.enroll(t, "7.12.0")
		rel := e.publishRelease(t, 293)
		if rel.Wave != 0 {
			t.Fatalf("new release starts at wave %d, want 0 (internal)", rel.Wave)
		}
		if got := e.desired(t, own, 292); got != 293 {
			t.Errorf("internal device: desired %d, want 293 in the internal wave", got)
		}
		if got := e.desired(t, customer, 292); got != 292 {
			t.Errorf("customer device: desired %d, want 292 until the public waves", got)
		}
	})
}
