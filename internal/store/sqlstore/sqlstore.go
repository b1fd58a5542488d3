// Package sqlstore implements store.Store on SQL: embedded SQLite through
// modernc.org/sqlite (pure Go, no setup) or PostgreSQL through pgx. The two
// share their queries; a dialect holds the few differences (placeholders,
// types, error codes, how writers are serialised).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
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
	// forUpdate locks the rows a SELECT reads until the transaction ends
	// (PostgreSQL); SQLite has one writer at a time anyway.
	forUpdate string
	serial    string // an auto-incrementing primary key column
	// budgetLock takes a transaction lock on one organisation's hourly
	// budget (PostgreSQL: replicas write offers side by side); SQLite
	// has one writer at a time anyway.
	budgetLock string
}

var (
	sqliteDialect   = dialect{name: "sqlite", driver: "sqlite", blob: "BLOB", serial: "INTEGER PRIMARY KEY AUTOINCREMENT"}
	postgresDialect = dialect{name: "postgres", driver: "pgx", blob: "BYTEA", dollar: true,
		lockHead: "SELECT pg_advisory_xact_lock(4242)", serial: "BIGSERIAL PRIMARY KEY", forUpdate: " FOR UPDATE",
		budgetLock: "SELECT pg_advisory_xact_lock(hashtextextended('budget/' || ?, 0))"}
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

	// prov runs the migrations (made once: readiness checks ask the
	// schema's version often).
	provOnce sync.Once
	prov     *goose.Provider
	provErr  error
}

// Open opens the store named by url: "" or "sqlite:PATH" for SQLite (""
// means dataDir/ringfence.db), "postgres://..." for PostgreSQL. It applies
// pending migrations.
func Open(ctx context.Context, url, dataDir string) (*Store, error) {
	return open(ctx, url, dataDir, len(migrations))
}

// OpenWithoutMigrating opens the store and applies no migration (a
// database of the old runner is adopted by goose first): for reading its
// status.
func OpenWithoutMigrating(ctx context.Context, url, dataDir string) (*Store, error) {
	return open(ctx, url, dataDir, 0)
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

// versionTable is where goose records the applied migrations.
const versionTable = "goose_db_version"

// provider is goose's migration runner over this build's migrations, for
// the store's dialect. goose parses each migration into statements (not a
// split on ";"), runs each in a transaction, and on PostgreSQL holds a
// session advisory lock while it migrates, so replicas starting together
// migrate once.
func (s *Store) provider() (*goose.Provider, error) {
	s.provOnce.Do(func() { s.prov, s.provErr = s.newProvider() })
	return s.prov, s.provErr
}

func (s *Store) newProvider() (*goose.Provider, error) {
	fsys := fstest.MapFS{}
	for i := range migrations {
		// goose wants every statement ended; migration 2 was written
		// without its last semicolon.
		q := strings.TrimSpace(s.d.migration(i))
		if !strings.HasSuffix(q, ";") {
			q += ";"
		}
		fsys[fmt.Sprintf("%05d_ringfence.sql", i+1)] = &fstest.MapFile{Data: []byte("-- +goose Up\n" + q + "\n")}
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithTableName(versionTable)}
	dialect := goose.DialectSQLite3
	if s.d.name == "postgres" {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, s.db, fsys, opts...)
}

// migrate applies the first n migrations that are not applied yet.
func (s *Store) migrate(ctx context.Context, n int) error {
	if err := s.adoptLegacy(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if n <= 0 {
		return nil
	}
	p, err := s.provider()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.UpTo(ctx, int64(min(n, len(migrations)))); err != nil {
		return fmt.Errorf("migrate: %w", s.wrap(err))
	}
	return nil
}

// adoptLegacy moves a database migrated by this project's own runner
// (before goose: table schema_migrations) onto goose's version table, in
// one transaction, once.
func (s *Store) adoptLegacy(ctx context.Context) error {
	gs, err := database.NewStore(s.gooseDialect(), versionTable)
	if err != nil {
		return err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lockHead != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockHead); err != nil {
				return err
			}
		}
		var legacy sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&legacy); err != nil {
			// No such table: a new database, or one goose already runs.
			return errNoLegacy
		}
		var exists bool
		if s.d.name == "postgres" {
			ext, ok := gs.(database.StoreExtender)
			if !ok {
				return errors.New("goose's store cannot tell whether its table exists")
			}
			if exists, err = ext.TableExists(ctx, tx); err != nil {
				return err
			}
		} else {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, versionTable).Scan(&n); err != nil {
				return err
			}
			exists = n > 0
		}
		if exists {
			return nil
		}
		if err := gs.CreateVersionTable(ctx, tx); err != nil {
			return err
		}
		for v := int64(0); v <= legacy.Int64; v++ {
			if err := gs.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DROP TABLE schema_migrations`)
		return err
	})
	if errors.Is(err, errNoLegacy) {
		return nil
	}
	return err
}

// errNoLegacy ends adoptLegacy's transaction when there is nothing to
// adopt.
var errNoLegacy = errors.New("no legacy migrations table")

func (s *Store) gooseDialect() database.Dialect {
	if s.d.name == "postgres" {
		return database.DialectPostgres
	}
	return database.DialectSQLite3
}

// SchemaVersion is the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	p, err := s.provider()
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	return int(v), s.wrap(err)
}

// MigrationStatus is one migration of this build and when it was applied
// (zero: pending).
type MigrationStatus struct {
	Version   int
	AppliedAt time.Time
}

// Status lists this build's migrations and which are applied.
func (s *Store) Status(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, m := range st {
		out = append(out, MigrationStatus{Version: int(m.Source.Version), AppliedAt: m.AppliedAt})
	}
	return out, nil
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
