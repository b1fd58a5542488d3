package trust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The attacks TUF exists for, each against a go-tuf client holding only the
// initial root; every one must be refused with an error, and nothing
// downloaded.

// fetchWith is fetch with a client whose trusted metadata persists in
// metaDir, as an agent's does across runs.
func (f *fixture) fetchWith(t *testing.T, metaDir, target string) ([]byte, error) {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(f.repo.Dir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return Fetch(ClientConfig{MetadataURL: f.url + "/tuf/metadata/", TargetsURL: f.url + "/tuf/targets/", Root: root,
		MetadataDir: metaDir, TargetsDir: t.TempDir()}, target)
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t *testing.T, what string, data []byte, err error, mention string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted (%d bytes)", what, len(data))
	}
	t.Logf("%s: refused: %v", what, err)
	if data != nil {
		t.Errorf("%s: refused but returned %d bytes", what, len(data))
	}
	if mention != "" && !strings.Contains(strings.ToLower(err.Error()), mention) {
		t.Errorf("%s: error %q should mention %q", what, err, mention)
	}
}

// Rollback: a client that saw timestamp N is served an older one.
func TestRollbackAttackIsRefused(t *testing.T) {
	f := newFixture(t)
	ts := filepath.Join(f.repo.metaDir(), "timestamp.json")
	old := mustRead(t, ts)
	if err := f.repo.Refresh(f.now); err != nil { // timestamp version rises
		t.Fatal(err)
	}
	meta := t.TempDir()
	if _, err := f.fetchWith(t, meta, "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("honest repository: %v", err)
	}
	mustWrite(t, ts, old)
	data, err := f.fetchWith(t, meta, "acme/ipc/293.bundle")
	wantRefused(t, "older timestamp", data, err, "version")
}

// Mix and match: a targets role of another version served under the name
// the snapshot lists.
func TestMixAndMatchIsRefused(t *testing.T) {
	f := newFixture(t)
	// 2.acme.json holds 293; serve the empty version 1 under its name.
	mustWrite(t, filepath.Join(f.repo.metaDir(), "2.acme.json"), mustRead(t, filepath.Join(f.repo.metaDir(), "1.acme.json")))
	data, err := f.fetchWith(t, t.TempDir(), "acme/ipc/293.bundle")
	wantRefused(t, "acme role of another version", data, err, "version")
}

// Endless data: the target on the server is longer than its signed length.
func TestEndlessDataIsRefused(t *testing.T) {
	f := newFixture(t)
	matches, _ := filepath.Glob(filepath.Join(f.repo.Dir, "targets", "acme", "ipc", "*.293.bundle"))
	if len(matches) != 1 {
		t.Fatalf("target files: %v", matches)
	}
	mustWrite(t, matches[0], append(mustRead(t, matches[0]), make([]byte, 1<<20)...))
	data, err := f.fetchWith(t, t.TempDir(), "acme/ipc/293.bundle")
	wantRefused(t, "target longer than signed", data, err, "length")
}

// Threshold not met: a new root signed by one root key of the two needed.
func TestRootBelowThresholdIsRefused(t *testing.T) {
	f := newFixture(t)
	root, err := new(metadata.Metadata[metadata.RootType]).FromFile(filepath.Join(f.repo.metaDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := LoadKey(filepath.Join(f.keys, "root-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	root.Signed.Version = 2
	if err := signWith(root, k1); err != nil {
		t.Fatal(err)
	}
	if err := root.ToFile(filepath.Join(f.repo.metaDir(), "2.root.json"), true); err != nil {
		t.Fatal(err)
	}
	data, err := f.fetchWith(t, t.TempDir(), "acme/ipc/293.bundle")
	wantRefused(t, "root signed by 1 of 2 keys", data, err, "signature")

	// Signed by two of the three, the same root is taken.
	k2, err := LoadKey(filepath.Join(f.keys, "root-2.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := signWith(root, k1, k2); err != nil {
		t.Fatal(err)
	}
	if err := root.ToFile(filepath.Join(f.repo.metaDir(), "2.root.json"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetchWith(t, t.TempDir(), "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("root signed by 2 of 3: %v", err)
	}
}

// An arbitrary target: bytes for a name nobody signed.
func TestUnsignedTargetIsNotFound(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(f.repo.Dir, "targets", "acme", "ipc")
	mustWrite(t, filepath.Join(dir, "0000.294.bundle"), []byte("evil"))
	data, err := f.fetchWith(t, t.TempDir(), "acme/ipc/294.bundle")
	wantRefused(t, "unsigned target", data, err, "not found")
}
