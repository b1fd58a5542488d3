package sqlstore

// Devices and their channels.

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// --- devices ---

const deviceCols = `id, org, cred_hash, platform, os_build, agent_version, enrolled_at, last_seen, last_seq, revoked`

// deviceRead is what a device read selects: its columns and what the
// store counts for it.
const deviceRead = deviceCols + `, anomalies, enroll_token`

func scanDevice(sc interface{ Scan(...any) error }) (store.Device, error) {
	var d store.Device
	var enrolled, seen, seq int64
	err := sc.Scan(&d.ID, &d.Org, &d.CredHash, &d.Platform, &d.OSBuild, &d.AgentVersion, &enrolled, &seen, &seq, &d.Revoked, &d.Anomalies, &d.EnrolledWith)
	d.EnrolledAt, d.LastSeen, d.LastSeq = fromMS(enrolled), fromMS(seen), uint64(seq)
	return d, err
}

func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	return s.CreateDevices(ctx, []store.Device{d})
}

// CreateDevices inserts the devices and counts their enrolment tokens'
// uses in one transaction: a token used up, revoked, expired or of
// another organisation fails it (store.ErrEnrollToken). Tokens are
// counted in id order, so batches on two replicas never deadlock.
func (s *Store) CreateDevices(ctx context.Context, ds []store.Device) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO devices (`+deviceCols+`, enroll_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		uses := map[string][]store.Device{}
		for _, d := range ds {
			if _, err := stmt.ExecContext(ctx, d.ID, d.Org, d.CredHash, d.Platform, d.OSBuild, d.AgentVersion,
				ms(d.EnrolledAt), ms(d.LastSeen), int64(d.LastSeq), d.Revoked, d.EnrolledWith); err != nil {
				return fmt.Errorf("create device %s: %w", d.ID, s.wrap(err))
			}
			if d.EnrolledWith != "" {
				uses[d.EnrolledWith] = append(uses[d.EnrolledWith], d)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(uses)) {
			for _, d := range uses[id] {
				r, err := tx.ExecContext(ctx, s.q(`UPDATE enroll_tokens SET uses = uses + 1 WHERE id = ? AND org = ? AND NOT revoked
					AND (max_uses = 0 OR uses < max_uses) AND (expires_at = 0 OR expires_at > ?)`), id, d.Org, ms(d.EnrolledAt))
				if err != nil {
					return s.wrap(err)
				}
				if n, err := r.RowsAffected(); err != nil || n == 0 {
					return fmt.Errorf("create device %s with %s: %w", d.ID, id, store.ErrEnrollToken)
				}
			}
		}
		return nil
	})
}

func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+deviceRead+` FROM devices WHERE id = ?`), id))
	if err != nil {
		return d, fmt.Errorf("device %s: %w", id, s.wrap(err))
	}
	return d, nil
}

func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+deviceRead+` FROM devices
		WHERE (? = '' OR org = ?) AND (? = '' OR platform = ?) AND (? = '' OR agent_version = ?) AND id > ?
		ORDER BY id LIMIT ?`),
		f.Org, f.Org, f.Platform, f.Platform, f.AgentVersion, f.AgentVersion, f.After, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, d)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) DeviceChannels(ctx context.Context, device string) ([]store.DeviceChannel, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT dc.device, dc.channel, dc.active_version, dc.lkg_version, dc.state, dc.updated_at,
		EXISTS (SELECT 1 FROM releases r JOIN offers o ON o.release = r.id AND o.device = dc.device WHERE r.channel = dc.channel AND r.version = dc.active_version)
		FROM device_channels dc WHERE dc.device = ? ORDER BY dc.channel`), device)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.DeviceChannel
	for rows.Next() {
		var c store.DeviceChannel
		var active, lkg, at int64
		if err := rows.Scan(&c.Device, &c.Channel, &active, &lkg, &c.State, &at, &c.Offered); err != nil {
			return nil, s.wrap(err)
		}
		c.ActiveVersion, c.LKGVersion, c.UpdatedAt = uint64(active), uint64(lkg), fromMS(at)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeDevice(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE devices SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "device "+id)
}
