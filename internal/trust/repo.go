// Package trust is Ringfence's signed-update repository, in The Update
// Framework's standard layout, built with go-tuf's metadata package (no
// cryptography here): an offline root (threshold of several keys), online
// snapshot and timestamp keys used by the server, and a top-level targets
// role that delegates each vendor's paths ("VENDOR/CHANNEL/*") to that vendor's
// keys. Any TUF client holding the initial root.json can verify what the
// server publishes.
package trust

import (
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Lifetimes of the metadata, from when it is signed.
const (
	RootExpiry      = 365 * 24 * time.Hour
	TargetsExpiry   = 90 * 24 * time.Hour
	SnapshotExpiry  = 7 * 24 * time.Hour
	TimestampExpiry = 24 * time.Hour
)

// Layout of a repository directory (<data>/tuf):
//
//	root.json            the initial trusted root, shipped with agents
//	metadata/            what the server publishes: N.root.json,
//	                     N.targets.json, N.snapshot.json, timestamp.json,
//	                     N.VENDOR.json (consistent snapshots)
//	targets/VENDOR/...   target files, named HASH.NAME
//	online/              snapshot.key and timestamp.key, used by the server
//
// The offline keys (root-1.key ... root-N.key and targets.key) are written
// to a separate directory that the operator keeps off the server.
type Repo struct {
	Dir string
}

func (r Repo) metaDir() string { return filepath.Join(r.Dir, "metadata") }

// InitOptions sets up a new repository.
type InitOptions struct {
	RootKeys      int // default 3
	RootThreshold int // default 2
	Now           time.Time
}

// keyFile is a private key as stored on disk.
type keyFile struct {
	KeyType string `json:"keytype"`
	Public  string `json:"public"`
	Private string `json:"private,omitempty"`
}

func writeKey(file string, priv ed25519.PrivateKey) error {
	b, err := json.MarshalIndent(keyFile{KeyType: "ed25519", Public: hex.EncodeToString(priv.Public().(ed25519.PublicKey)), Private: hex.EncodeToString(priv)}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("key %s: %w", file, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readKeyFile reads a key file, private or public.
func readKeyFile(file string) (keyFile, error) {
	var k keyFile
	b, err := os.ReadFile(file)
	if err != nil {
		return k, fmt.Errorf("key: %w", err)
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("key %s: %w", file, err)
	}
	return k, nil
}

// LoadKey reads a private key file.
func LoadKey(file string) (ed25519.PrivateKey, error) {
	k, err := readKeyFile(file)
	if err != nil {
		return nil, err
	}
	priv, err := hex.DecodeString(k.Private)
	if err != nil || k.KeyType != "ed25519" || len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("key %s: not an ed25519 private key", file)
	}
	return ed25519.PrivateKey(priv), nil
}

// GenerateKey writes a new private key to file (mode 0600, never over an
// existing one) and its public half to file.pub, the one to hand to the
// operator.
func GenerateKey(file string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(file + ".pub"); err == nil {
		return nil, fmt.Errorf("key %s.pub already exists", file)
	}
	if err := writeKey(file, priv); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(keyFile{KeyType: "ed25519", Public: hex.EncodeToString(pub)}, "", "  ")
	if err := os.WriteFile(file+".pub", append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("key %s.pub: %w", file, err)
	}
	return pub, nil
}

// LoadPublicKey reads the public half of a key file, public or private.
func LoadPublicKey(file string) (ed25519.PublicKey, error) {
	k, err := readKeyFile(file)
	if err != nil {
		return nil, err
	}
	pub, err := hex.DecodeString(k.Public)
	if err != nil || k.KeyType != "ed25519" || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %s: not an ed25519 key", file)
	}
	return ed25519.PublicKey(pub), nil
}

func newKey(file string) (ed25519.PrivateKey, *metadata.Key, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(file, priv); err != nil {
		return nil, nil, err
	}
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	return priv, pub, err
}

func signWith[T metadata.Roles](m *metadata.Metadata[T], keys ...ed25519.PrivateKey) error {
	m.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			return err
		}
		if _, err := m.Sign(s); err != nil {
			return err
		}
	}
	return nil
}

