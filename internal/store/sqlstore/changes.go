package sqlstore

// Changes between replicas: PostgreSQL's NOTIFY and LISTEN tell every
// replica at once that releases, kill switches or policies changed, so
// each rebuilds the snapshot its check-ins are answered from within a
// second rather than at its next periodic refresh (which stays, as the
// fallback when a notification is lost with its connection).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// changesChannel is the NOTIFY channel; the payload is empty.
const changesChannel = "ringfence_changes"

// Announce sends a notification every replica's WatchChanges hears,
// including this one's.
func (s *Store) Announce(ctx context.Context) error {
	if s.d.name != postgresDialect.name {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, changesChannel); err != nil {
		return fmt.Errorf("announce a change: %w", s.wrap(err))
	}
	return nil
}

// watchRetry is how long WatchChanges waits before listening again after
// its connection failed.
const watchRetry = time.Second

// WatchChanges listens on a connection of its own until ctx ends. When the
// connection fails it listens again on a new one and calls onChange once,
// since a change announced meanwhile was not heard. It returns nil when
// ctx ends, and at once on SQLite.
func (s *Store) WatchChanges(ctx context.Context, onChange func()) error {
	if s.d.name != postgresDialect.name {
		return nil
	}
	for first := true; ; first = false {
		err := s.listen(ctx, onChange, !first)
		if ctx.Err() != nil || s.closed.Load() {
			return nil
		}
		if err != nil && errors.Is(err, errClosed) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
	}
}

// listen holds one connection in LISTEN until it fails or ctx ends.
func (s *Store) listen(ctx context.Context, onChange func(), missed bool) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("listen: %w", s.wrap(err))
	}
	// The session listens: never hand it back to the pool.
	defer discard(conn)
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("listen: driver connection is %T, not pgx's", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		if missed {
			onChange()
		}
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			onChange()
		}
	})
}
