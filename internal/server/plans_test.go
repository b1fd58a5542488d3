package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
)

// A vendor's named plan: set by its publishers, named by a release, which
// keeps a copy; refused where a plan would be.
func TestPlanTemplates(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		pub := e.creds.PublisherToken
		plan := rollout.Plan{Waves: []rollout.Wave{
			{Name: "canary", Share: 50, Canary: true, MinDevices: 5, Bake: rollout.Duration(time.Hour)},
			{Name: "all", Share: rollout.Positions, Bake: rollout.Duration(2 * time.Hour)},
		}}
		var got server.PlanTemplateInfo
		e.must(t, http.StatusOK, "PUT", "/v1/vendors/acme/plans/cautious", pub, plan, &got)
		if got.Name != "cautious" || len(got.Plan.Waves) != 2 || got.UpdatedBy == "" {
			t.Errorf("put: %+v", got)
		}
		refusals := []struct {
			name, method, path, token string
			body                      any
			want                      int
			mention                   string
		}{
			{"org-admin-may-not-set", "PUT", "/v1/vendors/acme/plans/x", e.creds.OrgAdminToken, plan, 403, "may not set"},
			{"invalid-plan", "PUT", "/v1/vendors/acme/plans/x", pub, rollout.Plan{Waves: []rollout.Wave{{Name: "a", Share: 10}}}, 400, "must reach every device"},
			{"bad-name", "PUT", "/v1/vendors/acme/plans/Cautious", pub, plan, 400, "not a valid name"},
			{"both", "POST", "/v1/releases", pub, map[string]any{"channel": "acme/ipc", "version": 293, "plan": plan, "plan_template": "cautious"}, 400, "not both"},
			{"unknown-template", "POST", "/v1/releases", pub, map[string]any{"channel": "acme/ipc", "version": 293, "plan_template": "reckless"}, 400, `no plan named "reckless"`},
			{"delete-missing", "DELETE", "/v1/vendors/acme/plans/reckless", pub, nil, 404, "reckless"},
		}
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", pub, bundleSource(t, "acme", "ipc", 293), nil)
		for _, tc := range refusals {
			code, body := e.call(t, tc.method, tc.path, tc.token, tc.body)
			wantError(t, code, body, tc.want, tc.mention)
		}
		var rel server.ReleaseReport
		e.must(t, http.StatusCreated, "POST", "/v1/releases", pub, map[string]any{"channel": "acme/ipc", "version": 293, "plan_template": "cautious"}, &rel)
		if len(rel.Plan.Waves) != 2 || rel.Plan.Waves[0].MinDevices != 5 {
			t.Fatalf("release from a template: plan %+v", rel.Plan)
		}
		// Replacing or deleting the template leaves the release's copy.
		plan.Waves[0].MinDevices = 50
		e.must(t, http.StatusOK, "PUT", "/v1/vendors/acme/plans/cautious", pub, plan, nil)
		var list []server.PlanTemplateInfo
		e.must(t, http.StatusOK, "GET", "/v1/vendors/acme/plans", e.creds.OrgAdminToken, nil, &list)
		if len(list) != 1 || list[0].Plan.Waves[0].MinDevices != 50 {
			t.Errorf("list: %+v", list)
		}
		e.must(t, http.StatusNoContent, "DELETE", "/v1/vendors/acme/plans/cautious", pub, nil, nil)
		e.must(t, http.StatusOK, "GET", "/v1/releases/"+rel.ID, pub, nil, &rel)
		if rel.Plan.Waves[0].MinDevices != 5 {
			t.Errorf("the release's plan changed with its template: %+v", rel.Plan.Waves[0])
		}
	})
}
