package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/trust"
)

// Live mode runs a scenario through the real API: a real server (SQLite
// store, signed-update repository, controller) on a loopback port, and
// for every device the real agent (journal, event queue, TUF client,
// recovery decisions) in a goroutine with its own data directory,
// enrolling and checking in over HTTP. Only the worker process and the
// host are stand-ins, crashing as the scenario's faults say. Server and
// agents share a compressed clock.

// Live-mode limits: thousands of real agents fit one process; millions
// are the virtual-time engine's job.
const (
	DefaultLiveDevices = 2000
	MaxLiveDevices     = 20000
	DefaultLiveSpeed   = 30
)

// LiveOptions says how a live run runs.
type LiveOptions struct {
	Devices int     // 0: the scenario's, at most DefaultLiveDevices
	Seed    uint64  // 0: the scenario's
	Speed   float64 // virtual seconds per second; 0: DefaultLiveSpeed
	// Dir holds the server's and the devices' data; "" is a temporary
	// directory, removed afterwards (on tmpfs where there is one: a
	// fleet's journals are thousands of fsyncs a second).
	Dir string
	Log *slog.Logger
	// Listen is the server's address ("": a port of loopback the system
	// picks); Console mounts the web console (server.Config.Console).
	// ringfence demo sets both, for a person to watch.
	Listen  string
	Console func(*server.Server) http.Handler
}

// Live is one live run.
type Live struct {
	sc    *Scenario
	o     LiveOptions
	clock *vclock
	// slowest is the lowest speed the governor set (vclock).
	slowest float64
	fleet   *fleet
	dir     string
	tmp     bool
	log     *slog.Logger
	st      *sqlstore.Store
	srv     *server.Server
	url     string
	base    *http.Transport
	devs    []*liveDevice
	cancel  context.CancelFunc // the server's
	served  chan error
	wg      sync.WaitGroup // the devices' goroutines

	approverKey ed25519.PrivateKey
	baseVersion uint64
	relVersion  atomic.Uint64 // the scenario release's version once published
	release     string
	waiting     int64 // virtual second the release began awaiting approval; -1 not
	netMu       sync.RWMutex
	net         *network
	checkins    atomic.Int64

	mu        sync.Mutex
	fig       figures
	atEnd     *figures     // the figures at the scenario's end
	healing   map[int]bool // devices crashed by then and not yet healed
	crashedAt map[int]int64
	healed    []float64
	series    []Point
	timeline  []Step
	errs      []error
	final     server.ReleaseReport
}

