package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/trust"
)

// A development server publishes a signed-update repository: a go-tuf
// client holding only the initial root.json verifies the seed bundle and a
// newly published one, and the target it downloads is the artifact the
// check-in names.
func TestServerPublishesSignedTargets(t *testing.T) {
	tufDir := filepath.Join(t.TempDir(), "tuf")
	e := newEnvAt(t, "", server.Config{ControllerTick: 24 * time.Hour, TUFDir: tufDir}, time.Now().UTC().Truncate(time.Second))
	root, err := os.ReadFile(filepath.Join(tufDir, "root.json"))
	if err != nil {
		t.Fatalf("dev mode made no repository: %v", err)
	}
	var pub server.PublishResult
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), &pub)

	fetch := func(target string) ([]byte, error) {
		return trust.Fetch(trust.ClientConfig{MetadataURL: e.url + "/tuf/metadata/", TargetsURL: e.url + "/tuf/targets/", Root: root,
			MetadataDir: t.TempDir(), TargetsDir: t.TempDir()}, target)
	}
	// The server holds one of acme's two keys: 293 is signed for canary
	// waves only; the seed 292 by both keys.
	if pub.Signing != "canary" || pub.Target != "acme/ipc/293.bundle" || !strings.Contains(pub.SigningNote, "1 of the 2") {
		t.Fatalf("publish result: signing %q (%s), target %q", pub.Signing, pub.SigningNote, pub.Target)
	}
	for _, target := range []string{"acme/ipc/292.bundle", "acme/ipc/canary/293.bundle"} {
		b, err := fetch(target)
		if err != nil {
			t.Fatalf("%s: a client with the initial root cannot verify it: %v", target, err)
		}
		if target == "acme/ipc/canary/293.bundle" {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != pub.SHA256 {
				t.Fatalf("%s: signed bytes hash to %x, the published artifact to %s", target, sum, pub.SHA256)
			}
		}
	}
	if b, err := fetch("acme/ipc/293.bundle"); err == nil {
		t.Fatalf("293 verified for production with one of two signatures (%d bytes)", len(b))
	}
	// The check-in names the same target path.
	d := e.enroll(t, "7.12.0")
	if cd := channel(e.checkin(t, d, d.report(0)), "acme/ipc"); cd == nil || cd.Artifact == nil || cd.Artifact.Target != "acme/ipc/292.bundle" {
		t.Fatalf("check-in: got %+v, want target acme/ipc/292.bundle", cd)
	}
	if _, err := fetch("acme/ipc/999.bundle"); err == nil {
		t.Fatal("an unsigned target was found")
	}

	// The timestamp is re-signed once less than half its day is left.
	tsVersion := func() int64 {
		ts, err := new(metadata.Metadata[metadata.TimestampType]).FromFile(filepath.Join(tufDir, "metadata", "timestamp.json"))
		if err != nil {
			t.Fatal(err)
		}
		return ts.Signed.Version
	}
	v0 := tsVersion()
	if err := e.srv.RefreshTimestamp(); err != nil || tsVersion() != v0 {
		t.Fatalf("a fresh timestamp was re-signed (%v): version %d -> %d", err, v0, tsVersion())
	}
	e.clock.Advance(13 * time.Hour)
	if err := e.srv.RefreshTimestamp(); err != nil || tsVersion() != v0+1 {
		t.Fatalf("a timestamp with 11 h left was not re-signed (%v): version %d -> %d", err, v0, tsVersion())
	}

	// A halted release lands on the signed deny list within a controller
	// tick; resuming it takes it off.
	var rel server.ReleaseReport
	e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293}, &rel)
	denyList := func() trust.DenyList {
		t.Helper()
		if err := e.srv.ControlOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		b, err := fetch(trust.DenyTarget)
		if err != nil && strings.Contains(err.Error(), "not found") {
			return trust.DenyList{} // nothing was ever denied
		}
		if err != nil {
			t.Fatalf("a client cannot verify the deny list: %v", err)
		}
		var l trust.DenyList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := denyList(); l.Denies("acme/ipc/293.bundle") {
		t.Fatalf("a rolling release is on the deny list: %+v", l)
	}
	// The halted version's file is not served either, under the name a
	// client asks for (hash-prefixed, canary role).
	file := "/tuf/targets/acme/ipc/canary/" + pub.SHA256 + ".293.bundle"
	served := func(want int) {
		t.Helper()
		if code, body := e.call(t, "GET", file, "", nil); code != want {
			t.Fatalf("GET %s: %d, want %d\n%s", file, code, want, body)
		}
	}
	served(http.StatusOK)
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "crashes"}, nil)
	if l := denyList(); !l.Denies("acme/ipc/293.bundle") || l.Denies("acme/ipc/292.bundle") {
		t.Fatalf("after the halt: deny list %+v, want 293 only", l)
	}
	served(http.StatusNotFound)
	if _, err := fetch("acme/ipc/canary/293.bundle"); err == nil {
		t.Fatal("a client fetched the halted version")
	}
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/resume", e.creds.PublisherToken, map[string]string{"reason": "explained"}, nil)
	if l := denyList(); l.Denies("acme/ipc/293.bundle") {
		t.Fatalf("after the resume: deny list %+v, want 293 off it", l)
	}
	served(http.StatusOK)

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/tuf/metadata/1.root.json", 200},
		{"/tuf/metadata/nope.json", 404},
		{"/tuf/metadata/..%2Fonline%2Fsnapshot.key", 400},
		{"/tuf/targets/acme/ipc", 404},
		{"/tuf/targets/acme/../../online/timestamp.key", 404},
		{"/tuf/targets/..%2Fonline%2Ftimestamp.key", 400},
		{"/tuf/targets/acme/ipc/%00.bundle", 400},
		{"/tuf/metadata/root%00.json", 400},
		{"/tuf/targets/acme/ipc/%FF.bundle", 400},
		{"/v1/releases/%E2%80%AE", 400},
	} {
		if code, body := e.call(t, "GET", tc.path, "", nil); code != tc.want {
			t.Errorf("GET %s: got %d, want %d\n%s", tc.path, code, tc.want, body)
		}
	}
}

