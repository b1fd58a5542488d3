// Package sqlstore implements store.Store on SQL: embedded SQLite through
// modernc.org/sqlite (pure Go, no setup) or PostgreSQL through pgx. The two
// share their queries; a dialect holds the few differences (placeholders,
// types, error codes, how writers are serialised).
package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ringfence/ringfence/internal/store"
)

type dialect struct {
	name     string
	driver   string
	blob     string
	dollar   bool // $1 placeholders
	lockHead string
	serial   string // an auto-incrementing primary key column
}

var (
	sqliteDialect   = dialect{name: "sqlite", driver: "sqlite", blob: "BLOB", serial: "INTEGER PRIMARY KEY AUTOINCREMENT"}
	postgresDialect = dialect{name: "postgres", driver: "pgx", blob: "BYTEA", dollar: true,
		lockHead: "SELECT pg_advisory_xact_lock(4242)", serial: "BIGSERIAL PRIMARY KEY"}
)

// Store is a SQL-backed store.Store.
type Store struct {
	db *sql.DB
	d  dialect

	mu      sync.Mutex
	queries map[string]string

	closed  atomic.Bool
	leaseMu sync.Mutex
	leases  map[*pgLease]struct{} // held controller leases, released by Close

	auditKey atomic.Pointer[[]byte]
}

// Open opens the store named by url: "" or "sqlite:PATH" for SQLite (""
// means dataDir/ringfence.db), "postgres://..." for PostgreSQL. It applies
// pending migrations.
func Open(ctx context.Context, url, dataDir string) (*Store, error) {
	return open(ctx, url, dataDir, len(migrations))
}

// open opens the store and applies the first n migrations.
func open(ctx context.Context, url, dataDir string, n int) (*Store, error) {
	var s *Store
	switch {
	case url == "" || strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		if path == "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("open store: %w", err)
			}
			path = filepath.Join(dataDir, "ringfence.db")
		}
		// WAL lets readers run beside the writer; synchronous=FULL makes a
		// committed transaction survive power loss; immediate transactions
		// take the write lock up front so writers queue on busy_timeout
		// instead of failing on upgrade.
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
		db, err := sql.Open(sqliteDialect.driver, dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		db.SetMaxOpenConns(8)
		s = &Store{db: db, d: sqliteDialect}
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		db, err := sql.Open(postgresDialect.driver, url)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s = &Store{db: db, d: postgresDialect}
	default:
		return nil, fmt.Errorf("open store: unsupported database URL %q (want sqlite:PATH or postgres://...)", redact(url))
	}
	s.queries = map[string]string{}
	s.leases = map[*pgLease]struct{}{}
	if err := s.migrate(ctx, n); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func redact(url string) string {
	if i := strings.Index(url, "@"); i > 0 {
		if j := strings.Index(url, "://"); j > 0 && j < i {
			return url[:j+3] + "***" + url[i:]
		}
	}
	return url
}

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// DB exposes the handle for tests that need to reach under the interface.
func (s *Store) DB() *sql.DB { return s.db }

// q rewrites ? placeholders for the dialect, once per query text.
func (s *Store) q(query string) string {
	if !s.d.dollar {
		return query
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.queries[query]; ok {
		return r
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	s.queries[query] = b.String()
	return s.queries[query]
}

func (s *Store) migrate(ctx context.Context, n int) error {
	if _, err := s.conn(ctx).ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", s.wrap(err))
	}
	for i := range min(n, len(migrations)) {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if s.d.lockHead != "" {
				// Replicas starting together: one migrates, the others wait.
				if _, err := tx.ExecContext(ctx, s.d.lockHead); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), i+1).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range strings.Split(s.d.migration(i), ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), i+1, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// SchemaVersion is the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.conn(ctx).QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), s.wrap(err)
}

// Migrations is how many migrations this build knows.
func Migrations() int { return len(migrations) }

// txKey carries the transaction of an Atomically call in its context.
type txKey struct{ s *Store }

// querier is what the store's statements run on: the database, or the
// transaction of the Atomically call in progress.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) inTx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{s}).(*sql.Tx)
	return tx
}

