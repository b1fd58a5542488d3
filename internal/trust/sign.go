package trust

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Vendors sign offline, with a threshold. In TUF a signature covers a whole
// version of a role's metadata, not one target, so publishing a target
// stages the next version of the vendor's roles (Stage); the vendor's
// signers fetch that version (PendingRequest), sign it where their keys are
// (Sign: no network needed) and upload the signatures (AddSignatures). Once
// the role's threshold is met the version is published and clients trust
// the target.
//
// Each vendor has two delegated roles with the same keys:
//
//	VENDOR         VENDOR/*/*         threshold T (default 2): production
//	VENDOR.canary  VENDOR/*/canary/*  threshold 1: canary waves
//
// A target is staged into both, as VENDOR/CHANNEL/V.bundle and
// VENDOR/CHANNEL/canary/V.bundle (the same bytes). One signer's signature
// publishes the canary name, which the server offers only to devices in a
// canary wave; the production name needs T signers, so a release cannot
// leave its canary waves until T people of the vendor signed it: the
// two-person rule is enforced by the devices' own verification, not only by
// a row in the server's database.
const (
	canarySuffix = ".canary"
	// VendorExpiry is how long a signed vendor role stays valid. Vendors
	// sign offline, so it is long; a vendor re-signs (stages and signs a
	// new version) before it runs out.
	VendorExpiry = 365 * 24 * time.Hour
)

// CanaryRole is the role that signs a vendor's canary targets.
func CanaryRole(vendor string) string { return vendor + canarySuffix }

// CanaryTarget is a target's name in the canary role:
// acme/ipc/293.bundle becomes acme/ipc/canary/293.bundle.
func CanaryTarget(target string) string {
	dir, file := path.Split(target)
	return dir + "canary/" + file
}

// SignatureError is a signature upload the repository refuses: the caller
// did something wrong (a key that is not the role's, a signature over
// another version), as opposed to an I/O failure.
type SignatureError struct {
	Role string
	Why  string
}

// ErrUnknownVendor: the vendor has no keys in the repository.
var ErrUnknownVendor = errors.New("not delegated in the signed-update repository")

func (e *SignatureError) Error() string { return fmt.Sprintf("role %s: %s", e.Role, e.Why) }

func (r Repo) pendingFile(role string) string {
	return filepath.Join(r.Dir, "pending", role+".json")
}

func (r Repo) loadPending(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	m, err := new(metadata.Metadata[metadata.TargetsType]).FromFile(r.pendingFile(role))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("pending version of role %s: %w", role, err)
	}
	return m, nil
}

// vendorRoles are the delegated roles that sign a vendor's targets:
// the production role, then the canary role when it is delegated (vendors
// delegated before canary roles existed have none).
func vendorRoles(parent *metadata.Metadata[metadata.TargetsType], vendor string) []metadata.DelegatedRole {
	var out []metadata.DelegatedRole
	for _, name := range []string{vendor, CanaryRole(vendor)} {
		for _, d := range parent.Signed.Delegations.Roles {
			if d.Name == name {
				out = append(out, d)
			}
		}
	}
	return out
}

// Stage adds a target (VENDOR/CHANNEL/FILE) to the next, unsigned version
// of its vendor's roles and stores its bytes. Signatures already made on
// that version lapse, since they covered other content.
func Stage(r Repo, target string, data []byte, now time.Time) error {
	vendor, rest, ok := strings.Cut(target, "/")
	if !ok || rest == "" || path.Clean(target) != target || target == DenyTarget || strings.Count(target, "/") != 2 {
		return fmt.Errorf("target %q: want VENDOR/CHANNEL/FILE", target)
	}
	parent, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return err
	}
	roles := vendorRoles(parent, vendor)
	if len(roles) == 0 {
		return fmt.Errorf("vendor %s (ringfence keys vendor add %s): %w", vendor, vendor, ErrUnknownVendor)
	}
	for _, d := range roles {
		name := target
		if d.Name == CanaryRole(vendor) {
			name = CanaryTarget(target)
		}
		tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
		if err != nil {
			return err
		}
		next, err := r.nextVersion(d.Name)
		if err != nil {
			return err
		}
		if old, ok := next.Signed.Targets[name]; ok && old.Equal(*tf) {
			continue
		}
		next.Signed.Targets[name] = tf
		next.Signed.Expires = now.Add(VendorExpiry).UTC().Truncate(time.Second)
		next.ClearSignatures()
		file := r.targetFile(name, tf)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(file, data); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(r.pendingFile(d.Name)), 0o755); err != nil {
			return err
		}
		if err := next.ToFile(r.pendingFile(d.Name), true); err != nil {
			return err
		}
	}
	return nil
}

