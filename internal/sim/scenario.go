package sim

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ringfence/ringfence/internal/rollout"
)

// Scenario is one simulation: a fleet, a release, what is wrong with it and
// with the world. Scenarios are YAML (docs/simulator.md); the built-in ones
// are in scenarios/.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Devices     int    `yaml:"devices"`
	Seed        uint64 `yaml:"seed"`
	// Duration is how much virtual time is simulated after the start.
	Duration        rollout.Duration `yaml:"duration"`
	CheckinInterval rollout.Duration `yaml:"checkin_interval"`
	// ControllerTick is how often the controller judges the release
	// (default 5s, the server's). Long healthy runs may take 30s: a halt
	// is then noticed up to that much later.
	ControllerTick rollout.Duration `yaml:"controller_tick"`
	Fleet          Fleet            `yaml:"fleet"`
	Release        Release          `yaml:"release"`
	Faults         []Fault          `yaml:"faults"`
	Noise          Noise            `yaml:"noise"`
	Outages        []Outage         `yaml:"outages"`
	// KillSwitch engages the channel's kill switch as an operator would.
	KillSwitch *KillSwitch `yaml:"kill_switch"`
}

// KillSwitch is engaged At after the simulation begins and released For
// later (0: it stays engaged).
type KillSwitch struct {
	At  rollout.Duration `yaml:"at"`
	For rollout.Duration `yaml:"for"`
}

// Windows gives a share of the customer organisations a maintenance
// window on the channel: their devices take new versions only inside it.
type Windows struct {
	Orgs float64 `yaml:"orgs"`
	// Window is "DAYS HH:MM-HH:MM" in UTC; simulations begin on Friday 19
	// July 2024 at 04:00.
	Window string `yaml:"window"`
}

// Fleet is who the devices are.
type Fleet struct {
	Platform string `yaml:"platform"`
	// Agents and OSBuilds are weights: {"7.11.0": 5, "7.12.0": 3}.
	Agents   map[string]float64 `yaml:"agents"`
	OSBuilds map[string]float64 `yaml:"os_builds"`
	// Orgs is how many customer organisations share the fleet, and
	// EarlyOrgs the share of them on the early track (the rest take ga).
	Orgs      int     `yaml:"orgs"`
	EarlyOrgs float64 `yaml:"early_orgs"`
	// Internal is the share of devices in the vendor's own organisation,
	// the first wave of every plan.
	Internal float64  `yaml:"internal"`
	Windows  *Windows `yaml:"windows"`
}

// Release is what is published and rolled out, Start after the
// simulation begins. The fleet starts on Baseline, a completed release.
type Release struct {
	Baseline string           `yaml:"baseline"` // built-in bundle name or file
	Bundle   string           `yaml:"bundle"`
	Version  uint64           `yaml:"version"`
	Start    rollout.Duration `yaml:"start"`
	// BypassValidation publishes the bundle without the validator, which
	// no real server allows: it tests the rollout and agent defences
	// alone.
	BypassValidation bool `yaml:"bypass_validation"`
	// Plan is the release's plan in the API's JSON shape (docs/rollout.md);
	// without it, the default content plan.
	PlanSpec any           `yaml:"plan"`
	Plan     *rollout.Plan `yaml:"-"`
	// ApproveAfter is how long the vendor's approver takes to look at a
	// release waiting at the end of its canary waves and approve it
	// (default 15m). Approving never overrides a gate.
	ApproveAfter rollout.Duration `yaml:"approve_after"`
}

// Fault is what the released content does to the devices it matches.
type Fault struct {
	// Kind: worker-crash (the worker dies loading it), host-crash (the
	// host dies, stays silent until it reboots, and crashes again at
	// start), fp-storm (false positives: a flood of actions).
	Kind        string   `yaml:"kind"`
	Agents      []string `yaml:"agents"`
	OSBuilds    []string `yaml:"os_builds"`
	Probability float64  `yaml:"probability"`
}

// Noise is the world's background: crashes, reboots and silences that have
// nothing to do with the release.
type Noise struct {
	CrashesPerDeviceHour float64 `yaml:"crashes_per_device_hour"`
	RebootsPerDeviceHour float64 `yaml:"reboots_per_device_hour"`
	// Offline is the share of devices that go quiet for a while (a lid
	// closed, night), for OfflineFor on average.
	Offline    float64          `yaml:"offline"`
	OfflineFor rollout.Duration `yaml:"offline_for"`
	// ActionsPerCheckin is the mean action count (blocks and alerts) a
	// device reports per check-in, on whatever version it runs. Reports
	// come in bursts (4 actions on average) and are over-dispersed: a
	// fiftieth of the devices report twenty times as often as the rest.
	ActionsPerCheckin float64 `yaml:"actions_per_checkin"`
}

