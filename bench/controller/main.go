// Command controller measures the rollout controller's tick at fleet
// scale. It builds the state of a fleet directly through the store API (no
// HTTP): vendor acme with channel acme/ipc, bundles 292 and 293 compiled
// from the examples, organisations on the early track, -devices devices
// over eight strata reporting their channel state, release 292 completed
// -prev-hours ago and release 293 in its canary wave with its stratified
// cohort, the offers made to the devices it reached, and the telemetry
// counters the server would have written (one-minute windows per
// organisation and stratum: heartbeats, applies, confirmations, crashes,
// and the control group's heartbeats and crashes). Then, on a real
// server.New over that store, it times ControlOnce: -ticks ticks that
// change nothing, -cohort-ticks ticks that recompute the cohort (the first
// tick of a wave), and one tick that halts the release after a burst of
// crashes. In the same run it times a trivial store round trip (GetRelease)
// as the baseline, and the queries a tick makes, one by one. It prints one
// JSON object last.
//
//	go run ./bench/controller [-devices 100000] [-ticks 20] [-prev-hours 24]
//	go run ./bench/controller -db "$RINGFENCE_TEST_POSTGRES"   # on PostgreSQL
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the PostgreSQL database

	"github.com/ringfence/ringfence/examples"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// tickBudget is the controller's default tick: new telemetry must be
// judged, and a failing gate halt the release, within it.
const tickBudget = 5 * time.Second

type result struct {
	Store         string  `json:"store"`
	Devices       int     `json:"devices"`
	Orgs          int     `json:"orgs"`
	Strata        int     `json:"strata"`
	Offers        int     `json:"offers"`
	CounterRows   int     `json:"counter_rows"`
	ReleaseRows   int     `json:"counter_rows_release"`  // of the live release 293
	PreviousRows  int     `json:"counter_rows_previous"` // of the completed release 292
	PrevHours     int     `json:"prev_hours"`
	BuildS        float64 `json:"build_s"`
	Ticks         int     `json:"ticks"`
	FirstTickMS   float64 `json:"first_tick_ms"`
	TickP50MS     float64 `json:"tick_p50_ms"`
	TickP90MS     float64 `json:"tick_p90_ms"`
	TickMaxMS     float64 `json:"tick_max_ms"`
	CohortTickMS  float64 `json:"cohort_tick_ms"`     // median
	CohortMaxMS   float64 `json:"cohort_tick_max_ms"` // slowest
	HaltTickMS    float64 `json:"halt_tick_ms"`
	BaselineMS    float64 `json:"baseline_ms"` // median GetRelease
	PingMS        float64 `json:"ping_ms"`     // median Ping
	BudgetShare   float64 `json:"budget_share"`
	CohortShare   float64 `json:"cohort_budget_share"`
	BaselineRatio float64 `json:"tick_vs_baseline"`
	// Medians of the queries a tick makes, timed alone.
	Parts       map[string]float64 `json:"parts_ms"`
	TickAlloc   uint64             `json:"tick_alloc_bytes"`
	CohortAlloc uint64             `json:"cohort_tick_alloc_bytes"`
	BaseHeap    uint64             `json:"base_heap_bytes"` // live heap after a GC, before the ticks
	PeakHeap    uint64             `json:"peak_heap_bytes"` // largest heap sampled (every 5 ms) during the ticks
}

type options struct {
	devices, ticks, cohortTicks, orgs, prevHours int
	db, cpuProfile                               string
	seed                                         uint64
	writers                                      int // concurrent write transactions while building
}

