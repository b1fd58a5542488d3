package cli_test

// The admin commands are tested against a real `ringfence server --dev`
// process on a free port, driven by the binary TestMain built, as an
// operator would: tenants, tokens, a rejected and an accepted publish,
// a release promoted and halted, policies, a device enrolled, the audit
// chain verified, and a graceful shutdown. Audit verification's failure
// paths run against a fake API serving a tampered chain.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// rfEnv runs the binary with RINGFENCE_* taken from env only, so the
// developer's own environment does not leak into the test.
func rfEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runBinary(t, append(cleanEnv(), env...), args...)
}

// cleanEnv is the test's environment without RINGFENCE_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGFENCE_") {
			env = append(env, kv)
		}
	}
	return env
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// devServer is a running `ringfence server --dev`.
type devServer struct {
	url, data string
	creds     struct {
		Admin     string `json:"admin_token"`
		Publisher string `json:"publisher_token"`
		Approver  string `json:"approver_token"`
		OrgAdmin  string `json:"org_admin_token"`
		Viewer    string `json:"viewer_token"`
		Enroll    string `json:"enroll_token"`
		Server    string `json:"server"`
		// SigningKey is acme's second key, the approver's.
		SigningKey string `json:"approver_signing_key"`
	}
	cmd            *exec.Cmd
	exited         chan struct{}
	waitErr        error
	stdout, stderr lockedBuffer
}

// startDevServer starts the server on a port the system picks (its
// credentials name it), with extra flags, and waits until it has written
// its credentials and answers /readyz.
func startDevServer(t *testing.T, extra ...string) *devServer {
	t.Helper()
	return startDevServerOf(t, binary, extra...)
}

// startDevServerOf is startDevServer with another build of the binary.
func startDevServerOf(t *testing.T, bin string, extra ...string) *devServer {
	t.Helper()
	return startDevServerAt(t, bin, t.TempDir(), extra...)
}

// startDevServerAt is startDevServerOf on a data directory of the test's.
func startDevServerAt(t *testing.T, bin, data string, extra ...string) *devServer {
	t.Helper()
	s := &devServer{exited: make(chan struct{}), data: data}
	s.cmd = exec.Command(bin, append([]string{"server", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	path := filepath.Join(data, "dev-credentials.json")
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was ready: %v\n--- stderr:\n%s", s.waitErr, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 15s\n--- stderr:\n%s", s.stderr.String())
		}
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &s.creds) == nil && s.creds.Server != "" {
			s.url = s.creds.Server
			if resp, err := http.Get(s.url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// as runs the binary against the server with a token.
func (s *devServer) as(t *testing.T, token string, args ...string) result {
	t.Helper()
	return rfEnv(t, []string{"RINGFENCE_SERVER=" + s.url, "RINGFENCE_TOKEN=" + token}, args...)
}

// stop sends SIGTERM and checks that the server shuts down cleanly.
func (s *devServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("server still running 20s after SIGTERM\n--- stderr:\n%s", s.stderr.String())
	}
	if s.waitErr != nil {
		t.Errorf("server after SIGTERM: %v, want exit 0\n--- stderr:\n%s", s.waitErr, s.stderr.String())
	}
}

func ok(t *testing.T, r result) result {
	t.Helper()
	wantCode(t, r, 0)
	return r
}

func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r)
	}
}

var secretLine = regexp.MustCompile(`(?m)^secret: (\S+)$`)

func secretOf(t *testing.T, r result) string {
	t.Helper()
	m := secretLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("got no secret line\n%s", r)
	}
	return m[1]
}

// manualControl makes the rollout controller tick once a minute, after the
// stories end: only people move their releases, and a halted release stays
// halted rather than turning rolled-back (no device runs it) within a tick.
var manualControl = []string{"--controller-tick", "1m"}