func (s *Store) conn(ctx context.Context) querier {
	if tx := s.inTx(ctx); tx != nil {
		return tx
	}
	return s.db
}

// Atomically runs fn with a context in which every call of this store
// shares one transaction: a change and its audit entry are stored
// together or not at all.
func (s *Store) Atomically(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return fn(context.WithValue(ctx, txKey{s}, tx)) })
}

// tx runs fn in a transaction: the Atomically call's, if one is in
// progress, else a new one.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if tx := s.inTx(ctx); tx != nil {
		return fn(tx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// wrap maps driver errors onto the store's sentinels.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w", store.ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"), pe.Code == "53300":
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "bad connection") ||
		strings.Contains(err.Error(), "sql: database is closed") {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

func ms(t time.Time) int64 { return store.Millis(t) }

func fromMS(v int64) time.Time { return store.FromMillis(v) }

// Ping checks the database answers and the schema is current.
func (s *Store) Ping(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v < len(migrations) {
		return fmt.Errorf("%w: schema at migration %d, this build needs %d", store.ErrUnavailable, v, len(migrations))
	}
	return nil
}

// Close releases any controller lease this store holds (so another
// replica can take over at once) and closes the database.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.leaseMu.Lock()
	held := make([]*pgLease, 0, len(s.leases))
	for l := range s.leases {
		held = append(held, l)
	}
	s.leaseMu.Unlock()
	for _, l := range held {
		l.Release()
	}
	return s.db.Close()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := s.conn(ctx).ExecContext(ctx, s.q(query), args...)
	return r, s.wrap(err)
}

func notFoundIfNone(r sql.Result, what string) error {
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// --- tenants ---

func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.exec(ctx, `INSERT INTO tenants (id, kind, name, internal, hourly_cap, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, string(t.Kind), t.Name, t.Internal, t.HourlyCap, ms(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return nil
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	var kind string
	var at int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT id, kind, name, internal, hourly_cap, created_at FROM tenants WHERE id = ?`), id).
		Scan(&t.ID, &kind, &t.Name, &t.Internal, &t.HourlyCap, &at)
	if err != nil {
		return t, fmt.Errorf("tenant %s: %w", id, s.wrap(err))
	}
	t.Kind, t.CreatedAt = store.TenantKind(kind), fromMS(at)
	return t, nil
}

func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT id, kind, name, internal, hourly_cap, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var kind string
		var at int64
		if err := rows.Scan(&t.ID, &kind, &t.Name, &t.Internal, &t.HourlyCap, &at); err != nil {
			return nil, s.wrap(err)
		}
		t.Kind, t.CreatedAt = store.TenantKind(kind), fromMS(at)
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

// --- channels ---

const channelCols = `id, vendor, name, kind, category, unpausable, created_at`

func scanChannel(sc interface{ Scan(...any) error }) (store.Channel, error) {
	var c store.Channel
	var kind string
	var at int64
	err := sc.Scan(&c.ID, &c.Vendor, &c.Name, &kind, &c.Category, &c.Unpausable, &at)
	c.Kind, c.CreatedAt = store.ChannelKind(kind), fromMS(at)
	return c, err
}

func (s *Store) CreateChannel(ctx context.Context, c store.Channel) error {
	_, err := s.exec(ctx, `INSERT INTO channels (`+channelCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Vendor, c.Name, string(c.Kind), c.Category, c.Unpausable, ms(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("create channel %s: %w", c.ID, err)
	}
	return nil
}

func (s *Store) GetChannel(ctx context.Context, id string) (store.Channel, error) {
	c, err := scanChannel(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+channelCols+` FROM channels WHERE id = ?`), id))
	if err != nil {
		return c, fmt.Errorf("channel %s: %w", id, s.wrap(err))
	}
	return c, nil
}

