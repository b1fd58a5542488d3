package server

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// limiters are token buckets by key (a source address, a token id), each
// refilling at perMinute a minute up to as many. At most maxLimiterKeys
// are remembered: past it, the full ones are forgotten (they are as good
// as new), and if all are in use a new key gets a bucket of one.
type limiters struct {
	perMinute int // < 0: no limit
	burst     int // 0: perMinute
	mu        sync.Mutex
	m         map[string]*rate.Limiter
}

const maxLimiterKeys = 100_000

func (l *limiters) rate() rate.Limit { return rate.Limit(float64(l.perMinute) / 60) }

func (l *limiters) size() int {
	if l.burst > 0 {
		return l.burst
	}
	return l.perMinute
}

// bucket is key's bucket, made when missing. Called with l.mu held.
func (l *limiters) bucket(key string, now time.Time) *rate.Limiter {
	if b := l.m[key]; b != nil {
		return b
	}
	if l.m == nil {
		l.m = map[string]*rate.Limiter{}
	}
	burst := l.size()
	if len(l.m) >= maxLimiterKeys {
		for k, b := range l.m {
			if b.TokensAt(now) >= float64(burst) {
				delete(l.m, k)
			}
		}
		if len(l.m) >= maxLimiterKeys {
			burst = 1
		}
	}
	b := rate.NewLimiter(l.rate(), burst)
	l.m[key] = b
	return b
}

// take uses one of key's allowance; false, and how long until there is
// one, when it is spent.
func (l *limiters) take(key string, now time.Time) (time.Duration, bool) {
	return l.takeN(key, 1, now)
}

// takeN uses n of key's allowance, or none of it: false, and how long
// until there are n, when there are not.
func (l *limiters) takeN(key string, n int, now time.Time) (time.Duration, bool) {
	if l.perMinute < 0 || n <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	n = min(n, b.Burst())
	if b.AllowN(now, n) {
		return 0, true
	}
	return time.Duration((float64(n) - b.TokensAt(now)) / float64(l.rate()) * float64(time.Second)), false
}

// spent reports whether key's allowance is used up, without using any.
func (l *limiters) spent(key string, now time.Time) (time.Duration, bool) {
	if l.perMinute < 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil || b.TokensAt(now) >= 1 {
		return 0, false
	}
	return l.until(b, now), true
}

func (l *limiters) until(b *rate.Limiter, now time.Time) time.Duration {
	return time.Duration((1 - b.TokensAt(now)) / float64(l.rate()) * float64(time.Second))
}

// Failed authentication is limited per source address (Config.AuthFailures
// a minute): a guesser gets a few tries, then 429 until its allowance
// refills, and every failure is logged and counted. Behind a proxy every
// client shares the proxy's address (docs/api.md, Authentication).
type authFailures struct {
	limiters
	total atomic.Int64
}

// AuthFailures is how many authentications failed since the server
// started.
func (s *Server) AuthFailures() int64 { return s.authFail.total.Load() }

// sourceAddr is the address a request came from, without its port.
func sourceAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// fingerprint names a secret in logs without revealing it: the first
// bytes of its hash, which is what the store keeps.
func fingerprint(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(h[:4])
}

// tooMany is a 429 saying when to come back and why.
func tooMany(retry time.Duration, why string) *HTTPError {
	return &HTTPError{Code: http.StatusTooManyRequests, Msg: "too many requests", RetryAfter: max(1, int(retry.Seconds()+0.999)), Detail: why}
}

// throttled answers 429 to an address that failed too often, before its
// credential is looked at.
func (s *Server) throttled(r *http.Request) error {
	if retry, spent := s.authFail.spent(sourceAddr(r), s.now()); spent {
		return tooMany(retry, "too many failed authentications from this address; try again later")
	}
	return nil
}

// authFailed records a failed authentication of kind (api, device,
// enrolment) for the credential named by who (an id, or a fingerprint),
// and returns err.
func (s *Server) authFailed(r *http.Request, kind, who string, err error) error {
	addr := sourceAddr(r)
	s.authFail.total.Add(1)
	s.authFail.take(addr, s.now())
	s.log.Warn("authentication failed", "kind", kind, "credential", who, "source", addr, "path", r.URL.Path)
	return err
}
