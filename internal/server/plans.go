package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// PlanTemplateInfo is a vendor's named rollout plan. A release names it
// (plan_template) instead of carrying a plan, and keeps a copy: editing
// the template later changes no release already created.
type PlanTemplateInfo struct {
	Vendor    string       `json:"vendor"`
	Name      string       `json:"name"`
	Plan      rollout.Plan `json:"plan"`
	UpdatedAt time.Time    `json:"updated_at,omitzero"`
	UpdatedBy string       `json:"updated_by,omitempty"`
}

func toPlanTemplateInfo(t store.PlanTemplate) (PlanTemplateInfo, error) {
	plan, err := rollout.ParsePlan(t.Plan)
	if err != nil {
		return PlanTemplateInfo{}, fmt.Errorf("stored plan %s/%s: %w", t.Vendor, t.Name, err)
	}
	return PlanTemplateInfo{Vendor: t.Vendor, Name: t.Name, Plan: plan, UpdatedAt: t.UpdatedAt, UpdatedBy: t.UpdatedBy}, nil
}

// listPlanTemplates shows a vendor's plans to whoever may read its
// releases.
func (s *Server) listPlanTemplates(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor := r.PathValue("vendor")
	if !s.mayReadRelease(p, vendor) {
		return forbidden("token may not read the plans of vendor %q", vendor)
	}
	ts, err := s.store.PlanTemplates(r.Context(), vendor)
	if err != nil {
		return storeError("plans", err)
	}
	out := []PlanTemplateInfo{}
	for _, t := range ts {
		info, err := toPlanTemplateInfo(t)
		if err != nil {
			return storeError("plans", err)
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) putPlanTemplate(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor, name := r.PathValue("vendor"), r.PathValue("name")
	if !p.vendorAccess(vendor, true) {
		return forbidden("token may not set the plans of vendor %q", vendor)
	}
	if !validName(name) {
		return badRequest("name: %q is not a valid name", name)
	}
	var plan rollout.Plan
	if err := decodeJSON(w, r, maxAdminJSON, &plan); err != nil {
		return err
	}
	if err := plan.Validate(); err != nil {
		return badRequest("plan: %v", err)
	}
	if s.tenantKind(vendor) != store.TenantVendor {
		return notFound("vendor %s", vendor)
	}
	b, _ := json.Marshal(plan)
	t := store.PlanTemplate{Vendor: vendor, Name: name, Plan: b, UpdatedAt: s.now(), UpdatedBy: p.actor()}
	if err := s.audited(r.Context(), p, "plan.set", vendor+"/"+name, fmt.Sprintf("%d waves", len(plan.Waves)), func(ctx context.Context) error {
		return asStoreError("plan "+vendor+"/"+name, s.store.PutPlanTemplate(ctx, t))
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PlanTemplateInfo{Vendor: vendor, Name: name, Plan: plan, UpdatedAt: t.UpdatedAt, UpdatedBy: t.UpdatedBy})
	return nil
}

func (s *Server) deletePlanTemplate(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor, name := r.PathValue("vendor"), r.PathValue("name")
	if !p.vendorAccess(vendor, true) {
		return forbidden("token may not delete the plans of vendor %q", vendor)
	}
	if err := s.audited(r.Context(), p, "plan.delete", vendor+"/"+name, "", func(ctx context.Context) error {
		return asStoreError("plan "+vendor+"/"+name, s.store.DeletePlanTemplate(ctx, vendor, name))
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// planTemplate is vendor's plan named name, for a release.
func (s *Server) planTemplate(ctx context.Context, vendor, name string) (rollout.Plan, error) {
	ts, err := s.store.PlanTemplates(ctx, vendor)
	if err != nil {
		return rollout.Plan{}, storeError("plans", err)
	}
	for _, t := range ts {
		if t.Name == name {
			info, err := toPlanTemplateInfo(t)
			if err != nil {
				return rollout.Plan{}, storeError("plans", err)
			}
			return info.Plan, nil
		}
	}
	return rollout.Plan{}, badRequest("plan_template: vendor %s has no plan named %q (GET /v1/vendors/%s/plans lists them)", vendor, name, vendor)
}
