package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapAdminToken: a store with no admin token gets one, once; the
// token works against a server on that store, and its creation is in the
// audit chain the server verifies.
func TestBootstrapAdminToken(t *testing.T) {
	data := t.TempDir()
	out := filepath.Join(t.TempDir(), "admin-token")
	r := ok(t, rfEnv(t, nil, "bootstrap", "--data", data, "--out", out))
	wantContains(t, r.stdout, "admin token written to "+out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	token := strings.TrimSpace(string(b))
	if !strings.HasPrefix(token, "rft_") {
		t.Fatalf("token file holds %q", token)
	}
	r = rfEnv(t, nil, "bootstrap", "--data", data)
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "already has an admin token")

	s := startDevServerAt(t, binary, data)
	r = ok(t, s.as(t, token, "whoami"))
	wantContains(t, r.stdout, "admin")
	r = ok(t, s.as(t, token, "audit", "list"))
	wantContains(t, r.stdout, "bootstrap")
	ok(t, s.as(t, token, "audit", "verify"))
}
