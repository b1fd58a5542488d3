package server

import (
	"context"
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

// signTarget adds an accepted artifact to its vendor's role when the server
// holds the vendor's key; otherwise the vendor signs it offline.
func (s *Server) signTarget(vendor, target string, data []byte) error {
	repo, ok := s.tufRepo()
	if !ok {
		return nil
	}
	keyFile := filepath.Join(repo.Dir, "vendor-keys", vendor+".key")
	if _, err := os.Stat(keyFile); err != nil {
		return nil
	}
	key, err := trust.LoadKey(keyFile)
	if err != nil {
		return err
	}
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	return trust.AddTarget(repo, key, target, data, s.now())
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
