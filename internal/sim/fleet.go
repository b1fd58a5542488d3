package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/memstore"
)

// channel is the one content channel the simulator rolls out on.
const channel = "acme/ipc"

// device is one simulated endpoint, kept small: the fleet is millions of
// these. Devices the rollout touches get an agentState besides.
type device struct {
	next    uint32 // virtual second of its next event (check-in, reboot, return)
	seen    uint32 // virtual second it was last heard from (+1; 0: never)
	pos     uint16 // cohort position on the channel
	org     uint16 // index into fleet.orgs
	stratum uint8  // index into fleet.strata
	active  uint8  // version index into sim.versions (0: none)
	lkg     uint8
	phase   uint8 // phaseUp, phaseDown (host crashed), phaseOffline
	fails   uint8 // check-ins failed in a row (outages)
	flags   uint8
}

const (
	phaseUp = iota
	phaseDown
	phaseOffline
)

// Device flags, for the figures.
const (
	flagExposed   = 1 << iota // activated the release's version
	flagCrashed               // crashed because of the release's fault
	flagInPlay                // has an agentState
	flagRecovered             // crashed, then back on a good version
)

type stratum struct {
	platform, agent, osBuild string
	id                       string // platform/agent/osBuild, the server's stratum key
}

type org struct {
	id       string
	internal bool
	early    bool
	window   string // maintenance window on the channel; "" any time
}

// fleet is the simulated devices and what they are.
type fleet struct {
	devs   []device
	strata []stratum
	orgs   []org
	sizes  map[string]int64 // devices per organisation
}

func deviceID(i int) string { return fmt.Sprintf("d%08d", i) }

func deviceIndex(id string) (int, bool) {
	if len(id) != 9 || id[0] != 'd' {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	return n, err == nil
}

// minInternal is the fewest devices of the vendor's internal
// organisation: enough for the gates' minimum exposure to judge the
// internal wave.
const minInternal = 20

// newFleet draws the devices: strata by the scenario's weights, the
// vendor's internal organisation first, then customer organisations; each
// device's cohort position is the server's (a hash of its id).
func newFleet(sc *Scenario, n int, rng *rand.Rand) *fleet {
	f := &fleet{devs: make([]device, n)}
	agents, aw := weights(sc.Fleet.Agents)
	oses, ow := weights(sc.Fleet.OSBuilds)
	idx := map[[2]int]uint8{}
	for a := range agents {
		for o := range oses {
			idx[[2]int{a, o}] = uint8(len(f.strata))
			f.strata = append(f.strata, stratum{platform: sc.Fleet.Platform, agent: agents[a], osBuild: oses[o],
				id: sc.Fleet.Platform + "/" + agents[a] + "/" + oses[o]})
		}
	}
	f.orgs = append(f.orgs, org{id: "acme-it", internal: true, early: true})
	for i := 0; i < sc.Fleet.Orgs; i++ {
		o := org{id: fmt.Sprintf("org-%05d", i+1), early: float64(i) < sc.Fleet.EarlyOrgs*float64(sc.Fleet.Orgs)}
		// The last organisations keep windows, the early ones none.
		if w := sc.Fleet.Windows; w != nil && float64(sc.Fleet.Orgs-i) <= w.Orgs*float64(sc.Fleet.Orgs) {
			o.window = w.Window
		}
		f.orgs = append(f.orgs, o)
	}
	// The vendor's own organisation has a fleet of its own, which does
	// not shrink with the simulated customers': whatever the scenario's
	// share, at least minInternal devices (or the whole fleet, if
	// smaller) when it has any.
	internal := int(math.Ceil(sc.Fleet.Internal * float64(n)))
	if sc.Fleet.Internal > 0 {
		internal = min(n, max(internal, minInternal))
	}
	for i := range f.devs {
		d := &f.devs[i]
		d.stratum = idx[[2]int{pick(aw, rng), pick(ow, rng)}]
		if i < internal {
			d.org = 0
		} else {
			d.org = uint16(1 + rng.IntN(sc.Fleet.Orgs))
		}
	}
	f.sizes = map[string]int64{}
	for i := range f.devs {
		f.sizes[f.orgs[f.devs[i].org].id]++
	}
	// The positions are a SHA-256 each: spread over the cores.
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f.devs[i].pos = uint16(rollout.CohortPosition(deviceID(i), channel))
			}
		}(w)
	}
	wg.Wait()
	return f
}

// weights turns {"a": 2, "b": 1} into sorted names and cumulative weights.
func weights(m map[string]float64) ([]string, []float64) {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	cum := make([]float64, len(names))
	total := 0.0
	for i, k := range names {
		total += m[k]
		cum[i] = total
	}
	for i := range cum {
		cum[i] /= total
	}
	return names, cum
}

func pick(cum []float64, rng *rand.Rand) int {
	x := rng.Float64()
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

// fleetStore is the store the simulated server runs on: an in-memory
// store (memstore) for everything but the devices, whose rows it makes up
// from the compact fleet on demand. A device enters the memstore the
// first time the server reads it, which only devices the rollout touches
// do, so the memstore holds thousands of devices, not millions.
type fleetStore struct {
	*memstore.Store
	sim *Sim

	mu      sync.Mutex
	created map[int]bool
}

func (s *Sim) deviceRow(i int) store.Device {
	d := &s.fleet.devs[i]
	st := s.fleet.strata[d.stratum]
	return store.Device{ID: deviceID(i), Org: s.fleet.orgs[d.org].id, CredHash: "-", Platform: st.platform, OSBuild: st.osBuild,
		AgentVersion: st.agent, EnrolledAt: s.epoch.Add(-24 * time.Hour), LastSeen: s.seenAt(d)}
}

func (s *Sim) seenAt(d *device) time.Time {
	if d.seen == 0 {
		return s.epoch.Add(-time.Hour)
	}
	return s.epoch.Add(time.Duration(d.seen-1) * time.Second)
}

// ensure puts device i into the memstore, reporting the baseline, before
// the server reads it.
func (fs *fleetStore) ensure(ctx context.Context, i int) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.created[i] {
		return nil
	}
	if err := fs.Store.CreateDevice(ctx, fs.sim.deviceRow(i)); err != nil {
		return err
	}
	fs.created[i] = true
	return nil
}

