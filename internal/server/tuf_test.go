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
	for _, target := range []string{"acme/ipc/292.bundle", "acme/ipc/293.bundle"} {
		b, err := fetch(target)
		if err != nil {
			t.Fatalf("%s: a client with the initial root cannot verify it: %v", target, err)
		}
		if target == "acme/ipc/293.bundle" {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != pub.SHA256 {
				t.Fatalf("%s: signed bytes hash to %x, the published artifact to %s", target, sum, pub.SHA256)
			}
		}
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
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "crashes"}, nil)
	if l := denyList(); !l.Denies("acme/ipc/293.bundle") || l.Denies("acme/ipc/292.bundle") {
		t.Fatalf("after the halt: deny list %+v, want 293 only", l)
	}
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/resume", e.creds.PublisherToken, map[string]string{"reason": "explained"}, nil)
	if l := denyList(); l.Denies("acme/ipc/293.bundle") {
		t.Fatalf("after the resume: deny list %+v, want 293 off it", l)
	}

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