func TestAdminStory(t *testing.T) {
	s := startDevServer(t, manualControl...)
	admin := s.creds.Admin

	// Who am I: the operator's admin token.
	r := ok(t, s.as(t, admin, "whoami"))
	wantContains(t, r.stdout, "(operator)")
	var who struct{ Role, Tenant string }
	decodeJSON(t, ok(t, s.as(t, admin, "whoami", "--json")), &who)
	if who.Role != "admin" || who.Tenant != "" {
		t.Errorf("got whoami %+v, want role admin and no tenant", who)
	}

	// A second vendor and organisation, a channel.
	ok(t, s.as(t, admin, "tenants", "create", "initech", "--kind", "vendor", "--name", "Initech Security"))
	ok(t, s.as(t, admin, "tenants", "create", "globex", "--kind", "org", "--name", "Globex Air"))
	r = s.as(t, admin, "tenants", "create", "globex", "--kind", "org", "--name", "Again")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: conflict: tenant globex already exists")
	r = ok(t, s.as(t, admin, "tenants", "list"))
	wantContains(t, r.stdout, "globex   org     Globex Air")
	ok(t, s.as(t, admin, "channels", "create", "initech/dns", "--category", "system-critical", "--unpausable"))
	var chans []struct {
		ID         string
		Category   string
		Unpausable bool
	}
	decodeJSON(t, ok(t, s.as(t, admin, "channels", "list", "--json")), &chans)
	if n := len(chans); n != 5 || chans[n-1].ID != "initech/dns" || chans[n-1].Category != "system-critical" || !chans[n-1].Unpausable {
		t.Errorf("got channels %+v, want acme/ipc, the three acme/sensor-PLATFORM agent channels and an unpausable system-critical initech/dns", chans)
	}

	// Tokens: a CI publisher for acme, an admin for globex.
	ci := secretOf(t, s.as(t, admin, "tokens", "create", "--tenant", "acme", "--role", "publisher", "--name", "ci"))
	globex := secretOf(t, s.as(t, admin, "tokens", "create", "--tenant", "globex", "--role", "org-admin"))
	r = ok(t, s.as(t, ci, "whoami"))
	wantContains(t, r.stdout, "publisher")
	r = s.as(t, admin, "tokens", "create", "--tenant", "initech", "--role", "org-admin")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: bad request: role org-admin belongs to org tenants")
	enroll := secretOf(t, s.as(t, globex, "enroll-tokens", "create", "globex", "--expires-in-hours", "1"))
	// A token limited in uses and time, listed, then revoked with a reason.
	r = ok(t, s.as(t, globex, "enroll-tokens", "create", "globex", "--max-uses", "5", "--expires", "72h"))
	wantContains(t, r.stdout, "for globex (at most 5 devices; expires ")
	spare := strings.Fields(r.stdout)[3]
	r = ok(t, s.as(t, globex, "enroll-tokens", "list", "globex"))
	wantContains(t, r.stdout, spare+"  usable  0     5")
	wantCode(t, s.as(t, globex, "enroll-tokens", "revoke", "globex", spare), 2)
	ok(t, s.as(t, globex, "enroll-tokens", "revoke", "globex", spare, "--reason", "handed to the wrong site"))
	wantContains(t, ok(t, s.as(t, globex, "enroll-tokens", "list", "globex")).stdout, spare+"  revoked")

	// Channel File 291 is refused by the server, naming input 21 and the
	// agent that lacks it, at its place in the file.
	r = s.as(t, ci, "publish", ch291)
	wantCode(t, r, 1)
	wantContains(t, r.stdout, "REJECTED "+ch291)
	wantContains(t, r.stdout, ch291+":25:9: error [input-not-supplied]: bundle acme/ipc@291: instance c2-pipe-7: "+inputNotSupplied)
	wantContains(t, r.stderr, "ringfence: bundle rejected: acme/ipc@291")
	r = s.as(t, ci, "publish", "--json", ch291)
	wantCode(t, r, 1)
	var rej struct {
		Error    string
		Findings []struct {
			Rule      string
			FieldName string `json:"field_name"`
		}
	}
	decodeJSON(t, r, &rej)
	if rej.Error != "bundle rejected" || !strings.Contains(fmt.Sprint(rej.Findings), "input-not-supplied pipe_owner_sid") {
		t.Errorf("got %+v, want the server's rejection with an input-not-supplied finding", rej)
	}
	// Validated here first, it never reaches the server.
	r = s.as(t, ci, "publish", "--types", types, "--manifests", manifs, ch291)
	wantCode(t, r, 1)
	wantContains(t, r.stdout, inputNotSupplied)
	wantContains(t, r.stderr, "not sent to the server")

	// Version 293, otherwise ipc-292, is published; the server's content
	// hash is the one local validation computes.
	src, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	ipc293 := writeFile(t, t.TempDir(), "ipc-293.yaml", bytes.Replace(src, []byte("\nversion: 292\n"), []byte("\nversion: 293\n"), 1))
	r = ok(t, s.as(t, ci, "publish", "--types", types, "--manifests", manifs, ipc293))
	wantContains(t, r.stdout, "PUBLISHED "+ipc293+" (acme/ipc@293)")
	local := parseReport(t, ringfence(t, validateArgs("--json", ipc293)...))
	wantContains(t, r.stdout, "sha256   "+local.Bundles[0].SHA256)
	r = s.as(t, ci, "publish", ipc293)
	wantCode(t, r, 1)
	wantContains(t, r.stdout, "[version-not-increasing]")
	r = s.as(t, ci, "publish", ipc293, "--channel", "initech/dns")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: token may not publish to initech/dns")
	r = s.as(t, admin, "publish", ipc293, "--channel", "initech/dns")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: bundle rejected: bundle is for acme/ipc, published to initech/dns")

	// Roll it out: promote by hand, then halt.
	var rel struct {
		ID, State string
		WaveName  string `json:"wave_name"`
	}
	decodeJSON(t, ok(t, s.as(t, ci, "releases", "create", "acme/ipc", "293", "--json")), &rel)
	if rel.State != "rolling" || rel.WaveName != "internal" {
		t.Errorf("got release %+v, want rolling in wave internal", rel)
	}
	wantContains(t, ok(t, s.as(t, ci, "releases", "promote", rel.ID, "--reason", "internal fleet healthy")).stdout, "rolling, wave 1 canary of 5 (baking)")
	wantContains(t, ok(t, s.as(t, ci, "releases", "halt", rel.ID, "--reason", "crash spike in canary")).stdout, "halted")
	r = s.as(t, ci, "releases", "halt", rel.ID, "--reason", "again")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: conflict: release "+rel.ID+": cannot halt a halted release: it is already stopped")
	r = ok(t, s.as(t, s.creds.OrgAdmin, "releases", "show", rel.ID))
	for _, want := range []string{"state    halted", "lane     normal", "reason   halted by ci (tok-", "): crash spike in canary",
		"canary       0.1%           20           1h    <- halted"} {
		wantContains(t, r.stdout, want)
	}
	wantContains(t, ok(t, s.as(t, admin, "releases", "list", "--channel", "acme/ipc")).stdout, rel.ID)

	// Globex's policies: a delayed track in two windows; "paused" on an
	// unpausable channel is accepted with a warning.
	ok(t, s.as(t, globex, "policies", "set", "globex", "acme/ipc", "--track", "ga-delay:24",
		"--window", "mon-fri 01:00-05:00", "--window", "sat,sun 00:00-23:59"))
	r = ok(t, s.as(t, globex, "policies", "set", "globex", "initech/dns", "--track", "paused"))
	wantContains(t, r.stderr, "warning: channel is unpausable")
	var pols []struct {
		Channel, Track string
		Windows        []string
	}
	decodeJSON(t, ok(t, s.as(t, globex, "policies", "list", "globex", "--json")), &pols)
	if len(pols) != 2 || pols[0].Track != "ga-delay:24" || len(pols[0].Windows) != 2 || pols[0].Windows[1] != "sat,sun 00:00-23:59" {
		t.Errorf("got policies %+v, want acme/ipc on ga-delay:24 in two windows, and initech/dns", pols)
	}
	wantCode(t, s.as(t, s.creds.OrgAdmin, "policies", "set", "globex", "acme/ipc", "--track", "ga"), 1)

	// A device enrols; its organisation sees it, a vendor may not.
	body := fmt.Sprintf(`{"token":%q,"platform":"windows","os_build":"22631","agent_version":"7.12.0"}`, enroll)
	resp, err := http.Post(s.url+"/v1/enroll", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		DeviceID string `json:"device_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol: got %d, %v, want 201", resp.StatusCode, err)
	}
	r = ok(t, s.as(t, globex, "devices", "list", "--platform", "windows"))
	wantContains(t, r.stdout, dev.DeviceID+"  globex  windows   22631     7.12.0")
	var devs []struct{ ID, Org string }
	decodeJSON(t, ok(t, s.as(t, s.creds.OrgAdmin, "devices", "list", "--json")), &devs)
	if len(devs) != 0 {
		t.Errorf("got contoso seeing devices %+v, want none (the device is globex's)", devs)
	}
	wantContains(t, ok(t, s.as(t, globex, "devices", "show", dev.DeviceID)).stdout, "agent      7.12.0")
	r = s.as(t, ci, "devices", "list")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, `ringfence: forbidden: token may not list devices of "acme"; vendors see aggregate figures`)
	wantContains(t, ok(t, s.as(t, globex, "devices", "revoke", dev.DeviceID)).stdout, "revoked device "+dev.DeviceID)

	// Revoking a token locks it out: exit 2, a credential problem.
	var toks []struct{ ID, Name string }
	decodeJSON(t, ok(t, s.as(t, admin, "tokens", "list", "--tenant", "acme", "--json")), &toks)
	for _, tok := range toks {
		if tok.Name == "ci" {
			ok(t, s.as(t, admin, "tokens", "revoke", tok.ID))
		}
	}
	r = s.as(t, ci, "whoami")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "ringfence: unauthorized: missing, unknown or revoked credential")

	// The audit log recorded every change and its chain is intact.
	var entries []store.AuditEntry
	decodeJSON(t, ok(t, s.as(t, admin, "audit", "list", "--limit", "1000", "--json")), &entries)
	actions := map[string]int{}
	for _, e := range entries {
		actions[e.Action]++
	}
	for _, a := range []string{"tenant.create", "channel.create", "token.create", "artifact.publish", "release.create",
		"release.promote", "release.halt", "policy.set", "device.revoke", "token.revoke"} {
		if actions[a] == 0 {
			t.Errorf("got audit actions %v, want %s among them", actions, a)
		}
	}
	r = ok(t, s.as(t, admin, "audit", "verify"))
	if want := fmt.Sprintf("audit log verified: %d entries, 0 signed checkpoints\n", len(entries)); r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	r = s.as(t, globex, "audit", "verify")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: only the operator's admin tokens read the audit log")

	s.stop(t)
	r = s.as(t, admin, "whoami")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "cannot reach the server at "+s.url)
}

// releaseCreated reads the release id from `release create`'s human output.
var releaseCreated = regexp.MustCompile(`^created release (\S+): `)

// TestReleaseStory drives a staged rollout by hand, as its people would:
// an emergency-lane draft and its status, approvals under the two-person
// rule, pause, resume, halt and a refused promote, kill switches, and an
// organisation's hourly budget; every step is in the audit log.
func TestReleaseStory(t *testing.T) {
	s := startDevServer(t, manualControl...)
	admin, pub, appr := s.creds.Admin, s.creds.Publisher, s.creds.Approver
	dir := t.TempDir()

	src, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, s.as(t, pub, "publish", writeFile(t, dir, "ipc-293.yaml", bytes.Replace(src, []byte("\nversion: 292\n"), []byte("\nversion: 293\n"), 1))))
	// Two waves: a canary, whose exit needs approvals, then everyone.
	plan := writeFile(t, dir, "plan.json", []byte(`{"waves": [
		{"name": "canary", "share": 10, "canary": true, "min_devices": 20, "bake": "1h"},
		{"name": "broad", "share": 10000, "min_devices": 0, "bake": "4h"}]}`))

	// An emergency-lane draft: created, reaching no device yet.
	r := s.as(t, pub, "release", "create", "acme/ipc", "293", "--plan", plan, "--lane", "urgent")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, `ringfence: --lane: unknown lane "urgent" (want normal or emergency)`)
	r = ok(t, s.as(t, pub, "release", "create", "acme/ipc", "293", "--plan", plan, "--lane", "emergency", "--draft"))
	m := releaseCreated.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("got no release id\n%s", r)
	}
	id := m[1]
	if want := "created release " + id + ": acme/ipc@293, draft, wave 0 canary of 2, emergency lane\n"; r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	wantContains(t, r.stderr, "start it with: ringfence release promote "+id+" --reason R")

	// Its status: the summary first, then where it is, the waves, and the
	// canary's gates, none of which has data.
	r = ok(t, s.as(t, pub, "release", "status", id))
	if !strings.HasPrefix(r.stdout, "draft\n\n") {
		t.Errorf("got status starting %q, want the summary line \"draft\"", r.stdout[:min(len(r.stdout), 40)])
	}
	for _, want := range []string{
		"state        draft\n", "wave         0 canary of 2\n", "phase        -\n", "lane         emergency\n",
		"approvals    0 of 2\n", "kill switch  not engaged\n",
		"WAVE  NAME    SHARE  PROGRESS  TARGETED  APPLIED  CONFIRMED\n",
		"0     canary  0.1%   pending   -         0        0\n",
		"1     broad   100%   pending   -         0        0\n",
		"GATE            OUTCOME  TREATED  CONTROL  EXPOSURE  MESSAGE\n",
		"worker-crash    no-data  -        -        -         worker-crash: no device on the release has reported yet (canary)\n",
		"silence         no-data  -        -        -         silence: no device has been offered the release yet (canary)\n",
	} {
		wantContains(t, r.stdout, want)
	}
	var st struct {
		Summary string
		Release struct{ State, Lane string }
		Waves   []struct {
			Name     string
			Share    int
			Canary   bool
			Progress string
			Targeted int
		}
		Gates           []struct{ Metric, Outcome string }
		ApprovalsNeeded int `json:"approvals_needed"`
	}
	decodeJSON(t, ok(t, s.as(t, pub, "release", "status", id, "--json")), &st)
	if st.Summary != "draft" || st.Release.Lane != "emergency" || st.ApprovalsNeeded != 2 || len(st.Waves) != 2 ||
		st.Waves[0].Share != 10 || !st.Waves[0].Canary || st.Waves[0].Targeted != -1 || len(st.Gates) != 7 || st.Gates[2].Outcome != "no-data" {
		t.Errorf("got status %+v, want a draft in the emergency lane needing 2 approvals, 2 waves not yet counted, 7 gates without data", st)
	}
	r = s.as(t, s.creds.OrgAdmin, "release", "status", id)
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: release status is for the vendor and the operator")

	// Approvals: the vendor's approvers only, each once; the publisher who
	// created it and the operator may not.
	for _, tok := range []string{pub, admin} {
		r = s.as(t, tok, "release", "approve", id, "--reason", "looks fine")
		wantCode(t, r, 1)
		wantContains(t, r.stderr, "ringfence: forbidden: token may not approve releases on acme/ipc")
	}
	r = ok(t, s.as(t, appr, "release", "approve", id, "--reason", "rules reviewed"))
	if want := "approved release " + id + " (acme/ipc@293): 1 of 2 approvals; draft, wave 0 canary of 2\n"; r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	r = s.as(t, appr, "release", "approve", id, "--reason", "again")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: conflict: dev approver (tok-")
	wantContains(t, r.stderr, ") already approved release "+id+"\n")
	second := secretOf(t, s.as(t, admin, "tokens", "create", "--tenant", "acme", "--role", "approver", "--name", "second approver"))
	wantContains(t, ok(t, s.as(t, second, "release", "approve", id, "--reason", "second pair of eyes")).stdout, "2 of 2 approvals")

	// The publisher starts it; it bakes in the canary wave.
	r = ok(t, s.as(t, pub, "release", "promote", id, "--reason", "start the canary"))
	if want := "release " + id + " (acme/ipc@293): rolling, wave 0 canary of 2 (baking)\n"; r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	r = ok(t, s.as(t, appr, "release", "status", id))
	for _, want := range []string{"rolling: wave canary baking: ", "of 15m0s, 0 of 0 devices confirmed healthy\n", "state        rolling\n",
		"phase        baking\n", "approvals    2 of 2 (dev approver (tok-", "second approver (tok-",
		"0     canary  0.1%   current   0         0        0\n"} {
		wantContains(t, r.stdout, want)
	}

	// Pause and resume are the publisher's; halting is anyone's of the
	// vendor's.
	r = s.as(t, appr, "release", "pause", id, "--reason", "wait")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: token may not pause releases on acme/ipc")
	wantContains(t, ok(t, s.as(t, pub, "release", "pause", id, "--reason", "hospital change freeze")).stdout, ": paused, wave 0 canary of 2")
	r = s.as(t, pub, "release", "pause", id, "--reason", "again")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: conflict: release "+id+": cannot pause a paused release: only a rolling release is paused")
	wantContains(t, ok(t, s.as(t, pub, "release", "show", id)).stdout, "reason   paused by dev publisher (tok-")
	wantContains(t, ok(t, s.as(t, pub, "release", "resume", id, "--reason", "freeze over")).stdout, ": rolling, wave 0 canary of 2 (baking)")
	wantContains(t, ok(t, s.as(t, appr, "release", "halt", id, "--reason", "crash reports from canary")).stdout, ": halted, wave 0 canary of 2\n")
	r = s.as(t, pub, "release", "promote", id, "--reason", "push on")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: conflict: release "+id+": cannot promote a halted release: only a draft, rolling or awaiting-approval release is promoted")
	r = ok(t, s.as(t, pub, "release", "status", id))
	if !strings.HasPrefix(r.stdout, "halted by dev approver (tok-") || !strings.Contains(r.stdout, "): crash reports from canary\n\n") {
		t.Errorf("got status\n%s\nwant the halt, its actor and reason on the first line", r.stdout)
	}
	wantContains(t, r.stdout, "state        halted\n")

	// Kill switches are the operator's: one channel's, then every one.
	r = s.as(t, pub, "kill-switch", "engage", "--channel", "acme/ipc", "--reason", "incident")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: only the operator's admin tokens use kill switches")
	r = ok(t, s.as(t, admin, "kill-switch", "engage", "--channel", "acme/ipc", "--reason", "incident 4711"))
	wantContains(t, r.stdout, "kill switch engaged on acme/ipc: ")
	wantContains(t, ok(t, s.as(t, pub, "release", "status", id)).stdout, "kill switch  engaged (the release waits; a failing gate still halts it)\n")
	wantContains(t, ok(t, s.as(t, admin, "kill-switch", "engage", "--reason", "all hands")).stdout, "kill switch engaged on every channel: ")
	r = s.as(t, admin, "kill-switch", "engage", "--channel", "acme/nope", "--reason", "typo")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: not found: ")
	r = ok(t, s.as(t, admin, "kill-switch", "list"))
	for _, want := range []string{"SCOPE              ENGAGED  SINCE", "acme/ipc           yes      ", "incident 4711\n", "* (every channel)  yes      "} {
		wantContains(t, r.stdout, want)
	}
	wantContains(t, ok(t, s.as(t, admin, "kill-switch", "release", "--channel", "acme/ipc", "--reason", "incident over")).stdout,
		"kill switch released on acme/ipc: releases continue where they were\n")
	ok(t, s.as(t, admin, "kill-switch", "release", "--reason", "all clear"))
	var ks []struct {
		Scope   string
		Engaged bool
		Reason  string
	}
	decodeJSON(t, ok(t, s.as(t, admin, "kill-switch", "list", "--json")), &ks)
	if len(ks) != 2 || ks[0].Engaged || ks[1].Engaged {
		t.Errorf("got kill switches %+v, want two, both released", ks)
	}
	wantContains(t, ok(t, s.as(t, pub, "release", "status", id)).stdout, "kill switch  not engaged\n")

	// Budgets: an organisation's own org-admin, or the operator.
	r = ok(t, s.as(t, s.creds.OrgAdmin, "budget", "set", "contoso", "--hourly-cap-bp", "150"))
	if want := "budget set: new versions may reach 1.5% of contoso's fleet per hour (150 basis points)\n"; r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	r = ok(t, s.as(t, s.creds.Viewer, "budget", "show", "contoso"))
	if want := "contoso: new versions may reach 1.5% of its fleet per hour (150 basis points)\n"; r.stdout != want {
		t.Errorf("budget show: got %q, want %q", r.stdout, want)
	}
	wantCode(t, s.as(t, pub, "budget", "show", "contoso"), 1)
	var b struct {
		Org       string
		HourlyCap int `json:"hourly_cap_bp"`
	}
	decodeJSON(t, ok(t, s.as(t, admin, "budget", "set", "contoso", "--hourly-cap-bp", "0", "--json")), &b)
	if b.Org != "contoso" || b.HourlyCap != 0 {
		t.Errorf("got budget %+v, want contoso without a cap", b)
	}
	r = s.as(t, pub, "budget", "set", "contoso", "--hourly-cap-bp", "100")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: forbidden: token may not change organisation contoso")
	r = s.as(t, admin, "budget", "set", "acme", "--hourly-cap-bp", "100")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: not found: organisation acme")

	// The audit log has every step, with its person.
	var entries []store.AuditEntry
	decodeJSON(t, ok(t, s.as(t, admin, "audit", "list", "--limit", "1000", "--json")), &entries)
	actions := map[string]int{}
	for _, e := range entries {
		actions[e.Action]++
	}
	for a, n := range map[string]int{"release.create": 1, "release.approve": 2, "release.promote": 1, "release.pause": 1, "release.resume": 1,
		"release.halt": 1, "kill-switch.engage": 2, "kill-switch.release": 2, "org.budget": 2} {
		if actions[a] != n {
			t.Errorf("got %d audit entries %s, want %d (all: %v)", actions[a], a, n, actions)
		}
	}
	ok(t, s.as(t, admin, "audit", "verify"))
}

// TestReleaseStatusOutput prints a status with figures, as a fake API
// serves it: shares as percentages, rates per device-hour, waves not yet
// counted as "-".
func TestReleaseStatusOutput(t *testing.T) {
	const status = `{
  "release": {"id": "rel-1", "channel": "acme/ipc", "version": 291, "state": "halted", "wave": 1, "wave_name": "canary",
    "lane": "normal", "plan": {"waves": [{"name": "internal", "share": 10000, "internal_only": true, "canary": true, "min_devices": 1, "bake": "30m"},
      {"name": "canary", "share": 10, "canary": true, "min_devices": 20, "bake": "1h"}, {"name": "broad", "share": 10000, "min_devices": 0, "bake": "4h"}]},
    "reason": "halted: silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)", "halted_by": "controller",
    "approvals": [], "created_by": "ci (tok-1)", "created_at": "2024-07-19T04:09:00Z", "updated_at": "2024-07-19T04:27:00Z"},
  "summary": "halted: silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)",
  "waves": [
    {"name": "internal", "share": 10000, "internal_only": true, "canary": true, "progress": "done", "targeted": 40, "applied": 40, "confirmed": 40},
    {"name": "canary", "share": 10, "canary": true, "progress": "current", "targeted": 812, "applied": 809, "confirmed": 3},
    {"name": "broad", "share": 10000, "progress": "pending", "targeted": -1, "applied": 0, "confirmed": 0}],
  "gates": [
    {"metric": "worker-crash", "outcome": "inconclusive", "treated": 0.052, "control": 0.01, "exposure": 12.5, "events": 1, "message": "worker-crash rate 0.052 vs 0.01 per device-hour in control (canary, 12.5 device-hours; judged from 5)"},
    {"metric": "silence", "outcome": "fail", "treated": 0.38, "control": 0.004, "exposure": 812, "events": 309, "evidence": 1e300, "message": "silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)"},
    {"metric": "revert", "outcome": "no-data", "treated": 0, "control": 0, "exposure": 0, "events": 0, "message": "revert: no device has applied the release yet (canary)"}],
  "approvals_needed": 1, "approvals_given": 0, "frozen": false
}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/releases/rel-1/status" || r.Header.Get("Authorization") != "Bearer rft_test" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"not found","detail":"release rel-2"}`))
			return
		}
		w.Write([]byte(status))
	}))
	defer srv.Close()
	env := []string{"RINGFENCE_TOKEN=rft_test", "RINGFENCE_SERVER=" + srv.URL}
	r := rfEnv(t, env, "release", "status", "rel-1")
	wantCode(t, r, 0)
	want := `halted: silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)

release      rel-1
channel      acme/ipc@291
state        halted
wave         1 canary of 3
phase        -
lane         normal
approvals    0 of 1
kill switch  not engaged

WAVE  NAME      SHARE          PROGRESS  TARGETED  APPLIED  CONFIRMED
0     internal  internal orgs  done      40        40       40
1     canary    0.1%           current   812       809      3
2     broad     100%           pending   -         0        0

GATE          OUTCOME       TREATED  CONTROL  EXPOSURE       MESSAGE
worker-crash  inconclusive  0.052/h  0.01/h   12.5 device-h  worker-crash rate 0.052 vs 0.01 per device-hour in control (canary, 12.5 device-hours; judged from 5)
silence       fail          38.0%    0.4%     812 devices    silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)
revert        no-data       -        -        -              revert: no device has applied the release yet (canary)
`
	if r.stdout != want {
		t.Errorf("got\n%s\nwant\n%s", r.stdout, want)
	}
	var raw map[string]any
	decodeJSON(t, rfEnv(t, env, "releases", "status", "rel-1", "--json"), &raw)
	if raw["summary"] != "halted: silence rate 38.0% vs 0.4% in control (canary, 812 devices, 15 min window)" {
		t.Errorf("got --json %v, want the server's status", raw)
	}
	r = rfEnv(t, env, "release", "status", "rel-2")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: not found: release rel-2")
}

