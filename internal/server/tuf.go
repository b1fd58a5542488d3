package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/trust"
)

// The signed-update repository (package trust) lives in Config.TUFDir. The
// server publishes its metadata and targets in TUF's standard layout, so
// any TUF client holding the initial root.json can verify them; it signs a
// published artifact into its vendor's role when it holds that vendor's key
// (<TUFDir>/vendor-keys/VENDOR.key, as in development mode), and keeps the
// timestamp fresh.

func (s *Server) tufRepo() (trust.Repo, bool) {
	if s.cfg.TUFDir == "" {
		return trust.Repo{}, false
	}
	if _, err := os.Stat(filepath.Join(s.cfg.TUFDir, "root.json")); err != nil {
		return trust.Repo{}, false
	}
	return trust.Repo{Dir: s.cfg.TUFDir}, true
}

// handleTUF serves /tuf/metadata/FILE and /tuf/targets/PATH.
func (s *Server) handleTUF(w http.ResponseWriter, r *http.Request) error {
	repo, ok := s.tufRepo()
	if !ok {
		return notFound("this server has no signed-update repository (ringfence keys init)")
	}
	kind, name := "metadata", r.PathValue("file")
	if name == "" {
		kind, name = "targets", r.PathValue("path")
	}
	clean := path.Clean("/" + name)[1:]
	if clean != name || name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "/.") {
		return badRequest("path %q is not a %s file name", name, kind)
	}
	if kind == "targets" {
		// A halted or rolled-back version is not served under any of its
		// names; the signed deny list stays the devices' own protection.
		if ri := s.snap.Load().withheld[targetOf(name)]; ri != nil {
			return notFound("targets/%s: release %s is %s", name, ri.rel.ID, ri.rel.State)
		}
	}
	s.tufMu.Lock()
	b, err := os.ReadFile(filepath.Join(repo.Dir, kind, filepath.FromSlash(name)))
	s.tufMu.Unlock()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "is a directory") {
			return notFound("%s/%s", kind, name)
		}
		return storeError("signed-update repository", err)
	}
	ct := "application/octet-stream"
	if kind == "metadata" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// signTarget stages an accepted artifact in its vendor's roles, to be
// signed by the vendor's signers (ringfence sign), and signs it at once
// with any of the vendor's keys the server holds (development mode).
func (s *Server) signTarget(vendor, target string, data []byte) error {
	repo, ok := s.tufRepo()
	if !ok {
		return nil
	}
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	if err := trust.Stage(repo, target, data, s.now()); err != nil {
		return err
	}
	keys, err := heldKeys(repo, vendor)
	if err != nil || len(keys) == 0 {
		return err
	}
	if err := trust.SignPending(repo, vendor, keys, s.now()); err != nil {
		// The artifact is staged; its vendor's signers can still sign.
		s.log.Warn("the server's own copy of a vendor key did not sign", "vendor", vendor, "err", err)
	}
	return nil
}

// stageArtifact stages a newly published artifact for its vendor's
// signatures and says how far it is signed. A vendor without keys in the
// repository does not stop the publication: its releases cannot start
// until it has them (see shippable).
func (s *Server) stageArtifact(vendor, target string, data []byte) (state, note string, err error) {
	if _, ok := s.tufRepo(); !ok {
		return "", "", nil
	}
	if err := s.signTarget(vendor, target, data); err != nil {
		if errors.Is(err, trust.ErrUnknownVendor) {
			return "unsigned", fmt.Sprintf("vendor %s has no keys in the signed-update repository (ringfence keys vendor add %s)", vendor, vendor), nil
		}
		return "", "", storeError("signed-update repository", err)
	}
	ix, err := s.signingIndex()
	if err != nil {
		return "", "", storeError("signed-update repository", err)
	}
	sg, note := signing(ix, target)
	return signingWords[sg], note, nil
}

var signingWords = map[rollout.Signing]string{rollout.SigningProduction: "production", rollout.SigningCanary: "canary", rollout.SigningNone: "unsigned"}