func TestServerWithoutRepositoryAnswers404(t *testing.T) {
	e := newEnv(t, "")
	code, body := e.call(t, "GET", "/tuf/metadata/timestamp.json", "", nil)
	wantError(t, code, body, http.StatusNotFound, "ringfence keys init")
}

// signAs signs what awaits acme's signatures with a key file, as
// `ringfence sign` does, and uploads it with token.
func (e *env) signAs(t *testing.T, keyFile, token string) server.SigningResult {
	t.Helper()
	var req trust.Request
	e.must(t, http.StatusOK, "GET", "/v1/vendors/acme/signing-request", token, nil, &req)
	key, err := trust.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Sign(&req, key); err != nil {
		t.Fatal(err)
	}
	var res server.SigningResult
	e.must(t, http.StatusOK, "POST", "/v1/vendors/acme/signatures", token, req, &res)
	return res
}

// The two-person rule by cryptography: the server holds the publisher's
// key, so a release runs its canary waves; it leaves them only once the
// approver signed with the vendor's second key, whatever the database
// says. Canary devices are named the canary target, the others the
// production one, and a TUF client verifies each.
func TestRolloutLeavesCanaryOnlyWhenThresholdSigned(t *testing.T) {
	tufDir := filepath.Join(t.TempDir(), "tuf")
	e := newEnvAt(t, "", server.Config{ControllerTick: 24 * time.Hour, TUFDir: tufDir}, time.Now().UTC().Truncate(time.Second))
	root, err := os.ReadFile(filepath.Join(tufDir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(target string) ([]byte, error) {
		return trust.Fetch(trust.ClientConfig{MetadataURL: e.url + "/tuf/metadata/", TargetsURL: e.url + "/tuf/targets/", Root: root,
			MetadataDir: t.TempDir(), TargetsDir: t.TempDir()}, target)
	}
	f := standardFleet(t, e)
	targets := map[string]int{}
	f.onRelease = nil
	rel := e.startRelease(t, quickPlan(), "normal")
	st := f.until(t, 30, "awaiting approval", inState("awaiting-approval"), rel.ID)
	if st.Signing != "canary" || !strings.Contains(st.Summary, "needs 1 approval(s), 0 given and the vendor's signatures: acme/ipc/293.bundle has 1 of the 2") {
		t.Fatalf("status: signing %q, summary %q", st.Signing, st.Summary)
	}
	// Canary devices were named the canary target, which verifies.
	for _, d := range f.devs {
		if d.active == 293 {
			resp := e.checkin(t, d.device, server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent,
				Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: d.lkg, State: "active"}}})
			if cd := channel(resp, "acme/ipc"); cd != nil && cd.Artifact != nil {
				targets[cd.Artifact.Target]++
			}
		}
	}
	if len(targets) != 1 || targets["acme/ipc/canary/293.bundle"] == 0 {
		t.Fatalf("canary devices were named %v, want acme/ipc/canary/293.bundle only", targets)
	}
	if _, err := fetch("acme/ipc/canary/293.bundle"); err != nil {
		t.Fatalf("canary target: %v", err)
	}

	// The approval alone does not let it out, nor does a person promoting.
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "canary reviewed"}, nil)
	for range 3 {
		f.tick(t)
	}
	if st = e.status(t, rel.ID); st.Release.State != "awaiting-approval" || st.Release.WaveName != "canary" || strings.Contains(st.Summary, "approval(s)") {
		t.Fatalf("approved but signed once: %s in %s (%s), want awaiting-approval in canary, waiting for signatures only", st.Release.State, st.Release.WaveName, st.Summary)
	}
	code, body := e.call(t, "POST", "/v1/releases/"+rel.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "hurry"})
	wantError(t, code, body, http.StatusConflict, "vendor's signatures")
	if n := onVersion(f, 293); n > st.Waves[1].Targeted {
		t.Fatalf("%d devices run 293, more than the canary's %d", n, st.Waves[1].Targeted)
	}

	// The approver signs with the vendor's second key: production.
	res := e.signAs(t, e.creds.ApproverSigningKey, e.creds.ApproverToken)
	if len(res.Roles) != 1 || res.Roles[0].Role != "acme" || !res.Roles[0].Published || res.Roles[0].Signed != 2 {
		t.Fatalf("after the approver's signature: %+v", res)
	}
	st = f.until(t, 5, "past the canary waves", func(st server.ReleaseStatus) bool { return st.Release.Wave >= 2 }, rel.ID)
	if st.Signing != "production" {
		t.Fatalf("signing %q after both signatures", st.Signing)
	}
	if _, err := fetch("acme/ipc/293.bundle"); err != nil {
		t.Fatalf("production target after both signatures: %v", err)
	}
	f.until(t, 20, "offered to non-canary devices", func(server.ReleaseStatus) bool { return onVersion(f, 293) > st.Waves[1].Targeted }, rel.ID)
	for _, d := range f.devs {
		if d.active != 293 {
			continue
		}
		resp := e.checkin(t, d.device, server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent,
			Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 292, LKGVersion: 292, State: "active"}}})
		if cd := channel(resp, "acme/ipc"); cd == nil || cd.Artifact == nil || cd.Artifact.Target != "acme/ipc/293.bundle" {
			t.Fatalf("after production signing, device %s was told %+v, want target acme/ipc/293.bundle", d.id, cd)
		}
	}
}

