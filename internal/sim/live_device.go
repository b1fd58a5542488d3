package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
)

// liveDevice is one endpoint of a live run: a real agent in its own data
// directory, a stand-in worker, and the host around them, which may crash,
// reboot and go offline. It outlives its agents: each boot starts a new
// one on the same directory, as a restarted host would.
type liveDevice struct {
	l      *Live
	i      int
	org    int
	dir    string
	fault  string // the release's fault on this device, "" none
	client *http.Client

	// mu guards the host's state; the figures (exposed, crashed,
	// recovered) change under Live.mu too, taken after mu.
	mu           sync.Mutex
	rng          *rand.Rand
	exposed      bool
	crashed      bool
	recovered    bool
	down         bool // the host crashed and has not rebooted yet
	offlineUntil time.Time
}

// boot starts an agent on the device's directory. The agent runs until
// the run ends (a clean stop) or the host dies under it: the stand-in
// worker ends the agent's goroutine where it stands (runtime.Goexit), so
// nothing after that point runs, no journal update and no clean-stop
// marker, as in a real crash; the host comes back a minute or three later.
func (d *liveDevice) boot(ctx context.Context) {
	a, err := agent.New(agent.Config{Data: d.dir, Now: d.l.clock.Now, After: d.l.clock.After, HTTP: d.client, Log: d.l.log, Shared: true,
		NewWorker: func(onExit func(map[string]uint64, error)) agent.Worker {
			return &simWorker{d: d, onExit: onExit, loaded: map[string]uint64{}, shadow: map[string]uint64{}, slots: map[string]string{}}
		}})
	if err != nil {
		d.l.fail(fmt.Errorf("device %d: %w", d.i, err))
		return
	}
	d.l.wg.Add(1)
	go func() {
		defer d.l.wg.Done()
		stopped := false
		defer func() {
			if !stopped {
				d.restartLater(ctx)
			}
		}()
		if err := a.Run(ctx); err != nil && ctx.Err() == nil {
			d.l.fail(fmt.Errorf("device %d: agent: %w", d.i, err))
		}
		stopped = true
	}()
}

func (d *liveDevice) restartLater(ctx context.Context) {
	d.mu.Lock()
	after := time.Duration(60+d.rng.IntN(120)) * time.Second
	d.mu.Unlock()
	d.l.wg.Add(1)
	go func() {
		defer d.l.wg.Done()
		select {
		case <-ctx.Done():
			return
		case <-d.l.clock.After(after):
		}
		d.mu.Lock()
		wasDown := d.down
		d.down = false
		d.mu.Unlock()
		if wasDown {
			d.l.mu.Lock()
			d.l.fig.down--
			d.l.mu.Unlock()
		}
		d.boot(ctx)
	}()
}

// lockFigures takes the device's lock and then the run's, in that order,
// to change the figures; it returns the virtual second.
func (d *liveDevice) lockFigures() (l *Live, now int64, unlock func()) {
	l = d.l
	now = l.clock.seconds()
	d.mu.Lock()
	l.mu.Lock()
	return l, now, func() {
		l.mu.Unlock()
		d.mu.Unlock()
	}
}

// loaded notes the worker running version v: the release's version
// exposes the device; another one heals a device the release crashed.
func (d *liveDevice) loaded(v uint64) {
	l, now, unlock := d.lockFigures()
	defer unlock()
	if v == l.relVersion.Load() && v != 0 {
		if !d.exposed {
			d.exposed = true
			l.fig.exposed++
			if l.fig.firstExposed < 0 {
				l.fig.firstExposed = now
			}
		}
		return
	}
	if v != 0 && d.crashed && !d.recovered && !d.down {
		d.recovered = true
		f := &l.fig
		if l.atEnd != nil {
			// Past the scenario's end only the devices healing then count.
			if !l.healing[d.i] {
				return
			}
			delete(l.healing, d.i)
			f = l.atEnd
		}
		f.recovered++
		f.lastRecovery = now
		l.healed = append(l.healed, float64(now-l.crashedAt[d.i]))
	}
}

// crash notes the release's fault striking; host says the host went down.
func (d *liveDevice) crash(host bool) {
	l, now, unlock := d.lockFigures()
	defer unlock()
	if !d.crashed {
		d.crashed = true
		l.crashedAt[d.i] = now
		l.fig.crashed++
		if l.fig.firstCrash < 0 {
			l.fig.firstCrash = now
		}
	}
	if host && !d.down {
		d.down = true
		l.fig.down++
		l.fig.peakDown = max(l.fig.peakDown, l.fig.down)
	}
}

func (d *liveDevice) offline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.l.clock.Now().Before(d.offlineUntil)
}

// noise draws the background for one check-in: an unrelated worker
// crash, an unclean reboot (the host dies at once), or going offline.
func (d *liveDevice) noise(w *simWorker) {
	n := d.l.sc.Noise
	hours := time.Duration(d.l.sc.CheckinInterval).Hours()
	d.mu.Lock()
	crash := n.CrashesPerDeviceHour > 0 && d.rng.Float64() < n.CrashesPerDeviceHour*hours
	reboot := n.RebootsPerDeviceHour > 0 && d.rng.Float64() < n.RebootsPerDeviceHour*hours
	if n.Offline > 0 {
		away := time.Duration(n.OfflineFor)
		stay := time.Duration(float64(away) * (1 - n.Offline) / n.Offline)
		if d.rng.Float64() < float64(time.Duration(d.l.sc.CheckinInterval))/float64(stay) {
			d.offlineUntil = d.l.clock.Now().Add(time.Duration(d.rng.ExpFloat64() * float64(away)))
		}
	}
	d.mu.Unlock()
	if crash {
		go w.exit(errors.New("worker exited: unrelated crash (simulated noise)"))
	}
	if reboot {
		runtime.Goexit()
	}
}