// nextVersion is the role's pending version, or a copy of the published
// one with the next version number.
func (r Repo) nextVersion(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	if p, err := r.loadPending(role); err != nil || p != nil {
		return p, err
	}
	cur, err := r.publishedRole(role)
	if err != nil {
		return nil, err
	}
	if cur.Signed.Version == 0 {
		cur.Signed.Version = r.nextRoleVersion(role) - 1
	}
	cur.Signed.Version++
	cur.ClearSignatures()
	return cur, nil
}

// Request is what a vendor's signers sign: the pending version of each of
// the vendor's roles. It travels as JSON, so a signer can carry it to an
// offline machine and the signatures back.
type Request struct {
	Vendor string        `json:"vendor"`
	Roles  []RoleRequest `json:"roles"`
}

// RoleRequest is one role's pending version. Threshold, KeyIDs, Signed and
// Added describe it for people; what is signed is Metadata.
type RoleRequest struct {
	Role      string          `json:"role"`
	Version   int64           `json:"version"`
	Threshold int             `json:"threshold"`
	KeyIDs    []string        `json:"keyids"`
	Signed    int             `json:"signed"` // valid signatures so far
	Added     []TargetInfo    `json:"added"`  // targets not in the published version
	Metadata  json.RawMessage `json:"metadata"`
}

// TargetInfo names a target and what it must hash to.
type TargetInfo struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Length int64  `json:"length"`
}

// PendingRequest is the vendor's roles awaiting signatures (none when
// everything is signed).
func PendingRequest(r Repo, vendor string) (Request, error) {
	req := Request{Vendor: vendor, Roles: []RoleRequest{}}
	parent, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return req, err
	}
	roles := vendorRoles(parent, vendor)
	if len(roles) == 0 {
		return req, fmt.Errorf("vendor %s: %w", vendor, ErrUnknownVendor)
	}
	for _, d := range roles {
		p, err := r.loadPending(d.Name)
		if err != nil {
			return req, err
		}
		if p == nil {
			continue
		}
		b, err := p.ToBytes(false)
		if err != nil {
			return req, err
		}
		rr := RoleRequest{Role: d.Name, Version: p.Signed.Version, Threshold: d.Threshold, KeyIDs: d.KeyIDs,
			Signed: validSignatures(parent, d.Name, p), Added: []TargetInfo{}, Metadata: b}
		published, err := r.publishedRole(d.Name)
		if err != nil {
			return req, err
		}
		for name, tf := range p.Signed.Targets {
			if old, ok := published.Signed.Targets[name]; !ok || !old.Equal(*tf) {
				rr.Added = append(rr.Added, TargetInfo{Name: name, SHA256: hex.EncodeToString(tf.Hashes["sha256"]), Length: tf.Length})
			}
		}
		sort.Slice(rr.Added, func(i, j int) bool { return rr.Added[i].Name < rr.Added[j].Name })
		req.Roles = append(req.Roles, rr)
	}
	return req, nil
}

// KeyID is the TUF key id of a key.
func KeyID(pub ed25519.PublicKey) (string, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return k.ID()
}

// Sign adds a signature by each key to every role of the request that
// lists the key. It needs no network and no repository: signers run it
// where their keys are. It returns how many signatures it added; a key that
// no role of the request lists is an error.
func Sign(req *Request, keys ...ed25519.PrivateKey) (int, error) {
	added := 0
	for _, k := range keys {
		id, err := KeyID(k.Public().(ed25519.PublicKey))
		if err != nil {
			return added, err
		}
		used := false
		for i, rr := range req.Roles {
			if !slices.Contains(rr.KeyIDs, id) {
				continue
			}
			m, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(rr.Metadata)
			if err != nil {
				return added, fmt.Errorf("role %s: the request's metadata: %w", rr.Role, err)
			}
			// Sign appends; keep any signature already there.
			if slices.ContainsFunc(m.Signatures, func(s metadata.Signature) bool { return s.KeyID == id }) {
				used = true
				continue
			}
			sigs := m.Signatures
			if err := signWith(m, k); err != nil {
				return added, fmt.Errorf("role %s: %w", rr.Role, err)
			}
			m.Signatures = append(sigs, m.Signatures...)
			b, err := m.ToBytes(false)
			if err != nil {
				return added, err
			}
			req.Roles[i].Metadata = b
			req.Roles[i].Signed++
			added++
			used = true
		}
		if !used {
			return added, fmt.Errorf("key %s is not one of vendor %s's signing keys for anything awaiting signatures", id, req.Vendor)
		}
	}
	return added, nil
}

