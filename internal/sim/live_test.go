package sim

import (
	"context"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
)

func runLive(t *testing.T, sc *Scenario, o LiveOptions) *Result {
	t.Helper()
	l, err := NewLive(context.Background(), sc, o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := l.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	return r
}

// The 19 July bundle, validation bypassed, through the real server and
// real agents: the internal wave takes the hit, the server halts the
// release on the reverts it hears of, and every crashed host comes back
// by itself through its agent's boot-loop limit — the outcome the engine
// computes for the same fleet.
func TestLiveBypassHaltsAndHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("a live run takes a minute")
	}
	sc, err := Load("july19-bypass")
	if err != nil {
		t.Fatal(err)
	}
	sc.Release.Start = sc.Release.Start / 10
	const devices = 150
	r := runLive(t, sc, LiveOptions{Devices: devices, Speed: 40})
	if !r.Live || !r.Halted || r.Completed || r.ManualInterventions != 0 {
		t.Fatalf("live bypass: halted %v, completed %v, by hand %d: %s", r.Halted, r.Completed, r.ManualInterventions, r.Why)
	}
	if r.FinalWave != "internal" || r.CrashedDevices == 0 || r.CrashedDevices > minInternal || r.ExposedDevices > minInternal {
		t.Errorf("halted in wave %s with %d exposed and %d crashed: want some crashes, all within the %d internal devices", r.FinalWave, r.ExposedDevices, r.CrashedDevices, minInternal)
	}
	if r.TimeToHaltS < 0 || r.TimeToHaltS > 900 || r.TimeToRecoverS < 0 || r.TimeToRecoverS > 1800 {
		t.Errorf("time to halt %v s, to recover %v s", r.TimeToHaltS, r.TimeToRecoverS)
	}
	if r.Checkins < devices {
		t.Errorf("%d check-ins from %d devices", r.Checkins, devices)
	}
	// The engine, same fleet and seed: the same devices are struck, but
	// for those that happened to be offline while the wave ran.
	e := run(t, sc, Options{Devices: devices})
	if d := e.CrashedDevices - r.CrashedDevices; d < -3 || d > 3 || !e.Halted || e.FinalWave != r.FinalWave {
		t.Errorf("engine: crashed %d, halted %v in %s; live: crashed %d, halted %v in %s", e.CrashedDevices, e.Halted, e.FinalWave, r.CrashedDevices, r.Halted, r.FinalWave)
	}
}

// A good release through the real API, with the fleet cut off from the
// server for a while mid-rollout and later a third of the organisations
// partitioned off: it completes, approved and signed by the simulated
// approver, and neither silence halts anything. How far the release got
// before the outage depends on how fast goroutines ran; the outcome must
// not: the partition cuts off the internal organisation (seed 0), so a
// wave's deadline outlasts both outages, and silence is judged within
// organisations (a deadline halt there failed this test on a loaded
// machine).
func TestLiveOutageCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("a live run takes a minute")
	}
	sc, err := Parse("outage", []byte(`name: live-outage
devices: 120
duration: 3h
checkin_interval: 2m
fleet: {agents: {"7.11.0": 1, "7.12.0": 1}, os_builds: {"22631": 1}, orgs: 10, early_orgs: 0.5, internal: 0.01}
release:
  bundle: ipc-292
  version: 292
  start: 2m
  approve_after: 2m
  plan: {waves: [
    {name: internal, share: 10000, internal_only: true, canary: true, min_devices: 1, bake: 10m, deadline: 2h},
    {name: canary, share: 1000, canary: true, min_devices: 5, bake: 10m, deadline: 2h},
    {name: everyone, share: 10000, min_devices: 5, bake: 10m, deadline: 2h}]}
outages: [{start: 25m, for: 15m}, {start: 45m, for: 20m, orgs: 0.3}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := runLive(t, sc, LiveOptions{Speed: 40})
	// The release completes once the last wave has baked, not once every
	// device has it: how many the partition or a device's own offline
	// stretch kept away at that moment is timing (98 of 120 in one CI run),
	// so the bar is that most of the fleet was reached.
	if r.Halted || !r.Completed || r.ExposedDevices < int64(sc.Devices/2) {
		t.Fatalf("live outage: halted %v (%s), completed %v, exposed %d: %s", r.Halted, r.HaltReason, r.Completed, r.ExposedDevices, r.Why)
	}
	approved := false
	for _, s := range r.Timeline {
		approved = approved || s.State == "rolling" && s.Wave == 2
	}
	if !approved {
		t.Errorf("timeline %+v: never rolled the public wave (approval and production signature)", r.Timeline)
	}
	if time.Duration(r.VirtualS)*time.Second > 3*time.Hour {
		t.Errorf("ran %v s", r.VirtualS)
	}
}

// Live too: hosts still in their boot loops when the scenario ends are
// watched until they heal by themselves, and none counts as needing hands.
func TestLiveCrashesAtTheEndHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("a live run takes a minute")
	}
	sc, err := Load("july19-bypass")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = rollout.Duration(8 * time.Minute)
	sc.Release.Start = rollout.Duration(4 * time.Minute)
	r := runLive(t, sc, LiveOptions{Devices: 60, Speed: 40})
	if r.CrashedDevices == 0 {
		t.Fatalf("nothing crashed in the window: %+v", *r)
	}
	if r.ManualInterventions != 0 || r.TimeToRecoverS <= 0 || r.VirtualS <= float64(8*60) {
		t.Fatalf("crashed %d, by hand %d, recovered in %v s, ran %v s: want every crash healed past the end", r.CrashedDevices, r.ManualInterventions, r.TimeToRecoverS, r.VirtualS)
	}
}
