package memstore

import (
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
	e.Seq, e.PrevHash = 1, ""
	if n := len(st.audit); n > 0 {
		e.Seq, e.PrevHash = st.audit[n-1].Seq+1, st.audit[n-1].Hash
	}
	e.Hash = store.AuditHash(e)
	st.audit = append(st.audit, e)
	return e, nil
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
