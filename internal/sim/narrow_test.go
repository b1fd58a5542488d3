package sim

import (
	"fmt"
	"strings"
	"testing"
)

// narrowFleet is a fleet small enough for the suite (12,000 devices) in
// which one stratum is a twentieth of the devices: nine strata (three agents × three OS
// builds), half the organisations on the early track, and a plan with
// short bakes that promises to catch 2% on any stratum of 300 early
// devices.
func narrowFleet(name, faults, outages string) string {
	return fmt.Sprintf(`name: %s
devices: 12000
seed: 4
duration: 6h
fleet:
  agents: {"7.10.0": 2, "7.11.0": 5, "7.12.0": 3}
  os_builds: {"19045": 5, "22631": 3.3, "20348": 1.7}
  orgs: 60
  early_orgs: 0.5
  internal: 0.001
release:
  bundle: ipc-292
  version: 292
  start: 10m
  approve_after: 10m
  plan:
    detect: {share: 0.02, min_stratum: 300}
    waves:
      - {name: internal, share: 10000, internal_only: true, canary: true, min_devices: 1, bake: 20m}
      - {name: canary, share: 50, canary: true, min_devices: 20, bake: 30m}
      - {name: early, share: 500, min_devices: 100, bake: 40m}
      - {name: quarter, share: 2500, min_devices: 500, bake: 40m}
      - {name: broad, share: 10000, bake: 40m}
noise:
  crashes_per_device_hour: 0.0002
  reboots_per_device_hour: 0.001
  offline: 0.1
  offline_for: 2h
%s%s`, name, faults, outages)
}

// Defects confined to one agent version, one OS build, or one agent × OS
// build cell (with a partition cutting 30% of the organisations off as
// it rolls out), crashing 2% of those hosts (5% of the cell's): each is
// halted by a gate — not by a wave's deadline — before the broad wave,
// with few hosts crashed, and every crashed host heals by itself. The
// cell is 600 hosts here, of which the waves before broad reach at most
// half: 2% of them is 6 crashed hosts, fewer than the gates need when a
// host counts once however often it crashes (rollout.DetectDevices); the
// narrow-cell scenario shows 2% of a cell on a fleet large enough.
func TestNarrowDefectsHaltedByAGate(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("three simulations")
	}
	t.Parallel()
	partition := "outages: [{start: 30m, for: 2h, orgs: 0.3}]\n"
	tests := []struct {
		name, fault, outages string
	}{
		{"one-agent", `{kind: host-crash, agents: ["7.12.0"], probability: 0.02}`, ""},
		{"one-os-build", `{kind: host-crash, os_builds: ["20348"], probability: 0.02}`, ""},
		{"one-cell-during-a-partition", `{kind: host-crash, agents: ["7.12.0"], os_builds: ["20348"], probability: 0.05}`, partition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Parse(tc.name, []byte(narrowFleet(tc.name, "faults: ["+tc.fault+"]\n", tc.outages)))
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, sc, Options{})
			if !r.Halted || r.Completed {
				t.Fatalf("%s: halted %v, completed %v: %s", tc.name, r.Halted, r.Completed, r.Why)
			}
			if strings.Contains(r.HaltReason, "deadline") {
				t.Errorf("halted by a deadline, not a gate: %s", r.HaltReason)
			}
			if r.FinalWave == "broad" {
				t.Errorf("halted only in the broad wave: %s", r.HaltReason)
			}
			if r.CrashedDevices > 20 || r.ManualInterventions != 0 {
				t.Errorf("%d hosts crashed (want at most 20), %d need hands", r.CrashedDevices, r.ManualInterventions)
			}
		})
	}
}

// A good release on a rough day — ten times the background crashes and
// reboots, a third of the fleet offline for hours, the control plane
// down for 45 minutes and later a third of the organisations cut off for
// two hours — completes every wave: the gates can conclude "no worse than
// control" on a noisy fleet. Seeds 6 and 11 put one background reboot or
// crash among the internal wave's 16 devices: a rate over the limit with
// no evidence behind it, which held the wave until its deadline halted a
// good release while the gates judged the point estimate.
func TestRoughDayCompletes(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("simulations")
	}
	t.Parallel()
	for _, seed := range []int{4, 6, 11} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			t.Parallel()
			src := narrowFleet("rough", "", "outages: [{start: 1h, for: 45m}, {start: 2h30m, for: 2h, orgs: 0.3}]\n")
			sc, err := Parse("rough", []byte(strings.Replace(src, "seed: 4", fmt.Sprintf("seed: %d", seed), 1)))
			if err != nil {
				t.Fatal(err)
			}
			sc.Duration *= 2
			sc.Noise.CrashesPerDeviceHour *= 10
			sc.Noise.RebootsPerDeviceHour *= 10
			sc.Noise.Offline, sc.Noise.OfflineFor = 0.33, sc.Noise.OfflineFor*3
			// Detections a healthy fleet makes anyway, over-dispersed (a
			// fiftieth of the devices make most of them): the action gate
			// must not read them as a storm.
			sc.Noise.ActionsPerCheckin = 0.05
			r := run(t, sc, Options{})
			if r.Halted || !r.Completed {
				t.Fatalf("rough day: halted %v (%s), completed %v: %s", r.Halted, r.HaltReason, r.Completed, r.Why)
			}
		})
	}
}