// Init creates a repository in r.Dir with its offline keys in keysDir, and
// publishes version 1 of every role.
func Init(r Repo, keysDir string, o InitOptions) error {
	if o.RootKeys == 0 {
		o.RootKeys = 3
	}
	if o.RootThreshold == 0 {
		o.RootThreshold = 2
	}
	if o.RootThreshold < 1 || o.RootThreshold > o.RootKeys {
		return fmt.Errorf("root threshold %d of %d keys: want 1 to %d", o.RootThreshold, o.RootKeys, o.RootKeys)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "root.json")); err == nil {
		return fmt.Errorf("%s already holds a repository (root.json exists)", r.Dir)
	}
	root := metadata.Root(o.Now.Add(RootExpiry))
	var rootKeys []ed25519.PrivateKey
	for i := 1; i <= o.RootKeys; i++ {
		priv, pub, err := newKey(filepath.Join(keysDir, fmt.Sprintf("root-%d.key", i)))
		if err != nil {
			return err
		}
		rootKeys = append(rootKeys, priv)
		if err := root.Signed.AddKey(pub, metadata.ROOT); err != nil {
			return err
		}
	}
	root.Signed.Roles[metadata.ROOT].Threshold = o.RootThreshold
	online := map[string]string{metadata.TARGETS: filepath.Join(keysDir, "targets.key"),
		metadata.SNAPSHOT: filepath.Join(r.Dir, "online", "snapshot.key"), metadata.TIMESTAMP: filepath.Join(r.Dir, "online", "timestamp.key")}
	for _, role := range []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		_, pub, err := newKey(online[role])
		if err != nil {
			return err
		}
		if err := root.Signed.AddKey(pub, role); err != nil {
			return err
		}
	}
	if err := signWith(root, rootKeys[:o.RootThreshold]...); err != nil {
		return err
	}
	if err := os.MkdirAll(r.metaDir(), 0o755); err != nil {
		return err
	}
	if err := root.ToFile(filepath.Join(r.metaDir(), "1.root.json"), true); err != nil {
		return err
	}
	if err := root.ToFile(filepath.Join(r.Dir, "root.json"), true); err != nil {
		return err
	}
	targets := metadata.Targets(o.Now.Add(TargetsExpiry))
	targets.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	if err := addDenyRole(r, targets); err != nil {
		return err
	}
	tk, err := LoadKey(online[metadata.TARGETS])
	if err != nil {
		return err
	}
	if err := signWith(targets, tk); err != nil {
		return err
	}
	if err := targets.ToFile(filepath.Join(r.metaDir(), "1.targets.json"), true); err != nil {
		return err
	}
	deny := metadata.Targets(o.Now.Add(TargetsExpiry))
	dk, err := LoadKey(denyKeyFile(r))
	if err != nil {
		return err
	}
	if err := signWith(deny, dk); err != nil {
		return err
	}
	if err := deny.ToFile(filepath.Join(r.metaDir(), "1."+DenyRole+".json"), true); err != nil {
		return err
	}
	return r.publish(o.Now, map[string]int64{"targets.json": 1, DenyRole + ".json": 1})
}

// publish writes a new snapshot naming the given role versions (merged
// into the current snapshot's) and a new timestamp, signed with the online
// keys.
func (r Repo) publish(now time.Time, roles map[string]int64) error {
	snapshot := metadata.Snapshot(now.Add(SnapshotExpiry))
	if cur, err := r.current(); err == nil {
		snapshot.Signed.Version = cur.Signed.Version + 1
		for k, v := range cur.Signed.Meta {
			snapshot.Signed.Meta[k] = v
		}
	}
	for k, v := range roles {
		snapshot.Signed.Meta[k] = metadata.MetaFile(v)
	}
	sk, err := LoadKey(filepath.Join(r.Dir, "online", "snapshot.key"))
	if err != nil {
		return err
	}
	if err := signWith(snapshot, sk); err != nil {
		return err
	}
	if err := snapshot.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.snapshot.json", snapshot.Signed.Version)), true); err != nil {
		return err
	}
	return r.stamp(now, snapshot.Signed.Version)
}

// stamp writes a new timestamp naming a snapshot version.
func (r Repo) stamp(now time.Time, snapshotVersion int64) error {
	ts := metadata.Timestamp(now.Add(TimestampExpiry))
	if cur, err := new(metadata.Metadata[metadata.TimestampType]).FromFile(filepath.Join(r.metaDir(), "timestamp.json")); err == nil {
		ts.Signed.Version = cur.Signed.Version + 1
	}
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(snapshotVersion)
	tk, err := LoadKey(filepath.Join(r.Dir, "online", "timestamp.key"))
	if err != nil {
		return err
	}
	if err := signWith(ts, tk); err != nil {
		return err
	}
	return ts.ToFile(filepath.Join(r.metaDir(), "timestamp.json"), true)
}

// Refresh re-signs the timestamp with a new expiry: the server does this
// well before the old one expires, so clients never see a frozen view.
func (r Repo) Refresh(now time.Time) error {
	cur, err := r.current()
	if err != nil {
		return err
	}
	return r.stamp(now, cur.Signed.Version)
}