func main() {
	var o options
	flag.IntVar(&o.devices, "devices", 100000, "devices in the fleet")
	flag.IntVar(&o.ticks, "ticks", 20, "controller ticks to time when nothing changes (also the baseline's sample size)")
	flag.IntVar(&o.cohortTicks, "cohort-ticks", 3, "ticks to time that recompute the cohort")
	flag.IntVar(&o.orgs, "orgs", 40, "customer organisations (plus one internal organisation)")
	flag.IntVar(&o.prevHours, "prev-hours", 24, "age of the previous release 292, whose counters the controller sums every tick (at least 2)")
	flag.StringVar(&o.db, "db", "", "PostgreSQL server URL (postgres://...): a fresh database is created on it and dropped afterwards; empty: SQLite in a temporary directory")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed ticks to this file")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the synthetic fleet")
	flag.Parse()
	if o.devices < 1000 || o.ticks < 1 || o.cohortTicks < 1 || o.orgs < 1 || o.prevHours < 2 {
		fmt.Fprintln(os.Stderr, "bench: want -devices >= 1000, -ticks >= 1, -cohort-ticks >= 1, -orgs >= 1, -prev-hours >= 2")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx := context.Background()
	st, kind, cleanup, err := openStore(ctx, o.db)
	if err != nil {
		return err
	}
	defer cleanup()
	defer st.Close()
	// SQLite has one writer; PostgreSQL takes a round trip per row, so
	// the build writes over several connections there.
	o.writers = 1
	if kind == "postgres" {
		o.writers = 4
	}

	t0 := time.Now()
	fx, err := build(ctx, st, o)
	if err != nil {
		return err
	}
	r := result{Store: kind, Devices: o.devices, Orgs: o.orgs + 1, Strata: len(strata), Offers: fx.offers, CounterRows: fx.releaseRows + fx.previousRows,
		ReleaseRows: fx.releaseRows, PreviousRows: fx.previousRows, PrevHours: o.prevHours, BuildS: time.Since(t0).Seconds(), Ticks: o.ticks}
	logf("built the fleet in %v", time.Since(t0).Round(time.Millisecond))
	if kind == "postgres" {
		// Autovacuum analyses a bulk load within a minute or so; do it now
		// so the plans timed do not change halfway through.
		if _, err := st.DB().ExecContext(ctx, "ANALYZE"); err != nil {
			return err
		}
	}

	if err := measure(ctx, st, o, fx, &r); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return nil
}

// openStore opens SQLite in a temporary directory, or a fresh database on
// the PostgreSQL server named by dbURL.
func openStore(ctx context.Context, dbURL string) (*sqlstore.Store, string, func(), error) {
	if dbURL == "" {
		dir, err := os.MkdirTemp("", "ringfence-bench-controller-")
		if err != nil {
			return nil, "", nil, err
		}
		st, err := sqlstore.Open(ctx, "", dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, "", nil, err
		}
		return st, "sqlite", func() { os.RemoveAll(dir) }, nil
	}
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		return nil, "", nil, err
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "rfbench_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, "", nil, fmt.Errorf("create database on %s: %w", redact(dbURL), err)
	}
	drop := func() {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	u.Path = "/" + name
	st, err := sqlstore.Open(ctx, u.String(), "")
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	logf("PostgreSQL database %s", name)
	return st, "postgres", drop, nil
}

func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "the -db URL"
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// --- the fleet ---

const channel = "acme/ipc"

// stratum is a platform, agent version and OS build, with its weight in
// the fleet.
type stratum struct {
	agent, build string
	weight       float64
}

// strata: Windows only (bundle 292/293 targets windows >=7.11), two agent
// versions, four OS builds.
var strata = func() []stratum {
	var out []stratum
	for _, a := range []struct {
		v string
		w float64
	}{{"7.11.0", 0.4}, {"7.12.0", 0.6}} {
		for _, b := range []struct {
			v string
			w float64
		}{{"19045", 0.25}, {"22621", 0.20}, {"22631", 0.40}, {"26100", 0.15}} {
			out = append(out, stratum{agent: a.v, build: b.v, weight: a.w * b.w})
		}
	}
	return out
}()

func (s stratum) name() string { return "windows/" + s.agent + "/" + s.build }

type device struct {
	id       string
	org      int // index in fixture.orgs; 0 is the internal organisation
	stratum  int
	phase    int // heartbeats fall in the minutes m with (m+phase)%5 == 0
	treated  bool
	offerAt  time.Time // treated: when it was offered 293
	applyAt  time.Time // treated: when it applied 293
	apply292 time.Time
	lastSeen time.Time
}