func (s *Store) ListChannels(ctx context.Context, vendor string) ([]store.Channel, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+channelCols+` FROM channels WHERE ? = '' OR vendor = ? ORDER BY id`), vendor, vendor)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// --- artifacts ---

func (s *Store) PutArtifact(ctx context.Context, a store.Artifact) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var hash string
		err := tx.QueryRowContext(ctx, s.q(`SELECT sha256 FROM artifacts WHERE channel = ? AND version = ?`), a.Channel, int64(a.Version)).Scan(&hash)
		switch {
		case err == nil && hash == a.SHA256:
			return nil
		case err == nil:
			return fmt.Errorf("artifact %s@%d: stored with sha256 %s, refusing different bytes (%s): %w", a.Channel, a.Version, hash, a.SHA256, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO artifacts (channel, version, sha256, size, bytes, created_at, findings) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			a.Channel, int64(a.Version), a.SHA256, a.Size, a.Bytes, ms(a.CreatedAt), a.Findings)
		return err
	})
}

func (s *Store) GetArtifact(ctx context.Context, channel string, version uint64) (store.Artifact, error) {
	a := store.Artifact{Channel: channel, Version: version}
	var at int64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT sha256, size, bytes, created_at, findings FROM artifacts WHERE channel = ? AND version = ?`), channel, int64(version)).
		Scan(&a.SHA256, &a.Size, &a.Bytes, &at, &a.Findings)
	if err != nil {
		return a, fmt.Errorf("artifact %s@%d: %w", channel, version, s.wrap(err))
	}
	a.CreatedAt = fromMS(at)
	return a, nil
}

func (s *Store) LatestArtifactVersion(ctx context.Context, channel string) (uint64, error) {
	var v sql.NullInt64
	err := s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT MAX(version) FROM artifacts WHERE channel = ?`), channel).Scan(&v)
	return uint64(v.Int64), s.wrap(err)
}

// --- releases ---

const releaseCols = `id, channel, version, plan, state, wave, reason, revision, created_by, created_at, updated_at, wave_started_at, completed_at,
	lane, phase, halted_by, approvals, gates_since, cohort, creator_token`

func scanRelease(sc interface{ Scan(...any) error }) (store.Release, error) {
	var r store.Release
	var version int64
	var plan, state, approvals, cohort string
	var created, updated, waveAt, doneAt, gatesAt int64
	err := sc.Scan(&r.ID, &r.Channel, &version, &plan, &state, &r.Wave, &r.Reason, &r.Revision, &r.CreatedBy, &created, &updated, &waveAt, &doneAt,
		&r.Lane, &r.Phase, &r.HaltedBy, &approvals, &gatesAt, &cohort, &r.CreatorToken)
	if err != nil {
		return r, err
	}
	r.Version, r.Plan, r.State = uint64(version), []byte(plan), store.ReleaseState(state)
	r.CreatedAt, r.UpdatedAt, r.WaveStartedAt, r.CompletedAt = fromMS(created), fromMS(updated), fromMS(waveAt), fromMS(doneAt)
	r.GatesSince = fromMS(gatesAt)
	if cohort != "" {
		r.Cohort = []byte(cohort)
	}
	if r.Approvals, err = decodeApprovals(approvals); err != nil {
		return r, fmt.Errorf("release %s: stored approvals: %w", r.ID, err)
	}
	return r, nil
}

// encodeApprovals stores approvals as a JSON array ("[]" when there are
// none), times in UTC milliseconds like every other stored time.
func encodeApprovals(as []store.Approval) string {
	norm := make([]store.Approval, len(as))
	for i, a := range as {
		a.At = fromMS(ms(a.At))
		norm[i] = a
	}
	b, _ := json.Marshal(norm)
	return string(b)
}

// decodeApprovals reads what encodeApprovals stored; none reads back nil.
func decodeApprovals(s string) ([]store.Approval, error) {
	if s == "" || s == "[]" || s == "null" {
		return nil, nil
	}
	var as []store.Approval
	if err := json.Unmarshal([]byte(s), &as); err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, nil
	}
	return as, nil
}

