package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringfence/ringfence/examples"
	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/memstore"
)

// Options overrides a scenario and says where progress goes.
type Options struct {
	Devices int    // 0: the scenario's
	Seed    uint64 // 0: the scenario's
	// Parallel is how many seeds RunSeeds runs at once (0: one per core).
	Parallel int
	Progress io.Writer
	Log      *slog.Logger
}

// Sim is one run: the fleet, the real server on a store over it, and the
// virtual clock both share.
type Sim struct {
	sc    *Scenario
	fleet *fleet
	epoch time.Time
	now   uint32 // virtual seconds since epoch
	end   uint32
	rng   *rand.Rand
	// acts draws the background actions from a stream of their own, so
	// that turning them on leaves every other draw of a run as it was.
	acts  *rand.Rand
	srv   *server.Server
	store *fleetStore
	http  http.Handler
	pub   string // publisher token
	appr  string // approver token
	// waiting is when the release began awaiting approval (-1: not).
	waiting int64

	policy   agent.Policy
	versions []uint64 // version index -> version; 0 is none
	release  string   // the scenario release's id
	relIndex uint8    // its version index

	// answers[org][stratum] is what the server's check-in decides the
	// scenario's channel from for those devices (server.AnswerInputs),
	// asked on first use after each controller tick: the quiet devices
	// are decided on it, so kill switches, tracks, windows and targets
	// hold for them as for the devices the server answers.
	answers       [][]server.ChannelInputs
	answersGen    uint64
	answersMinute uint32

	mu      sync.Mutex
	offered map[string]map[int32]bool // release -> devices the server offered it

	agents map[int32]*agentState
	// crashedAt is when each crashed device first crashed; healed how
	// long each took to run a good version again.
	crashedAt map[int32]uint32
	healed    []float64
	wheel     [][]int32
	beats     map[beatKey]int64

	net      *network
	fig      figures
	interval time.Duration
	series   []Point
	timeline []Step
	cancel   context.CancelFunc
	// atEnd is the figures at the scenario's end, healing the devices
	// crashed by then and not yet recovered (see healGrace).
	atEnd   *figures
	healing map[int32]bool
}

// Step is a change of the release's state or wave.
type Step struct {
	T      float64 `json:"t_s"`
	State  string  `json:"state"`
	Wave   int     `json:"wave"`
	Reason string  `json:"reason"`
}

// Point is the fleet at one virtual minute, for the report's chart.
type Point struct {
	T         float64 `json:"t_s"`
	Exposed   int64   `json:"exposed"`
	Down      int64   `json:"crashed_now"`
	Crashed   int64   `json:"crashed"`
	Recovered int64   `json:"recovered"`
}

// agentState is a device's agent, for the devices the rollout touches:
// its journal entry for the channel, its unsent events, and its
// sequence numbers.
type agentState struct {
	ch     agent.ChannelState
	seq    uint64
	events []protocol.EventReport
	fault  string // the release's fault on this device, "" none
}

type beatKey struct {
	org     uint16
	stratum uint8
	active  uint8
}

type figures struct {
	exposed, crashed, down, peakDown int64
	recovered                        int64
	firstExposed, firstCrash         int64 // virtual seconds, -1 none
	lastRecovery                     int64
	haltedAt, completedAt            int64
	haltReason                       string
	checkins, full                   int64
	rejected                         string
	// the kill switch's: exposed when engaged, exposed while it held,
	// running the release when it was released
	exposedAtKill, killedExposed, killedRunning int64
	// false-positive storms' detections: enforced (blocking real work)
	// and in shadow (only reported)
	stormEnforced, stormShadow int64
}

const wheelSize = 1 << 16 // seconds ahead the wheel reaches: about 18 h

