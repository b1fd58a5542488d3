package sim

import (
	"context"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
)

func TestBuiltinScenariosParse(t *testing.T) {
	names := Builtin()
	for _, want := range []string{"healthy", "july19", "july19-bypass", "outage", "subtle"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("built-in scenario %s is missing (have %v)", want, names)
		}
	}
	for _, n := range names {
		sc, err := Load(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if sc.Name != n {
			t.Errorf("%s.yaml is named %q", n, sc.Name)
		}
	}
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	base := `name: x
devices: 100
duration: 1h
fleet: {agents: {"7.11.0": 1}, os_builds: {"22631": 1}}
release: {bundle: ipc-292, version: 292}
`
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown-field", base + "colour: red\n", "field colour not found"},
		{"no-devices", strings.Replace(base, "devices: 100", "devices: 0", 1), "devices: 0"},
		{"bad-duration", strings.Replace(base, "duration: 1h", "duration: soon", 1), "soon"},
		{"no-agents", strings.Replace(base, `agents: {"7.11.0": 1}, `, "", 1), "fleet: agents and os_builds"},
		{"negative-weight", strings.Replace(base, `"7.11.0": 1`, `"7.11.0": -1`, 1), "fleet.agents.7.11.0: weight -1"},
		{"bad-fault", base + "faults: [{kind: meltdown, probability: 1}]\n", "faults[0].kind"},
		{"bad-probability", base + "faults: [{kind: host-crash, probability: 2}]\n", "faults[0].probability"},
		{"bad-plan", strings.Replace(base, "version: 292}", "version: 292, plan: {waves: []}}", 1), "release.plan"},
		{"bad-outage", base + "outages: [{start: 1h}]\n", "outages[0]"},
		{"bad-partition", base + "outages: [{start: 1h, for: 1h, orgs: 1.5}]\n", "outages[0].orgs: 1.5"},
		{"bad-window", strings.Replace(base, `os_builds: {"22631": 1}}`, `os_builds: {"22631": 1}, windows: {orgs: 0.5, window: "someday 25:00-26:00"}}`, 1), "fleet.windows.window"},
		{"window-share", strings.Replace(base, `os_builds: {"22631": 1}}`, `os_builds: {"22631": 1}, windows: {orgs: 0, window: "daily 01:00-02:00"}}`, 1), "fleet.windows.orgs: 0"},
		{"kill-switch-after-the-end", base + "kill_switch: {at: 2h}\n", "kill_switch: at 2h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test.yaml") {
				t.Fatalf("got %v, want an error naming test.yaml and %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("ok.yaml", []byte(base)); err != nil {
		t.Fatalf("the base scenario: %v", err)
	}
}

func run(t *testing.T, sc *Scenario, o Options) *Result {
	t.Helper()
	s, err := New(context.Background(), sc, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	return r
}

// The normal pipeline: the validator rejects channel-291 at publish, with
// the finding that names input 21 and agent 7.11; nothing is exposed.
func TestJuly19IsRejectedAtPublish(t *testing.T) {
	sc, err := Load("july19")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, sc, Options{Devices: 3000})
	if !r.RejectedAtPublish || r.ExposedDevices != 0 || !strings.Contains(r.Rejection, `input 21 "pipe_owner_sid" but agent 7.11.0 (windows) supplies 20 inputs`) {
		t.Fatalf("july19: %+v", r)
	}
}

// Validation bypassed: the rollout and the agents alone. The internal wave
// takes the hit, the gates halt the release within minutes, and every
// crashed host comes back by itself through the boot-loop limit.
func TestBypassHaltsAndHealsByItself(t *testing.T) {
	engineOnly(t)
	sc, err := Load("july19-bypass")
	if err != nil {
		t.Fatal(err)
	}
	sc.Fleet.Internal = 0.005 // 150 of 30,000: enough to judge at this size
	sc.Duration = sc.Duration / 2
	r := run(t, sc, Options{Devices: 30000})
	if !r.Halted || r.Completed || r.ManualInterventions != 0 {
		t.Fatalf("bypass: halted %v, completed %v, by hand %d: %s", r.Halted, r.Completed, r.ManualInterventions, r.Why)
	}
	if r.CrashedDevices == 0 || r.CrashedDevices > 150 || r.ExposedDevices > 300 {
		t.Errorf("crashed %d, exposed %d: want some crashes, all within the internal organisation's 150 devices", r.CrashedDevices, r.ExposedDevices)
	}
	if r.TimeToHaltS < 0 || r.TimeToHaltS > 600 || r.TimeToRecoverS < 0 || r.TimeToRecoverS > 1800 {
		t.Errorf("time to halt %v s, to recover %v s: want at most 600 and 1800", r.TimeToHaltS, r.TimeToRecoverS)
	}
	if r.FinalWave != "internal" {
		t.Errorf("halted in wave %s, want internal", r.FinalWave)
	}
}

const shortRelease = `name: short
devices: 4000
duration: 8h
fleet: {agents: {"7.11.0": 1, "7.12.0": 1}, os_builds: {"22631": 1}, orgs: 20, early_orgs: 0.5, internal: 0.01}
release:
  bundle: ipc-292
  version: 292
  start: 5m
  approve_after: 5m
  plan: {waves: [
    {name: internal, share: 10000, internal_only: true, canary: true, min_devices: 1, bake: 20m},
    {name: canary, share: 100, canary: true, min_devices: 5, bake: 20m},
    {name: everyone, share: 10000, min_devices: 5, bake: 20m}]}
`

// The control plane unreachable for half an hour mid-rollout: every device
// goes quiet, the control group too; later a network partition cuts 30% of
// the organisations off for an hour while the rest carry on. The rollout
// resumes afterwards and neither silence halts anything.
func TestOutageDoesNotHalt(t *testing.T) {
	engineOnly(t)
	sc, err := Parse("outage", []byte(shortRelease+"outages: [{start: 50m, for: 30m}, {start: 1h30m, for: 1h, orgs: 0.3}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, sc, Options{})
	if r.Halted || !r.Completed {
		t.Fatalf("outage: halted %v (%s), completed %v: %s", r.Halted, r.HaltReason, r.Completed, r.Why)
	}
}

// A good release on a quiet fleet with a short plan completes every wave,
// approved by the simulated approver, with no halt.
func TestGoodReleaseCompletes(t *testing.T) {
	engineOnly(t)
	sc, err := Load("healthy")
	if err != nil {
		t.Fatal(err)
	}
	sc2, err := Parse("short", []byte(shortRelease))
	if err != nil {
		t.Fatal(err)
	}
	sc2.Noise = sc.Noise
	r := run(t, sc2, Options{})
	if !r.Completed || r.Halted || r.SpuriousHalt || r.CrashedDevices != 0 {
		t.Fatalf("good release: completed %v halted %v (%s): %s", r.Completed, r.Halted, r.HaltReason, r.Why)
	}
	if len(r.Timeline) < 4 {
		t.Errorf("timeline %+v: want every wave and the approval", r.Timeline)
	}
	// The report and chart are written for it.
	dir := t.TempDir()
	if err := WriteReport(dir, sc2, r, []Point{{T: 60, Exposed: 1}, {T: 120, Exposed: 2}}, -1); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "chart.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A run with an incident gets a second panel, zoomed to it: a taller
	// chart than a good run's one panel.
	bad := t.TempDir()
	incident := []Point{{T: 60, Exposed: 1000}, {T: 600, Exposed: 5000, Crashed: 3, Down: 3}, {T: 900, Exposed: 5000, Crashed: 3, Recovered: 3}, {T: 7200, Exposed: 5000, Crashed: 3, Recovered: 3}}
	if err := WriteReport(bad, sc2, r, incident, 700); err != nil {
		t.Fatal(err)
	}
	height := func(dir string) int {
		f, err := os.Open(filepath.Join(dir, "chart.png"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg, err := png.DecodeConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Height
	}
	if good, withIncident := height(dir), height(bad); withIncident <= good {
		t.Errorf("chart heights: %d with an incident, %d without; want the incident's own panel", withIncident, good)
	}
}

// A seed is the whole run: the same scenario and seed give the same figures
// and the same timeline, to the second (the server's check-in jitter is
// drawn from the run's source too).
func TestSameSeedSameRun(t *testing.T) {
	engineOnly(t)
	sc, err := Load("subtle")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = sc.Duration / 4
	a := run(t, sc, Options{Devices: 20000, Seed: 7})
	b := run(t, sc, Options{Devices: 20000, Seed: 7})
	a.WallS, b.WallS, a.PeakRSSBytes, b.PeakRSSBytes, a.BytesPerDevice, b.BytesPerDevice = 0, 0, 0, 0, 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7 twice:\n%+v\n%+v", *a, *b)
	}
	if a.Checkins == 0 || a.ServerCheckins == 0 {
		t.Fatalf("nothing happened: %+v", *a)
	}
}

// An outage without orgs takes the control plane down for everyone; one
// with orgs cuts about that share of the organisations off, the same ones
// for the same seed, and only while it lasts.
func TestNetworkOutagesAndPartitions(t *testing.T) {
	engineOnly(t)
	sc := &Scenario{Seed: 3, Outages: []Outage{
		{Start: rollout.Duration(time.Hour), For: rollout.Duration(time.Hour)},
		{Start: rollout.Duration(3 * time.Hour), For: rollout.Duration(time.Hour), Orgs: 0.25},
	}}
	n := newNetwork(sc, 1000)
	if n.at(0); !n.reaches(7) || n.down {
		t.Fatal("before any outage, a device does not reach the server")
	}
	if n.at(90 * time.Minute); n.reaches(7) || !n.down {
		t.Fatal("in the control plane's outage, a device reaches it")
	}
	if changed := n.at(150 * time.Minute); !changed || !n.reaches(7) || n.down {
		t.Fatal("after the outage, devices do not reach the server again")
	}
	n.at(200 * time.Minute)
	cut := 0
	for org := 0; org < 1000; org++ {
		if !n.reaches(org) {
			cut++
		}
	}
	if n.down || cut < 200 || cut > 300 {
		t.Fatalf("partition of 25%%: %d of 1000 organisations cut off, control plane down %v", cut, n.down)
	}
	again := newNetwork(sc, 1000)
	again.at(200 * time.Minute)
	for org := 0; org < 1000; org++ {
		if again.reaches(org) != n.reaches(org) {
			t.Fatalf("organisation %d: the same seed cut different organisations", org)
		}
	}
	if n.at(5 * time.Hour); !n.reaches(7) || n.cut != nil {
		t.Fatal("after the partition, organisations stay cut off")
	}
}

// Hosts that crash in the scenario's last minutes are still in their boot
// loops when it ends: the run goes on until they heal by themselves, and
// none is counted as needing hands. The figures are those at the end.
func TestCrashesAtTheEndHealBeforeTheyCount(t *testing.T) {
	sc, err := Load("july19-bypass")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = rollout.Duration(14 * time.Minute)
	sc.Release.Start = rollout.Duration(10 * time.Minute)
	r := run(t, sc, Options{Devices: 3000})
	if r.CrashedDevices == 0 {
		t.Fatalf("nothing crashed in the window: %+v", *r)
	}
	if r.ManualInterventions != 0 || r.TimeToRecoverS <= 0 || r.VirtualS <= float64(14*60) {
		t.Fatalf("crashed %d, by hand %d, recovered in %v s, ran %v s: want every crash healed past the end", r.CrashedDevices, r.ManualInterventions, r.TimeToRecoverS, r.VirtualS)
	}
}

// Seeds run side by side give each seed's own run: nothing is shared
// between runs but the process.
func TestRunSeedsInParallelAreTheSeedsRuns(t *testing.T) {
	sc, err := Load("subtle")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = sc.Duration / 4
	o := Options{Devices: 5000, Seed: 3, Parallel: 2}
	sum, err := RunSeeds(context.Background(), sc, o, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Seeds != 2 || len(sum.Runs) != 2 || sum.Devices != 5000 {
		t.Fatalf("summary of %d seeds, %d runs, %d devices", sum.Seeds, len(sum.Runs), sum.Devices)
	}
	for k, got := range sum.Runs {
		want := run(t, sc, Options{Devices: 5000, Seed: 3 + uint64(k)})
		for _, r := range []*Result{got, want} {
			r.WallS, r.PeakRSSBytes, r.BytesPerDevice = 0, 0, 0
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d side by side:\n%+v\nalone:\n%+v", 3+k, *got, *want)
		}
	}
}
