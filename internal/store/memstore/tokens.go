package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// API and enrolment tokens, found by id and by the hash of their secret;
// both are unique.

func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	t.CreatedAt = norm(t.CreatedAt)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.apiTokens[t.ID]; ok {
		return fmt.Errorf("create api token %s: %w", t.ID, store.ErrConflict)
	}
	if _, ok := st.apiHashes[t.Hash]; ok {
		return fmt.Errorf("create api token %s: another token has the same hash: %w", t.ID, store.ErrConflict)
	}
	st.apiTokens[t.ID] = t
	st.apiHashes[t.Hash] = t.ID
	return nil
}

func (s *Store) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.APIToken{}, err
	}
	defer s.mu.RUnlock()
	id, ok := st.apiHashes[hash]
	if !ok {
		return store.APIToken{}, fmt.Errorf("api token: %w", store.ErrNotFound)
	}
	return st.apiTokens[id], nil
}

func (s *Store) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.APIToken{}, err
	}
	defer s.mu.RUnlock()
	t, ok := st.apiTokens[id]
	if !ok {
		return store.APIToken{}, fmt.Errorf("api token %s: %w", id, store.ErrNotFound)
	}
	return t, nil
}

// ListAPITokens lists a tenant's tokens by id, or every token for "".
func (s *Store) ListAPITokens(ctx context.Context, tenant string) ([]store.APIToken, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.APIToken
	for _, t := range st.apiTokens {
		if tenant == "" || t.Tenant == tenant {
			out = append(out, t)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.APIToken) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) RevokeAPIToken(ctx context.Context, id string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	t, ok := st.apiTokens[id]
	if !ok {
		return fmt.Errorf("api token %s: %w", id, store.ErrNotFound)
	}
	t.Revoked = true
	st.apiTokens[id] = t
	return nil
}

func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	t.CreatedAt, t.ExpiresAt = norm(t.CreatedAt), norm(t.ExpiresAt)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.enrollTokens[t.ID]; ok {
		return fmt.Errorf("create enrolment token %s: %w", t.ID, store.ErrConflict)
	}
	if _, ok := st.enrollHashes[t.Hash]; ok {
		return fmt.Errorf("create enrolment token %s: another token has the same hash: %w", t.ID, store.ErrConflict)
	}
	if _, ok := st.tenants[t.Org]; !ok {
		return fmt.Errorf("create enrolment token %s: organisation %s: %w", t.ID, t.Org, store.ErrNotFound)
	}
	st.enrollTokens[t.ID] = t
	st.enrollHashes[t.Hash] = t.ID
	return nil
}

func (s *Store) EnrollTokenByHash(ctx context.Context, hash string) (store.EnrollToken, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.EnrollToken{}, err
	}
	defer s.mu.RUnlock()
	id, ok := st.enrollHashes[hash]
	if !ok {
		return store.EnrollToken{}, fmt.Errorf("enrolment token: %w", store.ErrNotFound)
	}
	return st.enrollTokens[id], nil
}

func (s *Store) ListEnrollTokens(ctx context.Context, org string) ([]store.EnrollToken, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.EnrollToken
	for _, t := range st.enrollTokens {
		if org == "" || t.Org == org {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b store.EnrollToken) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (s *Store) RevokeEnrollToken(ctx context.Context, id string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	t, ok := st.enrollTokens[id]
	if !ok {
		return fmt.Errorf("enrolment token %s: %w", id, store.ErrNotFound)
	}
	t.Revoked = true
	st.enrollTokens[id] = t
	return nil
}