// New builds a run: the fleet, the store, the server and the baseline
// release every device runs.
func New(ctx context.Context, sc *Scenario, o Options) (*Sim, error) {
	n := sc.Devices
	if o.Devices > 0 {
		n = o.Devices
	}
	seed := sc.Seed
	if o.Seed != 0 {
		seed = o.Seed
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sim{sc: sc, epoch: time.Date(2024, 7, 19, 4, 0, 0, 0, time.UTC), end: uint32(time.Duration(sc.Duration) / time.Second),
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), acts: rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d)), offered: map[string]map[int32]bool{}, agents: map[int32]*agentState{},
		wheel: make([][]int32, wheelSize), beats: map[beatKey]int64{}, crashedAt: map[int32]uint32{},
		interval: time.Duration(sc.CheckinInterval), waiting: -1}
	s.sc.Devices, s.sc.Seed = n, seed
	s.fig.firstExposed, s.fig.firstCrash, s.fig.lastRecovery, s.fig.haltedAt, s.fig.completedAt = -1, -1, -1, -1, -1
	s.fleet = newFleet(sc, n, s.rng)
	s.net = newNetwork(sc, len(s.fleet.orgs))
	s.store = &fleetStore{Store: memstore.New(), sim: s, created: map[int]bool{}}
	cat, err := server.ExampleCatalog()
	if err != nil {
		return nil, err
	}
	s.srv = server.New(server.Config{CheckinInterval: s.interval, Catalog: cat, ControllerTick: 24 * time.Hour, SnapshotRefresh: time.Hour, Jitter: s.rng.Float64},
		s.store, s.clock, o.Log)
	s.http = s.srv.Handler()
	if err := s.seed(ctx, cat); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if err := s.refreshViews(ctx); err != nil {
		return nil, err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	if err := s.srv.Start(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	// Every device checks in once within its first interval.
	for i := range s.fleet.devs {
		s.schedule(i, uint32(s.rng.IntN(int(s.interval/time.Second))))
	}
	return s, nil
}

// Close stops the simulated server.
func (s *Sim) Close() {
	s.srv.Drain()
	s.cancel()
}

// Series is the fleet minute by minute.
func (s *Sim) Series() []Point { return s.series }

// HaltedAt is the virtual second the release halted, or -1.
func (s *Sim) HaltedAt() int64 { return s.fig.haltedAt }

func (s *Sim) clock() time.Time { return s.epoch.Add(time.Duration(s.now) * time.Second) }

// second converts a time to virtual seconds (0 before the epoch).
func (s *Sim) second(t time.Time) uint32 {
	d := t.Sub(s.epoch)
	if d < 0 {
		return 0
	}
	return uint32(d / time.Second)
}

func (s *Sim) versionIndex(v uint64) (uint8, bool) {
	for i, x := range s.versions {
		if x == v && i > 0 {
			return uint8(i), true
		}
	}
	return 0, false
}

func (s *Sim) schedule(i int, at uint32) {
	d := &s.fleet.devs[i]
	if d.next == at && at != 0 {
		return
	}
	d.next = at
	s.wheel[at%wheelSize] = append(s.wheel[at%wheelSize], int32(i))
}

func (s *Sim) touch(i int, at time.Time) {
	sec := s.second(at) + 1
	if d := &s.fleet.devs[i]; sec > d.seen {
		d.seen = sec
	}
}

// versionSource is a built-in bundle ("ipc-292") or a file, with
// "@VERSION" to publish it under another version.
var versionLine = regexp.MustCompile(`(?m)^version:\s*\d+\s*$`)

func bundleSource(spec string, version uint64) ([]byte, error) {
	name, v, _ := strings.Cut(spec, "@")
	b, err := fs.ReadFile(examples.Content, "content/bundles/"+name+".yaml")
	if err != nil {
		if b, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("bundle %q: neither built in (examples/content/bundles) nor a readable file", name)
		}
	}
	if v != "" {
		if version, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, fmt.Errorf("bundle %q: version %q", spec, v)
		}
	}
	if version != 0 {
		b = versionLine.ReplaceAll(b, []byte("version: "+strconv.FormatUint(version, 10)))
	}
	return b, nil
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Tokens the simulated vendor's publisher and approver, and the
// operator (kill switches), use.
const (
	publisherToken = "rft_sim-publisher"
	approverToken  = "rft_sim-approver"
	operatorToken  = "rft_sim-operator"
)

// seed writes the world (seedWorld) into the fleet's store; every device
// runs the baseline.
func (s *Sim) seed(ctx context.Context, cat *content.Catalog) error {
	base, err := seedWorld(ctx, s.store, s.fleet, s.sc.Release.Baseline, cat, s.epoch.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	s.pub, s.appr = publisherToken, approverToken
	s.versions = []uint64{0, base.Version}
	for i := range s.fleet.devs {
		s.fleet.devs[i].active, s.fleet.devs[i].lkg = 1, 1
	}
	s.policy = agent.Policy{}.WithDefaults()
	return nil
}

// seedWorld writes what a server would hold before the scenario starts:
// the vendor, its internal organisation and the customers (early ones on
// the early track), the channel, the publisher's and approver's tokens,
// and the baseline bundle with its release, completed at t0. It returns
// the baseline's artifact.
func seedWorld(ctx context.Context, st store.Store, f *fleet, baseline string, cat *content.Catalog, t0 time.Time) (store.Artifact, error) {
	var none store.Artifact
	if err := st.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme Security", CreatedAt: t0}); err != nil {
		return none, err
	}
	for _, o := range f.orgs {
		if err := st.CreateTenant(ctx, store.Tenant{ID: o.id, Kind: store.TenantOrg, Name: o.id, Internal: o.internal, CreatedAt: t0}); err != nil {
			return none, err
		}
	}
	if err := st.CreateChannel(ctx, store.Channel{ID: channel, Vendor: "acme", Name: "ipc", Kind: store.ChannelContent, Category: "detection", CreatedAt: t0}); err != nil {
		return none, err
	}
	for _, o := range f.orgs {
		p := store.Policy{Org: o.id, Channel: channel, Track: "ga"}
		if o.early {
			p.Track = "early"
		}
		if o.window != "" {
			p.Windows = []string{o.window}
		}
		if o.early || o.window != "" {
			if err := st.PutPolicy(ctx, p); err != nil {
				return none, err
			}
		}
	}
	if err := st.CreateAPIToken(ctx, store.APIToken{ID: "tok-sim-operator", Role: store.RoleAdmin, Name: "simulated operator", Hash: hashHex(operatorToken), CreatedAt: t0}); err != nil {
		return none, err
	}
	if err := st.CreateAPIToken(ctx, store.APIToken{ID: "tok-sim", Tenant: "acme", Role: store.RolePublisher, Name: "simulator", Hash: hashHex(publisherToken), CreatedAt: t0}); err != nil {
		return none, err
	}
	if err := st.CreateAPIToken(ctx, store.APIToken{ID: "tok-sim-approver", Tenant: "acme", Role: store.RoleApprover, Name: "simulated approver", Hash: hashHex(approverToken), CreatedAt: t0}); err != nil {
		return none, err
	}
	src, err := bundleSource(baseline, 0)
	if err != nil {
		return none, err
	}
	b, err := content.ParseBundle(baseline, src)
	if err != nil {
		return none, err
	}
	v := cat.Validate(b, 0)
	if !v.Accepted() {
		return none, fmt.Errorf("baseline %s is rejected: %v", b.Name(), v.Findings)
	}
	a := store.Artifact{Channel: channel, Version: b.Version, SHA256: content.Hash(v.Encoded), Size: int64(len(v.Encoded)), Bytes: v.Encoded, CreatedAt: t0}
	if err := st.PutArtifact(ctx, a); err != nil {
		return none, err
	}
	plan, _ := json.Marshal(rollout.DefaultContentPlan())
	last := len(rollout.DefaultContentPlan().Waves) - 1
	if err := st.CreateRelease(ctx, store.Release{ID: "rel-baseline", Channel: channel, Version: b.Version, Plan: plan, State: store.ReleaseCompleted,
		Wave: last, CreatedBy: "simulator", CreatedAt: t0, UpdatedAt: t0, WaveStartedAt: t0, CompletedAt: t0}); err != nil {
		return none, err
	}
	if err := st.TouchDevices(ctx, nil, baselineCounters(f, last, t0)); err != nil {
		return none, err
	}
	return a, nil
}

