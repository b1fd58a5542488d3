package server_test

// The control plane is tested as its users meet it: a real store (SQLite
// in a temporary directory, and PostgreSQL when RINGFENCE_TEST_POSTGRES
// names a server), a real HTTP server, a clock the test moves, and the
// development seed (vendor acme, organisation contoso, bundle acme/ipc@292
// released to everyone, a token for every role). Each test reads as a
// story: a device enrols, checks in, reports events, follows its
// organisation's policy and a release through its waves; bad input is
// refused with a JSON error naming the field; the audit chain holds; a
// shutdown loses nothing acknowledged.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/examples"
	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// fakeClock is the server's clock; tests move it forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// start is a Monday, 10:00 UTC.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one control plane on one store, seeded for development.
type env struct {
	st    *sqlstore.Store
	srv   *server.Server
	url   string
	clock *fakeClock
	creds *server.DevCredentials
	// storeURL is the store's URL ("" for SQLite).
	storeURL string
	// auditKey keys the audit chain; checkpointKey signs its checkpoints.
	auditKey      []byte
	checkpointKey ed25519.PrivateKey
	// client, when set, carries the requests (a load balancer's socket);
	// peers are the other replicas whose writes drain() waits for.
	client *http.Client
	peers  []*server.Server
}

// drain waits for the writes of every replica the env's requests reach.
func (e *env) drain() {
	e.srv.Drain()
	for _, p := range e.peers {
		p.Drain()
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv starts a seeded server on the store named by storeURL ("" is
// SQLite in a temporary directory). Its controller never ticks by itself:
// stories call ControlOnce when their clock says a tick is due.
func newEnv(t testing.TB, storeURL string) *env {
	t.Helper()
	return newEnvConfig(t, storeURL, server.Config{ControllerTick: 24 * time.Hour})
}

func newEnvConfig(t testing.TB, storeURL string, cfg server.Config) *env {
	t.Helper()
	return newEnvAt(t, storeURL, cfg, start)
}

// newEnvAt starts the clock at a given time: signed-update metadata is
// checked against the real time by TUF clients.
func newEnvAt(t testing.TB, storeURL string, cfg server.Config, at time.Time) *env {
	t.Helper()
	return newEnvWrapped(t, storeURL, cfg, at, nil)
}

// newEnvWrapped serves the server a wrapper of the store (nil: the store
// itself), for tests that make one store call fail as no real store would.
func newEnvWrapped(t testing.TB, storeURL string, cfg server.Config, at time.Time, wrap func(store.Store) store.Store) *env {
	t.Helper()
	clock := &fakeClock{now: at}
	cfg = storyConfig(t, cfg)
	st, srv, url := startServer(t, storeURL, cfg, clock, wrap)
	creds, err := srv.SeedDev(context.Background(), t.TempDir(), url)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return &env{st: st, srv: srv, url: url, clock: clock, creds: creds, storeURL: storeURL, auditKey: cfg.AuditKey, checkpointKey: cfg.CheckpointKey}
}

// storyConfig is cfg with the stories' defaults for what it leaves unset.
func storyConfig(t testing.TB, cfg server.Config) server.Config {
	t.Helper()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatalf("example catalog: %v", err)
	}
	cfg.Catalog = cat
	if cfg.AuthFailures == 0 {
		// The stories send bad credentials on purpose from one address,
		// on a clock that stands still; TestFailedAuthenticationIsLimited
		// tests the limit.
		cfg.AuthFailures = -1
	}
	if cfg.Enrolments == 0 {
		cfg.Enrolments = -1 // fleets enrol from one address at one instant
	}
	if cfg.AuditKey == nil {
		cfg.AuditKey = []byte("audit key of " + t.Name())
	}
	if cfg.CheckpointKey == nil {
		seed := sha256.Sum256([]byte(t.Name()))
		cfg.CheckpointKey = ed25519.NewKeyFromSeed(seed[:])
	}
	return cfg
}

// startServer opens the store at storeURL, starts a server on it with cfg,
// and serves its API over loopback HTTP until the test ends; wrap, if not
// nil, wraps the store the server is given.
func startServer(t testing.TB, storeURL string, cfg server.Config, clock *fakeClock, wrap func(store.Store) store.Store) (*sqlstore.Store, *server.Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, storeURL, t.TempDir())
	if err != nil {
		cancel()
		t.Fatalf("open store: %v", err)
	}
	var served store.Store = st
	if wrap != nil {
		served = wrap(st)
	}
	srv := server.New(cfg, served, clock.Now, quietLogger())
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Drain()
		cancel()
		srv.Wait()
		st.Close()
	})
	return st, srv, hs.URL
}

// forEachStore runs a story on SQLite and on PostgreSQL.
func forEachStore(t *testing.T, story func(t *testing.T, e *env)) {
	forEachStoreConfig(t, server.Config{ControllerTick: 24 * time.Hour}, story)
}

// forEachStoreConfig runs a story on SQLite and on PostgreSQL, with a
// server configured so.
func forEachStoreConfig(t *testing.T, cfg server.Config, story func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		story(t, newEnvConfig(t, "", cfg))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		story(t, newEnvConfig(t, storetest.PostgresURL(t), cfg))
	})
}

// client carries the API tests' requests, each checked against the
// OpenAPI description on the way (specTransport).
var client = &http.Client{Timeout: 30 * time.Second, Transport: specTransport{http.DefaultTransport}}

// call sends a request: body is sent as is when it is a string or bytes,
// as JSON otherwise, and not at all when nil. It returns the status and
// the response body.
func (e *env) call(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	resp := e.raw(t, method, path, token, body)
	return resp.StatusCode, resp.body
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body []byte
}

// raw sends a request and returns the whole answer, headers included.
func (e *env) raw(t testing.TB, method, path, token string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal %s %s body: %v", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	// As clients send them (the CLI, the agent): a bundle as YAML or
	// compiled, everything else JSON; a raw body is sent as it is.
	switch b := body.(type) {
	case nil:
	case string, []byte:
		p, query, _ := strings.Cut(path, "?")
		if strings.HasSuffix(p, "/publish") {
			req.Header.Set("Content-Type", "application/yaml")
			// A compiled bundle, or an agent build (it names its version).
			if bb, ok := b.([]byte); ok && content.IsCompiled(bb) || strings.Contains(query, "version=") {
				req.Header.Set("Content-Type", "application/octet-stream")
			}
		}
	default:
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := client
	if e.client != nil {
		c = e.client
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, path, err)
	}
	return response{resp, out}
}