// Content that works but raises false positives on a third of one OS
// build's hosts, on a fleet whose background detections are
// over-dispersed: the action-rate gate halts it before the broad wave,
// and no host crashes.
func TestFalsePositiveStormHaltedByTheActionGate(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	sc, err := Parse("fp-storm", []byte(narrowFleet("fp-storm", `faults: [{kind: fp-storm, os_builds: ["22631"], probability: 0.3}]`+"\n", "")))
	if err != nil {
		t.Fatal(err)
	}
	sc.Noise.ActionsPerCheckin = 0.05
	r := run(t, sc, Options{})
	if !r.Halted || strings.Contains(r.HaltReason, "deadline") || !strings.Contains(r.HaltReason, "action-rate") {
		t.Fatalf("halted %v: %s; want the action-rate gate to decide", r.Halted, r.HaltReason)
	}
	if r.FinalWave == "broad" || r.CrashedDevices != 0 {
		t.Errorf("halted in wave %s with %d hosts crashed; want before broad, none crashed", r.FinalWave, r.CrashedDevices)
	}
	if r.StormActionsEnforced == 0 {
		t.Errorf("the storm's content never ran enforced; the shadow test's contrast needs it to")
	}
}

// A good release with shadow canaries completes: the action gate reads
// the shadow figures of a healthy fleet as no worse than control, and
// every device the canaries reached enforces it at the end.
func TestShadowCanaryReleaseCompletesEnforced(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	src := strings.NewReplacer("canary: true, min_devices: 1,", "canary: true, shadow: true, min_devices: 1,",
		"canary: true, min_devices: 20,", "canary: true, shadow: true, min_devices: 20,").Replace(narrowFleet("healthy-shadow", "", ""))
	sc, err := Parse("healthy-shadow", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sc.Noise.ActionsPerCheckin = 0.05
	r := run(t, sc, Options{})
	if !r.Completed || r.Halted {
		t.Fatalf("completed %v, halted %v: %s", r.Completed, r.Halted, r.HaltReason)
	}
	if r.InShadowAtEnd != 0 {
		t.Errorf("%d devices still run the release in shadow after it completed", r.InShadowAtEnd)
	}
}

// The same storm released with shadow canaries: the action-rate gate
// judges what the content would have done, halts in a shadow wave, and
// the storm blocks or alerts on nothing for real.
func TestShadowCanaryHaltsAStormWithNothingEnforced(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	src := narrowFleet("fp-storm-shadow", `faults: [{kind: fp-storm, os_builds: ["22631"], probability: 0.3}]`+"\n", "")
	src = strings.NewReplacer("canary: true, min_devices: 1,", "canary: true, shadow: true, min_devices: 1,",
		"canary: true, min_devices: 20,", "canary: true, shadow: true, min_devices: 20,").Replace(src)
	sc, err := Parse("fp-storm-shadow", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sc.Noise.ActionsPerCheckin = 0.05
	r := run(t, sc, Options{})
	if !r.Halted || !strings.Contains(r.HaltReason, "action-rate") || !strings.Contains(r.HaltReason, "in shadow") {
		t.Fatalf("halted %v: %s; want the action-rate gate to decide in a shadow wave", r.Halted, r.HaltReason)
	}
	if r.FinalWave != "internal" && r.FinalWave != "canary" {
		t.Errorf("halted in wave %s; want a shadow wave", r.FinalWave)
	}
	if r.StormActionsEnforced != 0 || r.StormActionsShadow == 0 || r.CrashedDevices != 0 {
		t.Errorf("storm actions enforced %d, in shadow %d, crashed %d; want none enforced, some in shadow, none crashed",
			r.StormActionsEnforced, r.StormActionsShadow, r.CrashedDevices)
	}
}

// A defect whose first signs are too few to decide (a worker that crashes
// on 4% of one cell's hosts) makes a gate lean worse and
// name its OS build; the controller widens the wave for strata of that
// build alone (audited), and the gate then decides.
func TestSuspiciousStratumIsWidened(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	src := narrowFleet("widen", `faults: [{kind: worker-crash, agents: ["7.12.0"], os_builds: ["20348"], probability: 0.04}]`+"\n", "")
	sc, err := Parse("widen", []byte(strings.Replace(src, "seed: 4", "seed: 12", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, sc, Options{})
	// The evidence points at build 20348 (the cell's stratum is already at
	// its wave's reach; its neighbour on the same build is widened).
	if r.Widenings == 0 || !strings.Contains(r.LastWidening, "/20348 from ") || strings.Contains(r.LastWidening, "19045") || strings.Contains(r.LastWidening, "22631") {
		t.Errorf("widenings %d, last %q: want strata of build 20348 widened, and only they", r.Widenings, r.LastWidening)
	}
	if !r.Halted || strings.Contains(r.HaltReason, "deadline") || !strings.Contains(r.HaltReason, "worker-crash") {
		t.Errorf("halted %v: %s; want the worker-crash gate to decide", r.Halted, r.HaltReason)
	}
}