// The baseline release's record, as a fleet that ran it for a day would
// have reported it: every device applied it and confirmed it healthy,
// with the few failures a good release still sees. The share gates
// (apply failures, reverts) compare the new release with these, so they
// can judge it relative to the channel's normal, not only against their
// absolute limits.
const (
	baselineApplyFailed = 0.001  // downloads cut off, disks full
	baselineReverted    = 0.0001 // unrelated crash loops during probation
)

// baselineCounters is that record, per stratum.
func baselineCounters(f *fleet, wave int, t0 time.Time) []store.Counter {
	per := make([]int64, len(f.strata))
	for i := range f.devs {
		per[f.devs[i].stratum]++
	}
	var out []store.Counter
	for k, n := range per {
		if n == 0 {
			continue
		}
		key := store.CounterKey{Release: "rel-baseline", Wave: wave, Stratum: f.strata[k].id, Window: t0.Truncate(time.Minute)}
		for _, m := range []struct {
			metric string
			value  int64
		}{
			{"applied", n}, {"healthy", n},
			{"apply-failed", int64(math.Round(float64(n) * baselineApplyFailed))},
			{"reverted", int64(math.Round(float64(n) * baselineReverted))},
		} {
			if m.value > 0 {
				key.Metric = m.metric
				out = append(out, store.Counter{CounterKey: key, Value: m.value})
			}
		}
	}
	return out
}

// api calls the server's admin API in process, as the publisher.
func (s *Sim) api(method, path string, body []byte, contentType string) (int, []byte) {
	return s.apiAs(s.pub, method, path, body, contentType)
}

func (s *Sim) apiAs(token, method, path string, body []byte, contentType string) (int, []byte) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	s.http.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// startRelease publishes the scenario's bundle through the server's own
// publish path (where the validator may reject it), or straight into the
// store when the scenario bypasses validation, and starts its release.
func (s *Sim) startRelease(ctx context.Context) error {
	r := s.sc.Release
	src, err := bundleSource(r.Bundle, r.Version)
	if err != nil {
		return err
	}
	if r.BypassValidation {
		if err := publishUnvalidated(ctx, s.srv, r.Bundle, src); err != nil {
			return err
		}
	} else if code, body := s.api("POST", "/v1/channels/acme/ipc/publish", src, "application/yaml"); code != http.StatusCreated {
		s.fig.rejected = rejection(code, body)
		return nil
	}
	req := map[string]any{"channel": channel, "version": r.Version}
	if r.Plan != nil {
		req["plan"] = r.Plan
	}
	body, _ := json.Marshal(req)
	code, out := s.api("POST", "/v1/releases", body, "application/json")
	if code != http.StatusCreated {
		return fmt.Errorf("release: %d %s", code, out)
	}
	var rel struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &rel); err != nil {
		return err
	}
	s.release = rel.ID
	s.versions = append(s.versions, r.Version)
	s.relIndex = uint8(len(s.versions) - 1)
	return s.refreshViews(ctx)
}

// publishUnvalidated compiles the bundle and hands it to the server's
// simulator-only publish path, past the validator.
func publishUnvalidated(ctx context.Context, srv *server.Server, name string, src []byte) error {
	b, err := content.ParseBundle(name, src)
	if err != nil {
		return err
	}
	cat, _ := server.ExampleCatalog()
	v := cat.Validate(b, 0)
	if v.Compiled == nil {
		return fmt.Errorf("release %s does not even compile: %v", b.Name(), v.Findings)
	}
	_, err = srv.PublishUnvalidated(ctx, channel, b.Version, v.Encoded)
	return err
}