// must sends a request that must answer want, and decodes the answer into
// out unless out is nil.
func (e *env) must(t testing.TB, want int, method, path, token string, body, out any) {
	t.Helper()
	code, b := e.call(t, method, path, token, body)
	if code != want {
		t.Fatalf("%s %s: got %d, want %d\n%s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// apiError is the JSON body of every refusal.
type apiError struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// wantError checks a refusal: the status, a JSON body with a non-empty
// error and detail, and a detail that mentions mention.
func wantError(t testing.TB, code int, body []byte, want int, mention string) {
	t.Helper()
	if code != want {
		t.Errorf("status: got %d, want %d\n%s", code, want, body)
	}
	var ae apiError
	if err := json.Unmarshal(body, &ae); err != nil {
		t.Fatalf("body is not JSON (%v): %q", err, body)
	}
	if ae.Error == "" || ae.Detail == "" {
		t.Errorf("error body: got error %q, detail %q; want both set", ae.Error, ae.Detail)
	}
	if !strings.Contains(ae.Detail, mention) {
		t.Errorf("detail: got %q, want it to mention %q", ae.Detail, mention)
	}
}

// device is an enrolled endpoint as the test drives it.
type device struct {
	id, cred string
	agent    string
}

func (e *env) enroll(t testing.TB, agent string) *device {
	return e.enrollWith(t, e.creds.EnrollToken, agent)
}

func (e *env) enrollWith(t testing.TB, token, agent string) *device {
	t.Helper()
	var out struct {
		DeviceID   string `json:"device_id"`
		Credential string `json:"credential"`
	}
	e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", map[string]string{"token": token, "platform": "windows", "os_build": "22631", "agent_version": agent}, &out)
	return &device{id: out.DeviceID, cred: out.Credential, agent: agent}
}

// report is a check-in of d running version active of acme/ipc (none
// when 0), with events.
func (d *device) report(active uint64, events ...server.EventReport) server.CheckinRequest {
	req := server.CheckinRequest{Platform: "windows", OSBuild: "22631", AgentVersion: d.agent, Events: events}
	if active != 0 {
		req.Channels = []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: active, LKGVersion: active, State: "active"}}
	}
	return req
}

func (e *env) checkin(t testing.TB, d *device, req server.CheckinRequest) server.CheckinResponse {
	t.Helper()
	var resp server.CheckinResponse
	e.must(t, http.StatusOK, "POST", "/v1/checkin", d.cred, req, &resp)
	return resp
}

// offered has d, running nothing yet, offered version of acme/ipc: the
// server counts a device's reports about a release only once it was
// offered the release.
func (e *env) offered(t testing.TB, d *device, version uint64) {
	t.Helper()
	if got := e.desired(t, d, 0); got != version {
		t.Fatalf("device %s was offered %d, want %d", d.id, got, version)
	}
}

// desired is the version d is told to run on acme/ipc (0: no entry).
func (e *env) desired(t testing.TB, d *device, active uint64) uint64 {
	t.Helper()
	if cd := channel(e.checkin(t, d, d.report(active)), "acme/ipc"); cd != nil {
		return cd.DesiredVersion
	}
	return 0
}

func channel(resp server.CheckinResponse, id string) *server.ChannelDesired {
	for i := range resp.Channels {
		if resp.Channels[i].Channel == id {
			return &resp.Channels[i]
		}
	}
	return nil
}

// figures are a release's telemetry as one principal sees them.
type figures []struct {
	Wave    int    `json:"wave"`
	Org     string `json:"org"`
	Stratum string `json:"stratum"`
	Metric  string `json:"metric"`
	Value   int64  `json:"value"`
}

func (e *env) figures(t testing.TB, token, release string) figures {
	t.Helper()
	var rel struct {
		Figures figures `json:"figures"`
	}
	e.must(t, http.StatusOK, "GET", "/v1/releases/"+release, token, nil, &rel)
	return rel.Figures
}

func (fs figures) sum(metric string) int64 {
	var n int64
	for _, f := range fs {
		if f.Metric == metric {
			n += f.Value
		}
	}
	return n
}

const seedRelease = "rel-acme-ipc-292-dev"

// bundleSource is the example bundle ipc-292 re-labelled for another
// vendor, channel and version; the same arguments give the same bytes.
func bundleSource(t testing.TB, vendor, channel string, version uint64) string {
	t.Helper()
	b, err := fs.ReadFile(examples.Content, "content/bundles/ipc-292.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("vendor: acme\n", "vendor: "+vendor+"\n", "channel: ipc\n", "channel: "+channel+"\n",
		"version: 292\n", fmt.Sprintf("version: %d\n", version)).Replace(string(b))
	if s == string(b) && version != 292 {
		t.Fatal("ipc-292.yaml changed shape: cannot re-label it")
	}
	return s
}

// createTenant adds a tenant and returns a token of role for it.
func (e *env) createTenant(t testing.TB, id, kind string, role store.Role) string {
	t.Helper()
	e.must(t, http.StatusCreated, "POST", "/v1/tenants", e.creds.AdminToken, map[string]string{"id": id, "kind": kind, "name": id + " (test)"}, nil)
	return e.createToken(t, id, role)
}

func (e *env) createToken(t testing.TB, tenant string, role store.Role) string {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	e.must(t, http.StatusCreated, "POST", "/v1/tokens", e.creds.AdminToken, map[string]string{"tenant": tenant, "role": string(role), "name": "test"}, &tok)
	return tok.Token
}

// enrollToken makes an enrolment token for org.
func (e *env) enrollToken(t testing.TB, org string, expiresInHours int) (id, token string) {
	t.Helper()
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	e.must(t, http.StatusCreated, "POST", "/v1/orgs/"+org+"/enroll-tokens", e.creds.AdminToken, map[string]int{"expires_in_hours": expiresInHours}, &out)
	return out.ID, out.Token
}

// --- stories ---

func TestHealth(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		for _, path := range []string{"/healthz", "/readyz"} {
			var out struct{ Status string }
			e.must(t, http.StatusOK, "GET", path, "", nil, &out)
			if out.Status == "" {
				t.Errorf("GET %s: no status", path)
			}
		}
	})
}

func TestEnrolment(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		good := map[string]string{"token": e.creds.EnrollToken, "platform": "windows", "os_build": "22631", "agent_version": "7.12.0", "hostname": "ward-3"}

		t.Run("good-token-enrols", func(t *testing.T) {
			var out struct {
				DeviceID        string `json:"device_id"`
				Credential      string `json:"credential"`
				Org             string `json:"org"`
				CheckinInterval int    `json:"checkin_interval_s"`
			}
			e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", good, &out)
			if !strings.HasPrefix(out.DeviceID, "dev-") || !strings.HasPrefix(out.Credential, out.DeviceID+".") {
				t.Errorf("got device_id %q, credential %q; want dev-… and a credential starting with the device id", out.DeviceID, out.Credential)
			}
			if out.Org != "contoso" || out.CheckinInterval <= 0 {
				t.Errorf("got org %q, interval %d; want contoso and a positive interval", out.Org, out.CheckinInterval)
			}
			d, err := e.st.GetDevice(ctx, out.DeviceID)
			if err != nil {
				t.Fatalf("stored device: %v", err)
			}
			if d.Org != "contoso" || d.AgentVersion != "7.12.0" || strings.Contains(d.CredHash, strings.TrimPrefix(out.Credential, out.DeviceID+".")) {
				t.Errorf("stored device %+v: want org contoso, agent 7.12.0 and only a hash of the credential", d)
			}
		})

		revokedID, revoked := e.enrollToken(t, "contoso", 0)
		if err := e.st.RevokeEnrollToken(ctx, revokedID); err != nil {
			t.Fatal(err)
		}
		_, expiring := e.enrollToken(t, "contoso", 1)
		e.clock.Advance(2 * time.Hour)
		with := func(k, v string) map[string]string {
			m := map[string]string{}
			for kk, vv := range good {
				m[kk] = vv
			}
			m[k] = v
			return m
		}
		tests := []struct {
			name    string
			body    map[string]string
			want    int
			mention string
		}{
			{"unknown-token", with("token", "rfe_"+strings.Repeat("0", 64)), 401, "credential"},
			{"empty-token", with("token", ""), 401, "credential"},
			{"api-token-is-no-enrolment-token", with("token", e.creds.OrgAdminToken), 401, "credential"},
			{"revoked-token", with("token", revoked), 401, "revoked"},
			{"expired-token", with("token", expiring), 401, "expired"},
			{"bad-platform", with("platform", "Windows 11"), 400, "platform"},
			{"empty-platform", with("platform", ""), 400, "platform"},
			{"bad-agent-version", with("agent_version", "seven"), 400, "agent_version"},
			{"agent-version-leading-zero", with("agent_version", "7.012.0"), 400, "agent_version"},
			{"os-build-control-character", with("os_build", "22631\n"), 400, "os_build"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := e.call(t, "POST", "/v1/enroll", "", tc.body)
				wantError(t, code, body, tc.want, tc.mention)
			})
		}
	})
}

