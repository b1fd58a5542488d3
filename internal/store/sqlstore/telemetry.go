package sqlstore

// Check-ins, heartbeats and the gates' counters.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// --- check-ins and telemetry ---

func (s *Store) ApplyCheckins(ctx context.Context, ws []store.CheckinWrite) ([]store.CheckinResult, error) {
	out := make([]store.CheckinResult, len(ws))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The budgets' locks come before any device row's, in one order,
		// so two replicas' batches never wait on each other in a cycle.
		if err := s.lockBudgets(ctx, tx, ws); err != nil {
			return err
		}
		var counters []store.Counter
		for _, i := range byDevice(ws) {
			w := ws[i]
			var lastSeq, lastSeen int64
			var org string
			// The device's row is locked until the check-in is written: a
			// retry of the same check-in on another replica waits, then
			// reads the sequence this one wrote and stores nothing twice
			// (without the lock both read the old sequence and the second
			// insert of an event failed as a conflict).
			err := tx.QueryRowContext(ctx, s.q(`SELECT last_seq, last_seen, org FROM devices WHERE id = ?`+s.d.forUpdate), w.Device.ID).Scan(&lastSeq, &lastSeen, &org)
			if err != nil {
				return fmt.Errorf("check-in of device %s: %w", w.Device.ID, s.wrap(err))
			}
			seq := uint64(lastSeq)
			for _, e := range w.Events {
				if e.Seq <= seq {
					continue // a retry: stored already, counted already
				}
				counts, _ := json.Marshal(e.Counts)
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (device, seq, at, type, channel, version, reason, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
					w.Device.ID, int64(e.Seq), ms(e.Time), e.Type, e.Channel, int64(e.Version), e.Reason, string(counts)); err != nil {
					return err
				}
				kept, refused, err := s.believe(ctx, tx, w.Device.ID, e.Counters)
				if err != nil {
					return err
				}
				counters = append(counters, kept...)
				out[i].Refused += refused
				seq = e.Seq
				out[i].NewEvents++
			}
			out[i].LastSeq = seq
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET platform = ?, os_build = ?, agent_version = ?, last_seen = ?, last_seq = ?,
				anomalies = anomalies + ? WHERE id = ?`),
				w.Device.Platform, w.Device.OSBuild, w.Device.AgentVersion, max(lastSeen, ms(w.Device.LastSeen)), int64(seq),
				w.Anomalies+int64(out[i].Refused), w.Device.ID); err != nil {
				return err
			}
			for _, c := range w.Channels {
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO device_channels (device, channel, active_version, lkg_version, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)
					ON CONFLICT (device, channel) DO UPDATE SET active_version = excluded.active_version, lkg_version = excluded.lkg_version,
					state = excluded.state, updated_at = excluded.updated_at`),
					w.Device.ID, c.Channel, int64(c.ActiveVersion), int64(c.LKGVersion), c.State, ms(c.UpdatedAt)); err != nil {
					return err
				}
			}
			for _, o := range w.Offers {
				// An offer without device or organisation is this device's.
				if o.Device == "" {
					o.Device = w.Device.ID
				}
				locked := o.Org != "" // lockBudgets took its budget's lock
				if o.Org == "" && o.Device == w.Device.ID {
					o.Org = org
				}
				if o.Cap > 0 {
					spent, err := s.budgetSpent(ctx, tx, o, locked)
					if err != nil {
						return err
					}
					if spent {
						out[i].Capped = append(out[i].Capped, o.Release)
						continue
					}
				}
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO offers (release, device, org, wave, at) VALUES (?, ?, ?, ?, ?)
					ON CONFLICT (release, device) DO NOTHING`), o.Release, o.Device, o.Org, o.Wave, ms(o.At)); err != nil {
					return err
				}
			}
			for _, c := range w.Channels {
				if c.Release == "" {
					continue
				}
				ok, err := s.offered(ctx, tx, c.Release, w.Device.ID)
				if err != nil {
					return err
				}
				if ok {
					out[i].Offered = append(out[i].Offered, c.Release)
				}
			}
		}
		return s.addCounters(ctx, tx, counters)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) TouchDevices(ctx context.Context, seen []store.DeviceSeen, counters []store.Counter) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if len(seen) > 0 {
			stmt, err := tx.PrepareContext(ctx, s.q(`UPDATE devices SET last_seen = ? WHERE id = ? AND last_seen < ?`))
			if err != nil {
				return err
			}
			defer stmt.Close()
			seen = slices.Clone(seen)
			// By device (the lock order), and a device's windows in order.
			slices.SortFunc(seen, func(a, b store.DeviceSeen) int {
				return cmp.Or(strings.Compare(a.ID, b.ID), cmp.Compare(a.Window, b.Window))
			})
			// A heartbeat moves the device's window and its last-seen in
			// one statement; only when another replica counted the window
			// already does last-seen need its own.
			beat, err := tx.PrepareContext(ctx, s.q(`UPDATE devices SET hb_window = ?, last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END WHERE id = ? AND hb_window < ?`))
			if err != nil {
				return err
			}
			defer beat.Close()
			counters = slices.Clip(counters) // AddBeats appends: never into the caller's array
			for _, d := range seen {
				if d.Window > 0 && len(d.Beats) > 0 {
					r, err := beat.ExecContext(ctx, d.Window, ms(d.LastSeen), ms(d.LastSeen), d.ID, d.Window)
					if err != nil {
						return err
					}
					if n, err := r.RowsAffected(); err != nil {
						return err
					} else if n > 0 {
						counters = store.AddBeats(counters, d.Beats)
						continue
					}
				}
				if _, err := stmt.ExecContext(ctx, ms(d.LastSeen), d.ID, ms(d.LastSeen)); err != nil {
					return err
				}
			}
		}
		return s.addCounters(ctx, tx, counters)
	})
}

// offered reports whether release was offered to device.
func (s *Store) offered(ctx context.Context, tx *sql.Tx, release, device string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM offers WHERE release = ? AND device = ?`), release, device).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, s.wrap(err)
}