// rejection is what the publisher is told when publishing is refused.
func rejection(code int, body []byte) string {
	var e struct {
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &e)
	return fmt.Sprintf("publish refused (%d): %s", code, firstLine(e.Detail))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// refreshViews observes the scenario's release after a controller tick.
func (s *Sim) refreshViews(ctx context.Context) error {
	rels, err := s.store.ListReleases(ctx, channel)
	if err != nil {
		return err
	}
	for _, r := range rels {
		if r.ID == s.release {
			s.observe(r)
		}
	}
	return nil
}

// answerInputs is what the server decides the scenario's channel from for
// the devices of org and stratum.
func (s *Sim) answerInputs(org, stratum int) *server.ChannelInputs {
	// The inputs change with the server's snapshot (a tick, a kill
	// switch), and maintenance windows with the minute.
	if gen, minute := s.srv.AnswerGeneration(), s.now/60; s.answers == nil || gen != s.answersGen || minute != s.answersMinute {
		s.answers = make([][]server.ChannelInputs, len(s.fleet.orgs))
		s.answersGen, s.answersMinute = gen, minute
	}
	if s.answers[org] == nil {
		s.answers[org] = make([]server.ChannelInputs, len(s.fleet.strata))
	}
	in := &s.answers[org][stratum]
	if in.Channel == "" {
		st := s.fleet.strata[stratum]
		*in = s.srv.AnswerInputs(s.fleet.orgs[org].id, st.platform, st.agent, st.osBuild, channel)
	}
	return in
}

// observe notes the release's halt or completion, and plays the
// vendor's approver: a release that waits for approval at the end of its
// canary waves is approved ApproveAfter later.
func (s *Sim) observe(r store.Release) {
	if n := len(s.timeline); n == 0 || s.timeline[n-1].State != string(r.State) || s.timeline[n-1].Wave != r.Wave {
		s.timeline = append(s.timeline, Step{T: float64(s.now), State: string(r.State), Wave: r.Wave, Reason: r.Reason})
	}
	if r.State == store.ReleaseAwaitingApproval && len(r.Approvals) == 0 {
		if s.waiting < 0 {
			s.waiting = int64(s.now)
		}
		if int64(s.now)-s.waiting >= int64(time.Duration(s.sc.Release.ApproveAfter)/time.Second) {
			s.apiAs(s.appr, "POST", "/v1/releases/"+r.ID+"/approve", []byte(`{"reason":"canary figures reviewed (simulated approver)"}`), "application/json")
		}
	} else {
		s.waiting = -1
	}
	switch {
	case r.State == store.ReleaseHalted || r.State == store.ReleaseRolledBack:
		if s.fig.haltedAt < 0 {
			s.fig.haltedAt, s.fig.haltReason = int64(s.now), r.Reason
		}
	case r.State == store.ReleaseCompleted && s.fig.completedAt < 0:
		s.fig.completedAt = int64(s.now)
	}
}

// Run runs the scenario to its end and returns the figures.
func (s *Sim) Run(ctx context.Context, progress io.Writer) (*Result, error) {
	wall := time.Now()
	start := uint32(time.Duration(s.sc.Release.Start) / time.Second)
	lastPct := -1
	pl := newProgress(progress)
	for s.now = 0; ; s.now++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.now == s.end {
			s.closeWindow()
		}
		if s.now >= s.end && (len(s.healing) == 0 || s.now >= s.end+healGrace) {
			break
		}
		s.setOutage()
		if err := s.killSwitch(); err != nil {
			return nil, err
		}
		if s.now == start {
			if err := s.startRelease(ctx); err != nil {
				return nil, err
			}
			if s.fig.rejected != "" {
				break // nothing ships: the rest of the run would change nothing
			}
		}
		bucket := s.wheel[s.now%wheelSize]
		s.wheel[s.now%wheelSize] = nil
		for _, i := range bucket {
			if s.fleet.devs[i].next == s.now {
				if err := s.handle(ctx, int(i)); err != nil {
					return nil, err
				}
			}
		}
		if s.now%60 == 59 {
			s.flushBeats()
			s.series = append(s.series, Point{T: float64(s.now + 1), Exposed: s.fig.exposed, Down: s.fig.down, Crashed: s.fig.crashed, Recovered: s.fig.recovered})
		}
		if tick := uint32(time.Duration(s.sc.ControllerTick) / time.Second); s.now%tick == tick-1 && !s.net.down {
			s.srv.Drain()
			if err := s.srv.ControlOnce(ctx); err != nil {
				return nil, fmt.Errorf("controller at %s: %w", time.Duration(s.now)*time.Second, err)
			}
			if err := s.refreshViews(ctx); err != nil {
				return nil, err
			}
		}
		if pl != nil {
			if pct := int(min(100, 100*uint64(s.now)/uint64(s.end))); pct != lastPct {
				lastPct = pct
				pl.at(pct, fmt.Sprintf("%s  %3d%%  virtual %s  exposed %d  crashed %d", s.sc.Name, pct, time.Duration(s.now)*time.Second, s.fig.exposed, s.fig.crashed))
			}
		}
	}
	pl.done()
	s.srv.Drain()
	return s.result(time.Since(wall)), nil
}

// killSwitch engages and releases the scenario's kill switch, through the
// API as an operator, and notes the figures it is judged by: devices
// exposed while it held, and devices still running the release when it
// was released (or at the end).
func (s *Sim) killSwitch() error {
	k := s.sc.KillSwitch
	if k == nil {
		return nil
	}
	at := uint32(time.Duration(k.At) / time.Second)
	until := at + uint32(time.Duration(k.For)/time.Second)
	set := func(engaged bool) error {
		body := fmt.Sprintf(`{"engaged": %t, "reason": "scenario kill switch"}`, engaged)
		if code, resp := s.apiAs(operatorToken, "PUT", "/v1/channels/"+channel+"/kill-switch", []byte(body), "application/json"); code != http.StatusOK {
			return fmt.Errorf("kill switch at %s: %d %s", time.Duration(s.now)*time.Second, code, resp)
		}
		return nil
	}
	switch {
	case s.now == at:
		s.fig.exposedAtKill = s.fig.exposed
		return set(true)
	case k.For > 0 && s.now == until:
		s.measureKill()
		return set(false)
	}
	return nil
}

// measureKill counts, of the devices that checked in since the kill
// switch was engaged (one offline all along cannot hear it), those still
// on the release.
func (s *Sim) measureKill() {
	at := uint32(time.Duration(s.sc.KillSwitch.At) / time.Second)
	s.fig.killedExposed = s.fig.exposed - s.fig.exposedAtKill
	s.fig.killedRunning = 0
	for i := range s.fleet.devs {
		d := &s.fleet.devs[i]
		if s.relIndex != 0 && d.active == s.relIndex && d.seen > at+1 {
			s.fig.killedRunning++
		}
	}
}

func (s *Sim) setOutage() {
	s.net.at(time.Duration(s.now) * time.Second)
}