// deviceTransport is the device's network: down during the scenario's
// outages and partitions that cut its organisation off, and while the
// device is offline.
type deviceTransport struct{ d *liveDevice }

var errUnreachable = errors.New("connect: connection refused (simulated: server unreachable)")

func (t deviceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	l := t.d.l
	if !l.reaches(t.d.org) || t.d.offline() {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errUnreachable
	}
	start := time.Now()
	resp, err := l.base.RoundTrip(r)
	l.clock.late(time.Since(start)) // real time the fleet spent: virtual time gone
	if err == nil && resp.StatusCode == http.StatusOK && r.URL.Path == "/v1/checkin" {
		l.checkins.Add(1)
	}
	return resp, err
}

// simWorker stands in for the worker process: it runs nothing, and
// crashes (or takes the host down) when it loads the release's version
// on a device its fault strikes. A crashing worker crashes again at each
// restart, 200 ms, 400 ms, ... later, as the real supervisor would
// restart it, until the agent loads something else.
type simWorker struct {
	d      *liveDevice
	onExit func(map[string]uint64, error)

	mu      sync.Mutex
	ctx     context.Context
	loaded  map[string]uint64
	shadow  map[string]uint64 // content in shadow, by channel
	slots   map[string]string
	gen     int // bumped by every change: an older crash loop stops
	stopped bool
	storm   bool // a false-positive storm loaded and not yet reported
}

func (w *simWorker) Start(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	return nil
}

func (w *simWorker) Stop() error {
	w.mu.Lock()
	w.stopped = true
	w.gen++
	w.mu.Unlock()
	return nil
}

func (w *simWorker) Load(ctx context.Context, ch string, v uint64, path string) error {
	return w.load(ch, v, path, false)
}

// LoadShadow runs the content as Load does: in shadow it still crashes
// what it crashes; only its detections are not enforced.
func (w *simWorker) LoadShadow(ctx context.Context, ch string, v uint64, path string) error {
	return w.load(ch, v, path, true)
}

func (w *simWorker) load(ch string, v uint64, path string, shadow bool) error {
	d := w.d
	fault := ""
	if v == d.l.relVersion.Load() {
		fault = d.fault
	}
	d.loaded(v)
	if fault == FaultHostCrash {
		d.crash(true)
		// Called on the agent's own goroutine (activating, or loading at
		// start): the host dies here.
		runtime.Goexit()
	}
	w.mu.Lock()
	if shadow {
		w.shadow[ch] = v
	} else {
		w.loaded[ch], w.slots[ch] = v, filepath.Dir(path)
	}
	w.gen++
	gen := w.gen
	w.storm = w.storm || fault == FaultFPStorm
	w.mu.Unlock()
	if fault == FaultWorkerCrash {
		d.crash(false)
		go w.crashLoop(gen)
	}
	return nil
}

func (w *simWorker) crashLoop(gen int) {
	for k := 0; ; k++ {
		w.mu.Lock()
		ctx := w.ctx
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-w.d.l.clock.After(time.Duration(200<<min(k, 8)) * time.Millisecond):
		}
		w.mu.Lock()
		same := w.gen == gen && !w.stopped
		w.mu.Unlock()
		if !same {
			return
		}
		w.exit(errors.New("worker exited: signal SIGSEGV (simulated fault)"))
	}
}

// exit reports the worker's death to the agent with what it ran.
func (w *simWorker) exit(err error) {
	w.mu.Lock()
	loaded := make(map[string]uint64, len(w.loaded)+len(w.shadow))
	for k, v := range w.shadow {
		loaded[k] = v
	}
	for k, v := range w.loaded {
		loaded[k] = v
	}
	stopped := w.stopped
	w.mu.Unlock()
	if !stopped && len(loaded) > 0 {
		w.onExit(loaded, err)
	}
}

func (w *simWorker) Unload(ctx context.Context, ch string) error {
	w.mu.Lock()
	delete(w.loaded, ch)
	delete(w.slots, ch)
	w.gen++
	w.mu.Unlock()
	return nil
}

func (w *simWorker) UnloadShadow(ctx context.Context, ch string) error {
	w.mu.Lock()
	delete(w.shadow, ch)
	w.gen++
	w.mu.Unlock()
	return nil
}

func (w *simWorker) LoadedShadow(ch string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shadow[ch]
}

func (w *simWorker) Loaded(ch string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded[ch]
}

func (w *simWorker) LoadedSlot(ch string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slots[ch]
}

// Counts is asked once per check-in, on the agent's goroutine: the
// moment to draw the host's noise, and to report a storm of false
// alarms once the storm's content runs.
func (w *simWorker) Counts(ctx context.Context) (agent.ActionCounts, error) {
	w.d.noise(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.storm {
		return agent.ActionCounts{}, nil
	}
	w.storm = false
	storm := func(loaded map[string]uint64) map[string]map[string]int64 {
		out := map[string]map[string]int64{}
		for ch, v := range loaded {
			if v == w.d.l.relVersion.Load() {
				out[ch] = map[string]int64{"alert": 5000}
			}
		}
		return out
	}
	return agent.ActionCounts{Enforced: storm(w.loaded), Shadow: storm(w.shadow)}, nil
}

func (w *simWorker) Feed([]byte) {}