func (fs *fleetStore) GetDevice(ctx context.Context, id string) (store.Device, error) {
	i, ok := deviceIndex(id)
	if !ok || i >= len(fs.sim.fleet.devs) {
		return store.Device{}, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	if err := fs.ensure(ctx, i); err != nil {
		return store.Device{}, err
	}
	return fs.Store.GetDevice(ctx, id)
}

// ListDevices pages through the whole fleet in id order, as the cohort
// computation does.
func (fs *fleetStore) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	if f.Org != "" || f.Platform != "" || f.AgentVersion != "" {
		return nil, fmt.Errorf("the simulator's store lists devices by page only")
	}
	start := 0
	if f.After != "" {
		i, ok := deviceIndex(f.After)
		if !ok {
			return nil, fmt.Errorf("after: %q is not a simulated device", f.After)
		}
		start = i + 1
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	end := min(start+limit, len(fs.sim.fleet.devs))
	out := make([]store.Device, 0, max(end-start, 0))
	for i := start; i < end; i++ {
		out = append(out, fs.sim.deviceRow(i))
	}
	return out, nil
}

// TouchDevices: last-seen times go to the fleet, counters to the memstore.
// A simulation has one server, whose device cache already counts one
// heartbeat per device and window, so every heartbeat is counted.
func (fs *fleetStore) TouchDevices(ctx context.Context, seen []store.DeviceSeen, counters []store.Counter) error {
	counters = slices.Clip(counters) // AddBeats appends: never into the caller's array
	for _, d := range seen {
		if i, ok := deviceIndex(d.ID); ok && i < len(fs.sim.fleet.devs) {
			fs.sim.touch(i, d.LastSeen)
		}
		if d.Window > 0 {
			counters = store.AddBeats(counters, d.Beats)
		}
	}
	return fs.Store.TouchDevices(ctx, nil, counters)
}

// FleetSizes: organisations never change during a run, so they are
// counted once.
func (fs *fleetStore) FleetSizes(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64, len(fs.sim.fleet.sizes))
	for k, v := range fs.sim.fleet.sizes {
		out[k] = v
	}
	return out, nil
}

// DevicesOnVersion counts the fleet's devices running a version.
func (fs *fleetStore) DevicesOnVersion(ctx context.Context, ch string, version uint64) (int64, error) {
	if ch != channel {
		return 0, nil
	}
	vi, ok := fs.sim.versionIndex(version)
	if !ok {
		return 0, nil
	}
	var n int64
	for i := range fs.sim.fleet.devs {
		if fs.sim.fleet.devs[i].active == vi {
			n++
		}
	}
	return n, nil
}

// SilenceStats is the server's query over the fleet: devices offered the
// release (those that confirmed it apart) and the rest seen since it
// started, by organisation and stratum, and how many of each were last
// seen before the overdue time.
func (fs *fleetStore) SilenceStats(ctx context.Context, q store.SilenceQuery) ([]store.SilenceStat, error) {
	fs.sim.mu.Lock()
	defer fs.sim.mu.Unlock()
	offered := fs.sim.offered[q.Release]
	since, overdue := fs.sim.second(q.Since), fs.sim.second(q.OverdueBefore)
	ns := len(fs.sim.fleet.strata)
	stats := make([]store.SilenceStat, len(fs.sim.fleet.orgs)*ns)
	for i := range fs.sim.fleet.devs {
		d := &fs.sim.fleet.devs[i]
		st := &stats[int(d.org)*ns+int(d.stratum)]
		silent := d.seen < overdue+1
		switch {
		case offered[int32(i)] && q.Version > 0 && fs.sim.versions[d.lkg] >= q.Version:
			st.Offered++
			st.Confirmed++
			if silent {
				st.ConfirmedSilent++
			}
		case offered[int32(i)]:
			st.Offered++
			if silent {
				st.OfferedSilent++
			}
		case d.seen >= since+1:
			st.Control++
			if silent {
				st.ControlSilent++
			}
		}
	}
	var out []store.SilenceStat
	for i, st := range stats {
		if st.Offered+st.Control > 0 {
			st.Org, st.Stratum = fs.sim.fleet.orgs[i/ns].id, fs.sim.fleet.strata[i%ns].id
			out = append(out, st)
		}
	}
	slices.SortFunc(out, store.CompareSilence)
	return out, nil
}

// ApplyCheckins stores check-ins in the memstore and notes the offers the
// server made, for SilenceStats.
func (fs *fleetStore) ApplyCheckins(ctx context.Context, ws []store.CheckinWrite) ([]store.CheckinResult, error) {
	res, err := fs.Store.ApplyCheckins(ctx, ws)
	if err != nil {
		return res, err
	}
	fs.sim.mu.Lock()
	defer fs.sim.mu.Unlock()
	for _, w := range ws {
		for _, o := range w.Offers {
			if i, ok := deviceIndex(o.Device); ok {
				m := fs.sim.offered[o.Release]
				if m == nil {
					m = map[int32]bool{}
					fs.sim.offered[o.Release] = m
				}
				m[int32(i)] = true
			}
		}
	}
	return res, nil
}
