package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// Artifacts and releases.

// channelArtifacts are one channel's artifacts; latest saves a scan in
// LatestArtifactVersion, which every publish asks.
type channelArtifacts struct {
	byVersion map[uint64]store.Artifact
	latest    uint64
}

func (s *Store) PutArtifact(ctx context.Context, a store.Artifact) error {
	// Copied before the lock: artifacts can be megabytes.
	a.Bytes = bytes.Clone(a.Bytes)
	a.CreatedAt = norm(a.CreatedAt)
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	ca := st.artifacts[a.Channel]
	if ca != nil {
		if old, ok := ca.byVersion[a.Version]; ok {
			if old.SHA256 == a.SHA256 {
				return nil
			}
			return fmt.Errorf("artifact %s@%d: stored with sha256 %s, refusing different bytes (%s): %w", a.Channel, a.Version, old.SHA256, a.SHA256, store.ErrConflict)
		}
	}
	if _, ok := st.channels[a.Channel]; !ok {
		return fmt.Errorf("artifact %s@%d: channel %s: %w", a.Channel, a.Version, a.Channel, store.ErrNotFound)
	}
	if ca == nil {
		ca = &channelArtifacts{byVersion: map[uint64]store.Artifact{}}
		st.artifacts[a.Channel] = ca
	}
	ca.byVersion[a.Version] = a
	ca.latest = max(ca.latest, a.Version)
	return nil
}

func (s *Store) GetArtifact(ctx context.Context, channel string, version uint64) (store.Artifact, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Artifact{Channel: channel, Version: version}, err
	}
	var a store.Artifact
	ok := false
	if ca := st.artifacts[channel]; ca != nil {
		a, ok = ca.byVersion[version]
	}
	s.mu.RUnlock()
	if !ok {
		return store.Artifact{Channel: channel, Version: version}, fmt.Errorf("artifact %s@%d: %w", channel, version, store.ErrNotFound)
	}
	// Stored bytes are never written again, so they can be copied
	// outside the lock.
	a.Bytes = bytes.Clone(a.Bytes)
	return a, nil
}

func (s *Store) LatestArtifactVersion(ctx context.Context, channel string) (uint64, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	if ca := st.artifacts[channel]; ca != nil {
		return ca.latest, nil
	}
	return 0, nil
}

// releases index the releases by id and, for ListReleases and the
// one-release-per-version rule, by channel in version order.
type releases struct {
	byID      map[string]*store.Release
	byChannel map[string][]*store.Release // sorted by version
}

func newReleases() releases {
	return releases{byID: map[string]*store.Release{}, byChannel: map[string][]*store.Release{}}
}

// ownRelease is the copy of r the store keeps: times, approvals, plan and
// cohort as a database would read them back, sharing no memory with r.
func ownRelease(r store.Release) *store.Release {
	r.Plan = append([]byte{}, r.Plan...) // a stored plan is never nil
	if len(r.Cohort) == 0 {
		r.Cohort = nil
	} else {
		r.Cohort = bytes.Clone(r.Cohort)
	}
	if len(r.Approvals) == 0 {
		r.Approvals = nil
	} else {
		as := make([]store.Approval, len(r.Approvals))
		for i, a := range r.Approvals {
			a.At = norm(a.At)
			as[i] = a
		}
		r.Approvals = as
	}
	r.CreatedAt, r.UpdatedAt = norm(r.CreatedAt), norm(r.UpdatedAt)
	r.WaveStartedAt, r.CompletedAt, r.GatesSince = norm(r.WaveStartedAt), norm(r.CompletedAt), norm(r.GatesSince)
	return &r
}

// copyRelease is what a reader gets: a copy of the stored release.
func copyRelease(r *store.Release) store.Release {
	c := *r
	c.Plan = append([]byte{}, r.Plan...)
	c.Cohort = bytes.Clone(r.Cohort)
	c.Approvals = slices.Clone(r.Approvals)
	return c
}

func (s *Store) CreateRelease(ctx context.Context, r store.Release) error {
	if err := store.CheckRelease(r); err != nil {
		return err
	}
	own := ownRelease(r)
	own.Revision = 1
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := st.releases.byID[r.ID]; ok {
		return fmt.Errorf("create release %s: %w", r.ID, store.ErrConflict)
	}
	list := st.releases.byChannel[r.Channel]
	i, found := slices.BinarySearchFunc(list, r.Version, func(x *store.Release, v uint64) int { return cmp.Compare(x.Version, v) })
	if found {
		return fmt.Errorf("create release %s: %s@%d already has release %s: %w", r.ID, r.Channel, r.Version, list[i].ID, store.ErrConflict)
	}
	if ca := st.artifacts[r.Channel]; ca == nil || !hasVersion(ca, r.Version) {
		return fmt.Errorf("create release %s: artifact %s@%d: %w", r.ID, r.Channel, r.Version, store.ErrNotFound)
	}
	st.releases.byID[r.ID] = own
	st.releases.byChannel[r.Channel] = slices.Insert(list, i, own)
	return nil
}

func hasVersion(ca *channelArtifacts, v uint64) bool {
	_, ok := ca.byVersion[v]
	return ok
}

func (s *Store) GetRelease(ctx context.Context, id string) (store.Release, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Release{}, err
	}
	defer s.mu.RUnlock()
	r, ok := st.releases.byID[id]
	if !ok {
		return store.Release{}, fmt.Errorf("release %s: %w", id, store.ErrNotFound)
	}
	return copyRelease(r), nil
}

// ListReleases lists a channel's releases by version, or every release by
// channel and version for "".
func (s *Store) ListReleases(ctx context.Context, channel string) ([]store.Release, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	chans := []string{channel}
	if channel == "" {
		chans = slices.Sorted(maps.Keys(st.releases.byChannel))
	}
	var out []store.Release
	for _, c := range chans {
		for _, r := range st.releases.byChannel[c] {
			out = append(out, copyRelease(r))
		}
	}
	return out, nil
}

// UpdateRelease writes every mutable field; id, channel, version and
// creator never change.
func (s *Store) UpdateRelease(ctx context.Context, r store.Release, audit ...store.AuditEntry) (int64, error) {
	if err := store.CheckRelease(r); err != nil {
		return 0, err
	}
	upd := ownRelease(r)
	st, err := s.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	cur, ok := st.releases.byID[r.ID]
	if !ok {
		return 0, fmt.Errorf("release %s: %w", r.ID, store.ErrNotFound)
	}
	if cur.Revision != r.Revision {
		return 0, fmt.Errorf("update release %s at revision %d: %w", r.ID, r.Revision, store.ErrStale)
	}
	// Updated in place: byChannel points at the same release.
	cur.Plan, cur.State, cur.Wave, cur.Reason = upd.Plan, upd.State, upd.Wave, upd.Reason
	cur.UpdatedAt, cur.WaveStartedAt, cur.CompletedAt = upd.UpdatedAt, upd.WaveStartedAt, upd.CompletedAt
	cur.Lane, cur.Phase, cur.HaltedBy, cur.Approvals = upd.Lane, upd.Phase, upd.HaltedBy, upd.Approvals
	cur.GatesSince, cur.Cohort = upd.GatesSince, upd.Cohort
	cur.Revision++
	for _, e := range audit {
		s.appendAudit(st, e)
	}
	return cur.Revision, nil
}