// RoleStatus is a role after signatures were added.
type RoleStatus struct {
	Role      string `json:"role"`
	Version   int64  `json:"version"`
	Signed    int    `json:"signed"`
	Threshold int    `json:"threshold"`
	Published bool   `json:"published"`
}

// AddSignatures merges the signatures of a signed request into the pending
// versions and publishes every role whose threshold is then met. Each
// signature is checked against the repository's own pending version, so a
// signature over anything else (an older request, altered metadata) is
// refused with a *SignatureError and nothing changes.
func AddSignatures(r Repo, req Request, now time.Time) ([]RoleStatus, error) {
	parent, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return nil, err
	}
	roles := vendorRoles(parent, req.Vendor)
	if len(roles) == 0 {
		return nil, &SignatureError{Role: req.Vendor, Why: "no such vendor in the signed-update repository"}
	}
	type change struct {
		d       metadata.DelegatedRole
		pending *metadata.Metadata[metadata.TargetsType]
	}
	var changes []change
	// Check every signature first, so a refused upload changes nothing.
	for _, rr := range req.Roles {
		i := slices.IndexFunc(roles, func(d metadata.DelegatedRole) bool { return d.Name == rr.Role })
		if i < 0 {
			return nil, &SignatureError{Role: rr.Role, Why: fmt.Sprintf("not one of vendor %s's roles", req.Vendor)}
		}
		d := roles[i]
		pending, err := r.loadPending(d.Name)
		if err != nil {
			return nil, err
		}
		up, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(rr.Metadata)
		if err != nil {
			return nil, &SignatureError{Role: rr.Role, Why: fmt.Sprintf("metadata: %v", err)}
		}
		if pending == nil {
			if pub, err := r.publishedRole(d.Name); err == nil && pub.Signed.Version >= up.Signed.Version {
				continue // already published: a second upload of the same signatures
			}
			return nil, &SignatureError{Role: rr.Role, Why: "nothing awaits signatures"}
		}
		for _, sig := range up.Signatures {
			if slices.ContainsFunc(pending.Signatures, func(s metadata.Signature) bool { return s.KeyID == sig.KeyID }) {
				continue
			}
			if !slices.Contains(d.KeyIDs, sig.KeyID) {
				return nil, &SignatureError{Role: rr.Role, Why: fmt.Sprintf("key %s is not one of the role's keys", sig.KeyID)}
			}
			if err := verifyOne(parent, d.Name, sig, pending); err != nil {
				return nil, &SignatureError{Role: rr.Role, Why: fmt.Sprintf("the signature by key %s does not verify against version %d awaiting signatures "+
					"(it was made over other content: fetch the request again and sign that): %v", sig.KeyID, pending.Signed.Version, err)}
			}
			pending.Signatures = append(pending.Signatures, sig)
		}
		changes = append(changes, change{d, pending})
	}
	var out []RoleStatus
	published := map[string]int64{}
	for _, c := range changes {
		st := RoleStatus{Role: c.d.Name, Version: c.pending.Signed.Version, Signed: validSignatures(parent, c.d.Name, c.pending), Threshold: c.d.Threshold}
		if parent.VerifyDelegate(c.d.Name, c.pending) == nil {
			if err := c.pending.ToFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.%s.json", c.pending.Signed.Version, c.d.Name)), true); err != nil {
				return nil, err
			}
			if err := os.Remove(r.pendingFile(c.d.Name)); err != nil {
				return nil, err
			}
			published[c.d.Name+".json"] = c.pending.Signed.Version
			st.Published = true
		} else if err := c.pending.ToFile(r.pendingFile(c.d.Name), true); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if len(published) > 0 {
		if err := r.publish(now, published); err != nil {
			return out, err
		}
	}
	return out, nil
}