// NewLive sets a live run up: the server with the scenario's world, and
// every device enrolled over HTTP and running the baseline, as a fleet
// that has run it for a day would.
func NewLive(ctx context.Context, sc *Scenario, o LiveOptions) (*Live, error) {
	n := o.Devices
	if n == 0 {
		n = min(sc.Devices, DefaultLiveDevices)
	}
	if n < 1 || n > MaxLiveDevices {
		return nil, fmt.Errorf("live mode runs 1 to %d devices, not %d", MaxLiveDevices, n)
	}
	if o.Speed == 0 {
		o.Speed = DefaultLiveSpeed
	}
	if o.Speed < 1 || o.Speed > 600 {
		return nil, fmt.Errorf("speed %v: want 1 to 600 virtual seconds per second", o.Speed)
	}
	seed := sc.Seed
	if o.Seed != 0 {
		seed = o.Seed
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	scc := *sc
	scc.Devices, scc.Seed = n, seed
	now := time.Now()
	l := &Live{sc: &scc, o: o, log: o.Log, clock: newVClock(now, o.Speed), slowest: o.Speed, waiting: -1, served: make(chan error, 1), crashedAt: map[int]int64{}}
	l.fig.firstExposed, l.fig.firstCrash, l.fig.lastRecovery, l.fig.haltedAt, l.fig.completedAt = -1, -1, -1, -1, -1
	l.fleet = newFleet(l.sc, n, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	l.net = newNetwork(l.sc, len(l.fleet.orgs))
	l.dir = o.Dir
	if l.dir == "" {
		parent := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			parent = "/dev/shm"
		}
		d, err := os.MkdirTemp(parent, "ringfence-live-")
		if err != nil {
			return nil, err
		}
		l.dir, l.tmp = d, true
	}
	if err := l.setup(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Live) setup(ctx context.Context) error {
	srvDir := filepath.Join(l.dir, "server")
	st, err := sqlstore.Open(ctx, "", srvDir)
	if err != nil {
		return err
	}
	l.st = st
	cat, err := server.ExampleCatalog()
	if err != nil {
		return err
	}
	// The server's loops tick in real time: scale them with the clock.
	tick := max(10*time.Millisecond, time.Duration(float64(l.sc.ControllerTick)/l.o.Speed))
	// The whole fleet enrols from loopback within its first interval, in
	// compressed time: no enrolment limit.
	l.srv = server.New(server.Config{CheckinInterval: time.Duration(l.sc.CheckinInterval), Catalog: cat, ControllerTick: tick, SnapshotRefresh: tick, Enrolments: -1,
		TUFDir: filepath.Join(srvDir, "tuf"), Console: l.o.Console}, st, l.clock.Now, l.log)
	base, err := seedWorld(ctx, st, l.fleet, l.sc.Release.Baseline, cat, l.clock.epoch.Add(-24*time.Hour))
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	l.baseVersion = base.Version
	keyFile, err := l.srv.SeedDevTrust(srvDir, fmt.Sprintf("%s/%d.bundle", channel, base.Version), base.Bytes)
	if err != nil {
		return fmt.Errorf("signed-update repository: %w", err)
	}
	if l.approverKey, err = trust.LoadKey(keyFile); err != nil {
		return err
	}
	for _, o := range l.fleet.orgs {
		if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "enr-" + o.id, Org: o.id, Hash: hashHex(enrollToken(o.id)), CreatedAt: l.clock.epoch}); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	ready := make(chan string, 1)
	listen := l.o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	go func() {
		l.served <- l.srv.ListenAndServe(sctx, listen, func(a net.Addr) { ready <- "http://" + a.String() })
	}()
	select {
	case l.url = <-ready:
	case err := <-l.served:
		return fmt.Errorf("server: %w", err)
	}
	// One transport for the fleet, with enough kept-alive connections that
	// thousands of devices do not churn through the loopback's ports.
	l.base = &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: time.Minute}
	return l.enrollAll(ctx, base.Bytes)
}

func enrollToken(org string) string { return "rfe_sim-" + org }

// enrollAll enrols every device over HTTP, with the repository's first
// root as the trust the agent ships with, and installs the baseline in
// its slot A, confirmed.
func (l *Live) enrollAll(ctx context.Context, baseline []byte) error {
	root, err := os.ReadFile(filepath.Join(l.dir, "server", "tuf", "metadata", "1.root.json"))
	if err != nil {
		return fmt.Errorf("initial root: %w", err)
	}
	l.devs = make([]*liveDevice, len(l.fleet.devs))
	jobs := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := l.enroll(ctx, i, root, baseline); err != nil {
					select {
					case errc <- fmt.Errorf("device %d: %w", i, err):
					default:
					}
				}
			}
		}()
	}
	for i := range l.devs {
		select {
		case err := <-errc:
			close(jobs)
			wg.Wait()
			return err
		case jobs <- i:
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (l *Live) enroll(ctx context.Context, i int, root, baseline []byte) error {
	fd := &l.fleet.devs[i]
	st, o := l.fleet.strata[fd.stratum], l.fleet.orgs[fd.org]
	d := &liveDevice{l: l, i: i, org: int(fd.org), dir: filepath.Join(l.dir, "devices", deviceID(i)), fault: deviceFault(l.sc, st, i),
		rng: rand.New(rand.NewPCG(l.sc.Seed, uint64(i)))}
	d.client = &http.Client{Transport: deviceTransport{d}, Timeout: time.Minute}
	if _, _, err := agent.Enroll(ctx, agent.EnrollOptions{Server: l.url, Token: enrollToken(o.id), Data: d.dir, Root: root,
		Platform: st.platform, OSBuild: st.osBuild, AgentVersion: st.agent, Hostname: deviceID(i), HTTP: &http.Client{Transport: l.base}}); err != nil {
		return err
	}
	slot := filepath.Join(d.dir, "slots", filepath.FromSlash(channel), string(agent.SlotA))
	if err := os.MkdirAll(slot, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(slot, strconv.FormatUint(l.baseVersion, 10)+".bundle"), baseline, 0o600); err != nil {
		return err
	}
	j := agent.NewJournal()
	j.Channels[channel] = &agent.ChannelState{Name: channel, ActiveVersion: l.baseVersion, ActiveSlot: agent.SlotA,
		LKGVersion: l.baseVersion, LKGSlot: agent.SlotA, State: agent.StateActive}
	l.devs[i] = d
	return j.Save(d.dir)
}

// Close stops the devices and the server and removes a temporary
// directory.
func (l *Live) Close() {
	if l.cancel != nil {
		l.cancel()
		<-l.served
	}
	if l.st != nil {
		l.st.Close()
	}
	if l.tmp {
		os.RemoveAll(l.dir)
	}
}

// Series is the fleet minute by minute.
func (l *Live) Series() []Point { return l.series }

// URL is the server's address.
func (l *Live) URL() string { return l.url }

// Release is the scenario release's id once it is created.
func (l *Live) Release() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.release
}

// AddToken creates an API token for a person watching the run (tenant
// "" for the operator's) and returns its secret.
func (l *Live) AddToken(ctx context.Context, tenant string, role store.Role, name string) (string, error) {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", err
	}
	secret := "rft_" + hex.EncodeToString(b[:])
	tok := store.APIToken{ID: "tok-" + hex.EncodeToString(b[:4]), Tenant: tenant, Role: role, Name: name, Hash: hashHex(secret), CreatedAt: l.clock.Now()}
	if err := l.st.CreateAPIToken(ctx, tok); err != nil {
		return "", fmt.Errorf("token for %s: %w", name, err)
	}
	return secret, nil
}

