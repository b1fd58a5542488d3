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
	mu   sync.Mutex
	seen map[string]time.Time
	// beats are each device's heartbeats by window, oldest first (more
	// than one only when a flush failed): the store counts one only if no
	// replica counted one for that window.
	beats    map[string][]beat
	counters map[store.CounterKey]int64
}

type beat struct {
	window int64
	cells  []store.CounterKey
}

// touch records a device's check-in at at, and its heartbeat of window
// in cells (none: no heartbeat).
func (h *heartbeats) touch(id string, at time.Time, window int64, cells []store.CounterKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	if at.After(h.seen[id]) {
		h.seen[id] = at
	}
	if bs := h.beats[id]; len(cells) > 0 && (len(bs) == 0 || window > bs[len(bs)-1].window) {
		h.beats[id] = append(bs, beat{window, cells})
	}
}

// add counts n heartbeats in each cell, with no device.
func (h *heartbeats) add(cells []store.CounterKey, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	for _, k := range cells {
		h.counters[k] += n
	}
}

func (h *heartbeats) init() {
	if h.seen == nil {
		h.seen, h.beats, h.counters = map[string]time.Time{}, map[string][]beat{}, map[store.CounterKey]int64{}
	}
}

// take hands over what was collected, as the store writes it.
func (h *heartbeats) take() ([]store.DeviceSeen, []store.Counter) {
	h.mu.Lock()
	seen, beats, counters := h.seen, h.beats, h.counters
	h.seen, h.beats, h.counters = nil, nil, nil
	h.mu.Unlock()
	ds := make([]store.DeviceSeen, 0, len(seen))
	for id, at := range seen {
		d := store.DeviceSeen{ID: id, LastSeen: at}
		for _, b := range beats[id] {
			d.Window, d.Beats = b.window, b.cells
			ds = append(ds, d)
		}
		if len(beats[id]) == 0 {
			ds = append(ds, d)
		}
	}
	cs := make([]store.Counter, 0, len(counters))
	for k, n := range counters {
		cs = append(cs, store.Counter{CounterKey: k, Value: n})
	}
	return ds, cs
}

// putBack returns a batch that could not be written, to retry with the
// next one.
func (h *heartbeats) putBack(seen []store.DeviceSeen, counters []store.Counter) {
	for _, d := range seen {
		h.touch(d.ID, d.LastSeen, d.Window, d.Beats)
	}
	for _, c := range counters {
		h.add([]store.CounterKey{c.CounterKey}, c.Value)
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
	ds, cs := s.hb.take()
	if len(ds) == 0 && len(cs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.store.TouchDevices(ctx, ds, cs); err != nil {
		s.markStore(err)
		s.hb.putBack(ds, cs)
		return err
	}
	return nil
}
