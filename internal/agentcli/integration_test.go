package agentcli_test

// Integration tests with the real binaries: `ringfence server --dev` and
// `ringfence-agent` processes talking over loopback HTTP, the worker a
// third process. Intervals are seconds, not minutes, so each story takes
// a few seconds of real time.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
)

var serverBin, agentBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir, err := os.MkdirTemp("", "ringfence-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "no go command on PATH:", err)
		return 2
	}
	for _, b := range []struct {
		dst *string
		pkg string
	}{{&serverBin, "./cmd/ringfence"}, {&agentBin, "./cmd/ringfence-agent"}, {new(string), "./cmd/ringfence-agent-worker"}} {
		*b.dst = filepath.Join(dir, filepath.Base(b.pkg))
		if runtime.GOOS == "windows" {
			*b.dst += ".exe"
		}
		build := exec.Command(goTool, "build", "-o", *b.dst, b.pkg)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
			return 2
		}
	}
	return m.Run()
}

// lockedBuffer collects a process's output while the test reads it.
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

func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGFENCE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// proc is a running binary.
type proc struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	exited chan struct{}
	err    error
}

func start(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGTERM and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM:\n%s", p.out.String())
	}
}

// devServer is `ringfence server --dev` with a 1 s check-in interval.
type devServer struct {
	*proc
	url, data, listen string
	creds             struct {
		Publisher  string `json:"publisher_token"`
		Approver   string `json:"approver_token"`
		OrgAdmin   string `json:"org_admin_token"`
		Admin      string `json:"admin_token"`
		Enroll     string `json:"enroll_token"`
		Server     string `json:"server"`
		SigningKey string `json:"approver_signing_key"`
	}
}

func startServer(t *testing.T) *devServer {
	t.Helper()
	// The first start takes any free port (a port probed free beforehand
	// may be taken before the server binds it); restarts keep the port the
	// server got, since enrolled agents know the server by it.
	s := &devServer{data: t.TempDir(), listen: "127.0.0.1:0"}
	s.run(t)
	// contoso takes acme/ipc releases while they roll out.
	s.api(t, "PUT", "/v1/orgs/contoso/policies/acme/ipc", s.creds.OrgAdmin, map[string]string{"track": "early"}, 200)
	return s
}

// run (re)starts the server process on its data directory and address.
func (s *devServer) run(t *testing.T) {
	t.Helper()
	s.proc = start(t, cleanEnv(), serverBin, "server", "--dev", "--data", s.data, "--listen", s.listen, "--log-level", "warn",
		"--checkin-interval", "1s", "--controller-tick", "1s")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// The credentials name the address the server listens on; a
		// restart on the same address writes the same file again.
		if b, err := os.ReadFile(filepath.Join(s.data, "dev-credentials.json")); err == nil && json.Unmarshal(b, &s.creds) == nil && s.creds.Server != "" {
			s.url = s.creds.Server
			if resp, err := http.Get(s.url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					s.listen = strings.TrimPrefix(s.url, "http://")
					return
				}
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited: %v\n%s", s.err, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server not ready:\n%s", s.out.String())
}

func (s *devServer) api(t *testing.T, method, path, token string, body any, want int) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

// publish publishes acme/ipc@version and releases it.
func (s *devServer) publish(t *testing.T, version int) string {
	t.Helper()
	s.publishOnly(t, version)
	return s.release(t, version)
}

// publishOnly publishes acme/ipc@version (ipc-292 with another version);
// the dev server holds the publisher's key, so it is signed for canary
// waves.
func (s *devServer) publishOnly(t *testing.T, version int) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "content", "bundles", "ipc-292.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.Replace(src, []byte("\nversion: 292\n"), []byte(fmt.Sprintf("\nversion: %d\n", version)), 1)
	req, _ := http.NewRequest("POST", s.url+"/v1/channels/acme/ipc/publish", bytes.NewReader(src))
	req.Header.Set("Authorization", "Bearer "+s.creds.Publisher)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("publish %d: %d %s", version, resp.StatusCode, b)
	}
}

// release rolls acme/ipc@version out to every device in one canary wave.
func (s *devServer) release(t *testing.T, version int) string {
	t.Helper()
	plan := map[string]any{"waves": []map[string]any{{"name": "everyone", "share": 10000, "canary": true, "min_devices": 1, "bake": "1h"}}}
	var rel struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.api(t, "POST", "/v1/releases", s.creds.Publisher, map[string]any{"channel": "acme/ipc", "version": version, "plan": plan}, 201), &rel); err != nil {
		t.Fatal(err)
	}
	return rel.ID
}

// device is one enrolled agent data directory.
type device struct {
	data string
	srv  *devServer
	run  *proc
}

