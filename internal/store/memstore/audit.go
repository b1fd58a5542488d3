package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// The audit log: a hash chain with one head, so appends take the write
// lock, as they take an advisory lock on PostgreSQL.

// AppendAudit numbers the entry, links it to the head and hashes it.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	e.Time = norm(e.Time)
	st, err := s.lock(ctx)
	if err != nil {
		return e, fmt.Errorf("append audit entry: %w", err)
	}
	defer s.mu.Unlock()
	return s.appendAudit(st, e), nil
}

// appendAudit adds an entry under the write lock.
func (s *Store) appendAudit(st *state, e store.AuditEntry) store.AuditEntry {
	e.Time = norm(e.Time)
	e.Seq, e.PrevHash = 1, ""
	if n := len(st.audit); n > 0 {
		e.Seq, e.PrevHash = st.audit[n-1].Seq+1, st.audit[n-1].Hash
	}
	store.SealAudit(s.auditKey, &e)
	st.audit = append(st.audit, e)
	return e
}

func (s *Store) SealAuditLog(ctx context.Context, key []byte) (int, error) {
	st, err := s.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	sealed, err := store.Reseal(key, st.audit)
	if err != nil {
		return 0, err
	}
	for _, e := range sealed {
		st.audit[e.Seq-1] = e
	}
	return len(sealed), nil
}

// Atomically runs fn: the in-memory store keeps nothing across a
// restart, so there is no half-written change to guard against.
func (s *Store) Atomically(ctx context.Context, fn func(ctx context.Context) error) error {
	return fn(ctx)
}

func (s *Store) SetAuditKey(key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auditKey = slices.Clone(key)
}

func (s *Store) AddAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	c.Time = norm(c.Time)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	i, found := slices.BinarySearchFunc(st.checkpoints, c.Seq, func(x store.AuditCheckpoint, seq int64) int { return cmp.Compare(x.Seq, seq) })
	if !found {
		c.Signature = slices.Clone(c.Signature)
		st.checkpoints = slices.Insert(st.checkpoints, i, c)
	}
	return nil
}

func (s *Store) ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(st.checkpoints, afterSeq+1, func(x store.AuditCheckpoint, seq int64) int { return cmp.Compare(x.Seq, seq) })
	out := slices.Clone(st.checkpoints[i:min(i+limit, len(st.checkpoints))])
	for j := range out {
		out[j].Signature = slices.Clone(out[j].Signature)
	}
	return out, nil
}

// ListAudit lists up to limit entries (10000 when limit is not positive or
// larger) after a sequence number, in order.
func (s *Store) ListAudit(ctx context.Context, afterSeq int64, limit int) ([]store.AuditEntry, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	// Entry seq n is at index n-1.
	from := int(min(max(afterSeq, 0), int64(len(st.audit))))
	to := min(from+limit, len(st.audit))
	if from == to {
		return nil, nil
	}
	return slices.Clone(st.audit[from:to]), nil
}