// fakeAudit serves GET /v1/audit from entries, honouring after and limit.
// fakeAudit serves an audit log and checkpoints as the server's routes
// do; its keyed check always passes (the entries are not keyed).
func fakeAudit(t *testing.T, entries []store.AuditEntry, cps []store.AuditCheckpoint, pub ed25519.PublicKey) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer rft_test" {
			http.Error(w, `{"error":"unauthorized","detail":"fake"}`, http.StatusUnauthorized)
			return
		}
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit == 0 {
			limit = 10000
		}
		switch r.URL.Path {
		case "/v1/audit":
			page := []store.AuditEntry{}
			for _, e := range entries {
				if e.Seq > after && len(page) < limit {
					page = append(page, e)
				}
			}
			json.NewEncoder(w).Encode(page)
		case "/v1/audit/checkpoints":
			page := []store.AuditCheckpoint{}
			for _, c := range cps {
				if c.Seq > after {
					page = append(page, c)
				}
			}
			json.NewEncoder(w).Encode(page)
		case "/v1/audit/key":
			json.NewEncoder(w).Encode(server.AuditPublicKey{KeyID: server.AuditKeyID(pub), PublicKey: pub})
		case "/v1/audit/verify":
			json.NewEncoder(w).Encode(server.AuditVerdict{Verified: true, Entries: int64(len(entries)), Checkpoints: len(cps)})
		default:
			http.Error(w, `{"error":"not found","detail":"fake"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func auditChain(n int) []store.AuditEntry {
	var es []store.AuditEntry
	prev := ""
	t0 := time.Date(2024, 7, 19, 4, 9, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := store.AuditEntry{Seq: int64(i), Time: t0.Add(time.Duration(i) * time.Second), Actor: "ci (tok-1)",
			Action: "release.create", Target: fmt.Sprintf("rel-%d", i), PrevHash: prev}
		e.Hash = store.AuditHash(e)
		prev = e.Hash
		es = append(es, e)
	}
	return es
}

func TestAuditVerify(t *testing.T) {
	const n = 2500 // three pages
	seed := sha256.Sum256([]byte("audit checkpoints"))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := key.Public().(ed25519.PublicKey)
	// The server signed entries 1000 and 2500 of the log it wrote.
	intact := auditChain(n)
	var cps []store.AuditCheckpoint
	for _, seq := range []int64{1000, 2500} {
		h := intact[seq-1].Hash
		cps = append(cps, store.AuditCheckpoint{Seq: seq, Hash: h, KeyID: server.AuditKeyID(pub), Signature: ed25519.Sign(key, store.CheckpointMessage(seq, h))})
	}
	rehash := func(es []store.AuditEntry, from int) []store.AuditEntry {
		for i := from; i < len(es); i++ {
			es[i].Seq = int64(i + 1)
			if i > 0 {
				es[i].PrevHash = es[i-1].Hash
			}
			es[i].Hash = store.AuditHash(es[i])
		}
		return es
	}
	tests := []struct {
		name   string
		tamper func([]store.AuditEntry) []store.AuditEntry
		code   int
		want   string
	}{
		{"intact", func(es []store.AuditEntry) []store.AuditEntry { return es }, 0, "audit log verified: 2500 entries, 2 signed checkpoints"},
		{"altered-on-second-page", func(es []store.AuditEntry) []store.AuditEntry {
			es[1699].Reason = "nothing to see"
			return es
		}, 1, "audit log broken at entry 1700: entry 1700 was altered"},
		{"removed", func(es []store.AuditEntry) []store.AuditEntry {
			return append(es[:4:4], es[5:]...)
		}, 1, "audit log broken at entry 5: entry 5 is missing"},
		{"relinked-after-removal", func(es []store.AuditEntry) []store.AuditEntry {
			// Renumbered and re-hashed from entry 1001 on, but entry
			// 1001 still names the removed entry's hash as its previous.
			es = append(es[:1000:1000], es[1001:]...)
			for i := 1000; i < len(es); i++ {
				es[i].Seq = int64(i + 1)
				es[i].Hash = store.AuditHash(es[i])
			}
			return es
		}, 1, "audit log broken at entry 1001"},
		// The whole chain rewritten with the public hash function after
		// an entry was removed: it links up, but the signed checkpoints
		// name other hashes.
		{"rewritten-with-the-public-hash", func(es []store.AuditEntry) []store.AuditEntry {
			es = append(es[:10:10], es[11:]...)
			es = rehash(es, 10)
			return append(es, store.AuditEntry{Seq: 2500, Actor: "nobody", Action: "padding", PrevHash: es[len(es)-1].Hash})
		}, 1, "audit log broken at entry 1000: entry 1000 hashes to"},
		{"cut-from-the-end", func(es []store.AuditEntry) []store.AuditEntry { return es[:2400] }, 1,
			"audit log broken at entry 2401: the log ends at entry 2400, but a signed checkpoint names entry 2500: entries were cut from its end"},
		{"first-not-genesis", func(es []store.AuditEntry) []store.AuditEntry {
			es[0].PrevHash = "ab"
			es[0].Hash = store.AuditHash(es[0])
			return es
		}, 1, "audit log broken at entry 1: entry 1 names previous hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeAudit(t, tt.tamper(auditChain(n)), cps, pub)
			r := rfEnv(t, []string{"RINGFENCE_TOKEN=rft_test"}, "audit", "verify", "--server", srv.URL)
			wantCode(t, r, tt.code)
			wantContains(t, r.stdout+r.stderr, tt.want)
		})
	}
	t.Run("empty", func(t *testing.T) {
		srv := fakeAudit(t, nil, nil, pub)
		r := rfEnv(t, []string{"RINGFENCE_TOKEN=rft_test"}, "audit", "verify", "--server", srv.URL)
		wantCode(t, r, 0)
		wantContains(t, r.stdout, "audit log verified: 0 entries, 0 signed checkpoints")
	})
	// A checkpoint signed with another key is named; so is a server whose
	// key is not the one pinned.
	t.Run("checkpoint-not-signed-with-the-key", func(t *testing.T) {
		forged := slices.Clone(cps)
		forged[0].Signature = ed25519.Sign(ed25519.NewKeyFromSeed(make([]byte, 32)), store.CheckpointMessage(1000, forged[0].Hash))
		srv := fakeAudit(t, auditChain(n), forged, pub)
		r := rfEnv(t, []string{"RINGFENCE_TOKEN=rft_test"}, "audit", "verify", "--server", srv.URL)
		wantCode(t, r, 1)
		wantContains(t, r.stderr, "audit log broken at entry 1000: the checkpoint of entry 1000 (key "+server.AuditKeyID(pub)+") has a bad signature")
	})
	t.Run("server-error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"unavailable","detail":"the store is unreachable; retry later"}`))
		}))
		defer srv.Close()
		r := rfEnv(t, []string{"RINGFENCE_TOKEN=rft_test", "RINGFENCE_SERVER=" + srv.URL}, "audit", "verify")
		wantCode(t, r, 2)
		wantContains(t, r.stderr, "ringfence: unavailable: the store is unreachable; retry later")
	})
}

