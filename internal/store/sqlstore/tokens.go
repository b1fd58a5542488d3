package sqlstore

// API and enrolment tokens.

import (
	"context"
	"fmt"

	"github.com/ringfence/ringfence/internal/store"
)

// --- tokens ---

func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, tenant, role, name, hash, created_at, revoked, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Tenant, string(t.Role), t.Name, t.Hash, ms(t.CreatedAt), t.Revoked, t.CreatedBy)
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, err)
	}
	return nil
}

const apiTokenCols = `id, tenant, role, name, hash, created_at, revoked, created_by`

func scanAPIToken(sc interface{ Scan(...any) error }) (store.APIToken, error) {
	var t store.APIToken
	var role string
	var at int64
	err := sc.Scan(&t.ID, &t.Tenant, &role, &t.Name, &t.Hash, &at, &t.Revoked, &t.CreatedBy)
	t.Role, t.CreatedAt = store.Role(role), fromMS(at)
	return t, err
}

func (s *Store) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanAPIToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE hash = ?`), hash))
	if err != nil {
		return t, fmt.Errorf("api token: %w", s.wrap(err))
	}
	return t, nil
}

func (s *Store) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	t, err := scanAPIToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ?`), id))
	if err != nil {
		return t, fmt.Errorf("api token %s: %w", id, s.wrap(err))
	}
	return t, nil
}

func (s *Store) ListAPITokens(ctx context.Context, tenant string) ([]store.APIToken, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE ? = '' OR tenant = ? ORDER BY id`), tenant, tenant)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeAPIToken(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE api_tokens SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "api token "+id)
}

func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	_, err := s.exec(ctx, `INSERT INTO enroll_tokens (id, org, hash, created_at, expires_at, revoked, max_uses, uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Org, t.Hash, ms(t.CreatedAt), ms(t.ExpiresAt), t.Revoked, t.MaxUses, t.Uses)
	if err != nil {
		return fmt.Errorf("create enrolment token %s: %w", t.ID, err)
	}
	return nil
}

const enrollTokenCols = `id, org, hash, created_at, expires_at, revoked, max_uses, uses`

func scanEnrollToken(sc interface{ Scan(...any) error }) (store.EnrollToken, error) {
	var t store.EnrollToken
	var created, expires int64
	err := sc.Scan(&t.ID, &t.Org, &t.Hash, &created, &expires, &t.Revoked, &t.MaxUses, &t.Uses)
	t.CreatedAt, t.ExpiresAt = fromMS(created), fromMS(expires)
	return t, err
}

func (s *Store) EnrollTokenByHash(ctx context.Context, hash string) (store.EnrollToken, error) {
	t, err := scanEnrollToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE hash = ?`), hash))
	if err != nil {
		return t, fmt.Errorf("enrolment token: %w", s.wrap(err))
	}
	return t, nil
}

func (s *Store) ListEnrollTokens(ctx context.Context, org string) ([]store.EnrollToken, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE ? = '' OR org = ? ORDER BY created_at, id`), org, org)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.EnrollToken
	for rows.Next() {
		t, err := scanEnrollToken(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeEnrollToken(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE enroll_tokens SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "enrolment token "+id)
}