func TestCheckinDesiredVersion(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d712 := e.enroll(t, "7.12.0")
		art, err := e.st.GetArtifact(context.Background(), "acme/ipc", 292)
		if err != nil {
			t.Fatal(err)
		}

		t.Run("targeted-device-gets-292", func(t *testing.T) {
			resp := e.checkin(t, d712, d712.report(0))
			cd := channel(resp, "acme/ipc")
			if cd == nil {
				t.Fatalf("got channels %+v; want an acme/ipc entry", resp.Channels)
			}
			if cd.DesiredVersion != 292 || cd.Release != seedRelease {
				t.Errorf("got desired %d from %q, want 292 from %s", cd.DesiredVersion, cd.Release, seedRelease)
			}
			want := server.Artifact{URL: "/v1/artifacts/acme/ipc/292", SHA256: art.SHA256, Size: int64(len(art.Bytes)), Target: "acme/ipc/292.bundle"}
			if cd.Artifact == nil || *cd.Artifact != want {
				t.Errorf("got artifact %+v, want %+v", cd.Artifact, want)
			}
			if resp.NextCheckinS < 240 || resp.NextCheckinS > 360 {
				t.Errorf("got next_checkin_s %d, want 5 minutes ±20%%", resp.NextCheckinS)
			}
		})

		t.Run("untargeted-agent-gets-no-entry", func(t *testing.T) {
			d710 := e.enroll(t, "7.10.0")
			if cd := channel(e.checkin(t, d710, d710.report(0)), "acme/ipc"); cd != nil {
				t.Errorf("7.10 device got %+v; want no acme/ipc entry (ipc-292 targets >=7.11)", cd)
			}
		})

		// Delivery follows validation: a patch agent gets what its line's
		// manifest was checked for; an agent no manifest describes gets
		// nothing, though the range (>=7.11) takes it.
		t.Run("only-agents-a-manifest-describes-get-it", func(t *testing.T) {
			for _, tc := range []struct {
				agent string
				want  uint64
			}{{"7.12.3", 292}, {"7.11.9", 292}, {"7.13.0", 0}, {"8.0.0", 0}} {
				d := e.enroll(t, tc.agent)
				if got := e.desired(t, d, 0); got != tc.want {
					t.Errorf("agent %s: got desired %d, want %d", tc.agent, got, tc.want)
				}
			}
		})

		t.Run("agent-upgrade-brings-the-bundle", func(t *testing.T) {
			d := e.enroll(t, "7.10.0")
			d.agent = "7.12.0"
			if got := e.desired(t, d, 0); got != 292 {
				t.Errorf("after the upgrade to 7.12: got desired %d, want 292", got)
			}
			sd, err := e.st.GetDevice(context.Background(), d.id)
			if err != nil {
				t.Fatal(err)
			}
			if sd.AgentVersion != "7.12.0" {
				t.Errorf("stored agent version: got %s, want 7.12.0", sd.AgentVersion)
			}
		})

		t.Run("artifact-download", func(t *testing.T) {
			cd := channel(e.checkin(t, d712, d712.report(0)), "acme/ipc")
			path := cd.Artifact.URL // relative: Config.BaseURL is empty
			code, body := e.call(t, "GET", path, d712.cred, nil)
			if code != http.StatusOK {
				t.Fatalf("GET %s: got %d, want 200\n%s", path, code, body)
			}
			sum := sha256.Sum256(body)
			if got := hex.EncodeToString(sum[:]); got != cd.Artifact.SHA256 || int64(len(body)) != cd.Artifact.Size || !bytes.Equal(body, art.Bytes) {
				t.Errorf("downloaded %d bytes with sha256 %s; want the stored %d bytes with %s", len(body), got, cd.Artifact.Size, cd.Artifact.SHA256)
			}
		})

		refusals := []struct {
			name, path, cred string
			want             int
			mention          string
		}{
			{"download-without-credential", "/v1/artifacts/acme/ipc/292", "", 401, "credential"},
			{"download-with-api-token", "/v1/artifacts/acme/ipc/292", e.creds.AdminToken, 401, "credential"},
			{"download-with-wrong-secret", "/v1/artifacts/acme/ipc/292", d712.id + ".00", 401, "credential"},
			{"download-unreleased-version", "/v1/artifacts/acme/ipc/293", d712.cred, 404, "acme/ipc@293"},
			{"download-unknown-channel", "/v1/artifacts/acme/nope/292", d712.cred, 404, "acme/nope@292"},
			{"download-bad-version", "/v1/artifacts/acme/ipc/latest", d712.cred, 400, "VERSION"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				code, body := e.call(t, "GET", tc.path, tc.cred, nil)
				wantError(t, code, body, tc.want, tc.mention)
			})
		}
	})
}

// The action gate counts windows with blocks or alerts, one per device
// and window: a device flooding action reports in one window counts once
// there, however many reports and actions it sends; logs alone count no
// window.
func TestActionWindowsCountDevicesOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		quiet := e.enroll(t, "7.12.0")
		e.offered(t, d, 292)
		e.offered(t, quiet, 292)
		var flood []server.EventReport
		for i := range 51 {
			flood = append(flood, server.EventReport{Seq: uint64(i + 1), Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": 1000, "alert": 10}})
		}
		e.checkin(t, d, d.report(292, flood[:25]...))
		e.checkin(t, d, d.report(292, flood[25:50]...))
		e.checkin(t, quiet, quiet.report(292, server.EventReport{Seq: 1, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"log": 7}}))
		e.srv.Drain()
		fs := e.figures(t, e.creds.AdminToken, seedRelease)
		// 50,500 detections in one hour count as the hourly cap of 10,000.
		if got := fs.sum("action-block") + fs.sum("action-alert"); got != 10000 {
			t.Errorf("action-block and -alert: got %d, want the cap of 10000", got)
		}
		if got := fs.sum("action-device"); got != 1 {
			t.Errorf("action-device: got %d, want 1 (one device, one window)", got)
		}
		if got := fs.sum("action-log"); got != 7 {
			t.Errorf("action-log: got %d, want the quiet device's 7", got)
		}
		// The next hour has its own allowance.
		e.clock.Advance(time.Hour)
		e.checkin(t, d, d.report(292, flood[50]))
		e.srv.Drain()
		fs = e.figures(t, e.creds.AdminToken, seedRelease)
		if got := fs.sum("action-block") + fs.sum("action-alert"); got != 10000+1010 {
			t.Errorf("action-block and -alert an hour later: got %d, want %d", got, 10000+1010)
		}
	})
}