// Orgs are the fleet's organisations, internal ones first.
func (l *Live) Orgs() []string {
	var in, out []string
	for _, o := range l.fleet.orgs {
		if o.internal {
			in = append(in, o.id)
		} else {
			out = append(out, o.id)
		}
	}
	return append(in, out...)
}

// HaltedAt is the virtual second the release halted, or -1.
func (l *Live) HaltedAt() int64 { return l.fig.haltedAt }

// Run starts the devices, each within its first check-in interval,
// publishes and releases the scenario's bundle at its start, plays the
// approver, and runs until the scenario's end or until the release is
// over and every crashed device healed.
func (l *Live) Run(ctx context.Context, progress io.Writer) (*Result, error) {
	wall := time.Now()
	dctx, stop := context.WithCancel(ctx)
	interval := time.Duration(l.sc.CheckinInterval)
	for _, d := range l.devs {
		after := time.Duration(d.rng.Int64N(int64(interval)))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			select {
			case <-dctx.Done():
			case <-l.clock.After(after):
				d.boot(dctx)
			}
		}()
	}
	err := l.drive(ctx, progress)
	stop()
	l.wg.Wait()
	if err != nil {
		return nil, err
	}
	// No Server.Drain here: the server still serves (stopped agents may
	// have requests in flight), and its figures are read over the API.
	return l.result(ctx, time.Since(wall)), nil
}