// verifyOne checks one signature with go-tuf's own verification, against a
// parent that delegates the role to that key alone.
func verifyOne(parent *metadata.Metadata[metadata.TargetsType], role string, sig metadata.Signature, m *metadata.Metadata[metadata.TargetsType]) error {
	key, ok := parent.Signed.Delegations.Keys[sig.KeyID]
	if !ok {
		return fmt.Errorf("unknown key %s", sig.KeyID)
	}
	one := metadata.Targets(parent.Signed.Expires)
	one.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{sig.KeyID: key},
		Roles: []metadata.DelegatedRole{{Name: role, KeyIDs: []string{sig.KeyID}, Threshold: 1}}}
	only := *m
	only.Signatures = []metadata.Signature{sig}
	return one.VerifyDelegate(role, &only)
}

// validSignatures counts the signatures on m that verify with the role's
// keys.
func validSignatures(parent *metadata.Metadata[metadata.TargetsType], role string, m *metadata.Metadata[metadata.TargetsType]) int {
	n := 0
	for _, d := range parent.Signed.Delegations.Roles {
		if d.Name != role {
			continue
		}
		for _, s := range m.Signatures {
			if slices.Contains(d.KeyIDs, s.KeyID) && verifyOne(parent, role, s, m) == nil {
				n++
			}
		}
	}
	return n
}

// SignPending signs whatever awaits signatures for a vendor with keys the
// server holds (development mode, or a vendor that chose to keep a key
// there), and publishes what then meets its threshold.
func SignPending(r Repo, vendor string, keys []ed25519.PrivateKey, now time.Time) error {
	req, err := PendingRequest(r, vendor)
	if err != nil || len(req.Roles) == 0 {
		return err
	}
	if _, err := Sign(&req, keys...); err != nil {
		return err
	}
	_, err = AddSignatures(r, req, now)
	return err
}

// TargetState says how far a target is signed.
type TargetState struct {
	// Production: the target is in its vendor's published role, signed by
	// the role's threshold; any device may install it.
	Production bool
	// Canary: its canary name is published; devices in a canary wave may
	// install it.
	Canary bool
	// Signed and Threshold count the vendor role's pending version, when
	// the target is in it.
	Signed, Threshold int
}

// Describe says what is missing, or "" when the target is signed for
// production.
func (s TargetState) Describe(target string) string {
	switch {
	case s.Production:
		return ""
	case s.Threshold > 0:
		return fmt.Sprintf("%s has %d of the %d vendor signatures it needs", target, s.Signed, s.Threshold)
	default:
		return fmt.Sprintf("%s is not signed by its vendor", target)
	}
}

// Index is the signing state of every vendor's roles, read once: the
// server consults it for every release on each refresh.
type Index struct {
	parent    *metadata.Metadata[metadata.TargetsType]
	published map[string]*metadata.Metadata[metadata.TargetsType]
	pending   map[string]*metadata.Metadata[metadata.TargetsType]
}

// LoadIndex reads the repository's vendor roles, published and pending.
func LoadIndex(r Repo) (*Index, error) {
	parent, err := r.loadTargets(metadata.TARGETS)
	if err != nil {
		return nil, err
	}
	ix := &Index{parent: parent, published: map[string]*metadata.Metadata[metadata.TargetsType]{}, pending: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	for _, d := range parent.Signed.Delegations.Roles {
		if d.Name == DenyRole {
			continue
		}
		if ix.published[d.Name], err = r.publishedRole(d.Name); err != nil {
			return nil, err
		}
		if ix.pending[d.Name], err = r.loadPending(d.Name); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// StateOf says how far a target is signed.
func (ix *Index) StateOf(target string) TargetState {
	var st TargetState
	vendor, _, _ := strings.Cut(target, "/")
	for _, d := range vendorRoles(ix.parent, vendor) {
		name := target
		if d.Name != vendor {
			name = CanaryTarget(target)
		}
		_, in := ix.published[d.Name].Signed.Targets[name]
		st.Canary = st.Canary || in
		if d.Name != vendor {
			continue
		}
		st.Production = in
		if p := ix.pending[d.Name]; p != nil && p.Signed.Targets[name] != nil && !in {
			st.Signed, st.Threshold = validSignatures(ix.parent, d.Name, p), d.Threshold
		}
	}
	return st
}

// StateOf reads how far a target is signed.
func StateOf(r Repo, target string) (TargetState, error) {
	ix, err := LoadIndex(r)
	if err != nil {
		return TargetState{}, err
	}
	return ix.StateOf(target), nil
}

// writeFileAtomic writes a file whole or not at all.
func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
