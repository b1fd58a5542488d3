package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

func openSQLite(t *testing.T) store.Store {
	s, err := sqlstore.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) store.Store {
	s, err := sqlstore.Open(context.Background(), storetest.PostgresURL(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceSQLite(t *testing.T) { storetest.Run(t, openSQLite, store.AuditHash) }

func TestConformancePostgres(t *testing.T) { storetest.Run(t, openPostgres, store.AuditHash) }

// A webhook delivery enqueued with a change that fails is not stored.
func TestWebhookOutboxRollsBack(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { storetest.OutboxRollsBack(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { storetest.OutboxRollsBack(t, openPostgres(t)) })
}

// Reopening a data directory keeps everything and migrates nothing twice.
func TestSQLiteReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "ringfence.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetTenant(ctx, "acme"); err != nil {
		t.Fatalf("tenant lost across reopen: %v", err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != sqlstore.Migrations() {
		t.Fatalf("schema version %d, %v; want %d", v, err, sqlstore.Migrations())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	_, err := sqlstore.Open(context.Background(), "mysql://user:secret@host/db", t.TempDir())
	if err == nil {
		t.Fatal("mysql URL accepted")
	}
	if got := err.Error(); !strings.Contains(got, "unsupported database URL") || strings.Contains(got, "secret") {
		t.Errorf("error %q should name the problem and hide the password", got)
	}
}

// Migration 3 renames the persisted "rolling-out" state and gives
// existing releases and tenants empty staged-rollout fields.
func TestMigrateRollingOut(t *testing.T) {
	onBothKinds(t, func(t *testing.T, url, dir string) {
		ctx := context.Background()
		old, err := sqlstore.OpenAtMigration(ctx, url, dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := old.SchemaVersion(ctx); err != nil || v != 2 {
			t.Fatalf("schema version %d, %v; want 2", v, err)
		}
		q := func(query string) string {
			if old.Dialect() == "postgres" {
				n := 0
				return replaceEach(query, "?", func() string { n++; return "$" + strconv.Itoa(n) })
			}
			return query
		}
		for _, stmt := range []struct {
			query string
			args  []any
		}{
			{`INSERT INTO tenants (id, kind, name, created_at) VALUES (?, ?, ?, ?)`, []any{"acme", "vendor", "Acme", 1}},
			{`INSERT INTO tenants (id, kind, name, created_at) VALUES (?, ?, ?, ?)`, []any{"contoso", "org", "Contoso", 1}},
			{`INSERT INTO channels (id, vendor, name, kind, category, unpausable, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, []any{"acme/ipc", "acme", "ipc", "content", "", false, 1}},
			{`INSERT INTO artifacts (channel, version, sha256, size, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)`, []any{"acme/ipc", 1, "aa", 1, []byte{1}, 1}},
			{`INSERT INTO artifacts (channel, version, sha256, size, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)`, []any{"acme/ipc", 2, "bb", 1, []byte{2}, 1}},
			{`INSERT INTO releases (id, channel, version, plan, state, wave, reason, revision, created_by, created_at, updated_at, wave_started_at, completed_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, []any{"rel-1", "acme/ipc", 1, "{}", "rolling-out", 2, "", 7, "alice", 1000, 2000, 3000, 0}},
			{`INSERT INTO releases (id, channel, version, plan, state, wave, reason, revision, created_by, created_at, updated_at, wave_started_at, completed_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, []any{"rel-2", "acme/ipc", 2, "{}", "halted", 0, "crashes", 3, "alice", 1000, 2000, 3000, 0}},
		} {
			if _, err := old.DB().ExecContext(ctx, q(stmt.query), stmt.args...); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		s, err := sqlstore.Open(ctx, url, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r, err := s.GetRelease(ctx, "rel-1")
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.ReleaseRolling || r.Wave != 2 || r.Revision != 7 || r.Lane != "" || r.Phase != "" || r.HaltedBy != "" ||
			r.Approvals != nil || r.Cohort != nil || !r.GatesSince.IsZero() || !r.WaveStartedAt.Equal(time.UnixMilli(3000)) {
			t.Errorf("migrated rolling-out release: %+v", r)
		}
		if r, err := s.GetRelease(ctx, "rel-2"); err != nil || r.State != store.ReleaseHalted {
			t.Errorf("migrated halted release: %+v, %v", r, err)
		}
		if tn, err := s.GetTenant(ctx, "contoso"); err != nil || tn.HourlyCap != 0 {
			t.Errorf("migrated tenant: %+v, %v", tn, err)
		}
		// The migrated release takes the new fields.
		r.Approvals = []store.Approval{{Actor: "bob", At: time.UnixMilli(5000)}}
		if _, err := s.UpdateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
}

func replaceEach(s, old string, next func() string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(next())
		s = s[i+len(old):]
	}
}

// On PostgreSQL one session at a time holds the controller lease; it is
// free again when released, when its connection dies, or when its store
// closes.
func TestPostgresLead(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.Open(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s1, s2 := open(), open()
	notLeader := func(s *sqlstore.Store, who string) {
		t.Helper()
		if l, err := s.Lead(ctx); !errors.Is(err, store.ErrNotLeader) {
			if l != nil {
				l.Release()
			}
			t.Fatalf("%s: Lead = %v, want ErrNotLeader", who, err)
		}
	}

	l1, err := s1.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l1.Check(ctx); err != nil {
		t.Fatal(err)
	}
	notLeader(s2, "second store")
	notLeader(s1, "same store, another session")
	if err := l1.Check(ctx); err != nil {
		t.Fatalf("lease lost to a refused contender: %v", err)
	}

	// Released: the other store takes over.
	if err := l1.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l1.Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if err := l1.Check(ctx); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("Check of a released lease = %v, want ErrNotLeader", err)
	}
	l2, err := s2.Lead(ctx)
	if err != nil {
		t.Fatalf("Lead after release: %v", err)
	}
	notLeader(s1, "first store after handover")

	// The holder's connection dies: its Check fails and the lock is free.
	var killed bool
	err = s1.DB().QueryRowContext(ctx, `SELECT bool_and(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1 AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(sqlstore.LeaderLockKey)).Scan(&killed)
	if err != nil || !killed {
		t.Fatalf("terminate the leader's session: %v, %v", killed, err)
	}
	if err := l2.Check(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Check on a dead connection = %v, want ErrUnavailable", err)
	}
	if err := l2.Release(); err != nil {
		t.Errorf("Release on a dead connection: %v", err)
	}
	var l3 store.Lease
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The server frees the lock once the terminated backend exits.
		l3, err = s1.Lead(ctx)
		if err == nil || !errors.Is(err, store.ErrNotLeader) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Lead after the leader's connection died: %v", err)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Errorf("the store whose lease died is unusable: %v", err)
	}

	// The holder's store closes: the lease goes with it, at once.
	notLeader(s2, "second store while the first leads again")
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l3.Check(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Check after Close = %v, want ErrUnavailable", err)
	}
	l4, err := s2.Lead(ctx)
	if err != nil {
		t.Fatalf("Lead after the leader's store closed: %v", err)
	}
	if err := l4.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l4.Release(); err != nil {
		t.Fatal(err)
	}
}

// A database migrated by the project's own runner, before goose (table
// schema_migrations), is adopted: its applied migrations are recorded in
// goose's table, the old table goes, its data stays, and the newer
// migrations are applied.
func TestMigrateAdoptsTheOldRunnersDatabase(t *testing.T) {
	onBothKinds(t, func(t *testing.T, url, dir string) {
		ctx := context.Background()
		const at = 10
		old, err := sqlstore.OpenAtMigration(ctx, url, dir, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme", CreatedAt: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
		// What the old runner left: its own table, no goose table.
		for _, q := range []string{
			`DROP TABLE goose_db_version`,
			`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`,
		} {
			if _, err := old.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		for v := 1; v <= at; v++ {
			if _, err := old.DB().ExecContext(ctx, fmt.Sprintf(`INSERT INTO schema_migrations (version, applied_at) VALUES (%d, 1)`, v)); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		s, err := sqlstore.Open(ctx, url, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v, err := s.SchemaVersion(ctx); err != nil || v != sqlstore.Migrations() {
			t.Errorf("schema version %d, %v; want %d", v, err, sqlstore.Migrations())
		}
		if _, err := s.GetTenant(ctx, "acme"); err != nil {
			t.Errorf("tenant lost in the adoption: %v", err)
		}
		if _, err := s.DB().ExecContext(ctx, `SELECT 1 FROM schema_migrations`); err == nil {
			t.Error("the old runner's table is still there")
		}
		st, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st {
			if m.AppliedAt.IsZero() {
				t.Errorf("migration %d pending after open", m.Version)
			}
		}
		if len(st) != sqlstore.Migrations() {
			t.Errorf("status lists %d migrations, want %d", len(st), sqlstore.Migrations())
		}
	})
}

// onBothKinds runs f on a new SQLite database and on a PostgreSQL one.
func onBothKinds(t *testing.T, f func(t *testing.T, url, dir string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "", t.TempDir()) })
	t.Run("postgres", func(t *testing.T) { f(t, storetest.PostgresURL(t), "") })
}
