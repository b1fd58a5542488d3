package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// Tenants and channels: a few dozen rows, kept in maps and sorted when
// listed.

func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	// The schema's CHECK constraint: sqlstore refuses other kinds too.
	if t.Kind != store.TenantVendor && t.Kind != store.TenantOrg {
		return fmt.Errorf("create tenant %s: kind %q is neither %q nor %q", t.ID, t.Kind, store.TenantVendor, store.TenantOrg)
	}
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.tenants[t.ID]; ok {
		return fmt.Errorf("create tenant %s: %w", t.ID, store.ErrConflict)
	}
	t.CreatedAt = norm(t.CreatedAt)
	st.tenants[t.ID] = t
	return nil
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Tenant{}, err
	}
	defer s.mu.RUnlock()
	t, ok := st.tenants[id]
	if !ok {
		return store.Tenant{}, fmt.Errorf("tenant %s: %w", id, store.ErrNotFound)
	}
	return t, nil
}

func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Tenant
	for _, t := range st.tenants {
		out = append(out, t)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Tenant) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) SetHourlyCap(ctx context.Context, org string, bp int) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	t, ok := st.tenants[org]
	if !ok {
		return fmt.Errorf("tenant %s: %w", org, store.ErrNotFound)
	}
	t.HourlyCap = bp
	st.tenants[org] = t
	return nil
}

func (s *Store) CreateChannel(ctx context.Context, c store.Channel) error {
	if c.Kind != store.ChannelContent && c.Kind != store.ChannelAgent {
		return fmt.Errorf("create channel %s: kind %q is neither %q nor %q", c.ID, c.Kind, store.ChannelContent, store.ChannelAgent)
	}
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.channels[c.ID]; ok {
		return fmt.Errorf("create channel %s: %w", c.ID, store.ErrConflict)
	}
	// The vendor must exist, as the schema's foreign key demands; any
	// tenant will do, as there.
	if _, ok := st.tenants[c.Vendor]; !ok {
		return fmt.Errorf("create channel %s: vendor %s: %w", c.ID, c.Vendor, store.ErrNotFound)
	}
	c.CreatedAt = norm(c.CreatedAt)
	st.channels[c.ID] = c
	return nil
}

func (s *Store) GetChannel(ctx context.Context, id string) (store.Channel, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Channel{}, err
	}
	defer s.mu.RUnlock()
	c, ok := st.channels[id]
	if !ok {
		return store.Channel{}, fmt.Errorf("channel %s: %w", id, store.ErrNotFound)
	}
	return c, nil
}

// ListChannels lists a vendor's channels, or every channel for "".
func (s *Store) ListChannels(ctx context.Context, vendor string) ([]store.Channel, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Channel
	for _, c := range st.channels {
		if vendor == "" || c.Vendor == vendor {
			out = append(out, c)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Channel) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
