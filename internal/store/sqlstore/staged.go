package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Staged rollouts: hourly budgets, offers, silence figures, kill switches
// and the controller lease.

func (s *Store) SetHourlyCap(ctx context.Context, org string, bp int) error {
	r, err := s.exec(ctx, `UPDATE tenants SET hourly_cap = ? WHERE id = ?`, bp, org)
	if err != nil {
		return fmt.Errorf("set hourly cap of %s: %w", org, err)
	}
	return notFoundIfNone(r, "tenant "+org)
}

func (s *Store) OffersSince(ctx context.Context, org string, since time.Time) (int64, error) {
	var n int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM offers WHERE org = ? AND at >= ?`), org, ms(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("offers to %s: %w", org, s.wrap(err))
	}
	return n, nil
}

func (s *Store) FleetSizes(ctx context.Context) (map[string]int64, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT org, COUNT(*) FROM devices WHERE NOT revoked GROUP BY org`)
	if err != nil {
		return nil, fmt.Errorf("fleet sizes: %w", s.wrap(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var org string
		var n int64
		if err := rows.Scan(&org, &n); err != nil {
			return nil, s.wrap(err)
		}
		out[org] = n
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) AgentVersions(ctx context.Context) ([]store.AgentVersionCount, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT platform, agent_version, COUNT(*) FROM devices WHERE NOT revoked
		GROUP BY platform, agent_version ORDER BY platform, agent_version`)
	if err != nil {
		return nil, fmt.Errorf("agent versions: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.AgentVersionCount
	for rows.Next() {
		var c store.AgentVersionCount
		if err := rows.Scan(&c.Platform, &c.AgentVersion, &c.Devices); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) VersionCounts(ctx context.Context, q store.VersionQuery) ([]store.VersionCount, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT dc.channel, dc.active_version, COUNT(*),
		SUM(CASE WHEN d.last_seen < ? THEN 1 ELSE 0 END)
		FROM device_channels dc JOIN devices d ON d.id = dc.device
		WHERE NOT d.revoked AND (? = '' OR d.org = ?)
		GROUP BY dc.channel, dc.active_version ORDER BY dc.channel, dc.active_version`), ms(q.QuietBefore), q.Org, q.Org)
	if err != nil {
		return nil, fmt.Errorf("version counts: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.VersionCount
	for rows.Next() {
		var c store.VersionCount
		var v int64
		if err := rows.Scan(&c.Channel, &v, &c.Devices, &c.Silent); err != nil {
			return nil, fmt.Errorf("version counts: %w", s.wrap(err))
		}
		c.Version = uint64(v)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// SilenceStats is one pass over the devices, each looked up in offers by
// its primary key (release, device). An offered device counts whenever it
// was last seen: its offer proves it was seen after the release started.
func (s *Store) SilenceStats(ctx context.Context, q store.SilenceQuery) ([]store.SilenceStat, error) {
	overdue := ms(q.OverdueBefore)
	// ok: offered and confirmed (last-known-good at the release's version).
	ok := `o.device IS NOT NULL AND ? > 0 AND COALESCE(dc.lkg_version, 0) >= ?`
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT d.org, d.platform || '/' || d.agent_version || '/' || d.os_build AS stratum,
		COUNT(o.device),
		COUNT(CASE WHEN o.device IS NOT NULL AND d.last_seen < ? AND NOT (`+ok+`) THEN 1 END),
		COUNT(CASE WHEN `+ok+` THEN 1 END),
		COUNT(CASE WHEN d.last_seen < ? AND `+ok+` THEN 1 END),
		COUNT(CASE WHEN o.device IS NULL THEN 1 END),
		COUNT(CASE WHEN o.device IS NULL AND d.last_seen < ? THEN 1 END)
		FROM devices d LEFT JOIN offers o ON o.release = ? AND o.device = d.id
		LEFT JOIN device_channels dc ON dc.device = d.id AND dc.channel = ?
		WHERE NOT d.revoked AND (o.device IS NOT NULL OR d.last_seen >= ?)
		GROUP BY d.org, d.platform || '/' || d.agent_version || '/' || d.os_build`),
		overdue, int64(q.Version), int64(q.Version),
		int64(q.Version), int64(q.Version),
		overdue, int64(q.Version), int64(q.Version),
		overdue, q.Release, q.Channel, ms(q.Since))
	if err != nil {
		return nil, fmt.Errorf("silence of release %s: %w", q.Release, s.wrap(err))
	}
	defer rows.Close()
	var out []store.SilenceStat
	for rows.Next() {
		var st store.SilenceStat
		if err := rows.Scan(&st.Org, &st.Stratum, &st.Offered, &st.OfferedSilent, &st.Confirmed, &st.ConfirmedSilent, &st.Control, &st.ControlSilent); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	// Sorted here, not by the database, whose collation may differ.
	slices.SortFunc(out, store.CompareSilence)
	return out, nil
}

func (s *Store) DevicesOnVersion(ctx context.Context, channel string, version uint64) (int64, error) {
	var n int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM device_channels dc JOIN devices d ON d.id = dc.device
		WHERE dc.channel = ? AND dc.active_version = ? AND NOT d.revoked`), channel, int64(version)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("devices on %s@%d: %w", channel, version, s.wrap(err))
	}
	return n, nil
}

// --- kill switches ---

func (s *Store) SetKillSwitch(ctx context.Context, k store.KillSwitch) error {
	_, err := s.exec(ctx, `INSERT INTO kill_switches (scope, engaged, reason, actor, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (scope) DO UPDATE SET engaged = excluded.engaged, reason = excluded.reason, actor = excluded.actor, at = excluded.at`,
		k.Scope, k.Engaged, k.Reason, k.Actor, ms(k.At))
	if err != nil {
		return fmt.Errorf("set kill switch %s: %w", k.Scope, err)
	}
	return nil
}

func (s *Store) KillSwitches(ctx context.Context) ([]store.KillSwitch, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT scope, engaged, reason, actor, at FROM kill_switches ORDER BY scope`)
	if err != nil {
		return nil, fmt.Errorf("kill switches: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.KillSwitch
	for rows.Next() {
		var k store.KillSwitch
		var at int64
		if err := rows.Scan(&k.Scope, &k.Engaged, &k.Reason, &k.Actor, &at); err != nil {
			return nil, s.wrap(err)
		}
		k.At = fromMS(at)
		out = append(out, k)
	}
	return out, s.wrap(rows.Err())
}

// --- plan templates ---

func (s *Store) PutPlanTemplate(ctx context.Context, t store.PlanTemplate) error {
	_, err := s.exec(ctx, `INSERT INTO plan_templates (vendor, name, plan, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (vendor, name) DO UPDATE SET plan = excluded.plan, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		t.Vendor, t.Name, string(t.Plan), ms(t.UpdatedAt), t.UpdatedBy)
	if err != nil {
		return fmt.Errorf("put plan %s/%s: %w", t.Vendor, t.Name, err)
	}
	return nil
}

func (s *Store) DeletePlanTemplate(ctx context.Context, vendor, name string) error {
	r, err := s.exec(ctx, `DELETE FROM plan_templates WHERE vendor = ? AND name = ?`, vendor, name)
	if err != nil {
		return fmt.Errorf("delete plan %s/%s: %w", vendor, name, err)
	}
	return notFoundIfNone(r, "plan "+vendor+"/"+name)
}

func (s *Store) PlanTemplates(ctx context.Context, vendor string) ([]store.PlanTemplate, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT vendor, name, plan, updated_at, updated_by FROM plan_templates
		WHERE ? = '' OR vendor = ? ORDER BY vendor, name`), vendor, vendor)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []store.PlanTemplate
	for rows.Next() {
		var t store.PlanTemplate
		var plan string
		var at int64
		if err := rows.Scan(&t.Vendor, &t.Name, &plan, &at, &t.UpdatedBy); err != nil {
			return nil, s.wrap(err)
		}
		t.Plan, t.UpdatedAt = []byte(plan), fromMS(at)
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

// --- the controller lease ---

// leaderLockKey is the PostgreSQL session advisory lock the controller
// holds. It must differ from the transaction locks 4242 (migrations) and
// 4243 (audit appends), which share the same key space.
const leaderLockKey = 4244

// errClosed is what a closed store answers.
var errClosed = fmt.Errorf("%w: store is closed", store.ErrUnavailable)

// Lead grants SQLite's single node the lease; on PostgreSQL it takes a
// session advisory lock on a connection of its own, which the lease keeps
// until Release (or until the connection dies, when PostgreSQL frees it).
func (s *Store) Lead(ctx context.Context) (store.Lease, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if s.d.name != postgresDialect.name {
		return sqliteLease{s}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lead: %w", s.wrap(err))
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(leaderLockKey)).Scan(&ok); err != nil {
		// Whether the lock was taken is unknown: never hand this session
		// back to the pool.
		discard(conn)
		return nil, fmt.Errorf("lead: %w", s.wrap(err))
	}
	if !ok {
		conn.Close()
		return nil, store.ErrNotLeader
	}
	l := &pgLease{s: s, conn: conn}
	s.leaseMu.Lock()
	s.leases[l] = struct{}{}
	s.leaseMu.Unlock()
	if s.closed.Load() { // closed meanwhile: Close may have missed it
		l.Release()
		return nil, errClosed
	}
	return l, nil
}

// discard closes a connection's session instead of returning it to the
// pool, so no session lock it may hold outlives it.
func discard(conn *sql.Conn) {
	if err := conn.Raw(func(any) error { return driver.ErrBadConn }); err != nil {
		conn.Close()
	}
}

type sqliteLease struct{ s *Store }

func (l sqliteLease) Check(context.Context) error {
	if l.s.closed.Load() {
		return errClosed
	}
	return nil
}

func (sqliteLease) Release() error { return nil }

type pgLease struct {
	s    *Store
	mu   sync.Mutex
	conn *sql.Conn // nil once released
}

func (l *pgLease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		if l.s.closed.Load() {
			return errClosed
		}
		return fmt.Errorf("lease released: %w", store.ErrNotLeader)
	}
	var held bool
	err := l.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
		AND pid = pg_backend_pid() AND granted AND classid = 0 AND objid = $1 AND objsubid = 1)`, int64(leaderLockKey)).Scan(&held)
	if err != nil {
		return fmt.Errorf("check lease: %w", l.s.wrap(err))
	}
	if !held {
		return fmt.Errorf("check lease: the advisory lock is no longer held: %w", store.ErrNotLeader)
	}
	return nil
}

// Release unlocks and gives the connection back; if unlocking fails the
// session is closed instead, which frees the lock too. Releasing again
// does nothing.
func (l *pgLease) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	conn := l.conn
	l.conn = nil
	l.s.leaseMu.Lock()
	delete(l.s.leases, l)
	l.s.leaseMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var unlocked bool
	err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(leaderLockKey)).Scan(&unlocked)
	if err == nil && unlocked {
		return conn.Close()
	}
	discard(conn)
	if err != nil && !errors.Is(err, sql.ErrConnDone) && !errors.Is(err, driver.ErrBadConn) {
		return fmt.Errorf("release lease: %w", l.s.wrap(err))
	}
	return nil
}
