package sqlstore

// The audit chain and its checkpoints.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ringfence/ringfence/internal/store"
)

// --- audit ---

func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = s.appendAudit(ctx, tx, e)
		return err
	})
	if err != nil {
		return e, fmt.Errorf("append audit entry: %w", err)
	}
	return e, nil
}

// appendAudit numbers, links, seals and stores an entry in tx.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, e store.AuditEntry) (store.AuditEntry, error) {
	if s.d.lockHead != "" {
		// Serialise appenders across replicas: the chain has one head.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(4243)"); err != nil {
			return e, err
		}
	}
	var seq sql.NullInt64
	var prev sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e, err
	}
	e.Seq = seq.Int64 + 1
	e.PrevHash = prev.String
	e.Time = fromMS(ms(e.Time))
	var key []byte
	if k := s.auditKey.Load(); k != nil {
		key = *k
	}
	store.SealAudit(key, &e)
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO audit_log (seq, at, actor, action, target, reason, prev_hash, hash, keyed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.Seq, ms(e.Time), e.Actor, e.Action, e.Target, e.Reason, e.PrevHash, e.Hash, e.Keyed)
	return e, err
}

func (s *Store) ListAudit(ctx context.Context, afterSeq int64, limit int) ([]store.AuditEntry, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+auditCols+` FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`), afterSeq, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := scanAudit(rows)
	return out, s.wrap(err)
}

const auditCols = `seq, at, actor, action, target, reason, prev_hash, hash, keyed`

// scanAudit reads auditCols rows and closes them.
func scanAudit(rows *sql.Rows) ([]store.AuditEntry, error) {
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Target, &e.Reason, &e.PrevHash, &e.Hash, &e.Keyed); err != nil {
			return nil, err
		}
		e.Time = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) SealAuditLog(ctx context.Context, key []byte) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lockHead != "" {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(4243)"); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_log ORDER BY seq`)
		if err != nil {
			return err
		}
		es, err := scanAudit(rows)
		if err != nil {
			return err
		}
		sealed, err := store.Reseal(key, es)
		if err != nil {
			return err
		}
		for _, e := range sealed {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE audit_log SET prev_hash = ?, hash = ?, keyed = ? WHERE seq = ?`), e.PrevHash, e.Hash, e.Keyed, e.Seq); err != nil {
				return err
			}
		}
		n = len(sealed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seal audit log: %w", err)
	}
	return n, nil
}

func (s *Store) SetAuditKey(key []byte) {
	if key == nil {
		s.auditKey.Store(nil)
		return
	}
	k := bytes.Clone(key)
	s.auditKey.Store(&k)
}

func (s *Store) AddAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	_, err := s.exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`,
		c.Seq, c.Hash, ms(c.Time), c.KeyID, base64.StdEncoding.EncodeToString(c.Signature))
	if err != nil {
		return fmt.Errorf("audit checkpoint %d: %w", c.Seq, err)
	}
	return nil
}

func (s *Store) ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?`), afterSeq, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.AuditCheckpoint
	for rows.Next() {
		var c store.AuditCheckpoint
		var at int64
		var sig string
		if err := rows.Scan(&c.Seq, &c.Hash, &at, &c.KeyID, &sig); err != nil {
			return nil, s.wrap(err)
		}
		if c.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return nil, fmt.Errorf("audit checkpoint %d: stored signature: %w", c.Seq, err)
		}
		c.Time = fromMS(at)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

var _ store.Store = (*Store)(nil)