func (s *Store) CreateRelease(ctx context.Context, r store.Release) error {
	if err := store.CheckRelease(r); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Channel, int64(r.Version), string(r.Plan), string(r.State), r.Wave, r.Reason, r.CreatedBy,
		ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.WaveStartedAt), ms(r.CompletedAt),
		r.Lane, r.Phase, r.HaltedBy, encodeApprovals(r.Approvals), ms(r.GatesSince), string(r.Cohort), r.CreatorToken)
	if err != nil {
		return fmt.Errorf("create release %s: %w", r.ID, err)
	}
	return nil
}

func (s *Store) GetRelease(ctx context.Context, id string) (store.Release, error) {
	r, err := scanRelease(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE id = ?`), id))
	if err != nil {
		return r, fmt.Errorf("release %s: %w", id, s.wrap(err))
	}
	return r, nil
}

func (s *Store) ListReleases(ctx context.Context, channel string) ([]store.Release, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE ? = '' OR channel = ? ORDER BY channel, version`), channel, channel)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) UpdateRelease(ctx context.Context, r store.Release, audit ...store.AuditEntry) (int64, error) {
	if err := store.CheckRelease(r); err != nil {
		return 0, err
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE releases SET plan = ?, state = ?, wave = ?, reason = ?, revision = revision + 1,
		updated_at = ?, wave_started_at = ?, completed_at = ?,
		lane = ?, phase = ?, halted_by = ?, approvals = ?, gates_since = ?, cohort = ? WHERE id = ? AND revision = ?`),
			string(r.Plan), string(r.State), r.Wave, r.Reason, ms(r.UpdatedAt), ms(r.WaveStartedAt), ms(r.CompletedAt),
			r.Lane, r.Phase, r.HaltedBy, encodeApprovals(r.Approvals), ms(r.GatesSince), string(r.Cohort), r.ID, r.Revision)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, e := range audit {
			if _, err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("update release %s: %w", r.ID, s.wrap(err))
	}
	if n == 0 {
		if _, err := s.GetRelease(ctx, r.ID); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("update release %s at revision %d: %w", r.ID, r.Revision, store.ErrStale)
	}
	return r.Revision + 1, nil
}

// --- policies ---

func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	w, _ := json.Marshal(p.Windows)
	_, err := s.exec(ctx, `INSERT INTO policies (org, channel, track, windows, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org, channel) DO UPDATE SET track = excluded.track, windows = excluded.windows, updated_at = excluded.updated_at`,
		p.Org, p.Channel, p.Track, string(w), ms(p.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put policy %s %s: %w", p.Org, p.Channel, err)
	}
	return nil
}

func (s *Store) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	return s.policies(ctx, `SELECT org, channel, track, windows, updated_at FROM policies WHERE org = ? ORDER BY channel`, org)
}

func (s *Store) AllPolicies(ctx context.Context) ([]store.Policy, error) {
	return s.policies(ctx, `SELECT org, channel, track, windows, updated_at FROM policies ORDER BY org, channel`)
}

func (s *Store) policies(ctx context.Context, query string, args ...any) ([]store.Policy, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Policy
	for rows.Next() {
		var p store.Policy
		var w string
		var at int64
		if err := rows.Scan(&p.Org, &p.Channel, &p.Track, &w, &at); err != nil {
			return nil, s.wrap(err)
		}
		if err := json.Unmarshal([]byte(w), &p.Windows); err != nil {
			return nil, fmt.Errorf("policy %s %s: stored windows: %w", p.Org, p.Channel, err)
		}
		p.UpdatedAt = fromMS(at)
		out = append(out, p)
	}
	return out, s.wrap(rows.Err())
}

// --- tokens ---

func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, tenant, role, name, hash, created_at, revoked, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Tenant, string(t.Role), t.Name, t.Hash, ms(t.CreatedAt), t.Revoked, t.CreatedBy)
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, err)
	}
	return nil
}

const apiTokenCols = `id, tenant, role, name, hash, created_at, revoked, created_by`

func scanAPIToken(sc interface{ Scan(...any) error }) (store.APIToken, error) {
	var t store.APIToken
	var role string
	var at int64
	err := sc.Scan(&t.ID, &t.Tenant, &role, &t.Name, &t.Hash, &at, &t.Revoked, &t.CreatedBy)
	t.Role, t.CreatedAt = store.Role(role), fromMS(at)
	return t, err
}

func (s *Store) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanAPIToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE hash = ?`), hash))
	if err != nil {
		return t, fmt.Errorf("api token: %w", s.wrap(err))
	}
	return t, nil
}

