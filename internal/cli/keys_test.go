package cli_test

import (
	"os"
	"path/filepath"
	"testing"
)

// The offline key ceremony: a repository with a 2-of-3 root, a vendor
// delegated to a key the vendor keeps; nothing is overwritten.
func TestKeysInitAndVendorAdd(t *testing.T) {
	data, keys := t.TempDir(), t.TempDir()
	r := ok(t, ringfence(t, "keys", "init", "--data", data, "--keys", keys))
	wantContains(t, r.stdout, "root.json")
	for _, f := range []string{"root-1.key", "root-2.key", "root-3.key", "targets.key"} {
		st, err := os.Stat(filepath.Join(keys, f))
		if err != nil {
			t.Fatalf("offline key %s: %v", f, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	for _, f := range []string{"root.json", "metadata/1.root.json", "metadata/timestamp.json", "online/snapshot.key", "online/timestamp.key"} {
		if _, err := os.Stat(filepath.Join(data, "tuf", f)); err != nil {
			t.Errorf("repository file %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "tuf", "online", "targets.key")); err == nil {
		t.Error("the targets key is on the server; it belongs with the offline keys")
	}
	r = ringfence(t, "keys", "init", "--data", data, "--keys", t.TempDir())
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "already holds a repository")

	vendorKey := filepath.Join(t.TempDir(), "acme.key")
	r = ok(t, ringfence(t, "keys", "vendor", "add", "acme", "--data", data, "--keys", keys, "--out", vendorKey))
	wantContains(t, r.stdout, "acme/*/*")
	if _, err := os.Stat(filepath.Join(data, "tuf", "metadata", "1.acme.json")); err != nil {
		t.Errorf("acme's role metadata: %v", err)
	}
	r = ringfence(t, "keys", "vendor", "add", "acme", "--data", data, "--keys", keys, "--out", filepath.Join(t.TempDir(), "again.key"))
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "already delegated")

	// Rotation: the current root's threshold signs; one key is not enough.
	r = ringfence(t, "keys", "rotate-root", "--data", data, "--keys", keys, "--with", filepath.Join(keys, "root-1.key"), "--replace-online", "timestamp")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "needs 2 of its keys")
	ok(t, ringfence(t, "keys", "rotate-root", "--data", data, "--keys", keys, "--with", filepath.Join(keys, "root-1.key")+","+filepath.Join(keys, "root-2.key"),
		"--new-root-keys", "3", "--new-threshold", "2", "--replace-online", "timestamp"))
	if _, err := os.Stat(filepath.Join(data, "tuf", "metadata", "2.root.json")); err != nil {
		t.Errorf("root 2: %v", err)
	}
	ok(t, ringfence(t, "keys", "vendor", "revoke", "acme", "--data", data, "--keys", keys))
	wantCode(t, ringfence(t, "keys", "vendor", "revoke", "acme", "--data", data, "--keys", keys), 2)

	for _, args := range [][]string{
		{"keys", "init", "--data", t.TempDir()},
		{"keys", "init", "--data", t.TempDir(), "--keys", t.TempDir(), "--root-keys", "2", "--root-threshold", "3"},
		{"keys", "vendor", "add", "globex", "--data", data, "--keys", keys},
		{"keys", "vendor", "add", "a/b", "--data", data, "--keys", keys, "--out", filepath.Join(t.TempDir(), "x.key")},
	} {
		wantCode(t, ringfence(t, args...), 2)
	}
}
