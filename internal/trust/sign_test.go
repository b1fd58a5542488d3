package trust

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// twoPersonVendor delegates vendor "acme" to two signers who generated
// their own keys (the operator sees only the public halves), threshold 2.
func twoPersonVendor(t *testing.T, f *fixture, vendor string) (alice, bob ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	var pubs []ed25519.PublicKey
	for _, who := range []string{"alice", "bob"} {
		if _, err := GenerateKey(filepath.Join(dir, who+".key")); err != nil {
			t.Fatal(err)
		}
		pub, err := LoadPublicKey(filepath.Join(dir, who+".key.pub"))
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
	}
	files, err := AddVendor(f.repo, f.keys, vendor, VendorOptions{Keys: pubs, Now: f.now})
	if err != nil || len(files) != 0 {
		t.Fatalf("AddVendor: files %v, %v", files, err)
	}
	keys := loadKeys(t, filepath.Join(dir, "alice.key"), filepath.Join(dir, "bob.key"))
	return keys[0], keys[1]
}

// signOffline is what a signer does: carry the request as JSON to where
// the key is, sign, carry the signatures back.
func signOffline(t *testing.T, req Request, key ed25519.PrivateKey) Request {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var carried Request
	if err := json.Unmarshal(b, &carried); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(&carried, key); err != nil {
		t.Fatal(err)
	}
	return carried
}

func pending(t *testing.T, f *fixture, vendor string) Request {
	t.Helper()
	req, err := PendingRequest(f.repo, vendor)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func roleReq(t *testing.T, req Request, role string) RoleRequest {
	t.Helper()
	for _, rr := range req.Roles {
		if rr.Role == role {
			return rr
		}
	}
	t.Fatalf("request %+v has no role %s", req, role)
	return RoleRequest{}
}

func wantState(t *testing.T, f *fixture, target string, want TargetState) {
	t.Helper()
	got, err := StateOf(f.repo, target)
	if err != nil || got != want {
		t.Fatalf("StateOf(%s) = %+v, %v; want %+v", target, got, err, want)
	}
}

// The two-person rule, end to end: one signer's signature publishes the
// canary name only; the production name needs both, and clients enforce
// it.
func TestThresholdSigningOffline(t *testing.T) {
	f := newFixture(t)
	alice, bob := twoPersonVendor(t, f, "globex")
	const target = "globex/edr/7.bundle"
	data := []byte("RFCB\x01 globex 7")

	// The new roles' first versions await the signers, and a target
	// staged now joins them.
	if err := Stage(f.repo, target, data, f.now); err != nil {
		t.Fatal(err)
	}
	req := pending(t, f, "globex")
	if len(req.Roles) != 2 {
		t.Fatalf("request roles: %+v", req.Roles)
	}
	prod, canary := roleReq(t, req, "globex"), roleReq(t, req, "globex.canary")
	if prod.Threshold != 2 || canary.Threshold != 1 || prod.Signed != 0 || len(prod.Added) != 1 || prod.Added[0].Name != target ||
		canary.Added[0].Name != "globex/edr/canary/7.bundle" || prod.Added[0].SHA256 != canary.Added[0].SHA256 || prod.Added[0].Length != int64(len(data)) {
		t.Fatalf("request: %+v", req)
	}
	wantState(t, f, target, TargetState{Signed: 0, Threshold: 2})
	data1, err := f.fetch(t, CanaryTarget(target))
	wantRefused(t, "canary target before any signature", data1, err, "")

	// Alice signs: the canary name is published, production is 1 of 2.
	st, err := AddSignatures(f.repo, signOffline(t, req, alice), f.now)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st) != "[{globex 1 1 2 false} {globex.canary 1 1 1 true}]" {
		t.Fatalf("after alice: %v", st)
	}
	wantState(t, f, target, TargetState{Canary: true, Signed: 1, Threshold: 2})
	if b, err := f.fetch(t, CanaryTarget(target)); err != nil || string(b) != string(data) {
		t.Fatalf("canary target after one signature: %q, %v", b, err)
	}
	data1, err = f.fetch(t, target)
	wantRefused(t, "production target with 1 of 2 signatures", data1, err, "")

	// Alice uploading again counts once.
	if _, err := AddSignatures(f.repo, signOffline(t, pending(t, f, "globex"), alice), f.now); err != nil {
		t.Fatal(err)
	}
	wantState(t, f, target, TargetState{Canary: true, Signed: 1, Threshold: 2})

	// A signature over altered content (another hash for the target) is
	// refused and changes nothing.
	forged := pending(t, f, "globex")
	m, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(roleReq(t, forged, "globex").Metadata)
	if err != nil {
		t.Fatal(err)
	}
	evil, _ := metadata.TargetFile().FromBytes(target, []byte("evil"), "sha256")
	m.Signed.Targets[target] = evil
	m.ClearSignatures()
	forged.Roles[0].Metadata, _ = m.ToBytes(false)
	_, err = AddSignatures(f.repo, signOffline(t, forged, bob), f.now)
	var se *SignatureError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("signature over altered content: got %v, want a SignatureError", err)
	}
	wantState(t, f, target, TargetState{Canary: true, Signed: 1, Threshold: 2})

	// A key that is not the vendor's cannot sign, nor upload.
	if _, err := Sign(&forged, f.vendorKey); err == nil || !strings.Contains(err.Error(), "not one of vendor globex's") {
		t.Fatalf("acme's key signing globex's request: %v", err)
	}
	foreign := pending(t, f, "globex")
	m, _ = new(metadata.Metadata[metadata.TargetsType]).FromBytes(roleReq(t, foreign, "globex").Metadata)
	if err := signWith(m, f.vendorKey); err != nil {
		t.Fatal(err)
	}
	foreign.Roles[0].Metadata, _ = m.ToBytes(false)
	if _, err := AddSignatures(f.repo, foreign, f.now); !errors.As(err, &se) || !strings.Contains(err.Error(), "not one of the role's keys") {
		t.Fatalf("upload signed by another vendor's key: got %v", err)
	}

	// A second target staged before bob signs: alice's signature lapsed
	// (it covered other content), and bob's on the old request is refused.
	stale := pending(t, f, "globex")
	if err := Stage(f.repo, "globex/edr/8.bundle", []byte("RFCB\x01 globex 8"), f.now); err != nil {
		t.Fatal(err)
	}
	wantState(t, f, target, TargetState{Canary: true, Signed: 0, Threshold: 2})
	if _, err := AddSignatures(f.repo, signOffline(t, stale, bob), f.now); !errors.As(err, &se) {
		t.Fatalf("signature on a superseded request: got %v, want a SignatureError", err)
	}

	// Both sign the current request: production published for both.
	fresh := pending(t, f, "globex")
	if got := len(roleReq(t, fresh, "globex").Added); got != 2 {
		t.Fatalf("fresh request adds %d targets, want 2", got)
	}
	both := signOffline(t, signOffline(t, fresh, alice), bob)
	if st, err = AddSignatures(f.repo, both, f.now); err != nil || len(st) != 2 || !st[0].Published || st[0].Signed != 2 {
		t.Fatalf("both signatures: %v, %v", st, err)
	}
	wantState(t, f, target, TargetState{Production: true, Canary: true})
	if r := pending(t, f, "globex"); len(r.Roles) != 0 {
		t.Fatalf("still pending after publication: %+v", r.Roles)
	}
	for _, name := range []string{target, "globex/edr/8.bundle"} {
		if _, err := f.fetch(t, name); err != nil {
			t.Fatalf("%s after both signatures: %v", name, err)
		}
	}
	// Uploading the same signatures again is harmless.
	if _, err := AddSignatures(f.repo, both, f.now); err != nil {
		t.Fatalf("second upload of published signatures: %v", err)
	}
}