func (l *Live) drive(ctx context.Context, progress io.Writer) error {
	start := int64(time.Duration(l.sc.Release.Start) / time.Second)
	end := int64(time.Duration(l.sc.Duration) / time.Second)
	interval := int64(time.Duration(l.sc.CheckinInterval) / time.Second)
	var minute int64
	lastPct := -1
	pl := newProgress(progress)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for started, ticks := false, 0; ; ticks++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-l.served:
			l.served <- err
			return fmt.Errorf("the server stopped: %v", err)
		case <-tick.C:
		}
		if ticks%10 == 0 {
			l.clock.govern()
			l.slowest = min(l.slowest, l.clock.speed())
		}
		now := l.clock.seconds()
		if now >= end && l.closeWindow(now >= end+healGrace) {
			return nil
		}
		l.setOutage(now)
		if !started && now >= start {
			started = true
			if err := l.startRelease(ctx); err != nil {
				return err
			}
			if l.fig.rejected != "" {
				return nil
			}
		}
		if started {
			if err := l.observe(ctx, now); err != nil {
				return err
			}
		}
		l.mu.Lock()
		for ; minute*60+60 <= now; minute++ {
			l.series = append(l.series, Point{T: float64(minute*60 + 60), Exposed: l.fig.exposed, Down: l.fig.down, Crashed: l.fig.crashed, Recovered: l.fig.recovered})
		}
		f := l.fig
		errs := l.errs
		final := l.final
		l.mu.Unlock()
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if pl != nil {
			if pct := int(min(100, 100*now/end)); pct != lastPct {
				lastPct = pct
				pl.at(pct, fmt.Sprintf("%s (live)  %3d%%  virtual %s  exposed %d  crashed %d", l.sc.Name, pct, time.Duration(now)*time.Second, f.exposed, f.crashed))
			}
		}
		// Over: completed and two check-ins later (every device has it),
		// or halted with every crashed device healed and the release
		// rolled back (the deny list reached every device that ran it), or
		// six check-ins after the halt at most.
		rolledBack := store.ReleaseState(final.State) == store.ReleaseRolledBack
		if f.completedAt >= 0 && now >= f.completedAt+2*interval || f.haltedAt >= 0 && f.down == 0 && f.recovered == f.crashed && (rolledBack || now >= f.haltedAt+6*interval) {
			pl.done()
			return nil
		}
	}
}

// setOutage brings the network to the virtual second now. The server
// runs on through an outage of the control plane too: live, an outage is
// the devices' network refusing connections, and the server must take
// the fleet's silence for what it is.
// closeWindow ends the scenario's window (its figures are final) and
// reports whether the run is over: no device crashed by then is still
// healing, or the grace (healGrace) is up.
func (l *Live) closeWindow(graceUp bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.atEnd == nil {
		f := l.fig
		l.atEnd, l.healing = &f, map[int]bool{}
		// crashed and recovered change under l.mu too (and d.mu, taken
		// first: not here).
		for _, d := range l.devs {
			if d.crashed && !d.recovered {
				l.healing[d.i] = true
			}
		}
	}
	return graceUp || len(l.healing) == 0
}

func (l *Live) setOutage(now int64) {
	l.netMu.Lock()
	l.net.at(time.Duration(now) * time.Second)
	l.netMu.Unlock()
}

func (l *Live) reaches(org int) bool {
	l.netMu.RLock()
	defer l.netMu.RUnlock()
	return l.net.reaches(org)
}

// call is one admin API request over HTTP.
func (l *Live) call(ctx context.Context, token, method, path string, body []byte, contentType string, out any) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, l.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Transport: l.base, Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, b, nil
}

// startRelease publishes the scenario's bundle over the API (where the
// validator may refuse it), or through the server's simulator-only
// PublishUnvalidated when the scenario bypasses validation, and creates
// its release.
func (l *Live) startRelease(ctx context.Context) error {
	r := l.sc.Release
	src, err := bundleSource(r.Bundle, r.Version)
	if err != nil {
		return err
	}
	if r.BypassValidation {
		if err := publishUnvalidated(ctx, l.srv, r.Bundle, src); err != nil {
			return err
		}
	} else {
		code, body, err := l.call(ctx, publisherToken, "POST", "/v1/channels/acme/ipc/publish", src, "application/yaml", nil)
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			l.fig.rejected = rejection(code, body)
			return nil
		}
	}
	req := map[string]any{"channel": channel, "version": r.Version}
	if r.Plan != nil {
		req["plan"] = r.Plan
	}
	body, _ := json.Marshal(req)
	var rel struct {
		ID string `json:"id"`
	}
	code, out, err := l.call(ctx, publisherToken, "POST", "/v1/releases", body, "application/json", &rel)
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("release: %d %s", code, out)
	}
	l.mu.Lock() // Release reads it from other goroutines
	l.release = rel.ID
	l.mu.Unlock()
	l.relVersion.Store(r.Version)
	return nil
}