// Outage is a window in which devices cannot reach the control plane.
// Without Orgs it is the control plane's own outage: no device reaches it
// and it does not run. With Orgs it is a network partition: that share of
// the organisations (whole sites, drawn from the seed) is cut off while
// the server and every other device go on.
type Outage struct {
	Start rollout.Duration `yaml:"start"`
	For   rollout.Duration `yaml:"for"`
	Orgs  float64          `yaml:"orgs"`
}

func (o Outage) activeAt(t time.Duration) bool {
	return t >= time.Duration(o.Start) && t < time.Duration(o.Start)+time.Duration(o.For)
}

// network is the scenario's outages over a fleet's organisations.
type network struct {
	outages []Outage
	cuts    [][]bool // per outage, the organisations it cuts off; nil: all
	active  uint64   // the outages in force, as last computed
	down    bool     // the control plane is down
	cut     []bool   // organisations cut off now (nil: none)
}

func newNetwork(sc *Scenario, orgs int) *network {
	n := &network{outages: sc.Outages, cuts: make([][]bool, len(sc.Outages))}
	for k, o := range sc.Outages {
		if o.Orgs <= 0 {
			continue
		}
		n.cuts[k] = make([]bool, orgs)
		for j := range n.cuts[k] {
			n.cuts[k][j] = unitHash(fmt.Sprintf("cut/%d/%d/%d", sc.Seed, k, j)) < o.Orgs
		}
	}
	return n
}

// at brings the network to virtual time t; it reports whether anything
// changed.
func (n *network) at(t time.Duration) bool {
	var active uint64
	for k, o := range n.outages {
		if k < 64 && o.activeAt(t) {
			active |= 1 << k
		}
	}
	if active == n.active {
		return false
	}
	n.active, n.down, n.cut = active, false, nil
	for k := range n.outages {
		if active&(1<<k) == 0 {
			continue
		}
		if n.cuts[k] == nil {
			n.down = true
			continue
		}
		if n.cut == nil {
			n.cut = make([]bool, len(n.cuts[k]))
		}
		for j, c := range n.cuts[k] {
			n.cut[j] = n.cut[j] || c
		}
	}
	return true
}

// reaches says whether a device of organisation org reaches the server.
func (n *network) reaches(org int) bool {
	return !n.down && (n.cut == nil || !n.cut[org])
}

// unitHash maps a key to [0,1): draws that depend on what is drawn, not
// on the order of the run's random stream.
func unitHash(key string) float64 {
	h := sha256.Sum256([]byte(key))
	return float64(binary.BigEndian.Uint64(h[:8])>>8) / float64(uint64(1)<<56)
}

// Fault kinds.
const (
	FaultWorkerCrash = "worker-crash"
	FaultHostCrash   = "host-crash"
	FaultFPStorm     = "fp-storm"
)

//go:embed scenarios/*.yaml
var builtin embed.FS

// Builtin names the built-in scenarios.
func Builtin() []string {
	ents, _ := builtin.ReadDir("scenarios")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Load reads a scenario: a built-in name or a YAML file.
func Load(name string) (*Scenario, error) {
	b, err := builtin.ReadFile("scenarios/" + name + ".yaml")
	src := "built-in scenario " + name
	if err != nil {
		if b, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("scenario %q: neither built in (%s) nor a readable file: %w", name, strings.Join(Builtin(), ", "), err)
		}
		src = name
	}
	return Parse(src, b)
}

// Parse decodes and checks a scenario, naming what is wrong and where.
func Parse(src string, b []byte) (*Scenario, error) {
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	s.defaults()
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &s, nil
}

func (s *Scenario) defaults() {
	if s.CheckinInterval == 0 {
		s.CheckinInterval = rollout.Duration(5 * time.Minute)
	}
	if s.ControllerTick == 0 {
		s.ControllerTick = rollout.Duration(5 * time.Second)
	}
	if s.Fleet.Platform == "" {
		s.Fleet.Platform = "windows"
	}
	if s.Fleet.Orgs == 0 {
		s.Fleet.Orgs = 100
	}
	if s.Release.Baseline == "" {
		s.Release.Baseline = "ipc-292@290"
	}
	if s.Release.ApproveAfter == 0 {
		s.Release.ApproveAfter = rollout.Duration(15 * time.Minute)
	}
	if s.Noise.OfflineFor == 0 {
		s.Noise.OfflineFor = rollout.Duration(2 * time.Hour)
	}
}