func enroll(t *testing.T, s *devServer) *device {
	t.Helper()
	d := &device{data: t.TempDir(), srv: s}
	out, err := exec.Command(agentBin, "enroll", "--server", s.url, "--token", s.creds.Enroll, "--data", d.data,
		"--platform", "windows", "--os-build", "22631", "--agent-version", "7.12.0").CombinedOutput()
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	return d
}

// start runs the agent with short probation and crash windows.
func (d *device) start(t *testing.T, fault string, extra ...string) *proc {
	t.Helper()
	env := cleanEnv()
	if fault != "" {
		env = append(env, "RINGFENCE_FAULT="+fault)
	}
	args := append([]string{"run", "--data", d.data, "--probation", "3s", "--crash-window", "1m", "--max-backoff", "2s", "--log-level", "debug"}, extra...)
	d.run = start(t, env, agentBin, args...)
	return d.run
}

func (d *device) status(t *testing.T) agent.Report {
	t.Helper()
	out, err := exec.Command(agentBin, "status", "--data", d.data, "--json").Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var r agent.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	return r
}

func (d *device) channel(t *testing.T) agent.ChannelStatus {
	t.Helper()
	for _, c := range d.status(t).Channels {
		if c.Channel == "acme/ipc" {
			return c
		}
	}
	return agent.ChannelStatus{}
}

