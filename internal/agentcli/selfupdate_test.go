//go:build linux

package agentcli_test

// The agent updating itself, with real binaries: the launcher, two agent
// builds told apart by the version the linker gave them, and the dev
// server. Linux only: the tests stop process groups with signals.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
)

const buildChannel = "acme/sensor-linux"

// newAgentBuild builds ringfence-agent reporting agentVersion, and its
// worker beside it.
func newAgentBuild(t *testing.T, agentVersion string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"ringfence-agent", "ringfence-agent-worker"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, name), "-ldflags", "-X github.com/ringfence/ringfence/internal/agent.Version="+agentVersion, "./cmd/"+name)
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	return filepath.Join(dir, "ringfence-agent")
}

// agentChannel has contoso (the dev organisation) follow the dev server's
// agent-build channel for Linux early.
func agentChannel(t *testing.T, s *devServer) {
	t.Helper()
	s.api(t, "PUT", "/v1/orgs/contoso/policies/"+buildChannel, s.creds.OrgAdmin, map[string]string{"track": "early"}, 200)
}

// publishBuild publishes exe as version with `ringfence publish --build`;
// extra flags say what the executable cannot.
func publishBuild(t *testing.T, s *devServer, exe string, version int, extra ...string) string {
	t.Helper()
	args := append([]string{"publish", "--build", exe, "--channel", buildChannel, "--version", fmt.Sprint(version)}, extra...)
	cmd := exec.Command(serverBin, args...)
	cmd.Env = cleanEnv("RINGFENCE_SERVER="+s.url, "RINGFENCE_TOKEN="+s.creds.Publisher)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ringfence publish --build: %v\n%s", err, out)
	}
	return string(out)
}

// releaseBuild rolls the build out in one wave; its revert gate judges at
// alpha 0.1 (one device can be no more evidence: e = 12.8), so one device's revert is enough evidence.
func releaseBuild(t *testing.T, s *devServer, version int) string {
	t.Helper()
	gates := []map[string]any{{"metric": "revert", "limit": 0.02, "ratio": 3, "alpha": 0.1, "min_exposure": 1}}
	plan := map[string]any{"waves": []map[string]any{{"name": "everyone", "share": 10000, "canary": true, "min_devices": 1, "bake": "1h", "gates": gates}}}
	var rel struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.api(t, "POST", "/v1/releases", s.creds.Publisher, map[string]any{"channel": buildChannel, "version": version, "plan": plan}, 201), &rel); err != nil {
		t.Fatal(err)
	}
	return rel.ID
}

// enrollLinux enrols a device that reports this host's platform and its
// own build's agent version.
func enrollLinux(t *testing.T, s *devServer) *device {
	t.Helper()
	d := &device{data: t.TempDir(), srv: s}
	out, err := exec.Command(agentBin, "enroll", "--server", s.url, "--token", s.creds.Enroll, "--data", d.data,
		"--platform", "linux", "--os-build", "6.8").CombinedOutput()
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	return d
}

// launch starts the launcher, in its own process group so the test can
// kill it with the agent it runs, as a host losing power would.
func (d *device) launch(t *testing.T, trialTimeout string, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(agentBin, "launch", "--data", d.data, "--trial-timeout", trialTimeout, "--log-level", "debug", "--",
		"--probation", "3s", "--crash-window", "1m", "--max-backoff", "2s", "--log-level", "debug"), exited: make(chan struct{})}
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { killGroup(p) })
	d.run = p
	return p
}

// killGroup kills the launcher and every process it started.
func killGroup(p *proc) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (d *device) build(t *testing.T) agent.ChannelStatus {
	t.Helper()
	for _, c := range d.status(t).Channels {
		if c.Channel == buildChannel {
			return c
		}
	}
	return agent.ChannelStatus{}
}

// waitBuild polls the agent-build channel for up to 60 s.
func (d *device) waitBuild(t *testing.T, what string, cond func(agent.ChannelStatus) bool) agent.ChannelStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := d.build(t)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 60 s: %+v\n--- launcher and agent:\n%s", what, c, tail(d.run.out.String(), 6000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serverAgentVersion is the agent version the server last heard from the
// device.
func (d *device) serverAgentVersion(t *testing.T) string {
	t.Helper()
	var id struct {
		DeviceID string `json:"device_id"`
	}
	b, err := os.ReadFile(filepath.Join(d.data, agent.IdentityFile))
	if err != nil || json.Unmarshal(b, &id) != nil {
		t.Fatalf("identity: %v", err)
	}
	var dev struct {
		AgentVersion string `json:"agent_version"`
	}
	if err := json.Unmarshal(d.srv.api(t, "GET", "/v1/devices/"+id.DeviceID, d.srv.creds.Admin, nil, 200), &dev); err != nil {
		t.Fatal(err)
	}
	return dev.AgentVersion
}

