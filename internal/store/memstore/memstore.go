// Package memstore implements store.Store in memory, for tests that need a
// store but no database, and for the fleet simulator, which embeds it and
// replaces the device-heavy methods (devices.go) with its compact fleet.
//
// It is not a database: nothing survives Close or the process, and there is
// no second replica to share it with, so, like SQLite, it always grants the
// controller lease. Everything else behaves as package sqlstore, the
// reference, does: the same ordering and paging, the same sentinel errors,
// times in UTC to the millisecond, empty lists as nil, every batch all or
// nothing. Where a database would fail a foreign key (a channel of an
// unknown vendor, a release of a missing artifact), the error here wraps
// store.ErrNotFound. Device events are not kept, as nothing reads them
// back; a device's LastSeq is all their idempotence needs.
//
// One RWMutex guards all state. A write of sqlstore is one transaction; here
// it is one critical section, which gives the same atomicity and isolation.
// Values go in and come out as copies, so no caller can change stored state
// through a slice it passed in or got back.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Store is an in-memory store.Store, safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	st       *state // nil once closed
	auditKey []byte // guarded by mu
}

var _ store.Store = (*Store)(nil)

// state is everything a Store holds; Close drops it so that a closed
// store's memory can be reclaimed even while someone still holds the Store.
type state struct {
	tenants      map[string]store.Tenant
	channels     map[string]store.Channel
	artifacts    map[string]*channelArtifacts // by channel
	releases     releases
	policies     map[string]map[string]store.Policy // org → channel → policy
	apiTokens    map[string]store.APIToken          // by id
	apiHashes    map[string]string                  // hash → id
	enrollTokens map[string]store.EnrollToken       // by id
	enrollHashes map[string]string                  // hash → id
	devices      devices
	offers       offers
	counters     map[string]*releaseCounters      // by release
	testimony    map[testimony]struct{}           // devices' Once marks
	kills        map[string]store.KillSwitch      // by scope
	plans        map[[2]string]store.PlanTemplate // by vendor, name
	audit        []store.AuditEntry               // audit[i].Seq == i+1
	checkpoints  []store.AuditCheckpoint          // by seq
	webhooks     webhooks
}

// New returns an empty store.
func New() *Store {
	return &Store{st: &state{
		tenants:      map[string]store.Tenant{},
		channels:     map[string]store.Channel{},
		artifacts:    map[string]*channelArtifacts{},
		releases:     newReleases(),
		policies:     map[string]map[string]store.Policy{},
		apiTokens:    map[string]store.APIToken{},
		apiHashes:    map[string]string{},
		enrollTokens: map[string]store.EnrollToken{},
		enrollHashes: map[string]string{},
		devices:      newDevices(),
		offers:       newOffers(),
		counters:     map[string]*releaseCounters{},
		testimony:    map[testimony]struct{}{},
		kills:        map[string]store.KillSwitch{},
		plans:        map[[2]string]store.PlanTemplate{},
		webhooks:     newWebhooks(),
	}}
}

// errClosed is what a closed store answers, as sqlstore does once its
// database handle is closed.
var errClosed = fmt.Errorf("%w: store is closed", store.ErrUnavailable)

// ctxErr is what sqlstore returns for a context that is already done: a
// deadline means the database could not answer in time.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// rlock takes the read lock and returns the state; on error the lock is
// not held. Callers defer s.mu.RUnlock().
func (s *Store) rlock(ctx context.Context) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	s.mu.RLock()
	if s.st == nil {
		s.mu.RUnlock()
		return nil, errClosed
	}
	return s.st, nil
}

// lock takes the write lock and returns the state; on error the lock is
// not held. Callers defer s.mu.Unlock().
func (s *Store) lock(ctx context.Context) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	s.mu.Lock()
	if s.st == nil {
		s.mu.Unlock()
		return nil, errClosed
	}
	return s.st, nil
}

// ms and fromMS are sqlstore's time encoding; every stored time passes
// through both (norm) so that it reads back exactly as from a database:
// UTC, whole milliseconds, no monotonic reading, zero kept zero.
func ms(t time.Time) int64 { return store.Millis(t) }

func fromMS(v int64) time.Time { return store.FromMillis(v) }

func norm(t time.Time) time.Time { return fromMS(ms(t)) }

// Ping fails only once the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.rlock(ctx); err != nil {
		return err
	}
	s.mu.RUnlock()
	return nil
}

// Close drops everything; later calls fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = nil
	return nil
}

// Lead always grants the lease: one process owns a memstore, as one node
// owns an SQLite file.
func (s *Store) Lead(ctx context.Context) (store.Lease, error) {
	if err := (lease{s}).Check(ctx); err != nil {
		return nil, err
	}
	return lease{s}, nil
}

// Announce has no other replica to tell: a memory store is one process's.
func (s *Store) Announce(context.Context) error { return nil }

// WatchChanges returns at once: every change is this process's own.
func (s *Store) WatchChanges(context.Context, func()) error { return nil }

// lease lasts as long as its store is open.
type lease struct{ s *Store }

func (l lease) Check(ctx context.Context) error {
	l.s.mu.RLock()
	defer l.s.mu.RUnlock()
	if l.s.st == nil {
		return errClosed
	}
	return nil
}

func (lease) Release() error { return nil }
