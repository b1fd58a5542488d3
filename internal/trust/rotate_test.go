package trust

import (
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func loadKeys(t *testing.T, files ...string) []ed25519.PrivateKey {
	t.Helper()
	var out []ed25519.PrivateKey
	for _, f := range files {
		k, err := LoadKey(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// Root rotation: new root keys (2 of 3), vouched for by 2 of the old ones.
// A client that already trusts root 1, and a fresh one shipped with the
// initial root.json, both walk to root 2 and keep working.
func TestRootRotationKeepsClientsWorking(t *testing.T) {
	f := newFixture(t)
	agent := t.TempDir() // an agent's persisted trusted metadata
	if _, err := f.fetchWith(t, agent, "acme/ipc/293.bundle"); err != nil {
		t.Fatal(err)
	}
	old := loadKeys(t, filepath.Join(f.keys, "root-1.key"), filepath.Join(f.keys, "root-2.key"))
	if err := RotateRoot(f.repo, f.keys, RotateOptions{OldRootKeys: old[:1], NewRootKeys: 3, NewThreshold: 2, Now: f.now}); err == nil {
		t.Fatal("a new root vouched for by 1 of the 2 old keys needed was written")
	}
	if err := RotateRoot(f.repo, f.keys, RotateOptions{OldRootKeys: old, NewRootKeys: 3, NewThreshold: 2, Now: f.now}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetchWith(t, agent, "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("a client holding root 1 after the rotation: %v", err)
	}
	if _, err := f.fetchWith(t, t.TempDir(), "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("a fresh client with the initial root after the rotation: %v", err)
	}
	root, err := f.repo.latestRoot()
	if err != nil || root.Signed.Version != 2 || root.Signed.Roles[metadata.ROOT].Threshold != 2 || len(root.Signed.Roles[metadata.ROOT].KeyIDs) != 3 {
		t.Fatalf("root after rotation: %+v, %v", root.Signed.Roles[metadata.ROOT], err)
	}
	// The old root keys alone can no longer make a root clients accept.
	rogue, err := new(metadata.Metadata[metadata.RootType]).FromBytes(mustBytes(root.ToBytes(false)))
	if err != nil {
		t.Fatal(err)
	}
	rogue.Signed.Version = 3
	if err := signWith(rogue, old...); err != nil {
		t.Fatal(err)
	}
	if err := rogue.ToFile(filepath.Join(f.repo.metaDir(), "3.root.json"), true); err != nil {
		t.Fatal(err)
	}
	data, err := f.fetchWith(t, agent, "acme/ipc/293.bundle")
	wantRefused(t, "root 3 signed only by retired root keys", data, err, "")
}

// A compromised timestamp key is recovered from by rotating it through the
// root: what the attacker signs with the old key is refused.
func TestCompromisedOnlineKeyRecoveredByRotation(t *testing.T) {
	f := newFixture(t)
	agent := t.TempDir()
	if _, err := f.fetchWith(t, agent, "acme/ipc/293.bundle"); err != nil {
		t.Fatal(err)
	}
	stolen := loadKeys(t, filepath.Join(f.repo.Dir, "online", "timestamp.key"))[0]
	old := loadKeys(t, filepath.Join(f.keys, "root-1.key"), filepath.Join(f.keys, "root-3.key"))
	if err := RotateRoot(f.repo, f.keys, RotateOptions{OldRootKeys: old, ReplaceOnline: []string{metadata.TIMESTAMP}, Now: f.now}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetchWith(t, agent, "acme/ipc/293.bundle"); err != nil {
		t.Fatalf("after rotating the timestamp key: %v", err)
	}
	// The attacker signs a newer timestamp with the stolen key.
	ts, err := new(metadata.Metadata[metadata.TimestampType]).FromFile(filepath.Join(f.repo.metaDir(), "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	ts.Signed.Expires = time.Now().Add(time.Hour)
	if err := signWith(ts, stolen); err != nil {
		t.Fatal(err)
	}
	if err := ts.ToFile(filepath.Join(f.repo.metaDir(), "timestamp.json"), true); err != nil {
		t.Fatal(err)
	}
	data, err := f.fetchWith(t, agent, "acme/ipc/293.bundle")
	wantRefused(t, "timestamp signed with the replaced key", data, err, "")
}

// Revoking a vendor's key: clients stop trusting what it signed; the
// vendor delegated again with a new key publishes afresh.
func TestRevokedVendorKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	agent := t.TempDir()
	if _, err := f.fetchWith(t, agent, "acme/ipc/293.bundle"); err != nil {
		t.Fatal(err)
	}
	if err := RevokeVendor(f.repo, f.keys, "acme", f.now); err != nil {
		t.Fatal(err)
	}
	data, err := f.fetchWith(t, agent, "acme/ipc/293.bundle")
	// The client still refreshes (other vendors keep working); acme's
	// old targets are simply trusted by no one.
	wantRefused(t, "target of a revoked vendor key", data, err, "not found")
	if err := RevokeVendor(f.repo, f.keys, "acme", f.now); err == nil {
		t.Fatal("revoking twice succeeded")
	}
	files, err := AddVendor(f.repo, f.keys, "acme", VendorOptions{NewKeys: 1, OutDir: t.TempDir(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	nk := loadKeys(t, files...)[0]
	if err := AddTarget(f.repo, "acme/ipc/294.bundle", []byte("bundle 294"), f.now, nk); err != nil {
		t.Fatal(err)
	}
	if b, err := f.fetchWith(t, agent, "acme/ipc/294.bundle"); err != nil || string(b) != "bundle 294" {
		t.Fatalf("target signed with the new vendor key: %q, %v", b, err)
	}
	data, err = f.fetchWith(t, agent, "acme/ipc/293.bundle")
	wantRefused(t, "old target after re-delegation", data, err, "not found")
}
