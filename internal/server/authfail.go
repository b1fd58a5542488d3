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

// Failed authentication is limited per source address (Config.AuthFailures
// a minute): a guesser gets a few tries, then 429 until its allowance
// refills, and every failure is logged and counted. Behind a proxy every
// client shares the proxy's address (docs/api.md, Authentication).

// authFailAddrs bounds the addresses remembered: past it, those that have
// refilled are forgotten (they are as good as new), and if all are still
// limited a new address gets one try.
const authFailAddrs = 100_000

// authFailures are the failed authentications per source address.
type authFailures struct {
	perMinute int // < 0: no limit
	mu        sync.Mutex
	addrs     map[string]*rate.Limiter
	total     atomic.Int64
}

func (a *authFailures) limit() rate.Limit { return rate.Limit(float64(a.perMinute) / 60) }

// blocked reports whether addr has used up its failures; retry says when
// to come back.
func (a *authFailures) blocked(addr string, now time.Time) (retry time.Duration, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.addrs[addr]
	if a.perMinute < 0 || l == nil || l.TokensAt(now) >= 1 {
		return 0, false
	}
	return time.Duration((1 - l.TokensAt(now)) / float64(a.limit()) * float64(time.Second)), true
}

// fail records a failed authentication from addr.
func (a *authFailures) fail(addr string, now time.Time) {
	a.total.Add(1)
	if a.perMinute < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addrs == nil {
		a.addrs = map[string]*rate.Limiter{}
	}
	l := a.addrs[addr]
	if l == nil {
		if len(a.addrs) >= authFailAddrs {
			for k, x := range a.addrs {
				if x.TokensAt(now) >= float64(a.perMinute) {
					delete(a.addrs, k)
				}
			}
		}
		burst := a.perMinute
		if len(a.addrs) >= authFailAddrs {
			burst = 1 // a flood of addresses: each gets one try
		}
		l = rate.NewLimiter(a.limit(), burst)
		a.addrs[addr] = l
	}
	l.AllowN(now, 1)
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

// throttled answers 429 to an address that failed too often, before its
// credential is looked at.
func (s *Server) throttled(r *http.Request) error {
	if retry, ok := s.authFail.blocked(sourceAddr(r), s.now()); ok {
		secs := max(1, int(retry.Seconds()+0.999))
		return &HTTPError{Code: http.StatusTooManyRequests, Msg: "too many requests", RetryAfter: secs,
			Detail: "too many failed authentications from this address; try again later"}
	}
	return nil
}

// authFailed records a failed authentication of kind (api, device,
// enrolment) for the credential named by who (an id, or a fingerprint),
// and returns err.
func (s *Server) authFailed(r *http.Request, kind, who string, err error) error {
	addr := sourceAddr(r)
	s.authFail.fail(addr, s.now())
	s.log.Warn("authentication failed", "kind", kind, "credential", who, "source", addr, "path", r.URL.Path)
	return err
}