// current is the snapshot the timestamp names.
func (r Repo) current() (*metadata.Metadata[metadata.SnapshotType], error) {
	ts, err := new(metadata.Metadata[metadata.TimestampType]).FromFile(filepath.Join(r.metaDir(), "timestamp.json"))
	if err != nil {
		return nil, err
	}
	v := ts.Signed.Meta["snapshot.json"].Version
	return new(metadata.Metadata[metadata.SnapshotType]).FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.snapshot.json", v)))
}

// errNotPublished: a role no snapshot lists yet (its first version awaits
// signatures).
var errNotPublished = errors.New("not published yet")

// publishedRole is a role's published version, or an empty version 0
// before its first.
func (r Repo) publishedRole(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	m, err := r.loadTargets(role)
	if errors.Is(err, errNotPublished) {
		m, err = metadata.Targets(time.Time{}), nil
		m.Signed.Version = 0
	}
	return m, err
}

func (r Repo) loadTargets(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	snap, err := r.current()
	if err != nil {
		return nil, err
	}
	mf, ok := snap.Signed.Meta[role+".json"]
	if !ok {
		return nil, fmt.Errorf("role %q is not in the repository: %w", role, errNotPublished)
	}
	return new(metadata.Metadata[metadata.TargetsType]).FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.%s.json", mf.Version, role)))
}

// VendorOptions says who signs for a vendor.
type VendorOptions struct {
	// Keys are the public keys of the vendor's signers, each generated by
	// its holder (GenerateKey), so private keys never pass through the
	// operator. Without Keys, NewKeys key files are generated in OutDir
	// (VENDOR-1.key ...) for the operator to hand out.
	Keys    []ed25519.PublicKey
	NewKeys int // default 2
	OutDir  string
	// Threshold is how many of the keys must sign a target before devices
	// outside the canary waves install it (default: 2, or 1 with one key).
	Threshold int
	Now       time.Time
}

// AddVendor delegates the vendor's paths to its keys with the targets key
// from keysDir: VENDOR/CHANNEL/* (TUF path patterns match segment by
// segment) at the threshold, and VENDOR/CHANNEL/canary/* to any one of the
// same keys. It publishes the vendor's empty roles and returns the key files
// it generated, if any.
func AddVendor(r Repo, keysDir, vendor string, o VendorOptions) ([]string, error) {
	if vendor == "" || strings.ContainsAny(vendor, "/*.") || vendor == DenyRole {
		return nil, fmt.Errorf("vendor %q: want a plain name other than %q", vendor, DenyRole)
	}
	targets, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return nil, err
	}
	for _, d := range targets.Signed.Delegations.Roles {
		if d.Name == vendor {
			return nil, fmt.Errorf("vendor %s is already delegated", vendor)
		}
	}
	keys := slices.Clone(o.Keys)
	if len(keys) == 0 && o.NewKeys == 0 {
		o.NewKeys = 2
	}
	if len(keys) > 0 && o.NewKeys > 0 {
		return nil, fmt.Errorf("vendor %s: give the signers' public keys or a number of new keys, not both", vendor)
	}
	threshold := o.Threshold
	if threshold == 0 {
		threshold = min(2, len(keys)+o.NewKeys)
	}
	if threshold < 1 || threshold > len(keys)+o.NewKeys {
		return nil, fmt.Errorf("vendor %s: threshold %d of %d keys: want 1 to %d", vendor, threshold, len(keys)+o.NewKeys, len(keys)+o.NewKeys)
	}
	// Check every key file is free before writing any.
	var files []string
	for i := 1; i <= o.NewKeys; i++ {
		f := filepath.Join(o.OutDir, fmt.Sprintf("%s-%d.key", vendor, i))
		if _, err := os.Stat(f); err == nil {
			return nil, fmt.Errorf("key %s already exists", f)
		}
		files = append(files, f)
	}
	var privs []ed25519.PrivateKey
	for _, f := range files {
		pub, err := GenerateKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pub)
		priv, err := LoadKey(f)
		if err != nil {
			return nil, err
		}
		privs = append(privs, priv)
	}
	var ids []string
	for _, k := range keys {
		mk, err := metadata.KeyFromPublicKey(k)
		if err != nil {
			return nil, err
		}
		id, err := mk.ID()
		if err != nil {
			return nil, err
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("vendor %s: key %s given twice", vendor, id)
		}
		ids = append(ids, id)
		targets.Signed.Delegations.Keys[id] = mk
	}
	targets.Signed.Delegations.Roles = append(targets.Signed.Delegations.Roles,
		metadata.DelegatedRole{Name: vendor, KeyIDs: ids, Threshold: threshold, Terminating: true, Paths: []string{vendor + "/*/*"}},
		metadata.DelegatedRole{Name: CanaryRole(vendor), KeyIDs: ids, Threshold: 1, Terminating: true, Paths: []string{vendor + "/*/canary/*"}})
	if err := r.writeTargets(targets, keysDir, o.Now); err != nil {
		return files, err
	}
	versions := map[string]int64{"targets.json": targets.Signed.Version}
	for _, role := range []string{vendor, CanaryRole(vendor)} {
		// The operator signs a new role's first, empty version only with
		// keys it just generated; when the signers brought their own keys
		// it awaits their signatures, and the role stays out of the
		// snapshot until then (clients find none of its targets).
		m := metadata.Targets(o.Now.Add(VendorExpiry))
		m.Signed.Version = r.nextRoleVersion(role)
		if len(privs) == 0 {
			if err := os.MkdirAll(filepath.Dir(r.pendingFile(role)), 0o755); err != nil {
				return files, err
			}
			if err := m.ToFile(r.pendingFile(role), true); err != nil {
				return files, err
			}
			continue
		}
		if err := signWith(m, privs...); err != nil {
			return files, err
		}
		if err := m.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.%s.json", m.Signed.Version, role)), true); err != nil {
			return files, err
		}
		versions[role+".json"] = m.Signed.Version
	}
	return files, r.publish(o.Now, versions)
}