// Attack: a compromised server publishes the vendor's role with fewer
// signatures than its threshold. Clients refuse it.
func TestThresholdNotMetIsRefused(t *testing.T) {
	f := newFixture(t)
	alice, _ := twoPersonVendor(t, f, "globex")
	const target = "globex/edr/7.bundle"
	if err := Stage(f.repo, target, []byte("RFCB\x01 globex 7"), f.now); err != nil {
		t.Fatal(err)
	}
	if _, err := AddSignatures(f.repo, signOffline(t, pending(t, f, "globex"), alice), f.now); err != nil {
		t.Fatal(err)
	}
	p, err := f.repo.loadPending("globex")
	if err != nil || p == nil || len(p.Signatures) != 1 {
		t.Fatalf("pending: %v, %v", p, err)
	}
	if err := p.ToFile(filepath.Join(f.repo.metaDir(), fmt.Sprintf("%d.globex.json", p.Signed.Version)), true); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.publish(f.now, map[string]int64{"globex.json": p.Signed.Version}); err != nil {
		t.Fatal(err)
	}
	data, err := f.fetch(t, target)
	wantRefused(t, "role signed below its threshold", data, err, "signatures")
}

func TestAddVendorOptions(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    VendorOptions
		want string
	}{
		{"threshold-above-keys", VendorOptions{NewKeys: 2, Threshold: 3, OutDir: dir}, "threshold 3 of 2 keys"},
		{"keys-and-new-keys", VendorOptions{Keys: []ed25519.PublicKey{f.vendorKey.Public().(ed25519.PublicKey)}, NewKeys: 1, OutDir: dir}, "not both"},
		{"same-key-twice", VendorOptions{Keys: []ed25519.PublicKey{f.vendorKey.Public().(ed25519.PublicKey), f.vendorKey.Public().(ed25519.PublicKey)}}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Now = f.now
			if _, err := AddVendor(f.repo, f.keys, "initech", tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Generated keys: two files, threshold 2, the empty roles signed.
	files, err := AddVendor(f.repo, f.keys, "initech", VendorOptions{OutDir: dir, Now: f.now})
	if err != nil || len(files) != 2 || filepath.Base(files[1]) != "initech-2.key" {
		t.Fatalf("files %v, %v", files, err)
	}
	keys := loadKeys(t, files...)
	if err := AddTarget(f.repo, "initech/av/1.bundle", []byte("one"), f.now, keys[0]); err != nil {
		t.Fatal(err)
	}
	wantState(t, f, "initech/av/1.bundle", TargetState{Canary: true, Signed: 1, Threshold: 2})
	if err := SignPending(f.repo, "initech", keys[1:], f.now); err != nil {
		t.Fatal(err)
	}
	wantState(t, f, "initech/av/1.bundle", TargetState{Production: true, Canary: true})
	if _, err := f.fetch(t, "initech/av/1.bundle"); err != nil {
		t.Fatal(err)
	}
}
