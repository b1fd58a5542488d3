package trust

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// latestRoot is the highest N.root.json.
func (r Repo) latestRoot() (*metadata.Metadata[metadata.RootType], error) {
	var best *metadata.Metadata[metadata.RootType]
	files, _ := filepath.Glob(filepath.Join(r.metaDir(), "*.root.json"))
	for _, f := range files {
		m, err := new(metadata.Metadata[metadata.RootType]).FromFile(f)
		if err != nil {
			return nil, err
		}
		if best == nil || m.Signed.Version > best.Signed.Version {
			best = m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no root metadata in %s", r.metaDir())
	}
	return best, nil
}

// RotateOptions says which keys a new root replaces.
type RotateOptions struct {
	// OldRootKeys sign the new root with the old threshold: clients trust
	// the new root only if the old one vouches for it.
	OldRootKeys []ed25519.PrivateKey
	// NewRootKeys, if any, replace the root keys (written to keysDir as
	// root-vN-I.key); the new root is signed by NewThreshold of them too.
	NewRootKeys  int
	NewThreshold int
	// Online roles ("snapshot", "timestamp") whose keys are replaced: the
	// recovery from a compromised online key.
	ReplaceOnline []string
	Now           time.Time
}

// RotateRoot publishes root N+1. Existing clients walk from the root they
// hold to the new one (each step verified by the previous root's keys and
// threshold, and by the new one's), so they keep working.
func RotateRoot(r Repo, keysDir string, o RotateOptions) error {
	cur, err := r.latestRoot()
	if err != nil {
		return err
	}
	next, err := new(metadata.Metadata[metadata.RootType]).FromBytes(mustBytes(cur.ToBytes(false)))
	if err != nil {
		return err
	}
	next.Signed.Version = cur.Signed.Version + 1
	// Check before any new key is written: a refused rotation leaves
	// nothing behind.
	if len(o.OldRootKeys) < cur.Signed.Roles[metadata.ROOT].Threshold {
		return fmt.Errorf("root %d needs %d of its keys to vouch for root %d, %d given", cur.Signed.Version,
			cur.Signed.Roles[metadata.ROOT].Threshold, next.Signed.Version, len(o.OldRootKeys))
	}
	next.Signed.Expires = o.Now.Add(RootExpiry)
	signers := slices.Clone(o.OldRootKeys)
	if o.NewRootKeys > 0 {
		if o.NewThreshold < 1 || o.NewThreshold > o.NewRootKeys {
			return fmt.Errorf("new root threshold %d of %d keys: want 1 to %d", o.NewThreshold, o.NewRootKeys, o.NewRootKeys)
		}
		for _, id := range slices.Clone(next.Signed.Roles[metadata.ROOT].KeyIDs) {
			if err := next.Signed.RevokeKey(id, metadata.ROOT); err != nil {
				return err
			}
		}
		for i := 1; i <= o.NewRootKeys; i++ {
			priv, pub, err := newKey(filepath.Join(keysDir, fmt.Sprintf("root-v%d-%d.key", next.Signed.Version, i)))
			if err != nil {
				return err
			}
			if err := next.Signed.AddKey(pub, metadata.ROOT); err != nil {
				return err
			}
			if i <= o.NewThreshold {
				signers = append(signers, priv)
			}
		}
		next.Signed.Roles[metadata.ROOT].Threshold = o.NewThreshold
	}
	for _, role := range o.ReplaceOnline {
		if role != metadata.SNAPSHOT && role != metadata.TIMESTAMP {
			return fmt.Errorf("role %q: only the online snapshot and timestamp keys are replaced here", role)
		}
		for _, id := range slices.Clone(next.Signed.Roles[role].KeyIDs) {
			if err := next.Signed.RevokeKey(id, role); err != nil {
				return err
			}
		}
		file := filepath.Join(r.Dir, "online", role+".key")
		if err := os.Rename(file, file+fmt.Sprintf(".revoked-v%d", cur.Signed.Version)); err != nil {
			return err
		}
		_, pub, err := newKey(file)
		if err != nil {
			return err
		}
		if err := next.Signed.AddKey(pub, role); err != nil {
			return err
		}
	}
	if err := signWith(next, signers...); err != nil {
		return err
	}
	if err := next.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.root.json", next.Signed.Version)), true); err != nil {
		return err
	}
	if len(o.ReplaceOnline) > 0 {
		// Re-sign snapshot and timestamp with the new keys at once.
		return r.publish(o.Now, nil)
	}
	return nil
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err) // ToBytes of metadata just read cannot fail
	}
	return b
}

// RevokeVendor removes a vendor's delegation (a lost or compromised
// vendor key): clients stop trusting every target that key signed. A
// vendor is delegated again with AddVendor and a new key.
func RevokeVendor(r Repo, keysDir, vendor string, now time.Time) error {
	targets, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return err
	}
	if vendor == DenyRole || len(vendorRoles(targets, vendor)) == 0 {
		return fmt.Errorf("vendor %s is not delegated", vendor)
	}
	for _, d := range vendorRoles(targets, vendor) {
		for _, id := range d.KeyIDs {
			delete(targets.Signed.Delegations.Keys, id)
		}
		// What awaited the old keys' signatures is void.
		if err := os.Remove(r.pendingFile(d.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	targets.Signed.Delegations.Roles = slices.DeleteFunc(targets.Signed.Delegations.Roles, func(d metadata.DelegatedRole) bool {
		return d.Name == vendor || d.Name == CanaryRole(vendor)
	})
	if err := r.writeTargets(targets, keysDir, now); err != nil {
		return err
	}
	// The vendor's role stays listed in the snapshot: TUF clients refuse a
	// snapshot that drops a role they knew (that would look like a
	// rollback), and a role nobody delegates to is trusted by no one.
	return r.publish(now, map[string]int64{"targets.json": targets.Signed.Version})
}
