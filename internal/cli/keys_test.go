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

	vendorKeys := t.TempDir()
	r = ok(t, ringfence(t, "keys", "vendor", "add", "acme", "--data", data, "--keys", keys, "--out", vendorKeys))
	wantContains(t, r.stdout, "acme/*/* to 2 key(s), threshold 2")
	for _, f := range []string{filepath.Join(data, "tuf", "metadata", "1.acme.json"), filepath.Join(data, "tuf", "metadata", "1.acme.canary.json"),
		filepath.Join(vendorKeys, "acme-1.key"), filepath.Join(vendorKeys, "acme-2.key.pub")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("after vendor add: %v", err)
		}
	}
	r = ringfence(t, "keys", "vendor", "add", "acme", "--data", data, "--keys", keys, "--out", t.TempDir())
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "already delegated")

	// Signers who generate their own keys hand over only the public half;
	// the vendor's first role versions then await their signatures.
	signer := filepath.Join(t.TempDir(), "alice.key")
	r = ok(t, ringfence(t, "keys", "generate", "--out", signer))
	wantContains(t, r.stdout, "alice.key.pub")
	wantCode(t, ringfence(t, "keys", "generate", "--out", signer), 2)
	r = ok(t, ringfence(t, "keys", "vendor", "add", "globex", "--data", data, "--keys", keys, "--key", signer+".pub", "--threshold", "1"))
	wantContains(t, r.stdout, "threshold 1")
	wantContains(t, r.stdout, "await its signers")
	if _, err := os.Stat(filepath.Join(data, "tuf", "pending", "globex.json")); err != nil {
		t.Errorf("globex's first version awaiting signatures: %v", err)
	}
	r = ringfence(t, "keys", "vendor", "add", "initech", "--data", data, "--keys", keys, "--key", signer+".pub", "--threshold", "2")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "threshold 2 of 1 keys")

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
		{"keys", "vendor", "add", "umbrella", "--data", data, "--keys", keys},
		{"keys", "vendor", "add", "umbrella", "--data", data, "--keys", keys, "--out", t.TempDir(), "--key", signer + ".pub"},
		{"keys", "vendor", "add", "a/b", "--data", data, "--keys", keys, "--out", t.TempDir()},
		{"keys", "generate"},
	} {
		wantCode(t, ringfence(t, args...), 2)
	}
}
