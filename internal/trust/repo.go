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
	"fmt"
	"os"
	"path"
	"path/filepath"
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
	Private string `json:"private"`
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

// LoadKey reads a private key file.
func LoadKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	var k keyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("key %s: %w", file, err)
	}
	priv, err := hex.DecodeString(k.Private)
	if err != nil || k.KeyType != "ed25519" || len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("key %s: not an ed25519 private key", file)
	}
	return ed25519.PrivateKey(priv), nil
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

func (r Repo) loadTargets(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	snap, err := r.current()
	if err != nil {
		return nil, err
	}
	mf, ok := snap.Signed.Meta[role+".json"]
	if !ok {
		return nil, fmt.Errorf("role %q is not in the repository", role)
	}
	return new(metadata.Metadata[metadata.TargetsType]).FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.%s.json", mf.Version, role)))
}

// AddVendor delegates VENDOR/CHANNEL/* (TUF path patterns match segment by
// segment) to a new key written to keyFile (which the
// vendor keeps), with the targets key from keysDir, and publishes the
// vendor's empty role.
func AddVendor(r Repo, keysDir, vendor, keyFile string, now time.Time) error {
	if vendor == "" || strings.ContainsAny(vendor, "/*.") || vendor == DenyRole {
		return fmt.Errorf("vendor %q: want a plain name other than %q", vendor, DenyRole)
	}
	targets, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return err
	}
	for _, d := range targets.Signed.Delegations.Roles {
		if d.Name == vendor {
			return fmt.Errorf("vendor %s is already delegated", vendor)
		}
	}
	vk, err := delegate(targets, vendor, vendor+"/*/*", keyFile, false)
	if err != nil {
		return err
	}
	if err := r.writeTargets(targets, keysDir, now); err != nil {
		return err
	}
	role := metadata.Targets(now.Add(TargetsExpiry))
	// A vendor delegated again after a revocation continues its role's
	// versions: clients never see one go back.
	old, _ := filepath.Glob(filepath.Join(r.metaDir(), "*."+vendor+".json"))
	role.Signed.Version = int64(len(old)) + 1
	for _, f := range old {
		if v, err := strconv.ParseInt(strings.SplitN(filepath.Base(f), ".", 2)[0], 10, 64); err == nil && v >= role.Signed.Version {
			role.Signed.Version = v + 1
		}
	}
	if err := signWith(role, vk); err != nil {
		return err
	}
	if err := role.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.%s.json", role.Signed.Version, vendor)), true); err != nil {
		return err
	}
	return r.publish(now, map[string]int64{"targets.json": targets.Signed.Version, vendor + ".json": role.Signed.Version})
}

// AddTarget signs a target (such as "acme/ipc/293.bundle") into its
// vendor's role with the vendor's key, stores the bytes, and publishes.
func AddTarget(r Repo, vendorKey ed25519.PrivateKey, name string, data []byte, now time.Time) error {
	_, rest, ok := strings.Cut(name, "/")
	if !ok || rest == "" || path.Clean(name) != name || name == DenyTarget {
		return fmt.Errorf("target %q: want VENDOR/CHANNEL/FILE", name)
	}
	return addTarget(r, roleFor(name), vendorKey, name, data, now)
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