func TestAdminUsage(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, append([]byte("kind: Bundle\n# "), bytes.Repeat([]byte("x"), 9<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	down := "http://" + refusedAddr(t) // nothing listens there
	token := []string{"RINGFENCE_TOKEN=rft_x", "RINGFENCE_SERVER=" + down}
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing-token", nil, []string{"whoami"}, 2, "no API token: pass --token or set RINGFENCE_TOKEN"},
		{"unreachable", token, []string{"tenants", "list"}, 2, "cannot reach the server at " + down},
		{"unreachable-flag-wins", []string{"RINGFENCE_TOKEN=rft_x", "RINGFENCE_SERVER=http://127.0.0.1:9"}, []string{"--server", down, "whoami"}, 2, down},
		{"bad-server-url", token, []string{"whoami", "--server", "localhost:8080"}, 2, `--server "localhost:8080": want a URL`},
		{"tenant-without-kind", token, []string{"tenants", "create", "x", "--name", "X"}, 2, "--kind is required"},
		{"channel-without-vendor", token, []string{"channels", "create", "ipc"}, 2, `want VENDOR/NAME`},
		{"token-without-role", token, []string{"tokens", "create", "--tenant", "acme"}, 2, "--role is required"},
		{"token-without-tenant", token, []string{"tokens", "create", "--role", "publisher"}, 2, "--tenant is required"},
		{"policy-without-track", token, []string{"policies", "set", "acme", "acme/ipc"}, 2, "--track is required"},
		{"policy-bad-track", token, []string{"policies", "set", "acme", "acme/ipc", "--track", "soon"}, 2, `unknown track "soon"`},
		{"halt-without-reason", token, []string{"releases", "halt", "rel-1"}, 2, "--reason is required"},
		{"approve-without-reason", token, []string{"release", "approve", "rel-1"}, 2, "--reason is required"},
		{"pause-without-reason", token, []string{"release", "pause", "rel-1"}, 2, "--reason is required"},
		{"resume-without-reason", token, []string{"release", "resume", "rel-1"}, 2, "--reason is required"},
		{"promote-without-reason", token, []string{"release", "promote", "rel-1"}, 2, "--reason is required"},
		{"status-without-id", token, []string{"release", "status"}, 2, "ringfence: release status: give ID (see ringfence release status --help)"},
		{"status-two-ids", token, []string{"release", "status", "a", "b"}, 2, "release status: takes ID, got 2 arguments: a b"},
		{"mistyped-subcommand", token, []string{"release", "stauts"}, 2, `unknown command "stauts" for "ringfence release"; did you mean status?`},
		{"release-bad-lane", token, []string{"release", "create", "acme/ipc", "293", "--lane", "urgent"}, 2, `--lane: unknown lane "urgent"`},
		{"kill-switch-without-reason", token, []string{"kill-switch", "engage"}, 2, "--reason is required"},
		{"kill-switch-bad-channel", token, []string{"kill-switch", "release", "--channel", "acme", "--reason", "x"}, 2, `--channel "acme": want VENDOR/NAME`},
		{"kill-switch-list-args", token, []string{"kill-switch", "list", "acme/ipc"}, 2, `unknown command "acme/ipc"`},
		{"budget-without-cap", token, []string{"budget", "set", "contoso"}, 2, "--hourly-cap-bp is required"},
		{"budget-cap-too-large", token, []string{"budget", "set", "contoso", "--hourly-cap-bp", "20000"}, 2, "--hourly-cap-bp 20000: want 0 (no cap) to 10000"},
		{"budget-without-org", token, []string{"budget", "set", "--hourly-cap-bp", "100"}, 2, "budget set: give ORG"},
		{"release-bad-version", token, []string{"releases", "create", "acme/ipc", "v2"}, 2, `version "v2"`},
		{"publish-missing-file", token, []string{"publish", filepath.Join(dir, "nope.yaml")}, 2, "nope.yaml"},
		{"publish-types-alone", token, []string{"publish", ipc292, "--types", types}, 2, "--types and --manifests go together"},
		{"publish-bad-channel", token, []string{"publish", ipc292, "--channel", "acme"}, 2, `--channel "acme"`},
		{"devices-bad-limit", token, []string{"devices", "list", "--limit", "20000"}, 2, "--limit 20000"},
		{"unknown-subcommand", token, []string{"tenants", "nope"}, 2, `unknown command "nope"`},
		{"unknown-flag", token, []string{"whoami", "--bogus"}, 2, "unknown flag: --bogus"},
		// Refused before any request: the input itself is wanting (1).
		{"publish-too-large", token, []string{"publish", big}, 1, "larger than the 8 MiB limit"},
		{"publish-malformed", token, []string{"publish", writeFile(t, dir, "bad.yaml", []byte("kind: Bundle\nvendor: [acme\n"))}, 1, "malformed YAML/JSON"},
		{"release-bad-plan", token, []string{"releases", "create", "acme/ipc", "293", "--plan", writeFile(t, dir, "plan.json", []byte(`{"waves": []}`))}, 1, "plan has no waves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rfEnv(t, tt.env, tt.args...)
			wantCode(t, r, tt.code)
			wantContains(t, r.stdout+r.stderr, tt.want)
			if tt.code == 2 && r.stdout != "" {
				t.Errorf("got stdout %q, want nothing on stdout for a usage error", r.stdout)
			}
		})
	}
	t.Run("help-hides-token", func(t *testing.T) {
		r := rfEnv(t, []string{"RINGFENCE_TOKEN=rft_secret_value"}, "tokens", "list", "--help")
		wantCode(t, r, 0)
		wantContains(t, r.stdout, "--token string")
		if strings.Contains(r.stdout, "rft_secret_value") {
			t.Errorf("help prints the token from the environment:\n%s", r.stdout)
		}
	})
	t.Run("server-config-refuses-admin-keys", func(t *testing.T) {
		// --token is a root flag for the admin commands, not a server setting.
		cfg := writeFile(t, dir, "server.yaml", []byte("token: rft_x\n"))
		r := rfEnv(t, nil, "server", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--config", cfg)
		wantCode(t, r, 2)
		wantContains(t, r.stderr, `unknown key "token"`)
	})
}