func (s *Store) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	t, err := scanAPIToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ?`), id))
	if err != nil {
		return t, fmt.Errorf("api token %s: %w", id, s.wrap(err))
	}
	return t, nil
}

func (s *Store) ListAPITokens(ctx context.Context, tenant string) ([]store.APIToken, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE ? = '' OR tenant = ? ORDER BY id`), tenant, tenant)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeAPIToken(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE api_tokens SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "api token "+id)
}

func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	_, err := s.exec(ctx, `INSERT INTO enroll_tokens (id, org, hash, created_at, expires_at, revoked, max_uses, uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Org, t.Hash, ms(t.CreatedAt), ms(t.ExpiresAt), t.Revoked, t.MaxUses, t.Uses)
	if err != nil {
		return fmt.Errorf("create enrolment token %s: %w", t.ID, err)
	}
	return nil
}

const enrollTokenCols = `id, org, hash, created_at, expires_at, revoked, max_uses, uses`

func scanEnrollToken(sc interface{ Scan(...any) error }) (store.EnrollToken, error) {
	var t store.EnrollToken
	var created, expires int64
	err := sc.Scan(&t.ID, &t.Org, &t.Hash, &created, &expires, &t.Revoked, &t.MaxUses, &t.Uses)
	t.CreatedAt, t.ExpiresAt = fromMS(created), fromMS(expires)
	return t, err
}

func (s *Store) EnrollTokenByHash(ctx context.Context, hash string) (store.EnrollToken, error) {
	t, err := scanEnrollToken(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE hash = ?`), hash))
	if err != nil {
		return t, fmt.Errorf("enrolment token: %w", s.wrap(err))
	}
	return t, nil
}