// Without any of the vendor's signatures nothing starts, and the signing
// endpoints refuse bad uploads with a clear error.
func TestUnsignedReleaseCannotStart(t *testing.T) {
	tufDir := filepath.Join(t.TempDir(), "tuf")
	e := newEnvAt(t, "", server.Config{ControllerTick: 24 * time.Hour, TUFDir: tufDir}, time.Now().UTC().Truncate(time.Second))
	// The server gives up its copy of the publisher's key.
	if err := os.RemoveAll(filepath.Join(tufDir, "vendor-keys")); err != nil {
		t.Fatal(err)
	}
	var pub server.PublishResult
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), &pub)
	if pub.Signing != "unsigned" || !strings.Contains(pub.SigningNote, "0 of the 2") {
		t.Fatalf("publish: signing %q (%s)", pub.Signing, pub.SigningNote)
	}
	code, body := e.call(t, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293})
	wantError(t, code, body, http.StatusConflict, "ringfence sign acme")
	var draft server.ReleaseReport
	e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293, "draft": true}, &draft)
	code, body = e.call(t, "POST", "/v1/releases/"+draft.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "go"})
	wantError(t, code, body, http.StatusConflict, "0 of the 2 vendor signatures")

	var req trust.Request
	e.must(t, http.StatusOK, "GET", "/v1/vendors/acme/signing-request", e.creds.PublisherToken, nil, &req)
	key, err := trust.LoadKey(e.creds.ApproverSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	signed := req
	signed.Roles = append([]trust.RoleRequest(nil), req.Roles...)
	if _, err := trust.Sign(&signed, key); err != nil {
		t.Fatal(err)
	}
	// A signature over content other than what awaits signatures (a
	// target slipped in) is refused.
	tampered := req
	tampered.Roles = append([]trust.RoleRequest(nil), req.Roles...)
	m, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(tampered.Roles[0].Metadata)
	if err != nil {
		t.Fatal(err)
	}
	m.Signed.Targets["acme/ipc/666.bundle"], _ = metadata.TargetFile().FromBytes("acme/ipc/666.bundle", []byte("evil"), "sha256")
	if tampered.Roles[0].Metadata, err = m.ToBytes(false); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Sign(&tampered, key); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, token string
		body              any
		want              int
		mention           string
	}{
		{"another-vendor-in-the-body", "/v1/vendors/acme/signatures", e.creds.PublisherToken, trust.Request{Vendor: "globex", Roles: signed.Roles}, 400, "globex"},
		{"no-roles", "/v1/vendors/acme/signatures", e.creds.PublisherToken, trust.Request{Vendor: "acme"}, 400, "no signed role"},
		{"not-json", "/v1/vendors/acme/signatures", e.creds.PublisherToken, "{", 400, ""},
		{"unknown-role", "/v1/vendors/acme/signatures", e.creds.PublisherToken, trust.Request{Vendor: "acme", Roles: []trust.RoleRequest{{Role: "deny", Metadata: signed.Roles[0].Metadata}}}, 422, "not one of vendor acme's roles"},
		{"signed-other-content", "/v1/vendors/acme/signatures", e.creds.PublisherToken, tampered, 422, "does not verify"},
		{"org-admin", "/v1/vendors/acme/signatures", e.creds.OrgAdminToken, signed, 403, ""},
		{"viewer-cannot-upload", "/v1/vendors/acme/signatures", e.creds.ViewerToken, signed, 403, ""},
		{"unknown-vendor-request", "/v1/vendors/globex/signing-request", e.creds.AdminToken, nil, 404, "no keys"},
		{"other-tenant-request", "/v1/vendors/acme/signing-request", e.creds.OrgAdminToken, nil, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.body == nil {
				method = "GET"
			}
			code, body := e.call(t, method, tc.path, tc.token, tc.body)
			wantError(t, code, body, tc.want, tc.mention)
		})
	}
	// The approver's one signature covers the canary waves: it starts.
	var res server.SigningResult
	e.must(t, http.StatusOK, "POST", "/v1/vendors/acme/signatures", e.creds.ApproverToken, signed, &res)
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+draft.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "signed for the canary"}, nil)
}
