package trust

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The deny list is a small target, DenyTarget, that names known-bad
// versions. It is signed into its own delegated role, "deny", with an
// online key, so the server adds a halted release by itself; agents fetch
// it with every refresh, keep it, and check it when they load content and
// at boot, even offline. It is versioned separately from the vendors'
// roles, so it stays small and quick to fetch.
const (
	DenyRole   = "deny"
	DenyTarget = "ringfence/deny.json"
)

// DenyEntry is one denied target.
type DenyEntry struct {
	Target string    `json:"target"` // e.g. acme/ipc/293.bundle
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// DenyList is the deny list's content.
type DenyList struct {
	Version int64       `json:"version"`
	Denied  []DenyEntry `json:"denied"`
}

// Denies reports whether a target is on the list.
func (l DenyList) Denies(target string) bool {
	return slices.ContainsFunc(l.Denied, func(e DenyEntry) bool { return e.Target == target })
}

func denyKeyFile(r Repo) string { return filepath.Join(r.Dir, "online", "deny.key") }

// addDenyRole delegates DenyTarget to a new online key; Init signs the
// delegation and publishes the empty role.
func addDenyRole(r Repo, targets *metadata.Metadata[metadata.TargetsType]) error {
	// First and terminating: no other role is asked about the list.
	_, err := delegate(targets, DenyRole, DenyTarget, denyKeyFile(r), true)
	return err
}

// LoadDenyList reads the current list (version 0 and empty before the
// first entry).
func LoadDenyList(r Repo) (DenyList, error) {
	role, err := r.loadTargets(DenyRole)
	if err != nil {
		return DenyList{}, err
	}
	tf, ok := role.Signed.Targets[DenyTarget]
	if !ok {
		return DenyList{}, nil
	}
	b, err := os.ReadFile(r.targetFile(DenyTarget, tf))
	if err != nil {
		return DenyList{}, fmt.Errorf("deny list: %w", err)
	}
	var l DenyList
	if err := json.Unmarshal(b, &l); err != nil {
		return DenyList{}, fmt.Errorf("deny list: %w", err)
	}
	return l, nil
}

// Deny adds a target to the list (a no-op if it is there) and publishes.
func Deny(r Repo, e DenyEntry, now time.Time) error {
	return r.changeDenyList(now, func(l *DenyList) bool {
		if l.Denies(e.Target) {
			return false
		}
		l.Denied = append(l.Denied, e)
		return true
	})
}

// Allow takes a target off the list (a person resumed its release).
func Allow(r Repo, target string, now time.Time) error {
	return r.changeDenyList(now, func(l *DenyList) bool {
		n := len(l.Denied)
		l.Denied = slices.DeleteFunc(l.Denied, func(e DenyEntry) bool { return e.Target == target })
		return len(l.Denied) != n
	})
}

func (r Repo) changeDenyList(now time.Time, change func(*DenyList) bool) error {
	l, err := LoadDenyList(r)
	if err != nil {
		return err
	}
	if !change(&l) {
		return nil
	}
	l.Version++
	if l.Denied == nil {
		l.Denied = []DenyEntry{}
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	key, err := LoadKey(denyKeyFile(r))
	if err != nil {
		return err
	}
	return addTarget(r, DenyRole, key, DenyTarget, b, now)
}

// targetFile is where a target's bytes are stored: under its hash.
func (r Repo) targetFile(name string, tf *metadata.TargetFiles) string {
	dir, base := filepath.Split(filepath.FromSlash(name))
	return filepath.Join(r.Dir, "targets", dir, fmt.Sprintf("%x.%s", []byte(tf.Hashes["sha256"]), base))
}