// believe keeps the counters of a device's event that count
// (store.Believe). Marks are rows of the device's, written while the
// batch holds its row, so they keep the batch's lock order.
func (s *Store) believe(ctx context.Context, tx *sql.Tx, device string, cs []store.Counter) ([]store.Counter, int, error) {
	offered := func(release string) (bool, error) { return s.offered(ctx, tx, release, device) }
	mark := func(release, once string) (bool, error) {
		r, err := tx.ExecContext(ctx, s.q(`INSERT INTO testimony (release, device, once) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), release, device, once)
		if err != nil {
			return false, s.wrap(err)
		}
		n, err := r.RowsAffected()
		return n > 0, s.wrap(err)
	}
	return store.Believe(device, cs, offered, mark)
}

// byDevice is the order ApplyCheckins writes a batch in: by device id.
// Every writer takes row locks in key order (devices, then counters, then
// totals), so concurrent batches, on one server or several replicas,
// never deadlock on PostgreSQL.
func byDevice(ws []store.CheckinWrite) []int { return store.WriteOrder(ws) }

type totalKey struct {
	release      string
	wave         int
	org, stratum string
	metric       string
}

// addCounters adds increments to the windowed counters and the running
// totals, each summed per row and written in key order (see byDevice).
func (s *Store) addCounters(ctx context.Context, tx *sql.Tx, cs []store.Counter) error {
	if len(cs) == 0 {
		return nil
	}
	cells := map[store.CounterKey]int64{}
	totals := map[totalKey]int64{}
	for _, c := range cs {
		cells[c.CounterKey] += c.Value
		totals[totalKey{c.Release, c.Wave, c.Org, c.Stratum, c.Metric}] += c.Value
	}
	keys := slices.Collect(maps.Keys(cells))
	slices.SortFunc(keys, func(a, b store.CounterKey) int {
		return cmp.Or(strings.Compare(a.Release, b.Release), cmp.Compare(a.Wave, b.Wave), strings.Compare(a.Org, b.Org),
			strings.Compare(a.Stratum, b.Stratum), a.Window.Compare(b.Window), strings.Compare(a.Metric, b.Metric))
	})
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO counters (release, wave, org, stratum, win, metric, value) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (release, wave, org, stratum, win, metric) DO UPDATE SET value = counters.value + excluded.value`),
			k.Release, k.Wave, k.Org, k.Stratum, ms(k.Window), k.Metric, cells[k]); err != nil {
			return err
		}
	}
	tkeys := slices.Collect(maps.Keys(totals))
	slices.SortFunc(tkeys, func(a, b totalKey) int {
		return cmp.Or(strings.Compare(a.release, b.release), cmp.Compare(a.wave, b.wave), strings.Compare(a.org, b.org),
			strings.Compare(a.stratum, b.stratum), strings.Compare(a.metric, b.metric))
	})
	for _, k := range tkeys {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO counter_totals (release, wave, org, stratum, metric, value) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (release, wave, org, stratum, metric) DO UPDATE SET value = counter_totals.value + excluded.value`),
			k.release, k.wave, k.org, k.stratum, k.metric, totals[k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Counters(ctx context.Context, release string) ([]store.Counter, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT release, wave, org, stratum, win, metric, value FROM counters WHERE release = ?
		ORDER BY wave, org, stratum, win, metric`), release)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Counter
	for rows.Next() {
		var c store.Counter
		var win int64
		if err := rows.Scan(&c.Release, &c.Wave, &c.Org, &c.Stratum, &win, &c.Metric, &c.Value); err != nil {
			return nil, s.wrap(err)
		}
		c.Window = fromMS(win)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) CounterTotals(ctx context.Context, release string, sinceMark bool) ([]store.Counter, error) {
	query := `SELECT wave, org, stratum, metric, value FROM counter_totals WHERE release = ? ORDER BY wave, org, stratum, metric`
	if sinceMark {
		query = `SELECT t.wave, t.org, t.stratum, t.metric, t.value - COALESCE(m.value, 0) FROM counter_totals t
			LEFT JOIN counter_marks m ON m.release = t.release AND m.wave = t.wave AND m.org = t.org AND m.stratum = t.stratum AND m.metric = t.metric
			WHERE t.release = ? ORDER BY t.wave, t.org, t.stratum, t.metric`
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(query), release)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Counter
	for rows.Next() {
		c := store.Counter{CounterKey: store.CounterKey{Release: release}}
		if err := rows.Scan(&c.Wave, &c.Org, &c.Stratum, &c.Metric, &c.Value); err != nil {
			return nil, s.wrap(err)
		}
		if c.Value != 0 {
			out = append(out, c)
		}
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) MarkCounters(ctx context.Context, release string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM counter_marks WHERE release = ?`), release); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO counter_marks (release, wave, org, stratum, metric, value)
			SELECT release, wave, org, stratum, metric, value FROM counter_totals WHERE release = ?`), release)
		return err
	})
}

