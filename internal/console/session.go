package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A session is a cookie the server signed: the API token's id, an expiry
// and a random nonce, with an HMAC under a key derived from the audit key
// (so replicas, which share that key, accept each other's sessions). The
// token itself never goes back to the browser; every request looks the
// token up again, so revoking it ends its sessions at once. The CSRF token
// of a session is an HMAC of its nonce: a page cannot forge it without the
// key, and it needs no server-side state.

const (
	sessionCookie = "ringfence_session"
	signinCookie  = "ringfence_signin"
	sessionTTL    = 8 * time.Hour
	cookiePath    = "/console/"
)

var errNoSession = errors.New("no valid session")

type session struct {
	tokenID string
	expires time.Time
	nonce   string
}

// sessions signs and checks session cookies and CSRF tokens, and
// remembers sessions signed out before they expire (on this replica).
type sessions struct {
	key []byte
	mu  sync.Mutex
	out map[string]time.Time // nonce → expiry
}

func newSessions(key []byte) *sessions { return &sessions{key: key, out: map[string]time.Time{}} }

func (s *sessions) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// issue makes the cookie value of a new session for token id.
func (s *sessions) issue(tokenID string, now time.Time) (string, session) {
	se := session{tokenID: tokenID, expires: now.Add(sessionTTL), nonce: randomString(16)}
	body := tokenID + "|" + strconv.FormatInt(se.expires.Unix(), 10) + "|" + se.nonce
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + s.mac("session", body), se
}

// check verifies a cookie value: signature, expiry, not signed out.
func (s *sessions) check(value string, now time.Time) (session, error) {
	b64, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 512 {
		return session{}, errNoSession
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return session{}, errNoSession
	}
	body := string(raw)
	if !hmac.Equal([]byte(sig), []byte(s.mac("session", body))) {
		return session{}, errNoSession
	}
	parts := strings.Split(body, "|")
	if len(parts) != 3 {
		return session{}, errNoSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return session{}, errNoSession
	}
	se := session{tokenID: parts[0], expires: time.Unix(exp, 0), nonce: parts[2]}
	s.mu.Lock()
	_, gone := s.out[se.nonce]
	s.mu.Unlock()
	if gone {
		return session{}, errNoSession
	}
	return se, nil
}

// end remembers a signed-out session until it would have expired.
func (s *sessions) end(se session, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, exp := range s.out {
		if now.After(exp) {
			delete(s.out, n)
		}
	}
	s.out[se.nonce] = se.expires
}

// csrf is the session's CSRF token, put in every form.
func (s *sessions) csrf(se session) string { return s.mac("csrf", se.nonce) }

// signinCSRF is the sign-in form's CSRF token, bound to a pre-session
// cookie (nobody is signed in yet).
func (s *sessions) signinCSRF(cookie string) string { return s.mac("signin", cookie) }

func validToken(got, want string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}

// setCookie sets a console cookie that lasts ttl, or clears it (value
// ""). Max-Age, not Expires: the server's clock is not the browser's (and
// in tests not even the real time).
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: cookiePath, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(ttl / time.Second)}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// sameOrigin refuses a state-changing request a browser says came from
// another site: Sec-Fetch-Site, when sent, must be same-origin; Origin,
// when sent, must name this host. (The CSRF token is checked as well:
// these headers are a second line for browsers that send them.)
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("Sec-Fetch-Site: " + site + ", want same-origin")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errors.New("Origin: " + o + " is not this server (" + r.Host + ")")
		}
	}
	return nil
}