// fixture is what the build left for the measurements.
type fixture struct {
	now          time.Time // the simulated present: the server's clock starts here
	relID        string
	prevID       string
	gatesSince   time.Time
	cohort       rollout.Cohort
	orgs         []string
	offers       int
	canaryCells  map[int]int // cell -> canary devices in it
	releaseRows  int
	previousRows int
}

func build(ctx context.Context, st store.Store, o options) (*fixture, error) {
	rng := mrand.New(mrand.NewPCG(o.seed, 0x5eed))
	now := time.Now().Truncate(time.Minute)
	prevStart := now.Add(-time.Duration(o.prevHours) * time.Hour)
	prevRollout := time.Duration(o.prevHours) * time.Hour / 4 // 292 reached the fleet in the first quarter of its life
	gatesSince := now.Add(-2 * time.Hour)                     // 293 started two hours ago
	waveStart := now.Add(-45 * time.Minute)                   // and is 45 minutes into its 1-hour canary bake
	fx := &fixture{now: now, relID: "rel-acme-ipc-293-bench", prevID: "rel-acme-ipc-292-bench", gatesSince: gatesSince}

	// Tenants, channel, policies.
	if err := st.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme Security", CreatedAt: prevStart}); err != nil {
		return nil, err
	}
	if err := st.CreateChannel(ctx, store.Channel{ID: channel, Vendor: "acme", Name: "ipc", Kind: store.ChannelContent, Category: "detection", CreatedAt: prevStart}); err != nil {
		return nil, err
	}
	fx.orgs = []string{"acme-it"}
	for i := range o.orgs {
		fx.orgs = append(fx.orgs, fmt.Sprintf("org-%03d", i))
	}
	for i, id := range fx.orgs {
		if err := st.CreateTenant(ctx, store.Tenant{ID: id, Kind: store.TenantOrg, Name: id, Internal: i == 0, CreatedAt: prevStart}); err != nil {
			return nil, err
		}
		if err := st.PutPolicy(ctx, store.Policy{Org: id, Channel: channel, Track: "early", UpdatedAt: prevStart}); err != nil {
			return nil, err
		}
	}

	// Artifacts: the example bundle as 292 and relabelled 293, compiled.
	cat, err := server.ExampleCatalog()
	if err != nil {
		return nil, err
	}
	for _, v := range []uint64{292, 293} {
		b, err := compileBundle(cat, v)
		if err != nil {
			return nil, err
		}
		if err := st.PutArtifact(ctx, store.Artifact{Channel: channel, Version: v, SHA256: content.Hash(b), Size: int64(len(b)), Bytes: b, CreatedAt: prevStart}); err != nil {
			return nil, err
		}
	}

	// Devices: organisations sized by a Zipf-like law, the internal one
	// 0.2% of the fleet; strata by weight.
	weights := make([]float64, len(fx.orgs))
	total := 0.0
	for i := 1; i < len(weights); i++ {
		weights[i] = 1 / math.Pow(float64(i), 0.8)
		total += weights[i]
	}
	nInternal := max(20, o.devices/500)
	devs := make([]device, o.devices)
	cds := make([]rollout.CohortDevice, o.devices)
	for i := range devs {
		d := &devs[i]
		h := sha256.Sum256(fmt.Appendf(nil, "bench-device-%d-%d", o.seed, i))
		d.id = "dev-" + hex.EncodeToString(h[:10])
		if i < nInternal {
			d.org = 0
		} else {
			d.org = pick(rng, weights[1:], total) + 1
		}
		d.stratum = pickStratum(rng)
		d.phase = rng.IntN(5)
		d.apply292 = prevStart.Add(time.Duration(rng.Int64N(int64(prevRollout))))
		cds[i] = rollout.CohortDevice{Position: rollout.CohortPosition(d.id, channel), Stratum: strata[d.stratum].name(), Internal: d.org == 0, Early: true}
	}

	// The canary cohort, as the controller computes it, and who it reached.
	plan := rollout.DefaultContentPlan()
	fx.cohort = rollout.ComputeCohort(plan, 1, cds, rollout.DefaultStratumMin, nil, rollout.Growth{})
	fx.canaryCells = map[int]int{}
	for i := range devs {
		d := &devs[i]
		switch {
		case cds[i].Internal:
			d.offerAt = gatesSince.Add(time.Duration(rng.Int64N(int64(10 * time.Minute))))
		case cds[i].Position < max(plan.Waves[1].Share, fx.cohort.Bounds[cds[i].Stratum]):
			d.offerAt = waveStart.Add(time.Duration(rng.Int64N(int64(10 * time.Minute))))
		default:
			continue
		}
		d.treated = true
		d.applyAt = d.offerAt.Add(30*time.Second + time.Duration(rng.Int64N(int64(150*time.Second))))
		fx.offers++
		if d.org != 0 {
			fx.canaryCells[d.org*len(strata)+d.stratum]++
		}
	}
	if fx.offers != fx.cohort.Targeted[1] {
		return nil, fmt.Errorf("the bench reached %d devices, the cohort says %d", fx.offers, fx.cohort.Targeted[1])
	}
	// Last seen: within the check-in interval, but 0.3% went quiet 20 to
	// 100 minutes ago (after being offered 293, if they were).
	for i := range devs {
		d := &devs[i]
		d.lastSeen = now.Add(-time.Duration(rng.Int64N(int64(5 * time.Minute))))
		if rng.Float64() < 0.003 {
			d.lastSeen = now.Add(-20*time.Minute - time.Duration(rng.Int64N(int64(80*time.Minute))))
			if d.treated && d.lastSeen.Before(d.applyAt) {
				d.lastSeen = d.applyAt.Add(time.Minute)
			}
		}
	}
	logf("fleet: %d devices in %d organisations and %d strata; cohort reaches %d (internal %d, canary %d)",
		o.devices, len(fx.orgs), len(strata), fx.offers, fx.cohort.Targeted[0], fx.cohort.Targeted[1]-fx.cohort.Targeted[0])

	// Releases: 292 completed, 293 rolling in its canary wave.
	planJSON, _ := json.Marshal(plan)
	cohortJSON, _ := json.Marshal(fx.cohort)
	last := len(plan.Waves) - 1
	if err := st.CreateRelease(ctx, store.Release{ID: fx.prevID, Channel: channel, Version: 292, Plan: planJSON, State: store.ReleaseCompleted, Wave: last,
		Lane: "normal", CreatedBy: "publisher@acme", CreatedAt: prevStart, UpdatedAt: prevStart.Add(prevRollout), WaveStartedAt: prevStart.Add(prevRollout * 4 / 5),
		CompletedAt: prevStart.Add(prevRollout), GatesSince: prevStart, Reason: "wave broad passed; release completed"}); err != nil {
		return nil, err
	}
	if err := st.CreateRelease(ctx, store.Release{ID: fx.relID, Channel: channel, Version: 293, Plan: planJSON, State: store.ReleaseRolling, Wave: 1,
		Phase: string(rollout.PhaseBaking), Lane: "normal", CreatedBy: "publisher@acme", CreatedAt: gatesSince, UpdatedAt: waveStart,
		WaveStartedAt: waveStart, GatesSince: gatesSince, Cohort: cohortJSON, Reason: "wave internal passed"}); err != nil {
		return nil, err
	}

	// Devices in batches, then their channel state and offers as check-ins
	// would write them.
	t := time.Now()
	const batch = 1000
	p := newPool(o.writers)
	for i := 0; i < len(devs); i += batch {
		var ds []store.Device
		for _, d := range devs[i:min(i+batch, len(devs))] {
			s := strata[d.stratum]
			ds = append(ds, store.Device{ID: d.id, Org: fx.orgs[d.org], CredHash: hashOf(d.id), Platform: "windows", OSBuild: s.build, AgentVersion: s.agent,
				EnrolledAt: prevStart.Add(-24 * time.Hour), LastSeen: d.lastSeen})
		}
		p.do(func() error { return st.CreateDevices(ctx, ds) })
	}
	if err := p.wait(); err != nil {
		return nil, err
	}
	logf("created %d devices in %v", len(devs), time.Since(t).Round(time.Millisecond))
	t = time.Now()
	p = newPool(o.writers)
	for i := 0; i < len(devs); i += batch {
		var ws []store.CheckinWrite
		for _, d := range devs[i:min(i+batch, len(devs))] {
			s := strata[d.stratum]
			w := store.CheckinWrite{Device: store.Device{ID: d.id, Platform: "windows", OSBuild: s.build, AgentVersion: s.agent, LastSeen: d.lastSeen}}
			dc := store.DeviceChannel{Device: d.id, Channel: channel, ActiveVersion: 292, LKGVersion: 292, State: "active", UpdatedAt: d.apply292}
			if d.treated {
				dc.ActiveVersion, dc.State, dc.UpdatedAt = 293, "probation", d.applyAt
				if d.applyAt.Add(10 * time.Minute).Before(now) {
					dc.LKGVersion, dc.State = 293, "active"
				}
				wave := 1
				if d.org == 0 {
					wave = 0
				}
				w.Offers = []store.Offer{{Release: fx.relID, Device: d.id, Org: fx.orgs[d.org], Wave: wave, At: d.offerAt}}
			}
			w.Channels = []store.DeviceChannel{dc}
			ws = append(ws, w)
		}
		p.do(func() error { _, err := st.ApplyCheckins(ctx, ws); return err })
	}
	if err := p.wait(); err != nil {
		return nil, err
	}
	logf("wrote channel state and %d offers in %v", fx.offers, time.Since(t).Round(time.Millisecond))

	// Counters.
	t = time.Now()
	if err := writeCounters(ctx, st, fx, devs, rng, prevStart, prevRollout, waveStart, newPool(o.writers)); err != nil {
		return nil, err
	}
	logf("wrote %d counter rows (%d of 293, %d of 292) in %v", fx.releaseRows+fx.previousRows, fx.releaseRows, fx.previousRows, time.Since(t).Round(time.Millisecond))
	return fx, nil
}