// lockBudgets locks the budgets of the organisations a batch makes capped
// offers to, in order.
func (s *Store) lockBudgets(ctx context.Context, tx *sql.Tx, ws []store.CheckinWrite) error {
	if s.d.budgetLock == "" {
		return nil
	}
	var orgs []string
	for _, w := range ws {
		for _, o := range w.Offers {
			if o.Cap > 0 && o.Org != "" {
				orgs = append(orgs, o.Org)
			}
		}
	}
	slices.Sort(orgs)
	for _, org := range slices.Compact(orgs) {
		if _, err := tx.ExecContext(ctx, s.q(s.d.budgetLock), org); err != nil {
			return fmt.Errorf("budget of %s: %w", org, s.wrap(err))
		}
	}
	return nil
}

// budgetSpent reports whether a new offer would exceed its organisation's
// hourly budget; an offer stored already uses none of it again. locked:
// the budget's lock is held (the offer named its organisation).
func (s *Store) budgetSpent(ctx context.Context, tx *sql.Tx, o store.Offer, locked bool) (bool, error) {
	if s.d.budgetLock != "" && !locked {
		if _, err := tx.ExecContext(ctx, s.q(s.d.budgetLock), o.Org); err != nil {
			return false, fmt.Errorf("budget of %s: %w", o.Org, s.wrap(err))
		}
	}
	stored, err := s.offered(ctx, tx, o.Release, o.Device)
	if err != nil || stored {
		return false, err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM offers WHERE org = ? AND at >= ?`), o.Org, ms(o.At.Add(-time.Hour))).Scan(&n); err != nil {
		return false, fmt.Errorf("offers to %s: %w", o.Org, s.wrap(err))
	}
	return n >= o.Cap, nil
}