// nextRoleVersion is the version a newly delegated role starts at: a
// vendor delegated again after a revocation continues its role's versions,
// so clients never see one go back.
func (r Repo) nextRoleVersion(role string) int64 {
	next := int64(1)
	old, _ := filepath.Glob(filepath.Join(r.metaDir(), "*."+role+".json"))
	for _, f := range old {
		if v, err := strconv.ParseInt(strings.SplitN(filepath.Base(f), ".", 2)[0], 10, 64); err == nil && v >= next && strings.SplitN(filepath.Base(f), ".", 2)[1] == role+".json" {
			next = v + 1
		}
	}
	return next
}

// AddTarget stages a target (such as "acme/ipc/293.bundle") in its
// vendor's roles, signs it with the given vendor keys, and publishes what
// meets its threshold.
func AddTarget(r Repo, name string, data []byte, now time.Time, keys ...ed25519.PrivateKey) error {
	vendor, _, _ := strings.Cut(name, "/")
	if err := Stage(r, name, data, now); err != nil {
		return err
	}
	return SignPending(r, vendor, keys, now)
}

func addTarget(r Repo, roleName string, key ed25519.PrivateKey, name string, data []byte, now time.Time) error {
	role, err := r.loadTargets(roleName)
	if err != nil {
		return err
	}
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return err
	}
	role.Signed.Targets[name] = tf
	role.Signed.Version++
	role.Signed.Expires = now.Add(TargetsExpiry)
	if err := signWith(role, key); err != nil {
		return err
	}
	// Consistent snapshots: the file is stored under its hash, so a
	// client never reads bytes of another version under the same name.
	file := r.targetFile(name, tf)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return err
	}
	if err := role.ToFile(filepath.Join(r.metaDir(), strconv.FormatInt(role.Signed.Version, 10)+"."+roleName+".json"), true); err != nil {
		return err
	}
	return r.publish(now, map[string]int64{roleName + ".json": role.Signed.Version})
}

// writeTargets bumps the top-level targets role's version and expiry, signs
// it with the offline targets key from keysDir and writes it.
func (r Repo) writeTargets(targets *metadata.Metadata[metadata.TargetsType], keysDir string, now time.Time) error {
	targets.Signed.Version++
	targets.Signed.Expires = now.Add(TargetsExpiry)
	tk, err := LoadKey(filepath.Join(keysDir, "targets.key"))
	if err != nil {
		return err
	}
	if err := signWith(targets, tk); err != nil {
		return err
	}
	return targets.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.targets.json", targets.Signed.Version)), true)
}

// delegate adds a terminating delegation of one path pattern to a new key
// written to keyFile, first in the list or last, and returns the key.
func delegate(targets *metadata.Metadata[metadata.TargetsType], role, pattern, keyFile string, first bool) (ed25519.PrivateKey, error) {
	priv, pub, err := newKey(keyFile)
	if err != nil {
		return nil, err
	}
	id, err := pub.ID()
	if err != nil {
		return nil, err
	}
	targets.Signed.Delegations.Keys[id] = pub
	d := metadata.DelegatedRole{Name: role, KeyIDs: []string{id}, Threshold: 1, Terminating: true, Paths: []string{pattern}}
	if first {
		targets.Signed.Delegations.Roles = append([]metadata.DelegatedRole{d}, targets.Signed.Delegations.Roles...)
	} else {
		targets.Signed.Delegations.Roles = append(targets.Signed.Delegations.Roles, d)
	}
	return priv, nil
}
