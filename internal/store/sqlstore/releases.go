package sqlstore

// Releases and organisations' policies.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/ringfence/ringfence/internal/store"
)

// --- releases ---

const releaseCols = `id, channel, version, plan, state, wave, reason, revision, created_by, created_at, updated_at, wave_started_at, completed_at,
	lane, phase, halted_by, approvals, gates_since, cohort, creator_token`

func scanRelease(sc interface{ Scan(...any) error }) (store.Release, error) {
	var r store.Release
	var version int64
	var plan, state, approvals, cohort string
	var created, updated, waveAt, doneAt, gatesAt int64
	err := sc.Scan(&r.ID, &r.Channel, &version, &plan, &state, &r.Wave, &r.Reason, &r.Revision, &r.CreatedBy, &created, &updated, &waveAt, &doneAt,
		&r.Lane, &r.Phase, &r.HaltedBy, &approvals, &gatesAt, &cohort, &r.CreatorToken)
	if err != nil {
		return r, err
	}
	r.Version, r.Plan, r.State = uint64(version), []byte(plan), store.ReleaseState(state)
	r.CreatedAt, r.UpdatedAt, r.WaveStartedAt, r.CompletedAt = fromMS(created), fromMS(updated), fromMS(waveAt), fromMS(doneAt)
	r.GatesSince = fromMS(gatesAt)
	if cohort != "" {
		r.Cohort = []byte(cohort)
	}
	if r.Approvals, err = decodeApprovals(approvals); err != nil {
		return r, fmt.Errorf("release %s: stored approvals: %w", r.ID, err)
	}
	return r, nil
}

// encodeApprovals stores approvals as a JSON array ("[]" when there are
// none), times in UTC milliseconds like every other stored time.
func encodeApprovals(as []store.Approval) string {
	norm := make([]store.Approval, len(as))
	for i, a := range as {
		a.At = fromMS(ms(a.At))
		norm[i] = a
	}
	b, _ := json.Marshal(norm)
	return string(b)
}

// decodeApprovals reads what encodeApprovals stored; none reads back nil.
func decodeApprovals(s string) ([]store.Approval, error) {
	if s == "" || s == "[]" || s == "null" {
		return nil, nil
	}
	var as []store.Approval
	if err := json.Unmarshal([]byte(s), &as); err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, nil
	}
	return as, nil
}

func (s *Store) CreateRelease(ctx context.Context, r store.Release) error {
	if err := store.CheckRelease(r); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Channel, int64(r.Version), string(r.Plan), string(r.State), r.Wave, r.Reason, r.CreatedBy,
		ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.WaveStartedAt), ms(r.CompletedAt),
		r.Lane, r.Phase, r.HaltedBy, encodeApprovals(r.Approvals), ms(r.GatesSince), string(r.Cohort), r.CreatorToken)
	if err != nil {
		return fmt.Errorf("create release %s: %w", r.ID, err)
	}
	return nil
}

func (s *Store) GetRelease(ctx context.Context, id string) (store.Release, error) {
	r, err := scanRelease(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE id = ?`), id))
	if err != nil {
		return r, fmt.Errorf("release %s: %w", id, s.wrap(err))
	}
	return r, nil
}

func (s *Store) ListReleases(ctx context.Context, channel string) ([]store.Release, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE ? = '' OR channel = ? ORDER BY channel, version`), channel, channel)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) UpdateRelease(ctx context.Context, r store.Release, audit ...store.AuditEntry) (int64, error) {
	if err := store.CheckRelease(r); err != nil {
		return 0, err
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE releases SET plan = ?, state = ?, wave = ?, reason = ?, revision = revision + 1,
		updated_at = ?, wave_started_at = ?, completed_at = ?,
		lane = ?, phase = ?, halted_by = ?, approvals = ?, gates_since = ?, cohort = ? WHERE id = ? AND revision = ?`),
			string(r.Plan), string(r.State), r.Wave, r.Reason, ms(r.UpdatedAt), ms(r.WaveStartedAt), ms(r.CompletedAt),
			r.Lane, r.Phase, r.HaltedBy, encodeApprovals(r.Approvals), ms(r.GatesSince), string(r.Cohort), r.ID, r.Revision)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, e := range audit {
			if _, err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("update release %s: %w", r.ID, s.wrap(err))
	}
	if n == 0 {
		if _, err := s.GetRelease(ctx, r.ID); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("update release %s at revision %d: %w", r.ID, r.Revision, store.ErrStale)
	}
	return r.Revision + 1, nil
}

// --- policies ---

func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	w, _ := json.Marshal(p.Windows)
	_, err := s.exec(ctx, `INSERT INTO policies (org, channel, track, windows, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org, channel) DO UPDATE SET track = excluded.track, windows = excluded.windows, updated_at = excluded.updated_at`,
		p.Org, p.Channel, p.Track, string(w), ms(p.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put policy %s %s: %w", p.Org, p.Channel, err)
	}
	return nil
}

func (s *Store) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	return s.policies(ctx, `SELECT org, channel, track, windows, updated_at FROM policies WHERE org = ? ORDER BY channel`, org)
}

func (s *Store) AllPolicies(ctx context.Context) ([]store.Policy, error) {
	return s.policies(ctx, `SELECT org, channel, track, windows, updated_at FROM policies ORDER BY org, channel`)
}

func (s *Store) policies(ctx context.Context, query string, args ...any) ([]store.Policy, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Policy
	for rows.Next() {
		var p store.Policy
		var w string
		var at int64
		if err := rows.Scan(&p.Org, &p.Channel, &p.Track, &w, &at); err != nil {
			return nil, s.wrap(err)
		}
		if err := json.Unmarshal([]byte(w), &p.Windows); err != nil {
			return nil, fmt.Errorf("policy %s %s: stored windows: %w", p.Org, p.Channel, err)
		}
		p.UpdatedAt = fromMS(at)
		out = append(out, p)
	}
	return out, s.wrap(rows.Err())
}
