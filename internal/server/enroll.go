package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/store"
)

type (
	enrollRequest  = protocol.EnrollRequest
	enrollResponse = protocol.EnrollResponse
)

// handleEnroll exchanges an organisation's enrolment token for a device
// id and a per-device credential, of which only the hash is stored.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) error {
	var req enrollRequest
	if err := decodeJSON(w, r, maxCheckinBody, &req); err != nil {
		return err
	}
	if err := checkDeviceFacts(req.Platform, req.OSBuild, req.AgentVersion); err != nil {
		return err
	}
	if err := s.throttled(r); err != nil {
		return err
	}
	if req.Token == "" || len(req.Token) > 256 {
		return s.authFailed(r, "enrolment", "none", errUnauthorized)
	}
	tok, err := s.store.EnrollTokenByHash(r.Context(), hashSecret(req.Token))
	if err != nil {
		if isNotFound(err) {
			return s.authFailed(r, "enrolment", fingerprint(req.Token), errUnauthorized)
		}
		return storeError("enrolment token", err)
	}
	now := s.now()
	if why := unusable(tok, now); why != "" {
		return s.authFailed(r, "enrolment", tok.ID+" ("+why+")",
			&HTTPError{Code: http.StatusUnauthorized, Msg: "unauthorized", Detail: "enrolment token " + why})
	}
	if retry, ok := s.enrolByToken.take(tok.ID, now); !ok {
		return tooMany(retry, "too many enrolments with this token; try again later")
	}
	if retry, ok := s.enrolByAddr.take(sourceAddr(r), now); !ok {
		return tooMany(retry, "too many enrolments from this address; try again later")
	}
	id := "dev-" + secret(10)
	sec := secret(32)
	d := store.Device{ID: id, Org: tok.Org, CredHash: hashSecret(sec), Platform: req.Platform, OSBuild: req.OSBuild,
		AgentVersion: req.AgentVersion, EnrolledAt: now, LastSeen: now, EnrolledWith: tok.ID}
	done := make(chan writeResult, 1)
	if err := s.writer.submit(&writeReq{enroll: &d, done: done}); err != nil {
		return busy()
	}
	if res := <-done; res.err != nil {
		if errors.Is(res.err, store.ErrEnrollToken) {
			// Another replica or request took its last use, or it was
			// revoked meanwhile.
			return s.authFailed(r, "enrolment", tok.ID+" (used up or revoked)",
				&HTTPError{Code: http.StatusUnauthorized, Msg: "unauthorized", Detail: "enrolment token used up, revoked or expired"})
		}
		s.markStore(res.err)
		return storeError("device", res.err)
	}
	s.devices.put(newDeviceEntry(d, nil, now))
	s.enrolled.add(tok.ID, tok.Org, id, now)
	writeJSON(w, http.StatusCreated, enrollResponse{DeviceID: id, Credential: id + "." + sec, Org: tok.Org,
		CheckinInterval: int(s.cfg.CheckinInterval / time.Second)})
	return nil
}

// unusable says why an enrolment token cannot enrol a device now ("" if
// it can): the store checks it again when it writes the device.
func unusable(t store.EnrollToken, now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return fmt.Sprintf("used up (%d of %d devices)", t.Uses, t.MaxUses)
	}
	return ""
}

func busy() *HTTPError {
	return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "unavailable", Detail: "the server is busy; retry later", RetryAfter: 10}
}

// checkDeviceFacts validates what a device says about itself.
func checkDeviceFacts(platform, osBuild, agentVersion string) error {
	if !validName(platform) {
		return badRequest("platform: %q is not a valid platform name (lowercase letters, digits, '-', '_')", platform)
	}
	if err := checkText("os_build", osBuild, 64, false); err != nil {
		return err
	}
	if _, err := content.ParseAgentVersion(agentVersion); err != nil {
		return badRequest("agent_version: %v", err)
	}
	return nil
}

func validName(s string) bool { return protocol.ValidName(s) }

// unprintable finds the first character of s that a person reading it in
// a terminal, a log or the console must not be shown raw: C0 and C1
// controls (newlines forge log lines, escapes drive terminals), bidi
// overrides, isolates and marks (they reorder what is shown: U+202E makes
// "invoice\u202Etxt.exe" read as "invoiceexe.txt"), line and paragraph
// separators, and bytes that are not UTF-8. bad is false when there is
// none.
func unprintable(s string) (at int, r rune, bad bool) {
	for i, c := range s {
		if c == utf8.RuneError {
			if _, w := utf8.DecodeRuneInString(s[i:]); w == 1 {
				return i, c, true // not UTF-8 (a real U+FFFD is 3 bytes)
			}
		}
		switch {
		case c < 0x20, c >= 0x7f && c <= 0x9f,
			c >= 0x202a && c <= 0x202e, c >= 0x2066 && c <= 0x2069, c == 0x200e, c == 0x200f, c == 0x061c,
			c == 0x2028, c == 0x2029:
			return i, c, true
		}
	}
	return 0, 0, false
}

// checkText validates a free-text field a person will read: at most max
// bytes (and not empty when required), every character printable.
func checkText(field, s string, max int, required bool) error {
	switch {
	case required && s == "":
		return badRequest("%s: say it, in 1 to %d characters", field, max)
	case len(s) > max:
		return badRequest("%s: %d bytes, at most %d", field, len(s), max)
	}
	if at, r, bad := unprintable(s); bad {
		if r == utf8.RuneError {
			return badRequest("%s: byte %d is not UTF-8", field, at)
		}
		return badRequest("%s: character %U at byte %d is a control or direction character; plain text only", field, r, at)
	}
	return nil
}
