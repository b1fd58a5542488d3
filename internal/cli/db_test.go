package cli_test

import (
	"fmt"
	"testing"

	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// TestDBStatusAndMigrate: status reads without migrating, migrate applies
// everything, and status then says so.
func TestDBStatusAndMigrate(t *testing.T) {
	data := t.TempDir()
	n := sqlstore.Migrations()
	r := ok(t, rfEnv(t, nil, "db", "status", "--data", data))
	wantContains(t, r.stdout, fmt.Sprintf("0 of %d applied (sqlite)", n))
	wantContains(t, r.stdout, fmt.Sprintf("\n%d  ", n))
	wantContains(t, r.stdout, "pending")
	r = ok(t, rfEnv(t, nil, "db", "migrate", "--data", data))
	wantContains(t, r.stdout, fmt.Sprintf("schema at migration %d of %d (sqlite)", n, n))
	r = ok(t, rfEnv(t, nil, "db", "status", "--data", data))
	wantContains(t, r.stdout, fmt.Sprintf("%d of %d applied (sqlite)", n, n))
	r = rfEnv(t, nil, "db", "status")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--data DIR")
}