func compileBundle(cat *content.Catalog, version uint64) ([]byte, error) {
	src, err := fs.ReadFile(examples.Content, "content/bundles/ipc-292.yaml")
	if err != nil {
		return nil, err
	}
	s := strings.Replace(string(src), "version: 292\n", fmt.Sprintf("version: %d\n", version), 1)
	if version != 292 && s == string(src) {
		return nil, fmt.Errorf("ipc-292.yaml changed shape: cannot relabel it %d", version)
	}
	b, err := content.ParseBundle(fmt.Sprintf("ipc-%d.yaml", version), []byte(s))
	if err != nil {
		return nil, err
	}
	v := cat.Validate(b, 0)
	if !v.Accepted() {
		return nil, fmt.Errorf("bundle %d rejected: %v", version, v.Findings)
	}
	return v.Encoded, nil
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte("credential of " + s))
	return hex.EncodeToString(h[:])
}

func pick(rng *mrand.Rand, w []float64, total float64) int {
	x := rng.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func pickStratum(rng *mrand.Rand) int {
	x := rng.Float64()
	for i, s := range strata {
		if x < s.weight {
			return i
		}
		x -= s.weight
	}
	return len(strata) - 1
}

// grid holds one counter's values per one-minute window and cell
// (organisation × stratum).
type grid struct {
	release, metric string
	start           time.Time
	windows, cells  int
	wave            func(time.Time) int
	v               []int32
}

func (g *grid) add(t time.Time, cell int) {
	if t.Before(g.start) {
		return
	}
	w := int(t.Sub(g.start) / time.Minute)
	if w < g.windows {
		g.v[w*g.cells+cell]++
	}
}

// writeCounters simulates what the server counted: every device beats
// once per 5-minute check-in interval, into the release of the version it
// runs and, while 293 is live, into 293's control group; applies and
// confirmations once; worker crashes at 0.002 per device-hour.
func writeCounters(ctx context.Context, st store.Store, fx *fixture, devs []device, rng *mrand.Rand, prevStart time.Time, prevRollout time.Duration, waveStart time.Time, p *pool) error {
	cells := len(fx.orgs) * len(strata)
	prevWindows := int(fx.now.Sub(prevStart) / time.Minute)
	relWindows := int(fx.now.Sub(fx.gatesSince) / time.Minute)
	wave292 := func(t time.Time) int { return min(4, int(5*t.Sub(prevStart)/prevRollout)) }
	wave293 := func(t time.Time) int {
		if t.Before(waveStart) {
			return 0
		}
		return 1
	}
	mk := func(rel, metric string) *grid {
		g := &grid{release: rel, metric: metric, start: prevStart, windows: prevWindows, cells: cells, wave: wave292}
		if rel == fx.relID {
			g.start, g.windows, g.wave = fx.gatesSince, relWindows, wave293
		}
		g.v = make([]int32, g.windows*cells)
		return g
	}
	var (
		hb292, applied292, healthy292, crash292         = mk(fx.prevID, "heartbeat"), mk(fx.prevID, "applied"), mk(fx.prevID, "healthy"), mk(fx.prevID, "worker-crash")
		hb293, ctlHB293, applied293, healthy293         = mk(fx.relID, "heartbeat"), mk(fx.relID, "control-heartbeat"), mk(fx.relID, "applied"), mk(fx.relID, "healthy")
		crash293, ctlCrash293                           = mk(fx.relID, "worker-crash"), mk(fx.relID, "control-worker-crash")
		grids                                           = []*grid{hb292, applied292, healthy292, crash292, hb293, ctlHB293, applied293, healthy293, crash293, ctlCrash293}
		crashRate                               float64 = 0.002 // per device-hour
	)
	on293 := func(d *device, t time.Time) bool { return d.treated && !t.Before(d.applyAt) }
	for i := range devs {
		d := &devs[i]
		cell := d.org*len(strata) + d.stratum
		applied292.add(d.apply292, cell)
		if h := d.apply292.Add(10 * time.Minute); h.Before(fx.now) {
			healthy292.add(h, cell)
		}
		if d.treated {
			applied293.add(d.applyAt, cell)
			if h := d.applyAt.Add(10 * time.Minute); h.Before(fx.now) {
				healthy293.add(h, cell)
			}
		}
		end := fx.now
		if d.lastSeen.Before(end) {
			end = d.lastSeen.Add(time.Nanosecond)
		}
		first := int(d.apply292.Sub(prevStart)/time.Minute) + 1
		first += ((5-(first+d.phase)%5)%5 + 5) % 5
		for w := first; ; w += 5 {
			t := prevStart.Add(time.Duration(w) * time.Minute)
			if !t.Before(end) {
				break
			}
			if on293(d, t) {
				hb293.add(t, cell)
			} else {
				hb292.add(t, cell)
				ctlHB293.add(t, cell)
			}
		}
		for t := d.apply292; ; {
			t = t.Add(time.Duration(rng.ExpFloat64() / crashRate * float64(time.Hour)))
			if !t.Before(end) {
				break
			}
			if on293(d, t) {
				crash293.add(t, cell)
			} else {
				crash292.add(t, cell)
				ctlCrash293.add(t, cell)
			}
		}
	}
	var buf []store.Counter
	flush := func() {
		if len(buf) > 0 {
			cs := buf
			p.do(func() error { return st.TouchDevices(ctx, nil, cs) })
			buf = nil
		}
	}
	for _, g := range grids {
		for w := range g.windows {
			t := g.start.Add(time.Duration(w) * time.Minute)
			for c := range g.cells {
				v := g.v[w*g.cells+c]
				if v == 0 {
					continue
				}
				buf = append(buf, store.Counter{CounterKey: store.CounterKey{Release: g.release, Wave: g.wave(t), Org: fx.orgs[c/len(strata)],
					Stratum: strata[c%len(strata)].name(), Window: t, Metric: g.metric}, Value: int64(v)})
				if g.release == fx.relID {
					fx.releaseRows++
				} else {
					fx.previousRows++
				}
				if len(buf) == 5000 {
					flush()
				}
			}
		}
	}
	flush()
	return p.wait()
}

// pool runs write transactions on up to n goroutines; do blocks while all
// are busy, wait returns the first error.
type pool struct {
	sem chan struct{}
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func newPool(n int) *pool { return &pool{sem: make(chan struct{}, n)} }

func (p *pool) do(f func() error) {
	p.sem <- struct{}{}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		if err := f(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}()
}

func (p *pool) wait() error {
	p.wg.Wait()
	return p.err
}

// --- the measurements ---

func measure(ctx context.Context, st store.Store, o options, fx *fixture, r *result) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cat, err := server.ExampleCatalog()
	if err != nil {
		return err
	}
	// The server's clock starts at the simulated present, so the fleet
	// looks to it as it was built however long the build took.
	start := time.Now()
	clock := func() time.Time { return fx.now.Add(time.Since(start)) }
	// Long controller and snapshot periods: nothing runs but what is timed.
	srv := server.New(server.Config{Catalog: cat, ControllerTick: time.Hour, SnapshotRefresh: time.Hour}, st, clock, log)
	if err := srv.Refresh(ctx); err != nil {
		return err
	}
	before, err := st.GetRelease(ctx, fx.relID)
	if err != nil {
		return err
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.BaseHeap = ms.HeapAlloc
	stopPeak := peakHeap(&r.PeakHeap)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// Ticks that change nothing: the release bakes, every gate passes or
	// waits.
	tick := func() (time.Duration, error) {
		t := time.Now()
		err := srv.ControlOnce(ctx)
		return time.Since(t), err
	}
	first, err := tick()
	if err != nil {
		return err
	}
	r.FirstTickMS = msOf(first)
	alloc0 := totalAlloc()
	var ticks []time.Duration
	for range o.ticks {
		d, err := tick()
		if err != nil {
			return err
		}
		ticks = append(ticks, d)
	}
	r.TickAlloc = (totalAlloc() - alloc0) / uint64(o.ticks)
	after, err := st.GetRelease(ctx, fx.relID)
	if err != nil {
		return err
	}
	if after.Revision != before.Revision || after.State != store.ReleaseRolling {
		return fmt.Errorf("the steady ticks changed the release: %s revision %d -> %s revision %d (%s)", before.State, before.Revision, after.State, after.Revision, after.Reason)
	}
	r.TickP50MS, r.TickP90MS, r.TickMaxMS = pct(ticks, 0.5), pct(ticks, 0.9), pct(ticks, 1)
	logf("steady ticks: p50 %.1f ms, p90 %.1f ms, max %.1f ms (first %.1f ms)", r.TickP50MS, r.TickP90MS, r.TickMaxMS, r.FirstTickMS)

	// What a tick reads, query by query, and the baseline round trips.
	silentAfter := 5*time.Minute*6/5 + 9*time.Minute // the server's defaults
	parts := []struct {
		name string
		fn   func() error
	}{
		{"list_releases", func() error { _, err := st.ListReleases(ctx, ""); return err }},
		{"counter_totals", func() error { _, err := st.CounterTotals(ctx, fx.relID, true); return err }},
		{"counter_totals_previous", func() error { _, err := st.CounterTotals(ctx, fx.prevID, false); return err }},
		{"silence_stats", func() error {
			_, err := st.SilenceStats(ctx, store.SilenceQuery{Release: fx.relID, Since: fx.gatesSince, OverdueBefore: clock().Add(-silentAfter)})
			return err
		}},
		{"get_release", func() error { _, err := st.GetRelease(ctx, fx.relID); return err }},
		{"ping", func() error { return st.Ping(ctx) }},
	}
	r.Parts = map[string]float64{}
	for _, p := range parts {
		n := min(o.ticks, 5) // the tick's own queries are slow: five looks give their median
		if p.name == "get_release" || p.name == "ping" {
			n = o.ticks
		}
		var ds []time.Duration
		for range n {
			t := time.Now()
			if err := p.fn(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			ds = append(ds, time.Since(t))
		}
		r.Parts[p.name] = pct(ds, 0.5)
	}
	r.BaselineMS, r.PingMS = r.Parts["get_release"], r.Parts["ping"]
	delete(r.Parts, "get_release")
	delete(r.Parts, "ping")
	logf("queries (median ms): %v; baseline GetRelease %.3f ms, Ping %.3f ms", r.Parts, r.BaselineMS, r.PingMS)

	// Ticks that recompute the cohort: the first tick of a wave.
	var cohortTicks []time.Duration
	alloc0 = totalAlloc()
	for range o.cohortTicks {
		rel, err := st.GetRelease(ctx, fx.relID)
		if err != nil {
			return err
		}
		rel.Cohort = nil
		if _, err := st.UpdateRelease(ctx, rel); err != nil {
			return err
		}
		d, err := tick()
		if err != nil {
			return err
		}
		cohortTicks = append(cohortTicks, d)
		rel, err = st.GetRelease(ctx, fx.relID)
		if err != nil {
			return err
		}
		var c rollout.Cohort
		if err := json.Unmarshal(rel.Cohort, &c); err != nil {
			return fmt.Errorf("cohort after the tick: %w", err)
		}
		if rel.State != store.ReleaseRolling || c.Wave != 1 || !slices.Equal(c.Targeted, fx.cohort.Targeted) || c.Fleet != fx.cohort.Fleet {
			return fmt.Errorf("the cohort tick left %s wave %d, cohort targeted %v of %d, want rolling wave 1, %v of %d", rel.State, c.Wave, c.Targeted, c.Fleet, fx.cohort.Targeted, fx.cohort.Fleet)
		}
	}
	r.CohortAlloc = (totalAlloc() - alloc0) / uint64(o.cohortTicks)
	r.CohortTickMS, r.CohortMaxMS = pct(cohortTicks, 0.5), pct(cohortTicks, 1)
	logf("cohort ticks: median %.1f ms, max %.1f ms", r.CohortTickMS, r.CohortMaxMS)

	// A bad release: every canary device crashes twice this minute. The
	// next tick must read it and halt.
	var crashes []store.Counter
	win := clock().Truncate(time.Minute)
	for c, n := range fx.canaryCells {
		crashes = append(crashes, store.Counter{CounterKey: store.CounterKey{Release: fx.relID, Wave: 1, Org: fx.orgs[c/len(strata)],
			Stratum: strata[c%len(strata)].name(), Window: win, Metric: "worker-crash"}, Value: 2 * int64(n)})
	}
	if err := st.TouchDevices(ctx, nil, crashes); err != nil {
		return err
	}
	d, err := tick()
	if err != nil {
		return err
	}
	r.HaltTickMS = msOf(d)
	rel, err := st.GetRelease(ctx, fx.relID)
	if err != nil {
		return err
	}
	if rel.State != store.ReleaseHalted {
		return fmt.Errorf("after a burst of crashes the tick left the release %s: %s", rel.State, rel.Reason)
	}
	logf("halt tick: %.1f ms (%s)", r.HaltTickMS, rel.Reason)
	stopPeak()

	r.BudgetShare = r.TickP90MS / msOf(tickBudget)
	r.CohortShare = r.CohortTickMS / msOf(tickBudget)
	if r.BaselineMS > 0 {
		r.BaselineRatio = r.TickP50MS / r.BaselineMS
	}
	return nil
}

// peakHeap samples the live heap every 5 ms into *peak until stopped.
func peakHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the p-quantile (nearest rank) of ds, in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return msOf(s[min(max(i, 0), len(s)-1)])
}
