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

	"github.com/ringfence/ringfence/internal/store"
)

// deviceEntry caches one device for the check-in path. The store stays
// the authority: entries expire, so a revocation made on another replica
// takes effect within deviceTTL.
type deviceEntry struct {
	mu       sync.Mutex
	dev      store.Device
	channels map[string]store.DeviceChannel
	loadedAt time.Time
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
	cred := bearer(r)
	id, sec, ok := strings.Cut(cred, ".")
	if !ok || id == "" || sec == "" || len(cred) > 256 {
		return nil, errUnauthorized
	}
	e, err := s.device(ctx, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if subtle.ConstantTimeCompare([]byte(hashSecret(sec)), []byte(e.dev.CredHash)) != 1 {
		return nil, errUnauthorized
	}
	if e.dev.Revoked {
		return nil, forbidden("device %s is revoked; enrol it again", id)
	}
	return e, nil
}

func (s *Server) device(ctx context.Context, id string) (*deviceEntry, error) {
	if v, ok := s.devices.Load(id); ok {
		e := v.(*deviceEntry)
		e.mu.Lock()
		fresh := s.now().Sub(e.loadedAt) < deviceTTL
		e.mu.Unlock()
		if fresh {
			return e, nil
		}
	}
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, errUnauthorized
		}
		return nil, storeError("device", err)
	}
	chs, err := s.store.DeviceChannels(ctx, id)
	if err != nil {
		return nil, storeError("device", err)
	}
	e := &deviceEntry{dev: d, channels: map[string]store.DeviceChannel{}, loadedAt: s.now()}
	for _, c := range chs {
		e.channels[c.Channel] = c
	}
	if v, loaded := s.devices.LoadOrStore(id, e); loaded {
		old := v.(*deviceEntry)
		old.mu.Lock()
		// Keep newer in-memory state (a write may be queued), but take the
		// stored revocation.
		old.dev.Revoked = d.Revoked
		old.loadedAt = s.now()
		old.mu.Unlock()
		return old, nil
	}
	return e, nil
}

// forgetDevice drops a cached device after an admin change.
func (s *Server) forgetDevice(id string) { s.devices.Delete(id) }
