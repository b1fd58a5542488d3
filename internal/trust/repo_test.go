package trust

import (
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is a repository with vendor acme and target acme/ipc/293.bundle,
// served over HTTP in the standard layout.
type fixture struct {
	repo    Repo
	keys    string
	url     string
	now     time.Time
	content []byte
	// vendorKey is acme's only key (threshold 1).
	vendorKey ed25519.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{repo: Repo{Dir: t.TempDir()}, keys: t.TempDir(), now: time.Now().UTC(), content: []byte("RFCB\x01 bundle 293")}
	if err := Init(f.repo, f.keys, InitOptions{Now: f.now}); err != nil {
		t.Fatal(err)
	}
	files, err := AddVendor(f.repo, f.keys, "acme", VendorOptions{NewKeys: 1, OutDir: t.TempDir(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	f.vendorKey = loadKeys(t, files...)[0]
	if err := AddTarget(f.repo, "acme/ipc/293.bundle", f.content, f.now, f.vendorKey); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/tuf/metadata/", http.StripPrefix("/tuf/metadata/", http.FileServer(http.Dir(f.repo.metaDir()))))
	mux.Handle("/tuf/targets/", http.StripPrefix("/tuf/targets/", http.FileServer(http.Dir(filepath.Join(f.repo.Dir, "targets")))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// fetch runs a fresh client holding only the initial root.json.
func (f *fixture) fetch(t *testing.T, target string) ([]byte, error) {
	t.Helper()
	return f.fetchWith(t, t.TempDir(), target)
}

func TestClientVerifiesTheRepository(t *testing.T) {
	f := newFixture(t)
	data, err := f.fetch(t, "acme/ipc/293.bundle")
	if err != nil {
		t.Fatalf("a client with the initial root cannot verify the repository: %v", err)
	}
	if string(data) != string(f.content) {
		t.Fatalf("downloaded %q, want %q", data, f.content)
	}
}

func TestTamperedTargetIsRefused(t *testing.T) {
	f := newFixture(t)
	matches, _ := filepath.Glob(filepath.Join(f.repo.Dir, "targets", "acme", "ipc", "*.293.bundle"))
	if len(matches) != 1 {
		t.Fatalf("target files: %v", matches)
	}
	if err := os.WriteFile(matches[0], []byte("RFCB\x01 bundle 666"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetch(t, "acme/ipc/293.bundle"); err == nil {
		t.Fatal("tampered target bytes were accepted")
	}
}

func TestVendorCannotSignOutsideItsPaths(t *testing.T) {
	f := newFixture(t)
	files, err := AddVendor(f.repo, f.keys, "globex", VendorOptions{NewKeys: 1, OutDir: t.TempDir(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	gk := loadKeys(t, files...)[0]
	// The repository refuses globex's signature on acme's role.
	if err := AddTarget(f.repo, "acme/ipc/294.bundle", []byte("evil"), f.now, gk); err == nil || !strings.Contains(err.Error(), "not one of vendor acme's signing keys") {
		t.Fatalf("globex signing acme's role: got %v, want a refusal", err)
	}
	// A compromised server writes globex's signature into acme's role
	// anyway: clients refuse it, since the role's own keys do not match.
	if err := addTarget(f.repo, "acme", gk, "acme/ipc/294.bundle", []byte("evil"), f.now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetch(t, "acme/ipc/294.bundle"); err == nil {
		t.Fatal("a target signed by another vendor's key under acme/ was accepted")
	}
}

func TestExpiredTimestampIsRefused(t *testing.T) {
	f := newFixture(t)
	// A frozen repository: the last timestamp was signed two days ago.
	if err := f.repo.stamp(f.now.Add(-48*time.Hour), 3); err != nil {
		t.Fatal(err)
	}
	_, err := f.fetch(t, "acme/ipc/293.bundle")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "expired") {
		t.Fatalf("frozen (expired) timestamp: got %v, want an expiry error", err)
	}
	// The server's refresh re-signs it and clients work again.
	if err := f.repo.Refresh(f.now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetch(t, "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("after the timestamp refresh: %v", err)
	}
}

func TestInitRefusesAnExistingRepository(t *testing.T) {
	f := newFixture(t)
	if err := Init(f.repo, t.TempDir(), InitOptions{Now: f.now}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second init: got %v, want a refusal", err)
	}
	if err := Init(Repo{Dir: t.TempDir()}, t.TempDir(), InitOptions{RootKeys: 2, RootThreshold: 3, Now: f.now}); err == nil {
		t.Fatal("threshold above the number of keys accepted")
	}
}