// handle is one device's due event.
func (s *Sim) handle(ctx context.Context, i int) error {
	d := &s.fleet.devs[i]
	switch d.phase {
	case phaseDown:
		return s.reboot(ctx, i)
	case phaseOffline:
		d.phase = phaseUp
	}
	return s.checkin(ctx, i)
}

// jittered is the server's interval with its ±20% jitter, for devices
// that did not hear from the server this time.
func (s *Sim) jittered() uint32 {
	base := float64(s.interval / time.Second)
	return uint32(max(1, base*(0.8+0.4*s.rng.Float64())))
}

func (s *Sim) state(i int) *agentState {
	if a := s.agents[int32(i)]; a != nil {
		return a
	}
	d := &s.fleet.devs[i]
	a := &agentState{ch: agent.ChannelState{Name: channel, ActiveVersion: s.versions[d.active], ActiveSlot: agent.SlotA,
		LKGVersion: s.versions[d.lkg], LKGSlot: agent.SlotA, State: agent.StateActive}}
	s.agents[int32(i)] = a
	d.flags |= flagInPlay
	return a
}

func (s *Sim) queue(a *agentState, evs ...agent.Event) {
	for _, e := range evs {
		a.seq++
		a.events = append(a.events, protocol.EventReport{Seq: a.seq, Time: e.Time, Type: string(e.Type), Channel: e.Channel, Version: e.Version, Reason: e.Reason, Counts: e.Counts})
	}
}

// noise draws the background for one check-in interval: an unrelated
// worker crash or unclean reboot, or going offline for a while.
func (s *Sim) noise(i int) bool {
	n := s.sc.Noise
	hours := s.interval.Hours()
	now := s.clock()
	if n.CrashesPerDeviceHour > 0 && s.rng.Float64() < n.CrashesPerDeviceHour*hours {
		a := s.state(i)
		d := agent.OnWorkerCrash(&a.ch, s.policy, now)
		s.queue(a, d.Events(now)...)
	}
	if n.RebootsPerDeviceHour > 0 && s.rng.Float64() < n.RebootsPerDeviceHour*hours {
		a := s.state(i)
		j := agent.NewJournal()
		j.Channels[channel] = &a.ch
		s.queue(a, agent.UncleanStop(j, now, "unrelated reboot")...)
	}
	if n.ActionsPerCheckin > 0 && s.acts.Float64() < n.ActionsPerCheckin*s.busyness(i)/meanActionBurst {
		// Detections a healthy fleet makes anyway, on whatever version a
		// device runs: the action gate's control group.
		a := s.state(i)
		kind := "alert"
		if s.acts.Float64() < 0.2 {
			kind = "block"
		}
		burst := 1 + int64(s.acts.ExpFloat64()*(meanActionBurst-1))
		v, _ := a.ch.Enforced()
		s.queue(a, agent.Event{Time: now, Type: agent.EventActions, Channel: channel, Version: v, Counts: map[string]int64{kind: burst}})
		if a.ch.Shadow {
			// Content in shadow sees the same traffic: what it would have
			// done, for the release's action gate.
			s.queue(a, agent.Event{Time: now, Type: agent.EventShadowActions, Channel: channel, Version: a.ch.ActiveVersion, Counts: map[string]int64{kind: burst}})
		}
	}
	if n.Offline > 0 {
		// Mean time online is what makes Offline the share offline.
		away := time.Duration(n.OfflineFor)
		stay := time.Duration(float64(away) * (1 - n.Offline) / n.Offline)
		if s.rng.Float64() < float64(s.interval)/float64(stay) {
			d := &s.fleet.devs[i]
			d.phase = phaseOffline
			s.schedule(i, s.now+uint32(s.rng.ExpFloat64()*away.Seconds())+1)
			return true
		}
	}
	return false
}

// meanActionBurst is the mean action count of one background report.
const meanActionBurst = 4

// Background actions are over-dispersed, as a real fleet's are: busyShare
// of the devices (busy servers, developers' machines) report busyFactor
// times as often as the rest, so that the fleet's mean is
// noise.actions_per_checkin.
const (
	busyShare  = 0.02
	busyFactor = 20
)

// busyness is device i's weight in the background actions, fixed per
// device and seed; its mean over the fleet is 1.
func (s *Sim) busyness(i int) float64 {
	x := uint64(i)*0x9E3779B97F4A7C15 ^ s.sc.Seed*0xBF58476D1CE4E5B9
	x ^= x >> 31
	x *= 0x94D049BB133111EB
	x ^= x >> 29
	if float64(x>>11)/float64(1<<53) < busyShare {
		return busyFactor
	}
	return (1 - busyShare*busyFactor) / (1 - busyShare)
}

// storm is content raising false positives: a device it hit reports a
// flood of alerts at every check-in while the release's version runs,
// enforced or in shadow.
func (s *Sim) storm(a *agentState) {
	if a.fault != FaultFPStorm || a.ch.State != agent.StateActive || a.ch.ActiveVersion != s.versions[s.relIndex] {
		return
	}
	now := s.clock()
	const flood = 500
	typ := agent.EventActions
	if a.ch.Shadow {
		typ = agent.EventShadowActions
		s.fig.stormShadow += flood
	} else {
		s.fig.stormEnforced += flood
	}
	s.queue(a, agent.Event{Time: now, Type: typ, Channel: channel, Version: a.ch.ActiveVersion, Counts: map[string]int64{"alert": flood}})
}