func TestTelemetryIsIdempotent(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		e.offered(t, d, 292)
		events := []server.EventReport{
			{Seq: 1, Type: "applied", Channel: "acme/ipc", Version: 292},
			{Seq: 2, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": 2, "alert": 5}},
			{Seq: 3, Type: "healthy", Channel: "acme/ipc", Version: 292},
		}
		want := map[string]int64{"applied": 1, "action-block": 2, "action-alert": 5, "action-device": 1, "healthy": 1, "heartbeat": 1}
		check := func(t *testing.T, want map[string]int64) {
			t.Helper()
			e.srv.Drain()
			fs := e.figures(t, e.creds.AdminToken, seedRelease)
			for metric, n := range want {
				if got := fs.sum(metric); got != n {
					t.Errorf("%s: got %d, want %d (figures %+v)", metric, got, n, fs)
				}
			}
		}

		t.Run("first-check-in-acks-3", func(t *testing.T) {
			if resp := e.checkin(t, d, d.report(292, events...)); resp.AckSeq != 3 {
				t.Errorf("ack_seq: got %d, want 3", resp.AckSeq)
			}
			check(t, want)
		})
		t.Run("retry-is-not-counted-twice", func(t *testing.T) {
			if resp := e.checkin(t, d, d.report(292, events...)); resp.AckSeq != 3 {
				t.Errorf("ack_seq: got %d, want 3", resp.AckSeq)
			}
			check(t, want)
		})
		t.Run("overlapping-retry-counts-only-new-events", func(t *testing.T) {
			more := append(events[1:], server.EventReport{Seq: 4, Type: "worker-crash", Channel: "acme/ipc", Version: 292, Reason: "exit 3"})
			if resp := e.checkin(t, d, d.report(292, more...)); resp.AckSeq != 4 {
				t.Errorf("ack_seq: got %d, want 4", resp.AckSeq)
			}
			want["worker-crash"] = 1
			check(t, want)
		})
		t.Run("concurrent-retries-are-counted-once", func(t *testing.T) {
			retry := append(events[1:], server.EventReport{Seq: 5, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"log": 4}})
			var wg sync.WaitGroup
			acks := make([]uint64, 8)
			for i := range acks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, _ := json.Marshal(d.report(292, retry...))
					req, _ := http.NewRequest("POST", e.url+"/v1/checkin", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+d.cred)
					resp, err := client.Do(req)
					if err != nil {
						t.Errorf("concurrent retry: %v", err)
						return
					}
					defer resp.Body.Close()
					var out server.CheckinResponse
					if err := json.NewDecoder(resp.Body).Decode(&out); resp.StatusCode != http.StatusOK || err != nil {
						t.Errorf("concurrent retry: got %d (%v)", resp.StatusCode, err)
					}
					acks[i] = out.AckSeq
				}()
			}
			wg.Wait()
			for i, a := range acks {
				if a != 5 {
					t.Errorf("retry %d: got ack_seq %d, want 5", i, a)
				}
			}
			want["action-log"] = 4
			check(t, want)
		})
		t.Run("plain-check-in-acks-stored-seq", func(t *testing.T) {
			if resp := e.checkin(t, d, d.report(292)); resp.AckSeq != 5 {
				t.Errorf("ack_seq: got %d, want 5", resp.AckSeq)
			}
		})
		t.Run("heartbeat-once-per-window", func(t *testing.T) {
			for range 3 {
				e.checkin(t, d, d.report(292))
			}
			check(t, want)
			e.clock.Advance(time.Minute)
			e.checkin(t, d, d.report(292))
			e.checkin(t, d, d.report(292))
			want["heartbeat"] = 2
			check(t, want)
		})
		t.Run("stored-events", func(t *testing.T) {
			e.srv.Drain()
			var n int
			if err := e.st.DB().QueryRow(`SELECT COUNT(*) FROM events WHERE device = '` + d.id + `'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 5 {
				t.Errorf("stored events: got %d, want 5", n)
			}
			sd, err := e.st.GetDevice(context.Background(), d.id)
			if err != nil {
				t.Fatal(err)
			}
			if sd.LastSeq != 5 || !sd.LastSeen.Equal(e.clock.Now()) {
				t.Errorf("stored device: got last_seq %d, last_seen %v; want 5, %v", sd.LastSeq, sd.LastSeen, e.clock.Now())
			}
		})
	})
}

// setPolicy sets contoso's track on acme/ipc as its organisation admin.
func (e *env) setPolicy(t testing.TB, track string, windows ...string) {
	t.Helper()
	e.must(t, http.StatusOK, "PUT", "/v1/orgs/contoso/policies/acme/ipc", e.creds.OrgAdminToken, map[string]any{"track": track, "windows": windows}, nil)
}

func TestPolicies(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		// The device runs 290, from before the seed; 292 is completed.
		steps := []struct {
			name    string
			track   string
			windows []string
			advance time.Duration
			want    uint64
		}{
			{"ga-by-default", "", nil, 0, 292},
			{"pinned-to-released", "pinned:292", nil, 0, 292},
			{"pinned-to-unreleased-keeps-active", "pinned:291", nil, 0, 290},
			{"paused-keeps-active", "paused", nil, 0, 290},
			{"early-gets-completed", "early", nil, 0, 292},
			{"ga-delay-not-yet", "ga-delay:24", nil, 0, 290},
			{"ga-delay-still-not-after-23h", "ga-delay:24", nil, 23 * time.Hour, 290},
			{"ga-delay-elapsed-after-25h", "ga-delay:24", nil, 2 * time.Hour, 292},
			{"outside-maintenance-window-waits", "ga", []string{"sun 01:00-02:00"}, 0, 290},
			{"inside-maintenance-window", "ga", []string{"sun 01:00-02:00", "daily 00:00-23:59"}, 0, 292},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				if s.track != "" {
					e.setPolicy(t, s.track, s.windows...)
				}
				e.clock.Advance(s.advance)
				if got := e.desired(t, d, 290); got != s.want {
					t.Errorf("track %s at %v: got desired %d, want %d", s.track, e.clock.Now().Format(time.RFC3339), got, s.want)
				}
			})
		}
		t.Run("policies-are-listed", func(t *testing.T) {
			var ps []struct{ Org, Channel, Track string }
			e.must(t, http.StatusOK, "GET", "/v1/orgs/contoso/policies", e.creds.ViewerToken, nil, &ps)
			if len(ps) != 1 || ps[0].Track != "ga" || ps[0].Channel != "acme/ipc" {
				t.Errorf("got policies %+v, want one: acme/ipc ga", ps)
			}
		})
	})
}

type releaseJSON struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Wave     int    `json:"wave"`
	WaveName string `json:"wave_name"`
	Reason   string `json:"reason"`
}

// publishRelease publishes version v of acme/ipc and starts its release,
// as acme's publisher.
func (e *env) publishRelease(t testing.TB, v uint64) releaseJSON {
	t.Helper()
	var pub struct {
		Version uint64 `json:"version"`
		SHA256  string `json:"sha256"`
	}
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", v), &pub)
	if pub.Version != v || len(pub.SHA256) != 64 {
		t.Fatalf("publish: got version %d, sha256 %q", pub.Version, pub.SHA256)
	}
	var rel releaseJSON
	e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": v}, &rel)
	return rel
}

func TestReleaseLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		// contoso stays on ga; fabrikam takes part in the waves.
		orgF := e.createTenant(t, "fabrikam", "org", store.RoleOrgAdmin)
		e.must(t, http.StatusOK, "PUT", "/v1/orgs/fabrikam/policies/acme/ipc", orgF, map[string]any{"track": "early"}, nil)
		_, enrF := e.enrollToken(t, "fabrikam", 0)
		ga, early := e.enroll(t, "7.12.0"), e.enrollWith(t, enrF, "7.12.0")
		for _, d := range []*device{ga, early} {
			e.offered(t, d, 292)
		}

		rel := e.publishRelease(t, 293)
		if rel.State != "rolling" || rel.Wave != 0 || rel.WaveName != "internal" {
			t.Fatalf("new release: got %+v, want rolling in wave 0 (internal)", rel)
		}
		// Leaving the canary waves by hand still needs the second person.
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "canary reviewed"}, nil)
		position := rollout.CohortPosition(early.id, "acme/ipc")
		plan := rollout.DefaultContentPlan()
		for wave := 0; wave < len(plan.Waves); wave++ {
			w := plan.Waves[wave]
			t.Run("wave-"+w.Name, func(t *testing.T) {
				if wave > 0 {
					var got releaseJSON
					e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "bake passed"}, &got)
					if got.Wave != wave || got.State != "rolling" {
						t.Fatalf("promote: got wave %d, state %s; want %d, rolling", got.Wave, got.State, wave)
					}
				}
				wantEarly := uint64(292)
				if !w.InternalOnly && position < w.Share {
					wantEarly = 293
				}
				if got := e.desired(t, early, 292); got != wantEarly {
					t.Errorf("early device at cohort position %d: got %d, want %d", position, got, wantEarly)
				}
				if got := e.desired(t, ga, 292); got != 292 {
					t.Errorf("ga device: got %d, want 292 until the release completes", got)
				}
			})
		}

		t.Run("others-feed-the-control-group", func(t *testing.T) {
			e.checkin(t, ga, ga.report(292, server.EventReport{Seq: 1, Type: "worker-crash", Channel: "acme/ipc", Version: 292}))
			e.srv.Drain()
			if n := e.figures(t, e.creds.PublisherToken, rel.ID).sum("control-worker-crash"); n != 1 {
				t.Errorf("293's control-worker-crash: got %d, want 1 (a device on 292 while 293 rolls out)", n)
			}
			if n := e.figures(t, e.creds.PublisherToken, seedRelease).sum("worker-crash"); n != 1 {
				t.Errorf("292's worker-crash: got %d, want 1", n)
			}
		})

		t.Run("completed-reaches-ga", func(t *testing.T) {
			var got releaseJSON
			e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "broad wave healthy"}, &got)
			if got.State != "completed" {
				t.Fatalf("promote past the last wave: got state %s, want completed", got.State)
			}
			for _, d := range []*device{ga, early} {
				resp := e.checkin(t, d, d.report(292))
				cd := channel(resp, "acme/ipc")
				if cd == nil || cd.DesiredVersion != 293 || cd.Release != rel.ID || cd.Artifact == nil || cd.Artifact.Target != "acme/ipc/293.bundle" {
					t.Errorf("got %+v, want 293 from %s with its artifact", cd, rel.ID)
				}
			}
			code, body := e.call(t, "POST", "/v1/releases/"+rel.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "again"})
			wantError(t, code, body, http.StatusConflict, "completed")
		})

		t.Run("halt-sends-devices-back", func(t *testing.T) {
			var got releaseJSON
			e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "crash rate up"}, &got)
			if got.State != "halted" || !strings.HasSuffix(got.Reason, ": crash rate up") || !strings.Contains(got.Reason, "dev publisher") {
				t.Fatalf("halt: got %+v, want halted, naming who and why", got)
			}
			for _, d := range []*device{ga, early} {
				cd := channel(e.checkin(t, d, d.report(293)), "acme/ipc")
				if cd == nil || cd.DesiredVersion != 292 || cd.Artifact == nil || !strings.HasSuffix(cd.Artifact.URL, "/292") {
					t.Errorf("device on halted 293: got %+v, want 292 with its artifact", cd)
				}
			}
			code, body := e.call(t, "GET", "/v1/artifacts/acme/ipc/293", ga.cred, nil)
			wantError(t, code, body, http.StatusNotFound, "293")
			code, body = e.call(t, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "again"})
			wantError(t, code, body, http.StatusConflict, "already stopped")
		})
	})
}

func TestRevokedDevice(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		e.checkin(t, d, d.report(292))
		e.must(t, http.StatusOK, "POST", "/v1/devices/"+d.id+"/revoke", e.creds.OrgAdminToken, nil, nil)
		other := e.enroll(t, "7.12.0")
		tests := []struct {
			name, cred string
			want       int
			mention    string
		}{
			{"revoked-device-is-forbidden", d.cred, 403, "revoked"},
			{"revoked-device-wrong-secret", d.id + "." + strings.Repeat("ab", 32), 401, "credential"},
			{"unknown-device", "dev-00000000000000000000." + strings.Repeat("ab", 32), 401, "credential"},
			{"another-devices-secret", d.id + strings.TrimPrefix(other.cred, other.id), 401, "credential"},
			{"no-dot", "dev-x", 401, "credential"},
			{"no-credential", "", 401, "credential"},
			{"overlong-credential", d.id + "." + strings.Repeat("a", 300), 401, "credential"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := e.call(t, "POST", "/v1/checkin", tc.cred, d.report(292))
				wantError(t, code, body, tc.want, tc.mention)
			})
		}
		t.Run("others-still-check-in", func(t *testing.T) {
			if got := e.desired(t, other, 0); got != 292 {
				t.Errorf("got %d, want 292", got)
			}
		})
	})
}

// TestBadInput: no input makes the server fail or panic; every refusal
// is a 4xx with a JSON error whose detail names the offending field.
func TestBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		e.checkin(t, d, d.report(292, server.EventReport{Seq: 5, Type: "healthy"}))
		valid := `"platform":"windows","os_build":"22631","agent_version":"7.12.0"`
		obj := func(extra string) string { return "{" + valid + extra + "}" }
		ev := func(events string) string { return obj(`,"events":[` + events + `]`) }
		many := make([]string, 1001)
		for i := range many {
			many[i] = fmt.Sprintf(`{"seq":%d,"type":"healthy"}`, i+10)
		}
		channels := make([]string, 65)
		for i := range channels {
			channels[i] = fmt.Sprintf(`{"channel":"acme/c%d","state":"active"}`, i)
		}
		const dev, admin, approver, none = "device", "admin", "approver", ""
		tests := []struct {
			name, method, path, auth string
			body                     string
			want                     int
			mention                  string
		}{
			{"malformed-json", "POST", "/v1/checkin", dev, `{"platform":`, 400, "malformed JSON"},
			{"not-json", "POST", "/v1/checkin", dev, `<checkin platform="windows"/>`, 400, "malformed JSON"},
			{"empty-body", "POST", "/v1/checkin", dev, ``, 400, "empty"},
			{"array-body", "POST", "/v1/checkin", dev, `[]`, 400, "JSON object"},
			{"string-body", "POST", "/v1/checkin", dev, `"checkin"`, 400, "JSON object"},
			{"null-body", "POST", "/v1/checkin", dev, `null`, 400, "platform"},
			{"trailing-data", "POST", "/v1/checkin", dev, obj("") + ` {}`, 400, "trailing"},
			{"unknown-field", "POST", "/v1/checkin", dev, obj(`,"colour":"red"`), 400, "colour"},
			{"unknown-nested-field", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"healthy","mood":"fine"}`), 400, "mood"},
			{"wrong-type-platform", "POST", "/v1/checkin", dev, `{"platform":7}`, 400, "platform"},
			{"wrong-type-events", "POST", "/v1/checkin", dev, obj(`,"events":{}`), 400, "events"},
			{"wrong-type-seq", "POST", "/v1/checkin", dev, ev(`{"seq":"six","type":"healthy"}`), 400, "events.seq"},
			{"negative-seq", "POST", "/v1/checkin", dev, ev(`{"seq":-1,"type":"healthy"}`), 400, "events.seq"},
			{"huge-seq", "POST", "/v1/checkin", dev, ev(`{"seq":1e30,"type":"healthy"}`), 400, "events.seq"},
			{"huge-version", "POST", "/v1/checkin", dev, obj(`,"channels":[{"channel":"acme/ipc","active_version":99999999999999999999,"state":"active"}]`), 400, "channels.active_version"},
			{"huge-count", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"actions","counts":{"block":1099511627777}}`), 400, "events[0].counts.block"},
			{"negative-count", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"actions","counts":{"block":-1}}`), 400, "events[0].counts.block"},
			{"fractional-count", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"actions","counts":{"block":1.5}}`), 400, "events.counts"},
			{"unknown-action", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"actions","counts":{"nuke":1}}`), 400, "events[0].counts"},
			{"bad-time", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"healthy","time":"yesterday"}`), 400, `time: "yesterday"`},
			{"too-many-events", "POST", "/v1/checkin", dev, ev(strings.Join(many, ",")), 400, "events: 1001"},
			{"too-many-channels", "POST", "/v1/checkin", dev, obj(`,"channels":[` + strings.Join(channels, ",") + `]`), 400, "channels: 65"},
			{"seq-zero", "POST", "/v1/checkin", dev, ev(`{"seq":0,"type":"healthy"}`), 400, "events[0].seq"},
			{"seq-not-increasing", "POST", "/v1/checkin", dev, ev(`{"seq":7,"type":"healthy"},{"seq":7,"type":"healthy"}`), 400, "events[1].seq"},
			{"seq-decreasing", "POST", "/v1/checkin", dev, ev(`{"seq":8,"type":"healthy"},{"seq":6,"type":"healthy"}`), 400, "events[1].seq"},
			{"unknown-event-type", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"exploded"}`), 400, "events[0].type"},
			{"invalid-event-channel", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"applied","channel":"ipc"}`), 400, "events[0].channel"},
			{"event-reason-control-character", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"reverted","reason":"a\u0000b"}`), 400, "events[0].reason"},
			{"event-reason-too-long", "POST", "/v1/checkin", dev, ev(`{"seq":6,"type":"reverted","reason":"` + strings.Repeat("x", 1025) + `"}`), 400, "events[0].reason"},
			{"invalid-channel-id", "POST", "/v1/checkin", dev, obj(`,"channels":[{"channel":"Acme/IPC","state":"active"}]`), 400, "channels[0].channel"},
			{"channel-without-vendor", "POST", "/v1/checkin", dev, obj(`,"channels":[{"channel":"ipc","state":"active"}]`), 400, "channels[0].channel"},
			{"channel-twice", "POST", "/v1/checkin", dev, obj(`,"channels":[{"channel":"acme/ipc","state":"active"},{"channel":"acme/ipc","state":"active"}]`), 400, "channels[1].channel"},
			{"unknown-channel-state", "POST", "/v1/checkin", dev, obj(`,"channels":[{"channel":"acme/ipc","state":"on-fire"}]`), 400, "channels[0].state"},
			{"bad-platform", "POST", "/v1/checkin", dev, `{"platform":"Windows","os_build":"1","agent_version":"7.12.0"}`, 400, "platform"},
			{"bad-agent-version", "POST", "/v1/checkin", dev, `{"platform":"windows","os_build":"1","agent_version":"7.x"}`, 400, "agent_version"},
			{"overlong-os-build", "POST", "/v1/checkin", dev, `{"platform":"windows","os_build":"` + strings.Repeat("9", 65) + `","agent_version":"7.12.0"}`, 400, "os_build"},
			{"foreign-device-id", "POST", "/v1/checkin", dev, obj(`,"device_id":"dev-someone-else"`), 400, "device_id"},
			{"oversized-body", "POST", "/v1/checkin", dev, obj(`,"os_build":"` + strings.Repeat("x", 1<<20) + `"`), 413, "larger than"},
			{"oversized-enrolment", "POST", "/v1/enroll", none, `{"token":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "larger than"},
			{"enrolment-unknown-field", "POST", "/v1/enroll", none, `{"token":"x","platform":"windows","os_build":"1","agent_version":"7.12.0","role":"admin"}`, 400, "role"},
			{"unknown-endpoint", "GET", "/v1/nope", none, ``, 404, "/v1/nope"},
			{"unknown-root", "GET", "/", none, ``, 404, "GET /"},
			{"wrong-method-checkin", "GET", "/v1/checkin", dev, ``, 405, "POST"},
			{"wrong-method-enroll", "PUT", "/v1/enroll", none, `{}`, 405, "POST"},
			{"wrong-method-tenants", "DELETE", "/v1/tenants", admin, ``, 405, "GET"},
			{"admin-malformed-json", "POST", "/v1/tenants", admin, `{"id":`, 400, "malformed JSON"},
			{"admin-unknown-field", "POST", "/v1/tenants", admin, `{"id":"x","kind":"org","name":"X","owner":"me"}`, 400, "owner"},
			{"tenant-bad-id", "POST", "/v1/tenants", admin, `{"id":"X Y","kind":"org","name":"X"}`, 400, "id"},
			{"tenant-bad-kind", "POST", "/v1/tenants", admin, `{"id":"xy","kind":"bank","name":"X"}`, 400, "kind"},
			{"tenant-exists", "POST", "/v1/tenants", admin, `{"id":"acme","kind":"vendor","name":"again"}`, 409, "acme"},
			{"token-bad-role", "POST", "/v1/tokens", admin, `{"tenant":"acme","role":"root"}`, 400, "role"},
			{"token-role-wrong-tenant-kind", "POST", "/v1/tokens", admin, `{"tenant":"contoso","role":"publisher"}`, 400, "publisher"},
			{"policy-bad-track", "PUT", "/v1/orgs/contoso/policies/acme/ipc", admin, `{"track":"yolo"}`, 400, "track"},
			{"policy-huge-pin", "PUT", "/v1/orgs/contoso/policies/acme/ipc", admin, `{"track":"pinned:99999999999999999999"}`, 400, "track"},
			{"policy-bad-window", "PUT", "/v1/orgs/contoso/policies/acme/ipc", admin, `{"track":"ga","windows":["someday"]}`, 400, "windows[0]"},
			{"policy-unknown-channel", "PUT", "/v1/orgs/contoso/policies/acme/nope", admin, `{"track":"ga"}`, 404, "acme/nope"},
			{"enroll-token-bad-expiry", "POST", "/v1/orgs/contoso/enroll-tokens", admin, `{"expires_in_hours":-1}`, 400, "expires_in_hours"},
			{"enroll-token-huge-expiry", "POST", "/v1/orgs/contoso/enroll-tokens", admin, `{"expires_in_hours":1e40}`, 400, "expires_in_hours"},
			{"release-bad-channel", "POST", "/v1/releases", admin, `{"channel":"ipc","version":292}`, 400, "channel"},
			{"release-unpublished", "POST", "/v1/releases", admin, `{"channel":"acme/ipc","version":999}`, 400, "version"},
			{"release-twice", "POST", "/v1/releases", admin, `{"channel":"acme/ipc","version":292}`, 409, "acme/ipc@292"},
			{"release-bad-plan", "POST", "/v1/releases", admin, `{"channel":"acme/ipc","version":292,"plan":{"waves":[]}}`, 400, "plan"},
			{"release-negative-version", "POST", "/v1/releases", admin, `{"channel":"acme/ipc","version":-292}`, 400, "version"},
			{"promote-without-reason", "POST", "/v1/releases/" + seedRelease + "/promote", admin, `{}`, 400, "reason"},
			{"promote-unknown-release", "POST", "/v1/releases/rel-nope/promote", admin, `{"reason":"x"}`, 404, "rel-nope"},
			{"release-bad-lane", "POST", "/v1/releases", admin, `{"channel":"acme/ipc","version":292,"lane":"fast"}`, 400, "lane"},
			{"release-plan-bad-gate", "POST", "/v1/releases", admin,
				`{"channel":"acme/ipc","version":292,"plan":{"waves":[{"name":"all","share":10000,"min_devices":0,"bake":"1h","gates":[{"metric":"silence","limit":2,"ratio":3,"alpha":0.001}]}]}}`, 400, "limit 2"},
			{"release-plan-canary-late", "POST", "/v1/releases", admin,
				`{"channel":"acme/ipc","version":292,"plan":{"waves":[{"name":"a","share":100,"min_devices":0,"bake":"1h"},{"name":"b","share":10000,"canary":true,"min_devices":0,"bake":"1h"}]}}`, 400, "canary waves must come first"},
			{"release-plan-deadline-before-bake", "POST", "/v1/releases", admin,
				`{"channel":"acme/ipc","version":292,"plan":{"waves":[{"name":"all","share":10000,"min_devices":0,"bake":"2h","deadline":"1h"}]}}`, 400, "deadline"},
			{"approve-without-reason", "POST", "/v1/releases/" + seedRelease + "/approve", approver, `{}`, 400, "reason"},
			{"approve-completed", "POST", "/v1/releases/" + seedRelease + "/approve", approver, `{"reason":"x"}`, 409, "cannot approve a completed release"},
			{"pause-completed", "POST", "/v1/releases/" + seedRelease + "/pause", admin, `{"reason":"x"}`, 409, "cannot pause a completed release"},
			{"resume-completed", "POST", "/v1/releases/" + seedRelease + "/resume", admin, `{"reason":"x"}`, 409, "cannot resume a completed release"},
			{"status-unknown-release", "GET", "/v1/releases/rel-nope/status", admin, ``, 404, "rel-nope"},
			{"kill-switch-no-engaged", "PUT", "/v1/kill-switch", admin, `{"reason":"x"}`, 400, "engaged"},
			{"kill-switch-no-reason", "PUT", "/v1/kill-switch", admin, `{"engaged":true}`, 400, "reason"},
			{"kill-switch-unknown-channel", "PUT", "/v1/channels/acme/nope/kill-switch", admin, `{"engaged":true,"reason":"x"}`, 404, "acme/nope"},
			{"budget-org-mismatch", "PUT", "/v1/orgs/contoso/budget", admin, `{"org":"fabrikam","hourly_cap_bp":5}`, 400, "fabrikam"},
			{"budget-out-of-range", "PUT", "/v1/orgs/contoso/budget", admin, `{"hourly_cap_bp":10001}`, 400, "hourly_cap_bp"},
			{"budget-negative", "PUT", "/v1/orgs/contoso/budget", admin, `{"hourly_cap_bp":-1}`, 400, "hourly_cap_bp"},
			{"budget-for-vendor", "PUT", "/v1/orgs/acme/budget", admin, `{"hourly_cap_bp":5}`, 404, "acme"},
			{"publish-not-yaml", "POST", "/v1/channels/acme/ipc/publish", admin, "\x00\x01 not a bundle", 422, "bundle"},
			{"publish-not-increasing", "POST", "/v1/channels/acme/ipc/publish", admin, bundleSource(t, "acme", "ipc", 292), 422, "not above"},
			{"publish-unknown-channel", "POST", "/v1/channels/acme/nope/publish", admin, bundleSource(t, "acme", "nope", 1), 404, "acme/nope"},
			{"devices-bad-limit", "GET", "/v1/devices?limit=0", admin, ``, 400, "limit"},
			{"audit-bad-after", "GET", "/v1/audit?after=-1", admin, ``, 400, "after"},
			{"audit-bad-limit", "GET", "/v1/audit?limit=many", admin, ``, 400, "limit"},
			{"unknown-device", "GET", "/v1/devices/dev-nope", admin, ``, 404, "dev-nope"},
			{"unknown-release", "GET", "/v1/releases/rel-nope", admin, ``, 404, "rel-nope"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				token := map[string]string{dev: d.cred, admin: e.creds.AdminToken, approver: e.creds.ApproverToken, none: ""}[tc.auth]
				code, body := e.call(t, tc.method, tc.path, token, tc.body)
				wantError(t, code, body, tc.want, tc.mention)
			})
		}
		t.Run("device-still-served", func(t *testing.T) {
			if resp := e.checkin(t, d, d.report(292)); resp.AckSeq != 5 {
				t.Errorf("after the refusals: got ack_seq %d, want 5 (nothing refused was stored)", resp.AckSeq)
			}
		})
	})
}

// TestAuditChain: admin changes leave a hash chain that verifies, and a
// row altered in the database is named.
func TestAuditChain(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.createTenant(t, "fabrikam", "org", store.RoleOrgAdmin)
		e.setPolicy(t, "ga-delay:6")
		rel := e.publishRelease(t, 293)
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "test halt"}, nil)

		var entries []store.AuditEntry
		e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &entries)
		var actions []string
		for _, a := range entries {
			actions = append(actions, a.Action)
		}
		want := "dev.seed tenant.create token.create policy.set artifact.publish release.create release.halt"
		if got := strings.Join(actions, " "); got != want {
			t.Fatalf("audit actions: got %q, want %q", got, want)
		}
		if seq, why := store.VerifyChain(e.auditKey, "", false, entries); seq != 0 {
			t.Fatalf("untouched chain: VerifyChain names entry %d: %s", seq, why)
		}
		if last := entries[len(entries)-1]; last.Reason != "test halt" || !strings.Contains(last.Actor, "dev publisher") || last.Target != rel.ID {
			t.Errorf("last entry: got %+v, want the halt by the publisher with its reason", last)
		}
		var page []store.AuditEntry
		e.must(t, http.StatusOK, "GET", "/v1/audit?after=2&limit=2", e.creds.AdminToken, nil, &page)
		if len(page) != 2 || page[0].Seq != 3 {
			t.Errorf("page after 2, limit 2: got %d entries starting at %d; want 2 from 3", len(page), page[0].Seq)
		}

		if _, err := e.st.DB().Exec(`UPDATE audit_log SET reason = 'ga' WHERE seq = 4`); err != nil {
			t.Fatal(err)
		}
		e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &entries)
		seq, why := store.VerifyChain(e.auditKey, "", false, entries)
		if seq != 4 || !strings.Contains(why, "entry 4") {
			t.Errorf("tampered chain: got entry %d (%s), want entry 4", seq, why)
		}
	})
}

// TestGracefulShutdown: cancelling the context while devices check in
// stops the server cleanly, and every event it acknowledged is stored.
func TestGracefulShutdown(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := ""
			if name == "postgres" {
				url = storetest.PostgresURL(t)
			}
			gracefulShutdown(t, url)
		})
	}
}

func gracefulShutdown(t *testing.T, storeURL string) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, storeURL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Catalog: cat}, st, time.Now, quietLogger())
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ready struct {
		url   string
		creds *server.DevCredentials
		err   error
	}
	readyc := make(chan ready, 1)
	served := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		served <- srv.ListenAndServe(runCtx, "127.0.0.1:0", func(a net.Addr) {
			url := "http://" + a.String()
			creds, err := srv.SeedDev(ctx, dir, url)
			readyc <- ready{url, creds, err}
		})
	}()
	var r ready
	select {
	case r = <-readyc:
	case err := <-served:
		t.Fatalf("ListenAndServe returned before it was ready: %v", err)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	e := &env{st: st, url: r.url, creds: r.creds}
	const devices = 8
	ds := make([]*device, devices)
	for i := range ds {
		ds[i] = e.enroll(t, "7.12.0")
	}

	// Each device checks in with one new event at a time, as fast as it
	// is answered, until the server stops answering.
	acked := make([]uint64, devices)
	var total atomic.Int64
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for seq := uint64(1); ; seq++ {
				body, _ := json.Marshal(d.report(292, server.EventReport{Seq: seq, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"log": 1}}))
				req, _ := http.NewRequest("POST", r.url+"/v1/checkin", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+d.cred)
				resp, err := c.Do(req)
				if err != nil {
					return // the server is gone
				}
				var out server.CheckinResponse
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil {
					return
				}
				acked[i] = out.AckSeq
				total.Add(1)
			}
		}()
	}
	for total.Load() < 4*devices {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ListenAndServe: got %v, want nil after a graceful shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ListenAndServe did not return within 30s of the cancel")
	}
	wg.Wait()
	for i, d := range ds {
		sd, err := st.GetDevice(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		var stored uint64
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM events WHERE device = '` + d.id + `'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if acked[i] == 0 || sd.LastSeq < acked[i] || stored < acked[i] {
			t.Errorf("device %d: acknowledged up to %d, stored last_seq %d and %d events; want every acknowledged event stored", i, acked[i], sd.LastSeq, stored)
		}
	}
	if _, err := client.Get(r.url + "/healthz"); err == nil {
		t.Error("the server still answers after ListenAndServe returned")
	}
}

// TestAgentBuildChannel: an agent build is published in its envelope with
// the channel's version in the query, released on the slower agent plan,
// and served to devices of its platform once completed.
func TestAgentBuildChannel(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		pub := e.creds.PublisherToken
		e.must(t, http.StatusCreated, "POST", "/v1/channels", pub, map[string]string{"vendor": "acme", "name": "sensor-windows-beta", "kind": "agent", "category": "system-critical"}, nil)
		exe := bytes.Repeat([]byte("MZ\x90\x00"), 1000)
		build, err := agentbuild.Pack(agentbuild.Header{Platform: "windows", Arch: "amd64", AgentVersion: "7.13.0"}, exe, nil)
		if err != nil {
			t.Fatal(err)
		}
		badVersion := bytes.Replace(build, []byte(`"7.13.0"`), []byte(`"7.x.0"`), 1)
		refusals := []struct {
			name, query string
			body        []byte
			want        int
			mention     string
		}{
			{"no-version", "", build, 400, "version"},
			{"version-zero", "?version=0", build, 400, "version"},
			{"version-not-a-number", "?version=7.12", build, 400, "version"},
			{"empty-build", "?version=712", nil, 400, "empty"},
			{"raw-executable", "?version=712", exe, 422, "not an agent build"},
			{"tampered", "?version=712", append(append([]byte{}, build[:len(build)-1]...), 'X'), 422, "sha256"},
			{"truncated", "?version=712", build[:len(build)-10], 422, "executable is"},
			{"agent-version-not-semver", "?version=712", badVersion, 422, "agent_version"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				code, body := e.call(t, "POST", "/v1/channels/acme/sensor-windows-beta/publish"+tc.query, pub, tc.body)
				wantError(t, code, body, tc.want, tc.mention)
			})
		}
		var p struct {
			SHA256 string `json:"sha256"`
			Size   int    `json:"size"`
		}
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/sensor-windows-beta/publish?version=712", pub, build, &p)
		sum := sha256.Sum256(build)
		if p.SHA256 != hex.EncodeToString(sum[:]) || p.Size != len(build) {
			t.Errorf("publish: got sha256 %s, size %d; want %x, %d", p.SHA256, p.Size, sum, len(build))
		}
		code, body := e.call(t, "POST", "/v1/channels/acme/sensor-windows-beta/publish?version=712", pub, build)
		wantError(t, code, body, http.StatusUnprocessableEntity, "not above")

		var rel struct {
			ID   string       `json:"id"`
			Plan rollout.Plan `json:"plan"`
		}
		shadow, _ := json.Marshal(map[string]any{"channel": "acme/sensor-windows-beta", "version": 712, "shadow_canary": true})
		code, body = e.call(t, "POST", "/v1/releases", pub, shadow)
		wantError(t, code, body, http.StatusBadRequest, "cannot run in shadow")
		e.must(t, http.StatusCreated, "POST", "/v1/releases", pub, map[string]any{"channel": "acme/sensor-windows-beta", "version": 712}, &rel)
		if want := rollout.DefaultAgentPlan(); len(rel.Plan.Waves) != len(want.Waves) || rel.Plan.Waves[0].Bake != want.Waves[0].Bake {
			t.Errorf("plan: got %+v, want the default agent plan", rel.Plan)
		}
		d := e.enroll(t, "7.12.0")
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "soaked internally"}, nil)
		for range rel.Plan.Waves {
			e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/promote", pub, map[string]string{"reason": "healthy"}, nil)
		}
		cd := channel(e.checkin(t, d, d.report(292)), "acme/sensor-windows-beta")
		want := server.Artifact{URL: "/v1/artifacts/acme/sensor-windows-beta/712", SHA256: p.SHA256, Size: int64(len(build)), Target: "acme/sensor-windows-beta/712.build"}
		if cd == nil || cd.DesiredVersion != 712 || cd.Artifact == nil || *cd.Artifact != want {
			t.Fatalf("got %+v, want 712 with %+v", cd, want)
		}
		code, body = e.call(t, "GET", cd.Artifact.URL, d.cred, nil)
		if code != http.StatusOK || !bytes.Equal(body, build) {
			t.Errorf("download: got %d and %d bytes, want 200 and the %d bytes published", code, len(body), len(build))
		}
		// A Linux device is never offered the Windows build.
		linux := e.enroll(t, "7.12.0")
		req := linux.report(292)
		req.Platform = "linux"
		if cd := channel(e.checkin(t, linux, req), "acme/sensor-windows-beta"); cd != nil && cd.DesiredVersion != 0 {
			t.Errorf("a linux device was offered the windows build: %+v", cd)
		}
	})
}

// A range that takes an agent version devices run, with no manifest to
// describe it, is named at publish: those devices will get nothing, and
// nothing checked what they supply. It is a warning, not a refusal: a
// device chooses the agent version it reports, so one enrolled device must
// not be able to stop a vendor publishing (delivery already withholds the
// bundle from it). Revoked devices do not count.
func TestPublishNamesAgentsNoManifestDescribes(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		for range 3 {
			e.enroll(t, "7.13.0")
		}
		e.enroll(t, "7.12.4") // described by 7.12.0: fine
		var pub struct {
			Findings []struct {
				Level, Rule, Message string
			} `json:"findings"`
		}
		named := func() string {
			for _, f := range pub.Findings {
				if f.Rule == "agent-without-manifest" {
					return f.Level + ": " + f.Message
				}
			}
			return ""
		}
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), &pub)
		if got := named(); !strings.HasPrefix(got, "warning: ") || !strings.Contains(got, "takes agent 7.13.0 (windows), which 3 enrolled devices run") {
			t.Fatalf("publish with 7.13.0 devices: finding %q; findings %+v", got, pub.Findings)
		}
		var devs []struct {
			ID           string `json:"id"`
			AgentVersion string `json:"agent_version"`
		}
		e.must(t, http.StatusOK, "GET", "/v1/devices?org=contoso", e.creds.AdminToken, nil, &devs)
		for _, d := range devs {
			if d.AgentVersion == "7.13.0" {
				e.must(t, http.StatusOK, "POST", "/v1/devices/"+d.ID+"/revoke", e.creds.AdminToken, map[string]string{"reason": "test: retired"}, nil)
			}
		}
		pub.Findings = nil
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 294), &pub)
		if got := named(); got != "" {
			t.Errorf("with the 7.13.0 devices revoked: %q", got)
		}
	})
}

// Publishing runs preflight after validation: a bundle every validation
// rule passes, but whose events cost each agent more than the budget (five
// regexes no index anchors, over a long command line), is refused.
func TestPublishRunsPreflight(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		src, err := os.ReadFile(filepath.Join("..", "content", "testdata", "adversarial", "preflight-cost-five-unanchored-regexes.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		body := strings.NewReplacer("channel: cmdline", "channel: ipc", "version: 300", "version: 293").Replace(string(src))
		code, resp := e.call(t, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(resp), "cost-budget") {
			t.Fatalf("publish of a bundle over the cost budget: %d %s", code, resp)
		}
		// The channel is unchanged: the next version is still 293.
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), nil)
	})
}

// What validation and preflight said of a published bundle stays with its
// artifact, for the console's published content: a warning is published
// with the bundle and read back with it.
func TestPublishedFindingsAreKept(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		src, err := os.ReadFile("../content/testdata/adversarial/broad-glob-star.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var pub struct {
			Findings []struct{ Level, Rule, Instance string }
		}
		e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, string(src), &pub)
		a, err := e.st.GetArtifact(context.Background(), "acme/ipc", 300)
		if err != nil {
			t.Fatal(err)
		}
		var kept []struct{ Level, Rule, Instance string }
		if err := json.Unmarshal([]byte(a.Findings), &kept); err != nil {
			t.Fatalf("stored findings %q: %v", a.Findings, err)
		}
		if len(pub.Findings) == 0 || !slices.Equal(kept, pub.Findings) || !slices.ContainsFunc(kept, func(f struct{ Level, Rule, Instance string }) bool {
			return f.Level == "warning" && f.Rule == "broad-criterion" && f.Instance == "probe"
		}) {
			t.Errorf("kept %+v, published with %+v: want the broad-criterion warning on instance probe, as published", kept, pub.Findings)
		}
	})
}