func (s *Scenario) validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("name: required")
	case s.Devices < 1 || s.Devices > 20_000_000:
		return fmt.Errorf("devices: %d, want 1 to 20,000,000", s.Devices)
	case s.Duration <= 0:
		return fmt.Errorf("duration: want a positive duration such as 2h")
	case s.CheckinInterval < rollout.Duration(time.Second):
		return fmt.Errorf("checkin_interval: %s is below one second", time.Duration(s.CheckinInterval))
	case s.ControllerTick < rollout.Duration(time.Second) || s.ControllerTick > rollout.Duration(5*time.Minute):
		return fmt.Errorf("controller_tick: %s, want 1s to 5m", time.Duration(s.ControllerTick))
	case len(s.Fleet.Agents) == 0 || len(s.Fleet.OSBuilds) == 0:
		return fmt.Errorf("fleet: agents and os_builds need at least one weighted entry each")
	case s.Fleet.Orgs < 1 || s.Fleet.Orgs > 60000:
		return fmt.Errorf("fleet.orgs: %d, want 1 to 60,000", s.Fleet.Orgs)
	case s.Fleet.EarlyOrgs < 0 || s.Fleet.EarlyOrgs > 1 || s.Fleet.Internal < 0 || s.Fleet.Internal > 0.5:
		return fmt.Errorf("fleet: early_orgs is a share 0-1 and internal a share 0-0.5")
	case s.Release.Bundle == "" || s.Release.Version == 0:
		return fmt.Errorf("release: bundle and version are required")
	}
	if w := s.Fleet.Windows; w != nil {
		if w.Orgs <= 0 || w.Orgs > 1 {
			return fmt.Errorf("fleet.windows.orgs: %v, want a share above 0 and at most 1", w.Orgs)
		}
		if _, err := rollout.ParseWindow(w.Window); err != nil {
			return fmt.Errorf("fleet.windows.window: %w", err)
		}
	}
	if k := s.KillSwitch; k != nil && (k.At < 0 || k.For < 0 || k.At >= s.Duration) {
		return fmt.Errorf("kill_switch: at %s for %s, want at within the duration (%s) and for at least 0",
			time.Duration(k.At), time.Duration(k.For), time.Duration(s.Duration))
	}
	for what, m := range map[string]map[string]float64{"fleet.agents": s.Fleet.Agents, "fleet.os_builds": s.Fleet.OSBuilds} {
		for k, w := range m {
			if w <= 0 {
				return fmt.Errorf("%s.%s: weight %v, want a positive number", what, k, w)
			}
		}
	}
	for i, f := range s.Faults {
		switch f.Kind {
		case FaultWorkerCrash, FaultHostCrash, FaultFPStorm:
		default:
			return fmt.Errorf("faults[%d].kind: %q, want worker-crash, host-crash or fp-storm", i, f.Kind)
		}
		if f.Probability <= 0 || f.Probability > 1 {
			return fmt.Errorf("faults[%d].probability: %v, want above 0 and at most 1", i, f.Probability)
		}
	}
	if s.Release.PlanSpec != nil {
		b, err := json.Marshal(s.Release.PlanSpec)
		if err != nil {
			return fmt.Errorf("release.plan: %w", err)
		}
		p, err := rollout.ParsePlan(b)
		if err != nil {
			return fmt.Errorf("release.plan: %w", err)
		}
		s.Release.Plan = &p
	}
	for i, o := range s.Outages {
		if o.For <= 0 || o.Start < 0 {
			return fmt.Errorf("outages[%d]: want a start at or after 0 and a positive for", i)
		}
		if !(o.Orgs >= 0 && o.Orgs <= 1) {
			return fmt.Errorf("outages[%d].orgs: %v is not a share from 0 to 1", i, o.Orgs)
		}
		if i >= 64 {
			return fmt.Errorf("outages: %d of them; at most 64", len(s.Outages))
		}
	}
	n := s.Noise
	if n.CrashesPerDeviceHour < 0 || n.RebootsPerDeviceHour < 0 || n.Offline < 0 || n.Offline > 0.9 || n.ActionsPerCheckin < 0 {
		return fmt.Errorf("noise: rates are non-negative and offline a share up to 0.9")
	}
	return nil
}

// matches reports whether the fault hits a device with these facts.
func (f Fault) matches(agent, osBuild string) bool {
	in := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	return in(f.Agents, agent) && in(f.OSBuilds, osBuild)
}
