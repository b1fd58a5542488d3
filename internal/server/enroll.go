package server

import (
	"net/http"
	"time"

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
	if req.Token == "" || len(req.Token) > 256 {
		return errUnauthorized
	}
	tok, err := s.store.EnrollTokenByHash(r.Context(), hashSecret(req.Token))
	if err != nil {
		if isNotFound(err) {
			return errUnauthorized
		}
		return storeError("enrolment token", err)
	}
	now := s.now()
	if tok.Revoked || (!tok.ExpiresAt.IsZero() && now.After(tok.ExpiresAt)) {
		return &HTTPError{Code: http.StatusUnauthorized, Msg: "unauthorized", Detail: "enrolment token revoked or expired"}
	}
	id := "dev-" + secret(10)
	sec := secret(32)
	d := store.Device{ID: id, Org: tok.Org, CredHash: hashSecret(sec), Platform: req.Platform, OSBuild: req.OSBuild,
		AgentVersion: req.AgentVersion, EnrolledAt: now, LastSeen: now}
	done := make(chan writeResult, 1)
	if err := s.writer.submit(&writeReq{enroll: &d, done: done}); err != nil {
		return busy()
	}
	if res := <-done; res.err != nil {
		s.markStore(res.err)
		return storeError("device", res.err)
	}
	s.devices.put(newDeviceEntry(d, nil, now))
	writeJSON(w, http.StatusCreated, enrollResponse{DeviceID: id, Credential: id + "." + sec, Org: tok.Org,
		CheckinInterval: int(s.cfg.CheckinInterval / time.Second)})
	return nil
}

func busy() *HTTPError {
	return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "unavailable", Detail: "the server is busy; retry later", RetryAfter: 10}
}

// checkDeviceFacts validates what a device says about itself.
func checkDeviceFacts(platform, osBuild, agentVersion string) error {
	if !validName(platform) {
		return badRequest("platform: %q is not a valid platform name (lowercase letters, digits, '-', '_')", platform)
	}
	if len(osBuild) > 64 || !printable(osBuild) {
		return badRequest("os_build: at most 64 printable characters")
	}
	if _, err := content.ParseAgentVersion(agentVersion); err != nil {
		return badRequest("agent_version: %v", err)
	}
	return nil
}

func validName(s string) bool { return protocol.ValidName(s) }

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