// checkin is one device's check-in: quiet devices (nothing to report,
// nothing new for them) count as heartbeats in bulk; the others go
// through the server's own check-in code.
func (s *Sim) checkin(ctx context.Context, i int) error {
	d := &s.fleet.devs[i]
	if !s.net.reaches(int(d.org)) {
		d.fails++
		wait := agent.Backoff(int(d.fails), s.interval, 10*time.Minute, s.rng)
		s.schedule(i, s.now+uint32(max(1, wait/time.Second)))
		return nil
	}
	d.fails = 0
	s.fig.checkins++
	if s.noise(i) {
		return nil
	}
	d.seen = s.now + 1
	a := s.agents[int32(i)]
	if a != nil {
		s.probation(i, a)
		s.storm(a)
	}
	in := s.answerInputs(int(d.org), int(d.stratum))
	dv := in.Device
	dv.Position, dv.Active, dv.LKG = int(d.pos), s.versions[d.active], s.versions[d.lkg]
	dec := rollout.Desired(s.clock(), in.Releases, dv, in.Unpausable, nil)
	if dec.Version == s.versions[d.active] && (a == nil || len(a.events) == 0 && a.ch.State == agent.StateActive && a.ch.Shadow == dec.Shadow) {
		s.beats[beatKey{d.org, d.stratum, d.active}]++
		s.schedule(i, s.now+s.jittered())
		return nil
	}
	return s.full(ctx, i)
}

// full is a check-in through the server.
func (s *Sim) full(ctx context.Context, i int) error {
	d := &s.fleet.devs[i]
	a := s.state(i)
	st := s.fleet.strata[d.stratum]
	req := protocol.CheckinRequest{Platform: st.platform, OSBuild: st.osBuild, AgentVersion: st.agent, Events: a.events,
		Channels: []protocol.ChannelReport{{Channel: channel, ActiveVersion: a.ch.ActiveVersion, LKGVersion: a.ch.LKGVersion, State: string(a.ch.State), Shadow: a.ch.Shadow}}}
	if len(req.Events) > agent.MaxEventsPerCheckin {
		req.Events = req.Events[:agent.MaxEventsPerCheckin]
	}
	s.fig.full++
	resp, err := s.srv.CheckinAs(ctx, deviceID(i), req)
	if err != nil {
		// A busy or failing server: back off, as the agent does.
		d.fails++
		s.schedule(i, s.now+uint32(max(1, agent.Backoff(int(d.fails), s.interval, 10*time.Minute, s.rng)/time.Second)))
		return nil
	}
	n := 0
	for n < len(a.events) && a.events[n].Seq <= resp.AckSeq {
		n++
	}
	a.events = a.events[n:]
	for _, cd := range resp.Channels {
		if cd.Channel == channel {
			s.follow(i, a, cd)
		}
	}
	if d.phase == phaseUp {
		s.schedule(i, s.now+uint32(max(1, resp.NextCheckinS)))
	}
	return nil
}

// follow is the agent acting on the server's answer, with the agent's own
// decision functions.
func (s *Sim) follow(i int, a *agentState, cd protocol.ChannelDesired) {
	d := &s.fleet.devs[i]
	want := cd.DesiredVersion
	if agent.LeavesShadow(&a.ch, cd) {
		agent.Enforce(&a.ch)
		d.lkg = s.indexOf(a.ch.LKGVersion)
		return
	}
	ok, _ := agent.Accept(&a.ch, want)
	if !ok {
		return
	}
	now := s.clock()
	vi, known := s.versionIndex(want)
	if !known {
		return
	}
	if want == a.ch.LKGVersion {
		dec := agent.ReturnToLKG(&a.ch)
		s.queue(a, dec.Events(now)...)
		d.active = vi
		s.recovered(i)
		return
	}
	if cd.Shadow {
		agent.BeginShadow(&a.ch, want, now)
	} else {
		agent.BeginActivation(&a.ch, want, now)
	}
	d.active = vi
	if vi == s.relIndex && d.flags&flagExposed == 0 {
		d.flags |= flagExposed
		s.fig.exposed++
		if s.fig.firstExposed < 0 {
			s.fig.firstExposed = int64(s.now)
		}
	}
	a.fault = ""
	if vi == s.relIndex {
		a.fault = s.faultOf(i)
	}
	s.queue(a, agent.Event{Time: now, Type: agent.EventApplied, Channel: channel, Version: want})
	switch a.fault {
	case FaultHostCrash:
		s.crash(i)
		return
	case FaultWorkerCrash:
		s.crashed(i)
		// The worker dies loading it, and again at each restart (200 ms,
		// 400 ms, ...): the crash loop decides within a second.
		t := now
		for k := 0; k < s.policy.CrashLimit; k++ {
			t = t.Add(time.Duration(200<<k) * time.Millisecond)
			dec := agent.OnWorkerCrash(&a.ch, s.policy, t)
			s.queue(a, dec.Events(t)...)
			if dec.Kind == agent.DecisionReverted {
				break
			}
		}
		d.active = s.indexOf(a.ch.ActiveVersion)
		s.recovered(i)
		return
	}
	agent.StartProbation(&a.ch, now)
}

func (s *Sim) indexOf(v uint64) uint8 {
	i, _ := s.versionIndex(v)
	return i
}

// faultOf decides, once per device, whether the release's fault hits it.
func (s *Sim) faultOf(i int) string {
	return deviceFault(s.sc, s.fleet.strata[s.fleet.devs[i].stratum], i)
}

// deviceFault is the scenario's fault on device i of stratum st, if any.
func deviceFault(sc *Scenario, st stratum, i int) string {
	for k, f := range sc.Faults {
		if !f.matches(st.agent, st.osBuild) {
			continue
		}
		// A hash of device and fault, not the run's random stream, so
		// the same devices are hit whatever else happens in the run.
		x := unitHash(fmt.Sprintf("%d/%d/%d", sc.Seed, i, k))
		if x < f.Probability {
			return f.Kind
		}
	}
	return ""
}