// heldKeys are the vendor's keys the server holds:
// <TUFDir>/vendor-keys/VENDOR/*.key, or VENDOR.key (the layout before
// vendor thresholds).
func heldKeys(repo trust.Repo, vendor string) ([]ed25519.PrivateKey, error) {
	dir := filepath.Join(repo.Dir, "vendor-keys")
	files, _ := filepath.Glob(filepath.Join(dir, vendor, "*.key"))
	if _, err := os.Stat(filepath.Join(dir, vendor+".key")); err == nil {
		files = append(files, filepath.Join(dir, vendor+".key"))
	}
	var keys []ed25519.PrivateKey
	for _, f := range files {
		k, err := trust.LoadKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// signingState is how far each release's artifact is signed, read once
// per snapshot (nil without a repository).
func (s *Server) signingIndex() (*trust.Index, error) {
	repo, ok := s.tufRepo()
	if !ok {
		return nil, nil
	}
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	return trust.LoadIndex(repo)
}

// signing converts a target's state for the controller.
func signing(ix *trust.Index, target string) (rollout.Signing, string) {
	if ix == nil {
		return rollout.SigningNotRequired, ""
	}
	st := ix.StateOf(target)
	switch {
	case st.Production:
		return rollout.SigningProduction, ""
	case st.Canary:
		return rollout.SigningCanary, st.Describe(target)
	}
	return rollout.SigningNone, st.Describe(target)
}

// deviceTarget is the name a device verifies an artifact under: the
// production name once the vendor's threshold signed it, the canary name
// for a device of a canary wave before that; "" when the device cannot
// verify it yet, and is not offered it.
func deviceTarget(ri *releaseInfo, target string) string {
	switch ri.signing {
	case rollout.SigningNotRequired, rollout.SigningProduction:
		return target
	case rollout.SigningCanary:
		v := ri.view
		if v.State.Live() && v.Wave < len(v.Plan.Waves) && v.Plan.Waves[v.Wave].Canary {
			return trust.CanaryTarget(target)
		}
	}
	return ""
}

// shippable checks that the devices of a new release's first wave can
// verify its artifact. An artifact published before its vendor had keys in
// the repository is staged now (and signed with any key the server holds).
func (s *Server) shippable(a store.Artifact, kind store.ChannelKind, first rollout.Wave) error {
	if _, ok := s.tufRepo(); !ok {
		return nil
	}
	vendor, _, _ := strings.Cut(a.Channel, "/")
	target := targetName(a.Channel, kind, a.Version)
	ix, err := s.signingIndex()
	if err != nil {
		return storeError("signed-update repository", err)
	}
	if st := ix.StateOf(target); !st.Production && !st.Canary && st.Threshold == 0 {
		if err := s.signTarget(vendor, target, a.Bytes); err != nil {
			if errors.Is(err, trust.ErrUnknownVendor) {
				return conflict("%s@%d cannot ship: vendor %s has no keys in the signed-update repository (ringfence keys vendor add %s)", a.Channel, a.Version, vendor, vendor)
			}
			return storeError("signed-update repository", err)
		}
		if ix, err = s.signingIndex(); err != nil {
			return storeError("signed-update repository", err)
		}
	}
	if sg, note := signing(ix, target); !sg.Covers(first) {
		return conflict("%s@%d cannot start: its first wave's devices could not verify it: %s. Sign it where the vendor's keys are "+
			"(ringfence sign %s --key FILE --out SIGS) and upload the signatures (ringfence publish --signatures SIGS)", a.Channel, a.Version, note, vendor)
	}
	return nil
}

// SigningResult answers an upload of signatures.
type SigningResult struct {
	Vendor string             `json:"vendor"`
	Roles  []trust.RoleStatus `json:"roles"`
}

// signingRequest is what awaits the vendor's signatures.
func (s *Server) signingRequest(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor := r.PathValue("vendor")
	if !p.vendorAccess(vendor, false) {
		return forbidden("token may not read vendor %s's signing requests", vendor)
	}
	repo, ok := s.tufRepo()
	if !ok {
		return notFound("this server has no signed-update repository (ringfence keys init)")
	}
	s.tufMu.Lock()
	req, err := trust.PendingRequest(repo, vendor)
	s.tufMu.Unlock()
	if err != nil {
		if errors.Is(err, trust.ErrUnknownVendor) {
			return notFound("vendor %s has no keys in the signed-update repository (ringfence keys vendor add %s)", vendor, vendor)
		}
		return storeError("signed-update repository", err)
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// maxSigningJSON caps an upload of signatures: the request carries the
// vendor roles' metadata, which grows with their targets.
const maxSigningJSON = 16 << 20

// uploadSignatures adds the vendor's signers' signatures. The vendor's
// publishers and approvers may upload (and the operator): what counts is
// that the signatures verify, not who carries them.
func (s *Server) uploadSignatures(w http.ResponseWriter, r *http.Request, p Principal) error {
	vendor := r.PathValue("vendor")
	if !p.isAdmin() && (p.Tenant != vendor || (p.Role != store.RolePublisher && p.Role != store.RoleApprover)) {
		return forbidden("token may not upload signatures for vendor %s", vendor)
	}
	repo, ok := s.tufRepo()
	if !ok {
		return notFound("this server has no signed-update repository (ringfence keys init)")
	}
	var req trust.Request
	if err := decodeJSON(w, r, maxSigningJSON, &req); err != nil {
		return err
	}
	if req.Vendor != vendor {
		return badRequest("vendor: the signatures are for %q, uploaded to %q", req.Vendor, vendor)
	}
	if len(req.Roles) == 0 {
		return badRequest("roles: no signed role in the upload")
	}
	s.tufMu.Lock()
	st, err := trust.AddSignatures(repo, req, s.now())
	s.tufMu.Unlock()
	var se *trust.SignatureError
	if errors.As(err, &se) {
		return &HTTPError{Code: http.StatusUnprocessableEntity, Msg: "signatures refused", Detail: se.Error()}
	}
	if err != nil {
		return storeError("signed-update repository", err)
	}
	var parts []string
	for _, rs := range st {
		parts = append(parts, fmt.Sprintf("%s v%d %d/%d%s", rs.Role, rs.Version, rs.Signed, rs.Threshold, map[bool]string{true: " published"}[rs.Published]))
	}
	if err := s.audit(r.Context(), p, "signatures.add", vendor, strings.Join(parts, ", ")); err != nil {
		return err
	}
	s.changed(r.Context())
	writeJSON(w, http.StatusOK, SigningResult{Vendor: vendor, Roles: st})
	return nil
}

// tufLoop keeps the timestamp fresh on the controller's replica: it is
// re-signed when less than half its lifetime is left, so clients never
// see an expired (frozen) repository while the server runs.
func (s *Server) tufLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if s.IsController() {
			if err := s.RefreshTimestamp(); err != nil {
				s.log.Warn("signed-update timestamp not refreshed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshTimestamp re-signs the repository's timestamp if it expires
// within half its lifetime.
func (s *Server) RefreshTimestamp() error {
	repo, ok := s.tufRepo()
	if !ok {
		return nil
	}
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	ts, err := new(metadata.Metadata[metadata.TimestampType]).FromFile(filepath.Join(repo.Dir, "metadata", "timestamp.json"))
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if ts.Signed.Expires.Sub(s.now()) > trust.TimestampExpiry/2 {
		return nil
	}
	return repo.Refresh(s.now())
}

// targetOf is the target a file under /tuf/targets/ holds: its name
// without the hash prefix of consistent snapshots, and with the canary
// role's "canary/" segment taken out (trust.CanaryTarget).
func targetOf(file string) string {
	dir, base := path.Split(file)
	if h, rest, ok := strings.Cut(base, "."); ok && len(h) == 64 && strings.Trim(h, "0123456789abcdef") == "" {
		base = rest
	}
	if strings.Count(dir, "/") == 3 && strings.HasSuffix(dir, "/canary/") {
		dir = strings.TrimSuffix(dir, "canary/")
	}
	return dir + base
}

// targetName is an artifact's path in the signed-update repository, the
// one the check-in names: VENDOR/CHANNEL/VERSION.bundle, or .build for
// agent builds.
func targetName(channel string, kind store.ChannelKind, version uint64) string {
	ext := "bundle"
	if kind == store.ChannelAgent {
		ext = "build"
	}
	return fmt.Sprintf("%s/%d.%s", channel, version, ext)
}

// syncDenyList makes the signed deny list name exactly the targets of
// halted and rolled-back releases. The controller runs it every tick, so a
// halt by the controller or by a person reaches the list within a tick, and
// a resumed release leaves it.
// stale says rels predate this tick's changes and must be read again.
func (s *Server) syncDenyList(ctx context.Context, rels []store.Release, stale bool) error {
	repo, ok := s.tufRepo()
	if !ok {
		return nil
	}
	if stale {
		var err error
		if rels, err = s.store.ListReleases(ctx, ""); err != nil {
			return fmt.Errorf("releases: %w", err)
		}
	}
	sn := s.snap.Load()
	want := map[string]store.Release{}
	for _, rel := range rels {
		if st, err := rollout.ParseState(string(rel.State)); err == nil && st.Bad() {
			want[targetName(rel.Channel, sn.channels[rel.Channel].Kind, rel.Version)] = rel
		}
	}
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	cur, err := trust.LoadDenyList(repo)
	if err != nil {
		return fmt.Errorf("deny list: %w", err)
	}
	for target, rel := range want {
		if !cur.Denies(target) {
			if err := trust.Deny(repo, trust.DenyEntry{Target: target, Reason: rel.Reason, At: s.now()}, s.now()); err != nil {
				return fmt.Errorf("deny %s: %w", target, err)
			}
		}
	}
	for _, e := range cur.Denied {
		if _, ok := want[e.Target]; !ok {
			if err := trust.Allow(repo, e.Target, s.now()); err != nil {
				return fmt.Errorf("allow %s: %w", e.Target, err)
			}
		}
	}
	return nil
}
