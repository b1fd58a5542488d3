// Package storetest holds the store conformance suite, run against every
// store.Store implementation, and helpers that give tests a real database.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// PostgresEnv names the variable holding the test server's URL, set by
// scripts/test (scripts/postgres start).
const PostgresEnv = "RINGFENCE_TEST_POSTGRES"

// PostgresURL creates a fresh database on the test server and returns its
// URL; the database is dropped when the test ends. Without a server the
// test is skipped, except under CI=true, where it fails: CI must never pass
// by skipping the PostgreSQL half of the suite.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: PostgreSQL tests must run in CI (scripts/test starts a server)", PostgresEnv)
		}
		t.Skipf("%s not set; run scripts/test, or export %s=\"$(scripts/postgres start)\"", PostgresEnv, PostgresEnv)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	defer admin.Close()
	ctx := context.Background()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at %s is not reachable: %v", PostgresEnv, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "rftest_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}
