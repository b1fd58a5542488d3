package server

import (
	"context"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// heartbeats collects what plain check-ins change (last-seen times and
// heartbeat counters) and writes it about once a second in one
// transaction. Nothing else is lost in a crash; a version change or an
// event always goes through the batch writer and is stored before the
// device hears back.
type heartbeats struct {
	mu       sync.Mutex
	seen     map[string]time.Time
	counters map[store.CounterKey]int64
}

func (h *heartbeats) touch(id string, at time.Time, cells []store.CounterKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addLocked(cells, 1)
	if at.After(h.seen[id]) {
		h.seen[id] = at
	}
}

// add counts n heartbeats in each cell, with no last-seen time.
func (h *heartbeats) add(cells []store.CounterKey, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addLocked(cells, n)
}

func (h *heartbeats) addLocked(cells []store.CounterKey, n int64) {
	if h.seen == nil {
		h.seen = map[string]time.Time{}
		h.counters = map[store.CounterKey]int64{}
	}
	for _, k := range cells {
		h.counters[k] += n
	}
}

func (h *heartbeats) take() (map[string]time.Time, map[store.CounterKey]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen, counters := h.seen, h.counters
	h.seen, h.counters = nil, nil
	return seen, counters
}

// putBack returns a batch that could not be written, to retry with the
// next one.
func (h *heartbeats) putBack(seen map[string]time.Time, counters map[store.CounterKey]int64) {
	for id, at := range seen {
		h.touch(id, at, nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, n := range counters {
		h.addLocked([]store.CounterKey{k}, n)
	}
}

func (s *Server) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.flushHeartbeats(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("heartbeats not written; retrying", "err", err)
			}
			s.flushEnrolments(context.WithoutCancel(ctx), false)
		}
	}
}

func (s *Server) flushHeartbeats(ctx context.Context) error {
	s.hbMu.Lock() // one flush at a time keeps last-seen monotonic
	defer s.hbMu.Unlock()
	seen, counters := s.hb.take()
	if len(seen) == 0 && len(counters) == 0 {
		return nil
	}
	ds := make([]store.DeviceSeen, 0, len(seen))
	for id, at := range seen {
		ds = append(ds, store.DeviceSeen{ID: id, LastSeen: at})
	}
	cs := make([]store.Counter, 0, len(counters))
	for k, n := range counters {
		cs = append(cs, store.Counter{CounterKey: k, Value: n})
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.store.TouchDevices(ctx, ds, cs); err != nil {
		s.markStore(err)
		s.hb.putBack(seen, counters)
		return err
	}
	return nil
}
