package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/ringfence/ringfence/internal/store"
)

// deviceEntry caches one device for the check-in path, compactly (about
// 250 bytes with its map slot): a fleet lives in memory. What devices share
// (organisation, platform/OS/agent facts, channel names) is interned. Its
// mutable fields are guarded by its shard's lock. The store stays the
// authority: entries expire, so a revocation made on another replica takes
// effect within deviceTTL.
type deviceEntry struct {
	id       string
	org      string
	credHash [sha256.Size]byte
	facts    unique.Handle[deviceFacts]
	lastSeq  uint64
	loadedAt int64 // unix nanoseconds
	channels []chanState
	hbWindow int64 // last heartbeat window counted, in windows since the epoch
	// actWindow is the last window in which the device's blocks or
	// alerts were counted as an action-device window (one per window).
	actWindow int64
	// actHour and actSpent are the hour (since the epoch) and the action
	// counts counted in it (maxActionsPerHour).
	actHour  int64
	actSpent int64
	revoked  bool
	shard    uint8
}

type deviceFacts struct{ platform, osBuild, agent string }

type chanState struct {
	channel, state string
	active, lkg    uint64
	// offered: a release of active was offered to the device, so its
	// heartbeats count as that release's exposure.
	offered bool
}

func intern(s string) string { return unique.Make(s).Value() }

func factsOf(platform, osBuild, agent string) unique.Handle[deviceFacts] {
	return unique.Make(deviceFacts{platform, osBuild, agent})
}

func newDeviceEntry(d store.Device, chs []store.DeviceChannel, now time.Time) *deviceEntry {
	e := &deviceEntry{id: d.ID, org: intern(d.Org), revoked: d.Revoked, facts: factsOf(d.Platform, d.OSBuild, d.AgentVersion),
		lastSeq: d.LastSeq, loadedAt: now.UnixNano()}
	if b, err := hex.DecodeString(d.CredHash); err == nil && len(b) == sha256.Size {
		copy(e.credHash[:], b)
	}
	for _, c := range chs {
		e.setChannel(c)
	}
	return e
}

func (e *deviceEntry) channel(ch string) (chanState, bool) {
	for _, c := range e.channels {
		if c.channel == ch {
			return c, true
		}
	}
	return chanState{}, false
}

func (e *deviceEntry) setChannel(c store.DeviceChannel) {
	cs := chanState{channel: intern(c.Channel), state: intern(c.State), active: c.ActiveVersion, lkg: c.LKGVersion, offered: c.Offered}
	for i := range e.channels {
		if e.channels[i].channel == cs.channel {
			e.channels[i] = cs
			return
		}
	}
	e.channels = append(e.channels, cs)
}

// deviceCache is a sharded map: one lock per shard keeps concurrent
// check-ins from queueing on a single mutex, and plain maps cost far less
// per entry than sync.Map.
type deviceCache struct {
	shards [64]struct {
		sync.RWMutex
		m map[string]*deviceEntry
	}
}

func (c *deviceCache) shard(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return int(h % uint32(len(c.shards)))
}

func (c *deviceCache) get(id string) *deviceEntry {
	sh := &c.shards[c.shard(id)]
	sh.RLock()
	defer sh.RUnlock()
	return sh.m[id]
}

// lock and unlock guard an entry's mutable fields.
func (c *deviceCache) lock(e *deviceEntry)   { c.shards[e.shard].Lock() }
func (c *deviceCache) unlock(e *deviceEntry) { c.shards[e.shard].Unlock() }

// put stores e unless an entry exists, and returns the one kept.
func (c *deviceCache) put(e *deviceEntry) *deviceEntry {
	e.shard = uint8(c.shard(e.id))
	sh := &c.shards[e.shard]
	sh.Lock()
	defer sh.Unlock()
	if sh.m == nil {
		sh.m = map[string]*deviceEntry{}
	}
	if old, ok := sh.m[e.id]; ok {
		return old
	}
	sh.m[e.id] = e
	return e
}

func (c *deviceCache) delete(id string) {
	sh := &c.shards[c.shard(id)]
	sh.Lock()
	defer sh.Unlock()
	delete(sh.m, id)
}

const deviceTTL = time.Minute

// secret returns a random token of n bytes, hex-encoded.
func secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hashSecret is how tokens and credentials are stored: they are 256-bit
// random strings, so a plain SHA-256 resists guessing; a slow password
// hash would add nothing but cost per check-in.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authDevice checks a device credential "DEVICE_ID.SECRET".
func (s *Server) authDevice(ctx context.Context, r *http.Request) (*deviceEntry, error) {
	if err := s.throttled(r); err != nil {
		return nil, err
	}
	cred := bearer(r)
	id, sec, ok := strings.Cut(cred, ".")
	if !ok || id == "" || sec == "" || len(cred) > 256 {
		return nil, s.authFailed(r, "device", fingerprint(cred), errUnauthorized)
	}
	e, err := s.device(ctx, id)
	if err == errUnauthorized {
		return nil, s.authFailed(r, "device", fingerprint(cred), err)
	}
	if err != nil {
		return nil, err
	}
	s.devices.lock(e)
	got := sha256.Sum256([]byte(sec))
	match, revoked := subtle.ConstantTimeCompare(got[:], e.credHash[:]) == 1, e.revoked
	s.devices.unlock(e)
	if !match {
		return nil, s.authFailed(r, "device", id, errUnauthorized)
	}
	if revoked {
		return nil, s.authFailed(r, "device", id+" (revoked)", forbidden("device %s is revoked; enrol it again", id))
	}
	return e, nil
}

func (s *Server) device(ctx context.Context, id string) (*deviceEntry, error) {
	now := s.now()
	cached := s.devices.get(id)
	if cached != nil {
		s.devices.lock(cached)
		fresh := now.UnixNano()-cached.loadedAt < int64(deviceTTL)
		s.devices.unlock(cached)
		if fresh {
			return cached, nil
		}
	}
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, errUnauthorized
		}
		s.markStore(err)
		return nil, storeError("device", err)
	}
	if cached != nil {
		// The cache keeps the newer channel state (a write may be
		// queued): a stale entry needs only the stored revocation.
		s.devices.lock(cached)
		cached.revoked, cached.loadedAt = d.Revoked, now.UnixNano()
		s.devices.unlock(cached)
		return cached, nil
	}
	chs, err := s.store.DeviceChannels(ctx, id)
	if err != nil {
		return nil, storeError("device", err)
	}
	e := newDeviceEntry(d, chs, now)
	if kept := s.devices.put(e); kept != e {
		s.devices.lock(kept)
		// Keep the newer in-memory state (a write may be queued), but take
		// the stored revocation.
		kept.revoked = d.Revoked
		kept.loadedAt = now.UnixNano()
		s.devices.unlock(kept)
		return kept, nil
	}
	return e, nil
}

// forgetDevice drops a cached device after an admin change.
func (s *Server) forgetDevice(id string) { s.devices.delete(id) }
