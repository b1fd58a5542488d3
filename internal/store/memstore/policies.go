package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// Organisations' policies and the kill switches.

// PutPolicy creates or replaces an organisation's policy for a channel.
func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	p.Windows = slices.Clone(p.Windows) // nil stays nil, empty stays empty, as through JSON
	p.UpdatedAt = norm(p.UpdatedAt)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.tenants[p.Org]; !ok {
		return fmt.Errorf("put policy %s %s: organisation %s: %w", p.Org, p.Channel, p.Org, store.ErrNotFound)
	}
	if _, ok := st.channels[p.Channel]; !ok {
		return fmt.Errorf("put policy %s %s: channel %s: %w", p.Org, p.Channel, p.Channel, store.ErrNotFound)
	}
	byChannel := st.policies[p.Org]
	if byChannel == nil {
		byChannel = map[string]store.Policy{}
		st.policies[p.Org] = byChannel
	}
	byChannel[p.Channel] = p
	return nil
}

// ListPolicies lists an organisation's policies by channel.
func (s *Store) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	return s.listPolicies(ctx, org, false)
}

// AllPolicies lists every policy by organisation and channel.
func (s *Store) AllPolicies(ctx context.Context) ([]store.Policy, error) {
	return s.listPolicies(ctx, "", true)
}

// listPolicies lists one organisation's policies, or everyone's.
func (s *Store) listPolicies(ctx context.Context, org string, all bool) ([]store.Policy, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Policy
	for o, byChannel := range st.policies {
		if !all && o != org {
			continue
		}
		for _, p := range byChannel {
			p.Windows = slices.Clone(p.Windows)
			out = append(out, p)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Policy) int {
		return cmp.Or(cmp.Compare(a.Org, b.Org), cmp.Compare(a.Channel, b.Channel))
	})
	return out, nil
}

// SetKillSwitch creates or replaces the switch of a scope.
func (s *Store) SetKillSwitch(ctx context.Context, k store.KillSwitch) error {
	k.At = norm(k.At)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	st.kills[k.Scope] = k
	return nil
}

// KillSwitches lists every scope ever set, by scope.
func (s *Store) KillSwitches(ctx context.Context) ([]store.KillSwitch, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.KillSwitch
	for _, k := range st.kills {
		out = append(out, k)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.KillSwitch) int { return cmp.Compare(a.Scope, b.Scope) })
	return out, nil
}

// PutPlanTemplate creates or replaces a vendor's named plan.
func (s *Store) PutPlanTemplate(ctx context.Context, t store.PlanTemplate) error {
	t.UpdatedAt, t.Plan = norm(t.UpdatedAt), slices.Clone(t.Plan)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	st.plans[[2]string{t.Vendor, t.Name}] = t
	return nil
}

// DeletePlanTemplate deletes a vendor's named plan.
func (s *Store) DeletePlanTemplate(ctx context.Context, vendor, name string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	k := [2]string{vendor, name}
	if _, ok := st.plans[k]; !ok {
		return fmt.Errorf("plan %s/%s: %w", vendor, name, store.ErrNotFound)
	}
	delete(st.plans, k)
	return nil
}

// PlanTemplates lists a vendor's plans (every vendor's for ""), by vendor
// and name.
func (s *Store) PlanTemplates(ctx context.Context, vendor string) ([]store.PlanTemplate, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.PlanTemplate
	for _, t := range st.plans {
		if vendor == "" || t.Vendor == vendor {
			t.Plan = slices.Clone(t.Plan)
			out = append(out, t)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.PlanTemplate) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}