func (s *Sim) crashed(i int) {
	d := &s.fleet.devs[i]
	if d.flags&flagCrashed == 0 {
		d.flags |= flagCrashed
		s.crashedAt[int32(i)] = s.now
		s.fig.crashed++
		if s.fig.firstCrash < 0 {
			s.fig.firstCrash = int64(s.now)
		}
	}
}

// crash takes the host down: silent until it reboots, a minute or three
// later.
func (s *Sim) crash(i int) {
	s.crashed(i)
	d := &s.fleet.devs[i]
	d.phase = phaseDown
	s.fig.down++
	s.fig.peakDown = max(s.fig.peakDown, s.fig.down)
	s.schedule(i, s.now+60+uint32(s.rng.IntN(120)))
}

// reboot: the agent starts before loading any content and reads its
// journal (agent.OnStart); the boot-loop limit reverts, otherwise the
// content loads and, if it is what crashed the host, crashes it again.
func (s *Sim) reboot(ctx context.Context, i int) error {
	d := &s.fleet.devs[i]
	a := s.state(i)
	now := s.clock()
	d.phase = phaseUp
	s.fig.down--
	j := agent.NewJournal()
	j.Channels[channel] = &a.ch
	s.queue(a, agent.UncleanStop(j, now, "the host crashed")...)
	for _, dec := range agent.OnStart(j, s.policy, now) {
		s.queue(a, dec.Events(now)...)
	}
	d.active = s.indexOf(a.ch.ActiveVersion)
	if a.ch.Pending != nil && a.fault == FaultHostCrash {
		s.crash(i)
		return nil
	}
	s.recovered(i)
	return s.checkin(ctx, i)
}

// recovered notes a crashed device back on a good version. Past the
// scenario's end only the devices still healing then count.
func (s *Sim) recovered(i int) {
	d := &s.fleet.devs[i]
	if d.flags&flagCrashed != 0 && d.flags&flagRecovered == 0 && d.active != s.relIndex && d.phase == phaseUp {
		d.flags |= flagRecovered
		f := &s.fig
		if s.atEnd != nil {
			if !s.healing[int32(i)] {
				return
			}
			delete(s.healing, int32(i))
			f = s.atEnd
		}
		s.healed = append(s.healed, float64(s.now-s.crashedAt[int32(i)]))
		f.lastRecovery = int64(s.now)
		f.recovered++
	}
}

// healGrace is how long a run goes on past the scenario's end while
// devices the release crashed are still healing by themselves (a boot
// loop takes minutes), so that a crash in the last minutes is not taken
// for one that needs hands.
const healGrace = 3600

// closeWindow ends the scenario's window: its figures are final, and the
// devices still healing are watched for up to healGrace more.
func (s *Sim) closeWindow() {
	f := s.fig
	s.atEnd, s.healing = &f, map[int32]bool{}
	for i := range s.crashedAt {
		if s.fleet.devs[i].flags&flagRecovered == 0 {
			s.healing[i] = true
		}
	}
}

// probation confirms content that ran its probation (agent.Tick).
func (s *Sim) probation(i int, a *agentState) {
	now := s.clock()
	dec := agent.Tick(&a.ch, s.policy, now)
	if dec.Kind == agent.DecisionNone {
		return
	}
	s.queue(a, dec.Events(now)...)
	d := &s.fleet.devs[i]
	d.active, d.lkg = s.indexOf(a.ch.ActiveVersion), s.indexOf(a.ch.LKGVersion)
}

// flushBeats hands the minute's quiet check-ins to the server in bulk.
func (s *Sim) flushBeats() {
	for k, n := range s.beats {
		st := s.fleet.strata[k.stratum]
		s.srv.Heartbeats(s.fleet.orgs[k.org].id, st.platform, st.agent, st.osBuild,
			[]protocol.ChannelReport{{Channel: channel, ActiveVersion: s.versions[k.active]}}, n)
	}
	clear(s.beats)
}