func (s *Store) ListEnrollTokens(ctx context.Context, org string) ([]store.EnrollToken, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE ? = '' OR org = ? ORDER BY created_at, id`), org, org)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.EnrollToken
	for rows.Next() {
		t, err := scanEnrollToken(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, t)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeEnrollToken(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE enroll_tokens SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "enrolment token "+id)
}

// --- devices ---

const deviceCols = `id, org, cred_hash, platform, os_build, agent_version, enrolled_at, last_seen, last_seq, revoked`

// deviceRead is what a device read selects: its columns and what the
// store counts for it.
const deviceRead = deviceCols + `, anomalies, enroll_token`

func scanDevice(sc interface{ Scan(...any) error }) (store.Device, error) {
	var d store.Device
	var enrolled, seen, seq int64
	err := sc.Scan(&d.ID, &d.Org, &d.CredHash, &d.Platform, &d.OSBuild, &d.AgentVersion, &enrolled, &seen, &seq, &d.Revoked, &d.Anomalies, &d.EnrolledWith)
	d.EnrolledAt, d.LastSeen, d.LastSeq = fromMS(enrolled), fromMS(seen), uint64(seq)
	return d, err
}

func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	return s.CreateDevices(ctx, []store.Device{d})
}

// CreateDevices inserts the devices and counts their enrolment tokens'
// uses in one transaction: a token used up, revoked, expired or of
// another organisation fails it (store.ErrEnrollToken). Tokens are
// counted in id order, so batches on two replicas never deadlock.
func (s *Store) CreateDevices(ctx context.Context, ds []store.Device) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO devices (`+deviceCols+`, enroll_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		uses := map[string][]store.Device{}
		for _, d := range ds {
			if _, err := stmt.ExecContext(ctx, d.ID, d.Org, d.CredHash, d.Platform, d.OSBuild, d.AgentVersion,
				ms(d.EnrolledAt), ms(d.LastSeen), int64(d.LastSeq), d.Revoked, d.EnrolledWith); err != nil {
				return fmt.Errorf("create device %s: %w", d.ID, s.wrap(err))
			}
			if d.EnrolledWith != "" {
				uses[d.EnrolledWith] = append(uses[d.EnrolledWith], d)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(uses)) {
			for _, d := range uses[id] {
				r, err := tx.ExecContext(ctx, s.q(`UPDATE enroll_tokens SET uses = uses + 1 WHERE id = ? AND org = ? AND NOT revoked
					AND (max_uses = 0 OR uses < max_uses) AND (expires_at = 0 OR expires_at > ?)`), id, d.Org, ms(d.EnrolledAt))
				if err != nil {
					return s.wrap(err)
				}
				if n, err := r.RowsAffected(); err != nil || n == 0 {
					return fmt.Errorf("create device %s with %s: %w", d.ID, id, store.ErrEnrollToken)
				}
			}
		}
		return nil
	})
}

func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.conn(ctx).QueryRowContext(ctx, s.q(`SELECT `+deviceRead+` FROM devices WHERE id = ?`), id))
	if err != nil {
		return d, fmt.Errorf("device %s: %w", id, s.wrap(err))
	}
	return d, nil
}

func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT `+deviceRead+` FROM devices
		WHERE (? = '' OR org = ?) AND (? = '' OR platform = ?) AND (? = '' OR agent_version = ?) AND id > ?
		ORDER BY id LIMIT ?`),
		f.Org, f.Org, f.Platform, f.Platform, f.AgentVersion, f.AgentVersion, f.After, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, d)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) DeviceChannels(ctx context.Context, device string) ([]store.DeviceChannel, error) {
	rows, err := s.conn(ctx).QueryContext(ctx, s.q(`SELECT dc.device, dc.channel, dc.active_version, dc.lkg_version, dc.state, dc.updated_at,
		EXISTS (SELECT 1 FROM releases r JOIN offers o ON o.release = r.id AND o.device = dc.device WHERE r.channel = dc.channel AND r.version = dc.active_version)
		FROM device_channels dc WHERE dc.device = ? ORDER BY dc.channel`), device)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []store.DeviceChannel
	for rows.Next() {
		var c store.DeviceChannel
		var active, lkg, at int64
		if err := rows.Scan(&c.Device, &c.Channel, &active, &lkg, &c.State, &at, &c.Offered); err != nil {
			return nil, s.wrap(err)
		}
		c.ActiveVersion, c.LKGVersion, c.UpdatedAt = uint64(active), uint64(lkg), fromMS(at)
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

func (s *Store) RevokeDevice(ctx context.Context, id string) error {
	r, err := s.exec(ctx, `UPDATE devices SET revoked = ? WHERE id = ?`, true, id)
	if err != nil {
		return err
	}
	return notFoundIfNone(r, "device "+id)
}

// --- check-ins and telemetry ---

func (s *Store) ApplyCheckins(ctx context.Context, ws []store.CheckinWrite) ([]store.CheckinResult, error) {
	out := make([]store.CheckinResult, len(ws))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var counters []store.Counter
		for _, i := range byDevice(ws) {
			w := ws[i]
			var lastSeq, lastSeen int64
			var org string
			err := tx.QueryRowContext(ctx, s.q(`SELECT last_seq, last_seen, org FROM devices WHERE id = ?`), w.Device.ID).Scan(&lastSeq, &lastSeen, &org)
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
				if o.Org == "" && o.Device == w.Device.ID {
					o.Org = org
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
			slices.SortFunc(seen, func(a, b store.DeviceSeen) int { return strings.Compare(a.ID, b.ID) })
			for _, d := range seen {
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