func waitServer(t *testing.T, d *device, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for d.serverAgentVersion(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the server never heard agent %s (last: %s)\n%s", want, d.serverAgentVersion(t), tail(d.run.out.String(), 6000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAgentUpdatesItself: a newer build released on the agent channel is
// verified, installed beside the running one, started by the launcher,
// checks in as the new version and becomes last-known-good. A power cut
// while the new build is on probation leaves a working agent that
// finishes the job.
func TestAgentUpdatesItself(t *testing.T) {
	newExe := newAgentBuild(t, "7.13.0")
	s := startServer(t)
	agentChannel(t, s)
	d := enrollLinux(t, s)
	d.launch(t, "40s")
	waitServer(t, d, agent.Version)

	out := publishBuild(t, s, newExe, 2)
	if want := "agent 7.13.0 for linux/" + runtime.GOARCH + ", with its worker"; !strings.Contains(out, want) {
		t.Errorf("publish says %q, want it to name %q (read from the executable)", out, want)
	}
	releaseBuild(t, s, 2)

	// Power cut in the middle: the build was staged and the launcher
	// started it, but it has not yet run its probation.
	d.waitBuild(t, "on probation of build 2", func(c agent.ChannelStatus) bool { return c.ActiveVersion == 2 && c.LKGVersion == 0 })
	killGroup(d.run)
	d.launch(t, "40s")

	c := d.waitBuild(t, "confirmed on build 2", confirmedOn(2))
	if c.Slot == "" {
		t.Errorf("build 2 confirmed without a slot: %+v", c)
	}
	waitServer(t, d, "7.13.0")
	if got := d.status(t).AgentVersion; got != "7.13.0" {
		t.Errorf("ringfence-agent status says agent %s, want the running build's 7.13.0", got)
	}
	if !strings.Contains(d.run.out.String(), "build=2") {
		t.Errorf("the launcher never said it started build 2:\n%s", tail(d.run.out.String(), 4000))
	}
	// The build's own small worker runs, not the agent's fallback.
	if want := filepath.Join("2", "ringfence-agent-worker"); !strings.Contains(d.run.out.String(), want) {
		t.Errorf("the new build's worker is not its own %s:\n%s", want, tail(d.run.out.String(), 4000))
	}

	// The build removed from disk: the launcher runs its own binary, which
	// asks for the journal's build; the launcher backs off instead of
	// spinning between the two (a few starts in 3 s, not hundreds).
	killGroup(d.run)
	exe := filepath.Join(d.data, "slots", "acme", "sensor-linux", string(c.Slot), "2", "ringfence-agent")
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	d.launch(t, "40s")
	time.Sleep(3 * time.Second)
	if n := strings.Count(d.run.out.String(), `msg="agent started"`); n > 5 {
		t.Errorf("the launcher started an agent %d times in 3 s with the journal's build gone: it spins", n)
	}
}

// TestAgentSwitchSurvivesAKillAtEachStep: the switch to a new build is
// killed -9 at each of its steps (staged, journaled, the launcher about
// to start it) and the host loses power there; the next start runs a
// working agent, which finishes the switch.
func TestAgentSwitchSurvivesAKillAtEachStep(t *testing.T) {
	newExe := newAgentBuild(t, "7.13.0")
	for _, step := range []string{"switch-staged", "switch-journaled", "switch-launch"} {
		t.Run(step, func(t *testing.T) {
			s := startServer(t)
			agentChannel(t, s)
			d := enrollLinux(t, s)
			d.launch(t, "40s", "RINGFENCE_FAULT="+step+":"+buildChannel+"@2")
			waitServer(t, d, agent.Version)
			publishBuild(t, s, newExe, 2)
			releaseBuild(t, s, 2)
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(d.run.out.String(), "fault injected") {
				if time.Now().After(deadline) {
					t.Fatalf("the fault never fired:\n%s", tail(d.run.out.String(), 4000))
				}
				time.Sleep(100 * time.Millisecond)
			}
			killGroup(d.run) // and the power goes
			d.launch(t, "40s")
			d.waitBuild(t, "confirmed on build 2", confirmedOn(2))
			waitServer(t, d, "7.13.0")
		})
	}
}

// TestAgentTakesBackABuildThatCannotStart: a build that exits at once is
// started by the launcher --boot-limit times, then reverted by the
// launcher; the previous build runs again, reports the revert, refuses
// the build, and the release halts on its revert gate.
func TestAgentTakesBackABuildThatCannotStart(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "ringfence-agent")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken build: exiting at start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	agentChannel(t, s)
	d := enrollLinux(t, s)
	d.launch(t, "40s")
	waitServer(t, d, agent.Version)

	publishBuild(t, s, broken, 3, "--platform", "linux", "--arch", runtime.GOARCH, "--agent-version", "7.14.0")
	id := releaseBuild(t, s, 3)

	c := d.waitBuild(t, "reverted from build 3", func(c agent.ChannelStatus) bool {
		return c.State == agent.StateReverted && c.ActiveVersion == 0 && strings.Contains(c.LastError, "launcher started")
	})
	if got := strings.Count(d.run.out.String(), "broken build: exiting at start"); got != agent.DefaultBootLimit {
		t.Errorf("the broken build started %d times, want the boot limit, %d", got, agent.DefaultBootLimit)
	}
	if !strings.Contains(c.LastError, "never reached healthy") {
		t.Errorf("last error %q does not say why", c.LastError)
	}
	waitServer(t, d, agent.Version)

	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Release struct {
				State  string `json:"state"`
				Reason string `json:"reason"`
			} `json:"release"`
		}
		raw := s.api(t, "GET", "/v1/releases/"+id+"/status", s.creds.Publisher, nil, 200)
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if st.Release.State == "halted" || st.Release.State == "rolled-back" {
			if !strings.Contains(st.Release.Reason, "revert") && !strings.Contains(st.Release.Reason, "boot-loop") {
				t.Errorf("halted for %q, want the revert or boot-loop gate", st.Release.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("release still %s: %s", st.Release.State, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Still refused, still on the launcher's own build, after more
	// check-ins.
	time.Sleep(3 * time.Second)
	if c := d.build(t); c.ActiveVersion != 0 || c.State != agent.StateReverted {
		t.Errorf("after the revert: %+v, want to stay reverted on the launcher's own build", c)
	}
}

// TestAgentTakesBackABuildThatHangs: a build that starts and never checks
// in (here it only sleeps) is stopped by the launcher at the trial
// timeout and reverted; the previous build runs again.
func TestAgentTakesBackABuildThatHangs(t *testing.T) {
	hung := filepath.Join(t.TempDir(), "ringfence-agent")
	if err := os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	agentChannel(t, s)
	d := enrollLinux(t, s)
	d.launch(t, "4s")
	waitServer(t, d, agent.Version)
	publishBuild(t, s, hung, 4, "--platform", "linux", "--arch", runtime.GOARCH, "--agent-version", "7.15.0")
	releaseBuild(t, s, 4)
	c := d.waitBuild(t, "reverted from build 4", func(c agent.ChannelStatus) bool {
		return c.State == agent.StateReverted && c.ActiveVersion == 0
	})
	if !strings.Contains(c.LastError, "did not reach healthy within 4s") {
		t.Errorf("last error %q, want the launcher's trial timeout", c.LastError)
	}
	waitServer(t, d, agent.Version)
}

// Under the launcher the agent's stdin is the launcher's request to stop,
// on every platform (Windows has no signal to ask with): closed, the
// agent stops cleanly, leaving no running marker, so the planned stop is
// not counted as a failed start.
func TestLaunchedAgentStopsWhenAskedOnStdin(t *testing.T) {
	s := startServer(t)
	d := enroll(t, s)
	p := &proc{cmd: exec.Command(agentBin, "run", "--data", d.data, "--probation", "3s", "--max-backoff", "2s"), exited: make(chan struct{})}
	p.cmd.Env = cleanEnv(agent.LaunchedEnv + "=0")
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	ask, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	d.run = p
	d.waitFor(t, "confirmed on 292", confirmedOn(292))
	if _, err := os.Stat(filepath.Join(d.data, "running")); err != nil {
		t.Fatalf("no running marker while it runs: %v", err)
	}
	ask.Close()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after its stdin closed:\n%s", tail(p.out.String(), 3000))
	}
	if p.err != nil {
		t.Errorf("agent after its stdin closed: %v\n%s", p.err, tail(p.out.String(), 3000))
	}
	if _, err := os.Stat(filepath.Join(d.data, "running")); err == nil {
		t.Error("the running marker survived the stop the launcher asked for")
	}
}
