package memstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// Telemetry counters. Every check-in and heartbeat batch adds to them and
// the controller reads a release's totals every tick, so the counters are
// grouped by release and the totals kept with every increment: a read
// costs the cells of one release, never its history or other releases'.

// cellKey is a store.CounterKey within a release, its window in
// milliseconds: smaller to hash than a time.Time, and equal whenever the
// stored times would be.
type cellKey struct {
	wave    int
	org     string
	stratum string
	win     int64
	metric  string
}

// totalKey is a cell summed over its windows.
type totalKey struct {
	wave    int
	org     string
	stratum string
	metric  string
}

func compareTotalKeys(a, b totalKey) int {
	return cmp.Or(cmp.Compare(a.wave, b.wave), cmp.Compare(a.org, b.org), cmp.Compare(a.stratum, b.stratum), cmp.Compare(a.metric, b.metric))
}

// total is a running total and its value at the last MarkCounters.
type total struct {
	key   totalKey
	value int64
	mark  int64
}

// releaseCounters are one release's counters.
type releaseCounters struct {
	// index finds a cell, which knows its running total: an increment
	// hashes its key once. Cells live in a slice, not one allocation each.
	index map[cellKey]int
	cells []cell
	// totals are in CounterTotals' order. A new total is put in its
	// place when it first appears, which is rare once a wave has started,
	// so that reads never sort; byKey finds one for a cell of a new
	// window (every heartbeat flush opens one per organisation and stratum).
	totals []*total
	byKey  map[totalKey]*total
}

type cell struct {
	value int64
	total *total
}

// testimony is a device's Once mark about a release.
type testimony struct{ release, device, once string }

// believe keeps the counters of a device's event that count
// (store.Believe).
func (st *state) believe(device string, cs []store.Counter) (kept []store.Counter, refused int) {
	offered := func(release string) (bool, error) {
		_, ok := st.offers.byRelease[release][device]
		return ok, nil
	}
	mark := func(release, once string) (bool, error) {
		k := testimony{release, device, once}
		if _, said := st.testimony[k]; said {
			return false, nil
		}
		st.testimony[k] = struct{}{}
		return true, nil
	}
	kept, refused, _ = store.Believe(device, cs, offered, mark)
	return kept, refused
}

// addCounters adds increments to their cells and running totals. A zero
// increment still creates its cell, which Counters lists as sqlstore does.
func (st *state) addCounters(cs []store.Counter) {
	var rel string
	var rc *releaseCounters
	for _, c := range cs {
		// Batches are mostly of one release: look it up when it changes.
		if rc == nil || c.Release != rel {
			rel, rc = c.Release, st.counters[c.Release]
			if rc == nil {
				rc = &releaseCounters{index: map[cellKey]int{}, byKey: map[totalKey]*total{}}
				st.counters[c.Release] = rc
			}
		}
		k := cellKey{c.Wave, c.Org, c.Stratum, ms(c.Window), c.Metric}
		i, ok := rc.index[k]
		if !ok {
			i = len(rc.cells)
			rc.index[k] = i
			rc.cells = append(rc.cells, cell{total: rc.total(totalKey{c.Wave, c.Org, c.Stratum, c.Metric})})
		}
		rc.cells[i].value += c.Value
		rc.cells[i].total.value += c.Value
	}
}

// total finds or adds the total of a key, for a new cell.
func (rc *releaseCounters) total(k totalKey) *total {
	if t := rc.byKey[k]; t != nil {
		return t
	}
	i, _ := slices.BinarySearchFunc(rc.totals, k, func(t *total, k totalKey) int { return compareTotalKeys(t.key, k) })
	t := &total{key: k}
	rc.totals = slices.Insert(rc.totals, i, t)
	rc.byKey[k] = t
	return t
}

// Counters lists a release's cells by wave, organisation, stratum, window
// and metric.
func (s *Store) Counters(ctx context.Context, release string) ([]store.Counter, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	rc := st.counters[release]
	if rc == nil {
		s.mu.RUnlock()
		return nil, nil
	}
	type row struct {
		cellKey
		value int64
	}
	rows := make([]row, 0, len(rc.index))
	for k, i := range rc.index {
		rows = append(rows, row{k, rc.cells[i].value})
	}
	s.mu.RUnlock()
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.wave, b.wave), cmp.Compare(a.org, b.org), cmp.Compare(a.stratum, b.stratum),
			cmp.Compare(a.win, b.win), cmp.Compare(a.metric, b.metric))
	})
	out := make([]store.Counter, len(rows))
	for i, c := range rows {
		out[i] = store.Counter{CounterKey: store.CounterKey{Release: release, Wave: c.wave, Org: c.org, Stratum: c.stratum,
			Window: fromMS(c.win), Metric: c.metric}, Value: c.value}
	}
	return out, nil
}

// CounterTotals lists a release's non-zero totals, or their growth since
// the last MarkCounters, by wave, organisation, stratum and metric.
func (s *Store) CounterTotals(ctx context.Context, release string, sinceMark bool) ([]store.Counter, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rc := st.counters[release]
	if rc == nil {
		return nil, nil
	}
	out := make([]store.Counter, 0, len(rc.totals))
	for _, t := range rc.totals {
		v := t.value
		if sinceMark {
			v -= t.mark
		}
		if v != 0 {
			out = append(out, store.Counter{CounterKey: store.CounterKey{Release: release, Wave: t.key.wave, Org: t.key.org,
				Stratum: t.key.stratum, Metric: t.key.metric}, Value: v})
		}
	}
	if len(out) == 0 {
		return nil, nil // as a query that finds no rows
	}
	return out, nil
}

// MarkCounters replaces the release's marks with its totals now. A total
// that first appears after the mark has a mark of zero, as a missing mark
// row counts as zero in sqlstore.
func (s *Store) MarkCounters(ctx context.Context, release string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if rc := st.counters[release]; rc != nil {
		for _, t := range rc.totals {
			t.mark = t.value
		}
	}
	return nil
}
