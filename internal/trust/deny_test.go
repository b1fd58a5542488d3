package trust

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// The deny list: signed with the online deny key, versioned on its own,
// verified by a client like any target; a vendor cannot write it.
func TestDenyList(t *testing.T) {
	f := newFixture(t)
	l, err := LoadDenyList(f.repo)
	if err != nil || l.Version != 0 || len(l.Denied) != 0 {
		t.Fatalf("new repository: deny list %+v, %v; want empty, version 0", l, err)
	}
	fetchList := func() DenyList {
		t.Helper()
		b, err := f.fetchWith(t, t.TempDir(), DenyTarget)
		if err != nil {
			t.Fatalf("a client cannot verify the deny list: %v", err)
		}
		var l DenyList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	e := DenyEntry{Target: "acme/ipc/293.bundle", Reason: "halted: silence rate 38.1% vs 0.4% in control", At: f.now}
	if err := Deny(f.repo, e, f.now); err != nil {
		t.Fatal(err)
	}
	if err := Deny(f.repo, e, f.now.Add(time.Minute)); err != nil { // again: no change
		t.Fatal(err)
	}
	got := fetchList()
	if got.Version != 1 || !got.Denies("acme/ipc/293.bundle") || len(got.Denied) != 1 || got.Denied[0].Reason != e.Reason {
		t.Fatalf("deny list after one denial: %+v", got)
	}
	if err := Allow(f.repo, "acme/ipc/293.bundle", f.now); err != nil {
		t.Fatal(err)
	}
	if got := fetchList(); got.Version != 2 || got.Denies("acme/ipc/293.bundle") {
		t.Fatalf("deny list after allowing it again: %+v", got)
	}
	// The vendor's key cannot sign the list, nor can a vendor be named
	// after its role.
	vk, err := LoadKey(filepath.Join(f.keys, "targets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := AddTarget(f.repo, DenyTarget, []byte(`{"version":9,"denied":[]}`), f.now, vk); err == nil {
		t.Fatal("AddTarget wrote the deny list")
	}
	if _, err := AddVendor(f.repo, f.keys, DenyRole, VendorOptions{OutDir: t.TempDir(), Now: f.now}); err == nil {
		t.Fatal("a vendor named after the deny role was delegated")
	}
}
