package sqlstore

// Tenants, channels and the artifacts published on them.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ringfence/ringfence/internal/store"
)

// --- tenants ---

func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.exec(ctx, `INSERT INTO tenants (id, kind, name, internal, hourly_cap, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, string(t.Kind), t.Name, t.Internal, t.HourlyCap, ms(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return nil
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	var kind string
	var at int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT id, kind, name, internal, hourly_cap, created_at FROM tenants WHERE id = ?`), id).
		Scan(&t.ID, &kind, &t.Name, &t.Internal, &t.HourlyCap, &at)
	if err != nil {
		return t, fmt.Errorf("tenant %s: %w", id, s.wrap(err))
	}
	t.Kind, t.CreatedAt = store.TenantKind(kind), fromMS(at)
	return t, nil
}

func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT id, kind, name, internal, hourly_cap, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var kind string
		var at int64
		if err := rows.Scan(&t.ID, &kind, &t.Name, &t.Internal, &t.HourlyCap, &at); err != nil {
			return nil, s.wrap(err)
		}
		t.Kind, t.CreatedAt = store.TenantKind(kind), fromMS(at)
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

// --- channels ---

const channelCols = `id, vendor, name, kind, category, unpausable, created_at`

func scanChannel(sc interface{ Scan(...any) error }) (store.Channel, error) {
	var c store.Channel
	var kind string
	var at int64
	err := sc.Scan(&c.ID, &c.Vendor, &c.Name, &kind, &c.Category, &c.Unpausable, &at)
	c.Kind, c.CreatedAt = store.ChannelKind(kind), fromMS(at)
	return c, err
}

func (s *Store) CreateChannel(ctx context.Context, c store.Channel) error {
	_, err := s.exec(ctx, `INSERT INTO channels (`+channelCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Vendor, c.Name, string(c.Kind), c.Category, c.Unpausable, ms(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("create channel %s: %w", c.ID, err)
	}
	return nil
}

func (s *Store) GetChannel(ctx context.Context, id string) (store.Channel, error) {
	c, err := scanChannel(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+channelCols+` FROM channels WHERE id = ?`), id))
	if err != nil {
		return c, fmt.Errorf("channel %s: %w", id, s.wrap(err))
	}
	return c, nil
}

func (s *Store) ListChannels(ctx context.Context, vendor string) ([]store.Channel, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+channelCols+` FROM channels WHERE ? = '' OR vendor = ? ORDER BY id`), vendor, vendor)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// --- artifacts ---

func (s *Store) PutArtifact(ctx context.Context, a store.Artifact) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var hash string
		err := tx.QueryRowContext(ctx, s.q(`SELECT sha256 FROM artifacts WHERE channel = ? AND version = ?`), a.Channel, int64(a.Version)).Scan(&hash)
		switch {
		case err == nil && hash == a.SHA256:
			return nil
		case err == nil:
			return fmt.Errorf("artifact %s@%d: stored with sha256 %s, refusing different bytes (%s): %w", a.Channel, a.Version, hash, a.SHA256, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO artifacts (channel, version, sha256, size, bytes, created_at, findings) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			a.Channel, int64(a.Version), a.SHA256, a.Size, a.Bytes, ms(a.CreatedAt), a.Findings)
		return err
	})
}

func (s *Store) GetArtifact(ctx context.Context, channel string, version uint64) (store.Artifact, error) {
	a := store.Artifact{Channel: channel, Version: version}
	var at int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT sha256, size, bytes, created_at, findings FROM artifacts WHERE channel = ? AND version = ?`), channel, int64(version)).
		Scan(&a.SHA256, &a.Size, &a.Bytes, &at, &a.Findings)
	if err != nil {
		return a, fmt.Errorf("artifact %s@%d: %w", channel, version, s.wrap(err))
	}
	a.CreatedAt = fromMS(at)
	return a, nil
}

func (s *Store) LatestArtifactVersion(ctx context.Context, channel string) (uint64, error) {
	var v sql.NullInt64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT MAX(version) FROM artifacts WHERE channel = ?`), channel).Scan(&v)
	return uint64(v.Int64), s.wrap(err)
}