// observe reads the release over the API, notes its changes, halt and
// completion, and plays the vendor's approver: ApproveAfter into the wait
// at the end of the canary waves it signs the production role with the
// vendor's second key and approves.
func (l *Live) observe(ctx context.Context, now int64) error {
	var r server.ReleaseReport
	code, body, err := l.call(ctx, publisherToken, "GET", "/v1/releases/"+l.release, nil, "", &r)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("release %s: %d %s", l.release, code, body)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.final = r
	if n := len(l.timeline); n == 0 || l.timeline[n-1].State != r.State || l.timeline[n-1].Wave != r.Wave {
		l.timeline = append(l.timeline, Step{T: float64(now), State: r.State, Wave: r.Wave, Reason: r.Reason})
	}
	switch store.ReleaseState(r.State) {
	case store.ReleaseAwaitingApproval:
		if len(r.Approvals) > 0 {
			break
		}
		if l.waiting < 0 {
			l.waiting = now
		}
		if now-l.waiting >= int64(time.Duration(l.sc.Release.ApproveAfter)/time.Second) {
			if err := l.approve(ctx); err != nil {
				return err
			}
		}
	case store.ReleaseHalted, store.ReleaseRolledBack:
		if l.fig.haltedAt < 0 {
			l.fig.haltedAt, l.fig.haltReason = now, r.Reason
		}
	case store.ReleaseCompleted:
		if l.fig.completedAt < 0 {
			l.fig.completedAt = now
		}
	}
	return nil
}

func (l *Live) approve(ctx context.Context) error {
	var req trust.Request
	if _, _, err := l.call(ctx, approverToken, "GET", "/v1/vendors/acme/signing-request", nil, "", &req); err != nil {
		return err
	}
	if len(req.Roles) > 0 {
		if _, err := trust.Sign(&req, l.approverKey); err != nil {
			return fmt.Errorf("approver: sign: %w", err)
		}
		body, _ := json.Marshal(req)
		if code, out, err := l.call(ctx, approverToken, "POST", "/v1/vendors/acme/signatures", body, "application/json", nil); err != nil || code != http.StatusOK {
			return fmt.Errorf("approver: signatures: %d %s %v", code, out, err)
		}
	}
	code, out, err := l.call(ctx, approverToken, "POST", "/v1/releases/"+l.release+"/approve", []byte(`{"reason":"canary figures reviewed (simulated approver)"}`), "application/json", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("approver: approve: %d %s %v", code, out, err)
	}
	return nil
}

func (l *Live) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *Live) result(ctx context.Context, wall time.Duration) *Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fig
	if l.atEnd != nil {
		f = *l.atEnd
	}
	r := &Result{Scenario: l.sc.Name, Devices: l.sc.Devices, Seed: l.sc.Seed, Live: true, Rejection: f.rejected, RejectedAtPublish: f.rejected != "",
		ExposedDevices: f.exposed, CrashedDevices: f.crashed, PeakCrashed: f.peakDown, Halted: f.haltedAt >= 0, HaltReason: f.haltReason,
		Completed: f.completedAt >= 0, TimeToHaltS: -1, TimeToRecoverS: -1, Checkins: l.checkins.Load(), ServerCheckins: l.checkins.Load(),
		VirtualS: float64(l.clock.seconds()), WallS: wall.Seconds(), LiveSpeedMin: l.slowest, Timeline: l.timeline, FinalState: l.final.State, FinalWave: l.final.WaveName}
	r.SpuriousHalt = r.Halted && len(l.sc.Faults) == 0
	if len(l.healed) > 0 {
		sp := spread(append([]float64(nil), l.healed...))
		r.HealMedianS, r.HealMaxS = sp.Median, sp.Max
	}
	if l.release != "" {
		var st server.ReleaseStatus
		if code, _, err := l.call(ctx, publisherToken, "GET", "/v1/releases/"+l.release+"/status", nil, "", &st); err == nil && code == http.StatusOK {
			r.Why = st.Summary
		}
	}
	if r.Halted && f.firstExposed >= 0 {
		r.TimeToHaltS = float64(f.haltedAt - f.firstExposed)
	}
	if l.atEnd != nil {
		r.ManualInterventions = int64(len(l.healing))
	} else {
		for _, d := range l.devs {
			if d.crashed && !d.recovered {
				r.ManualInterventions++
			}
		}
	}
	switch {
	case f.crashed == 0:
		r.TimeToRecoverS = 0
	case r.ManualInterventions == 0:
		r.TimeToRecoverS = float64(f.lastRecovery - f.firstCrash)
	}
	r.PeakRSSBytes, r.BytesPerDevice = peakRSS(), heapPerDevice(l.sc.Devices)
	return r
}