// Result is a run's figures (docs/simulator.md).
type Result struct {
	Scenario string `json:"scenario"`
	Devices  int    `json:"devices"`
	Seed     uint64 `json:"seed"`
	// Live is a run through the real API (ringfence sim --live).
	Live              bool   `json:"live,omitempty"`
	RejectedAtPublish bool   `json:"rejected_at_publish"`
	Rejection         string `json:"rejection,omitempty"`
	ExposedDevices    int64  `json:"exposed_devices"`
	CrashedDevices    int64  `json:"crashed_devices"`
	PeakCrashed       int64  `json:"peak_crashed"`
	Halted            bool   `json:"halted"`
	HaltReason        string `json:"halt_reason,omitempty"`
	// FinalState and FinalWave are where the release ended, and Why the
	// controller's last word on it.
	FinalState string `json:"final_state,omitempty"`
	FinalWave  string `json:"final_wave,omitempty"`
	Why        string `json:"why,omitempty"`
	// Timeline is every change of the release's state or wave.
	Timeline       []Step  `json:"timeline,omitempty"`
	Completed      bool    `json:"completed"`
	SpuriousHalt   bool    `json:"spurious_halt"`
	TimeToHaltS    float64 `json:"time_to_halt_s"`
	TimeToRecoverS float64 `json:"time_to_recover_s"`
	// HealMedianS and HealMaxS are per crashed device: from its crash to
	// running a good version again.
	HealMedianS         float64 `json:"heal_median_s"`
	HealMaxS            float64 `json:"heal_max_s"`
	ManualInterventions int64   `json:"manual_interventions"`
	// Widenings are the controller's widenings of a wave for suspect
	// strata (audit entries release.widen), the last one's reason in
	// LastWidening.
	Widenings      int     `json:"widenings,omitempty"`
	LastWidening   string  `json:"last_widening,omitempty"`
	Checkins       int64   `json:"checkins"`
	ServerCheckins int64   `json:"server_checkins"`
	VirtualS       float64 `json:"virtual_s"`
	WallS          float64 `json:"wall_s"`
	// LiveSpeedMin is, live, the slowest the compressed clock ran: below
	// the speed asked for when the machine could not keep up.
	LiveSpeedMin   float64 `json:"live_speed_min,omitempty"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	BytesPerDevice float64 `json:"bytes_per_device"`
	// KillSwitch is how the fleet obeyed the scenario's kill switch.
	KillSwitch *KillSwitchFigures `json:"kill_switch,omitempty"`
	// StormActionsEnforced are the alerts and blocks an fp-storm fault's
	// content raised while enforced, StormActionsShadow those it would
	// have raised while in shadow (reported, not enforced).
	StormActionsEnforced int64 `json:"storm_actions_enforced,omitempty"`
	StormActionsShadow   int64 `json:"storm_actions_shadow,omitempty"`
	// InShadowAtEnd are devices that checked in after the release
	// completed and still ran it in shadow at the end: none should.
	InShadowAtEnd int64 `json:"in_shadow_at_end,omitempty"`
}

// KillSwitchFigures are devices newly exposed to the release while the
// kill switch held (want none), and devices that checked in while it held
// and still ran the release when it was released, or at the end if it
// never was (want none: they went back to their last-known-good).
type KillSwitchFigures struct {
	ExposedWhileEngaged int64 `json:"exposed_while_engaged"`
	RunningAtRelease    int64 `json:"running_at_release"`
}

func (s *Sim) result(wall time.Duration) *Result {
	f := &s.fig
	if s.atEnd != nil {
		f = s.atEnd
	}
	r := &Result{Scenario: s.sc.Name, Devices: s.sc.Devices, Seed: s.sc.Seed, Rejection: f.rejected, RejectedAtPublish: f.rejected != "",
		ExposedDevices: f.exposed, CrashedDevices: f.crashed, PeakCrashed: f.peakDown, Halted: f.haltedAt >= 0, HaltReason: f.haltReason,
		Completed: f.completedAt >= 0, TimeToHaltS: -1, TimeToRecoverS: -1, Checkins: f.checkins, ServerCheckins: f.full,
		VirtualS: float64(s.now), WallS: wall.Seconds(), StormActionsEnforced: f.stormEnforced, StormActionsShadow: f.stormShadow}
	r.SpuriousHalt = r.Halted && len(s.sc.Faults) == 0
	for i, a := range s.agents {
		if a.ch.Shadow && s.fig.completedAt >= 0 && int64(s.fleet.devs[i].seen) > s.fig.completedAt+1 {
			r.InShadowAtEnd++
		}
	}
	if k := s.sc.KillSwitch; k != nil {
		if k.For == 0 {
			s.measureKill()
		}
		r.KillSwitch = &KillSwitchFigures{ExposedWhileEngaged: s.fig.killedExposed, RunningAtRelease: s.fig.killedRunning}
	}
	r.Timeline = s.timeline
	if len(s.healed) > 0 {
		sp := spread(append([]float64(nil), s.healed...))
		r.HealMedianS, r.HealMaxS = sp.Median, sp.Max
	}
	if s.release != "" {
		if code, body := s.api("GET", "/v1/releases/"+s.release+"/status", nil, ""); code == http.StatusOK {
			var st server.ReleaseStatus
			if json.Unmarshal(body, &st) == nil {
				r.Why = st.Summary
			}
		}
		r.Widenings, r.LastWidening = widenings(s.store, s.release)
		if rel, err := s.store.GetRelease(context.Background(), s.release); err == nil {
			r.FinalState = string(rel.State)
			if plan, err := rollout.ParsePlan(rel.Plan); err == nil && rel.Wave < len(plan.Waves) {
				r.FinalWave = plan.Waves[rel.Wave].Name
			}
		}
	}
	if r.Halted && f.firstExposed >= 0 {
		r.TimeToHaltS = float64(f.haltedAt - f.firstExposed)
	}
	if s.atEnd != nil {
		r.ManualInterventions = int64(len(s.healing))
	} else {
		for i := range s.crashedAt {
			if s.fleet.devs[i].flags&flagRecovered == 0 {
				r.ManualInterventions++
			}
		}
	}
	if f.crashed > 0 && r.ManualInterventions == 0 {
		r.TimeToRecoverS = float64(f.lastRecovery - f.firstCrash)
	}
	if f.crashed == 0 {
		r.TimeToRecoverS = 0
	}
	// What stays allocated per device once the garbage is collected: the
	// fleet, the wheel and the state of the devices the rollout touched.
	r.PeakRSSBytes, r.BytesPerDevice = peakRSS(), heapPerDevice(s.sc.Devices)
	return r
}

// widenings counts the audit log's widenings of a release.
func widenings(st store.Store, release string) (int, string) {
	n, last := 0, ""
	for after := int64(0); ; {
		es, err := st.ListAudit(context.Background(), after, 1000)
		if err != nil || len(es) == 0 {
			return n, last
		}
		for _, e := range es {
			if e.Action == "release.widen" && e.Target == release {
				n, last = n+1, e.Reason
			}
			after = e.Seq
		}
	}
}

// heapPerDevice is the live heap, after a collection, over n devices.
func heapPerDevice(n int) float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return math.Round(float64(ms.HeapAlloc) / float64(max(1, n)))
}

// peakRSS is the process's high-water resident set (Linux), else 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}