// waitFor polls cond for up to 30 s.
func (d *device) waitFor(t *testing.T, what string, cond func(agent.ChannelStatus) bool) agent.ChannelStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := d.channel(t)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			out := ""
			if d.run != nil {
				out = d.run.out.String()
			}
			t.Fatalf("not %s after 30 s: %+v\n--- agent:\n%s", what, c, tail(out, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func confirmedOn(v uint64) func(agent.ChannelStatus) bool {
	return func(c agent.ChannelStatus) bool {
		return c.ActiveVersion == v && c.LKGVersion == v && c.State == agent.StateActive
	}
}

// The happy path: the seed release 292 is applied, runs its probation and
// is confirmed; the server sees the device on it.
func TestAgentAppliesAndConfirms(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	d.start(t, "")
	c := d.waitFor(t, "confirmed on 292", confirmedOn(292))
	if c.Slot == "" {
		t.Errorf("no slot: %+v", c)
	}
	bundle := filepath.Join(d.data, "slots", "acme", "ipc", string(c.Slot), "292.bundle")
	if _, err := os.Stat(bundle); err != nil {
		t.Errorf("the active slot has no bundle: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(d.data, "slots", "*", "*", "*", "*.unverified")); len(m) > 0 {
		t.Errorf("unverified files left: %v", m)
	}
	id := d.status(t).DeviceID
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(s.api(t, "GET", "/v1/devices/"+id, s.creds.Admin, nil, 200)), `"active_version":292`) {
		if time.Now().After(deadline) {
			t.Fatalf("the server does not see the device on 292: %s", s.api(t, "GET", "/v1/devices/"+id, s.creds.Admin, nil, 200))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.run.stop(t)
	if d.run.err != nil {
		t.Errorf("agent after SIGTERM: %v\n%s", d.run.err, d.run.out.String())
	}
	if _, err := os.Stat(filepath.Join(d.data, "running")); err == nil {
		t.Error("the running marker survived a clean stop")
	}
}

// A version that crashes the worker is reverted after three crashes and
// refused; the server hears why.
func TestAgentRevertsACrashLoop(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	d.start(t, "worker-crash:acme/ipc@293")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	rel := s.publish(t, 293)
	c := d.waitFor(t, "reverted", func(c agent.ChannelStatus) bool { return c.State == agent.StateReverted })
	if c.ActiveVersion != 292 || c.LKGVersion != 292 || !strings.Contains(c.LastError, "crash loop") || len(c.Refused) != 1 || c.Refused[0] != 293 {
		t.Fatalf("after the crash loop: %+v", c)
	}
	// The agent reports it: the release's status counts the revert.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := string(s.api(t, "GET", "/v1/releases/"+rel+"/status", s.creds.Publisher, nil, 200))
		if strings.Contains(st, `"halted"`) || strings.Contains(st, `"metric":"revert"`) && !strings.Contains(st, `"revert: no device`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never heard of the revert: %s\n--- agent:\n%s", st, tail(d.run.out.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("agent log:\n%s", tail(d.run.out.String(), 6000))
	// Refused: it stays on 292 while 293 is offered.
	time.Sleep(3 * time.Second)
	if c := d.channel(t); c.ActiveVersion != 292 {
		t.Fatalf("took the refused version again: %+v", c)
	}
}

// A version that takes the host down while activating, and again at every
// start while it is loaded (as on 19 July): a service manager restarts
// the agent each time it dies, as systemd's Restart=always does, and the
// third start reverts before loading anything, with no help from the
// server. No step waits on a clock: each start either dies by the fault
// or comes up reverted.
func TestAgentRecoversFromABootLoopOffline(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	d.start(t, "host-crash:acme/ipc@293")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	s.publish(t, 293)
	select {
	case <-d.run.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the host-crash fault never fired:\n%s", tail(d.run.out.String(), 3000))
	}
	if c := d.channel(t); c.State != agent.StatePending || c.ActiveVersion != 293 {
		t.Fatalf("after the crash the journal says %+v, want 293 pending", c)
	}
	// The server goes away: recovery must not need it.
	s.stop(t)
	var p *proc
	for start := 1; ; start++ {
		p = d.start(t, "host-crash:acme/ipc@293")
		died := func() bool {
			select {
			case <-p.exited:
				return true
			default:
				return false
			}
		}
		d.waitFor(t, "died loading 293 or reverted", func(c agent.ChannelStatus) bool { return died() || c.State == agent.StateReverted })
		c := d.channel(t) // read again: the journal as the process left it
		if !died() {
			if start != agent.DefaultBootLimit || c.State != agent.StateReverted || c.ActiveVersion != 292 || !strings.Contains(c.LastError, "boot loop") {
				t.Fatalf("start %d after the first crash: %+v; want the boot-loop limit to revert to 292 at start %d",
					start, c, agent.DefaultBootLimit)
			}
			break
		}
		if start >= agent.DefaultBootLimit {
			t.Fatalf("still dying at start %d after the first crash: %+v", start, c)
		}
		if c.ActiveVersion != 293 || c.PendingAttempts != start {
			t.Fatalf("start %d died: %+v, want 293 pending with %d attempts", start, c, start)
		}
	}
	if st := d.status(t); st.QueuedEvents == 0 {
		t.Error("the boot loop and revert are not queued for the server")
	}
	// Back online, the events reach the server and the queue drains.
	s.run(t)
	deadline := time.Now().Add(20 * time.Second)
	for d.status(t).QueuedEvents > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events never delivered: %+v\n%s", d.status(t), tail(p.out.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c := d.channel(t); c.ActiveVersion != 292 {
		t.Fatalf("took 293 again after the boot loop: %+v", c)
	}
}

// Planned restarts during probation (the service manager stops the agent
// with SIGTERM and starts it again, as for an update) are not a boot loop:
// after more of them than the boot-loop limit the new version is still on
// probation, with no failed start counted. The probation is an hour, so
// no restart can outlast it.
func TestPlannedRestartsDuringProbationKeepTheVersion(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	p := d.start(t, "")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	p.stop(t)
	p = d.start(t, "", "--probation", "1h")
	s.publish(t, 293)
	d.waitFor(t, "293 on probation", func(c agent.ChannelStatus) bool { return c.ActiveVersion == 293 && c.State == agent.StateProbation })
	for i := range agent.DefaultBootLimit + 1 {
		p.stop(t)
		p = d.start(t, "", "--probation", "1h")
		c := d.waitFor(t, "293 back on probation", func(c agent.ChannelStatus) bool {
			return c.State == agent.StateProbation || c.State == agent.StateReverted
		})
		if c.ActiveVersion != 293 || c.State != agent.StateProbation || c.PendingAttempts != 0 {
			t.Fatalf("after planned restart %d: %+v, want 293 on probation with no failed start", i+1, c)
		}
	}
}

// Content that makes the worker stop answering (an endless loop in the
// evaluator): the watchdog kills the worker when a request goes
// unanswered, the restarted worker hangs again on the same content, and
// the second hang within the window reverts to the last-known-good, which
// the worker then runs; the agent refuses the version after.
func TestAgentWatchdogRevertsContentThatHangsTheWorker(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	d.start(t, "hang:acme/ipc@293", "--worker-timeout", "1s")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	s.publish(t, 293)
	c := d.waitFor(t, "reverted", func(c agent.ChannelStatus) bool { return c.State == agent.StateReverted })
	if c.ActiveVersion != 292 || !slices.Contains(c.Refused, 293) || !strings.Contains(c.LastError, "hung") {
		t.Fatalf("after the hangs: %+v; want back on 292, 293 refused, the reason naming the hang", c)
	}
	// The worker runs 292 again and answers: its counts come with the
	// next check-ins, and the agent reports no new failure.
	st := d.status(t)
	if !strings.Contains(tail(d.run.out.String(), 20000), "worker hung") {
		t.Errorf("the agent's log does not name the hang:\n%s", tail(d.run.out.String(), 3000))
	}
	if st.Channels[0].ActiveVersion != 292 {
		t.Errorf("status: %+v", st)
	}
}

// A target whose bytes were altered on the server is refused; nothing is
// staged and the device keeps its content.
func TestAgentRefusesATamperedTarget(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	d.start(t, "")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	// A partial download from an earlier, killed run is in the way.
	c := d.channel(t)
	other := map[agent.Slot]agent.Slot{"a": "b", "b": "a"}[c.Slot]
	slot := filepath.Join(d.data, "slots", "acme", "ipc", string(other))
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(slot, "293.bundle.unverified"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.publishOnly(t, 293)
	files, _ := filepath.Glob(filepath.Join(s.data, "tuf", "targets", "acme", "ipc", "canary", "*.293.bundle"))
	if len(files) != 1 {
		t.Fatalf("target files: %v", files)
	}
	// Same length, other bytes: the digest, not the length, must catch it.
	orig, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], bytes.Repeat([]byte("X"), len(orig)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.release(t, 293)
	c = d.waitFor(t, "refusing 293", func(c agent.ChannelStatus) bool { return strings.Contains(c.LastError, "293 not installed") })
	if c.ActiveVersion != 292 || c.State != agent.StateActive {
		t.Fatalf("after the tampered download: %+v", c)
	}
	if m, _ := filepath.Glob(filepath.Join(slot, "*")); len(m) > 0 {
		t.Fatalf("staged after a refusal: %v", m)
	}
}

// A halted version lands on the signed deny list: a device running it
// goes back, and a device that was off, whose journal still runs it,
// goes back at start before loading it, from the last verified deny list
// on its disk, with the server down. Nothing waits on a clock.
func TestAgentLeavesADeniedVersion(t *testing.T) {
	s := startServer(t)
	d, other := enroll(t, s), enroll(t, s)
	p := d.start(t, "")
	q := other.start(t, "")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	other.waitFor(t, "confirmed on 292", confirmedOn(292))
	rel := s.publish(t, 293)
	d.waitFor(t, "on 293", func(c agent.ChannelStatus) bool { return c.ActiveVersion == 293 })
	p.stop(t)
	s.api(t, "POST", "/v1/releases/"+rel+"/halt", s.creds.Publisher, map[string]string{"reason": "bad content"}, 200)
	// The running device fetches the deny list the controller signs.
	denyOnDisk := func(data string) bool {
		b, err := os.ReadFile(filepath.Join(data, "deny.json"))
		return err == nil && strings.Contains(string(b), "acme/ipc/293.bundle")
	}
	c := other.waitFor(t, "293 on its deny list, and not on 293", func(c agent.ChannelStatus) bool {
		return denyOnDisk(other.data) && c.ActiveVersion == 292
	})
	if c.State == agent.StateReverted && (len(c.Refused) == 0 || c.Refused[0] != 293) {
		t.Fatalf("the running device left 293 without refusing it: %+v", c)
	}
	q.stop(t)
	// The device that was off gets the same verified list on its disk (as
	// if it had fetched it just before going down), and starts with the
	// server gone.
	b, err := os.ReadFile(filepath.Join(other.data, "deny.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.data, "deny.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	d.start(t, "")
	c = d.waitFor(t, "back on 292", func(c agent.ChannelStatus) bool { return c.ActiveVersion == 292 })
	if len(c.Refused) == 0 || c.Refused[0] != 293 || !strings.Contains(c.LastError, "deny list") {
		t.Fatalf("293 not refused at start from the deny list: %+v", c)
	}
}

// The server goes away for a while: the agent backs off, keeps its
// content, keeps counting, and delivers every event once it is back.
func TestAgentRidesOutAServerOutage(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	events := filepath.Join("..", "..", "examples", "content", "events", "ipc-sample.jsonl")
	d.start(t, "", "--events", events, "--events-rate", "100")
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	s.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	var st agent.Report
	for {
		st = d.status(t)
		if st.Failures >= 3 && st.QueuedEvents > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed check-ins or queued events while the server is down: %+v\n%s", st, tail(d.run.out.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.LastError == "" || st.Channels[0].ActiveVersion != 292 || st.Channels[0].State != agent.StateActive {
		t.Fatalf("offline: %+v", st)
	}
	s.run(t)
	deadline = time.Now().Add(30 * time.Second)
	for {
		st = d.status(t)
		var dv struct {
			LastSeq uint64 `json:"last_seq"`
		}
		if err := json.Unmarshal(s.api(t, "GET", "/v1/devices/"+st.DeviceID, s.creds.Admin, nil, 200), &dv); err != nil {
			t.Fatal(err)
		}
		if st.QueuedEvents == 0 && st.Failures == 0 && dv.LastSeq == st.LastSeq && st.LastSeq > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage: agent %+v, server last_seq %d\n%s", st, dv.LastSeq, tail(d.run.out.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
