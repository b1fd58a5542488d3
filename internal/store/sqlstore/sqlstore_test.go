package sqlstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

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
