package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent/worker"
)

// testWorkerEnv makes the test binary a worker, so the supervisor tests
// run a real, separate process: "1" runs worker.Run with RINGFENCE_FAULT,
// "hang" reads nothing and never exits (a hung worker).
const testWorkerEnv = "RINGFENCE_TEST_WORKER"

func TestMain(m *testing.M) {
	switch os.Getenv(testWorkerEnv) {
	case "":
		os.Exit(m.Run())
	case "hang":
		time.Sleep(time.Hour)
		os.Exit(3)
	}
	fault, err := worker.ParseFault(os.Getenv(worker.FaultEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := worker.Run(context.Background(), os.Stdin, os.Stdout, fault); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// exitCall is one onExit call.
type exitCall struct {
	loaded map[string]uint64
	err    error
}

// newTestSupervisor returns a supervisor, not started, whose worker is this
// test binary with env added. Every onExit call is sent on the returned
// channel after react, if any, has run.
func newTestSupervisor(t *testing.T, react func(s *Supervisor, n int), env ...string) (*Supervisor, <-chan exitCall) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Under -race a process sleeps a second at exit unless told not to,
	// which would make every stop look hung.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	env = append([]string{testWorkerEnv + "=1", worker.FaultEnv + "=", "GORACE=" + gorace}, env...)
	spec := WorkerSpec{Path: exe, Args: []string{"worker"}, Env: append(os.Environ(), env...)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	exits := make(chan exitCall, 16)
	var s *Supervisor
	n := 0
	s = NewSupervisor(spec, log, func(loaded map[string]uint64, err error) {
		n++
		if react != nil {
			react(s, n)
		}
		exits <- exitCall{loaded, err}
	})
	s.restart.min, s.restart.max = 10*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { _ = s.Stop() })
	return s, exits
}

func start(t *testing.T, s *Supervisor) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitUp(t, s)
}

func waitUp(t *testing.T, s *Supervisor) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		up := s.state == stateUp
		s.mu.Unlock()
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not come up within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func workerOf(t *testing.T, s *Supervisor) *workerProc {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		t.Fatal("no worker running")
	}
	return s.w
}

func nextExit(t *testing.T, exits <-chan exitCall) exitCall {
	t.Helper()
	select {
	case e := <-exits:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("onExit was not called within 10s")
	}
	panic("unreachable")
}

// checkCounts feeds the sample events rounds times and checks the
// worker's counts against an in-process evaluator's; want nil means the
// channel runs nothing.
func checkCounts(t *testing.T, s *Supervisor, rounds int, want map[string]int64) {
	t.Helper()
	fx := loadContent(t)
	dropped := s.Dropped()
	for range rounds {
		for _, line := range fx.events {
			s.Feed(line)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	got := counts.Enforced
	if d := s.Dropped() - dropped; d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	if !maps.Equal(got["acme/ipc"], want) || len(got) > 1 || (want == nil && len(got) != 0) {
		t.Errorf("counts = %v, want acme/ipc: %v", got, want)
	}
}

func TestSupervisorCountsMatchInProcess(t *testing.T) {
	const none = 0 // unload
	tests := []struct {
		name        string
		beforeStart []uint64 // loaded before Start
		loads       []uint64 // then, in order
		want        bool     // counts of the example bundle, or nothing
	}{
		{name: "loaded", loads: []uint64{292}, want: true},
		{name: "loaded-before-start", beforeStart: []uint64{292}, want: true},
		{name: "new-version-replaces", loads: []uint64{292, 293}, want: true},
		{name: "unloaded", loads: []uint64{292, none}, want: false},
		{name: "nothing-loaded", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, exits := newTestSupervisor(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			apply := func(vs []uint64) {
				for _, v := range vs {
					var err error
					if v == none {
						err = s.Unload(ctx, "acme/ipc")
					} else {
						err = s.Load(ctx, "acme/ipc", v, writeBundle(t, dir, v))
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			apply(tt.beforeStart)
			start(t, s)
			apply(tt.loads)
			var want map[string]int64
			if tt.want {
				want = wantCounts(t, 25)
			}
			checkCounts(t, s, 25, want)
			// Counts are since the last request.
			if tt.want {
				want = wantCounts(t, 1)
			}
			checkCounts(t, s, 1, want)
			if len(exits) != 0 || s.Restarts() != 0 {
				t.Errorf("worker exited %d times, restarted %d, want 0", len(exits), s.Restarts())
			}
		})
	}
}

// TestSupervisorWorkerCrashFault is a crash loop as the agent sees it:
// loading the faulty version kills the worker; onExit reverts, on the
// first or a later crash, by loading or unloading while the worker is
// down; the worker comes back with the reverted content and stays up.
func TestSupervisorWorkerCrashFault(t *testing.T) {
	tests := []struct {
		name        string
		revertAfter int    // crashes before onExit reverts
		revertTo    uint64 // 0: unload
	}{
		{name: "unload-after-first-crash", revertAfter: 1, revertTo: 0},
		{name: "back-to-292-after-first-crash", revertAfter: 1, revertTo: 292},
		{name: "crash-loop-then-back-to-292", revertAfter: 3, revertTo: 292},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b292, b293 := writeBundle(t, dir, 292), writeBundle(t, dir, 293)
			var reactErr error
			react := func(s *Supervisor, n int) {
				if n != tt.revertAfter {
					return
				}
				// The worker is down: these must only record, not wait.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if tt.revertTo == 0 {
					reactErr = s.Unload(ctx, "acme/ipc")
				} else {
					reactErr = s.Load(ctx, "acme/ipc", tt.revertTo, b292)
				}
			}
			s, exits := newTestSupervisor(t, react, worker.FaultEnv+"=worker-crash:acme/ipc@293")
			start(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Load(ctx, "acme/ipc", 292, b292); err != nil {
				t.Fatal(err)
			}
			err := s.Load(ctx, "acme/ipc", 293, b293)
			if !errors.Is(err, ErrWorkerExited) || !strings.Contains(err.Error(), "fault injected") {
				t.Fatalf("Load of the faulty version: %v, want an ErrWorkerExited naming the fault", err)
			}
			for i := 1; i <= tt.revertAfter; i++ {
				e := nextExit(t, exits)
				if want := map[string]uint64{"acme/ipc": 293}; !maps.Equal(e.loaded, want) {
					t.Errorf("exit %d: loaded %v, want %v", i, e.loaded, want)
				}
				var xe *WorkerExitError
				if !errors.As(e.err, &xe) || xe.Status != worker.CrashStatus ||
					!strings.Contains(e.err.Error(), "worker exited with status 70: fault injected: worker-crash acme/ipc@293") {
					t.Errorf("exit %d: err %v, want status 70 naming the fault", i, e.err)
				}
			}
			if reactErr != nil {
				t.Fatalf("onExit's revert: %v", reactErr)
			}
			waitUp(t, s)
			if got := s.Loaded("acme/ipc"); got != tt.revertTo {
				t.Errorf("Loaded = %d, want %d", got, tt.revertTo)
			}
			var want map[string]int64
			if tt.revertTo != 0 {
				want = wantCounts(t, 3)
			}
			checkCounts(t, s, 3, want)
			// It stays up.
			time.Sleep(200 * time.Millisecond)
			if len(exits) != 0 {
				t.Errorf("the worker exited again after the revert: %+v", <-exits)
			}
			if got := s.Restarts(); got != tt.revertAfter {
				t.Errorf("Restarts = %d, want %d", got, tt.revertAfter)
			}
		})
	}
}

func TestSupervisorKilledWorkerRestarts(t *testing.T) {
	dir := t.TempDir()
	s, exits := newTestSupervisor(t, nil)
	start(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Load(ctx, "acme/ipc", 292, writeBundle(t, dir, 292)); err != nil {
		t.Fatal(err)
	}
	old := workerOf(t, s)
	p, err := os.FindProcess(old.pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil { // SIGKILL on Unix
		t.Fatal(err)
	}
	e := nextExit(t, exits)
	if want := map[string]uint64{"acme/ipc": 292}; !maps.Equal(e.loaded, want) {
		t.Errorf("loaded at exit %v, want %v", e.loaded, want)
	}
	if !errors.Is(e.err, ErrWorkerExited) {
		t.Errorf("exit error %v does not match ErrWorkerExited", e.err)
	}
	if runtime.GOOS != "windows" && !strings.Contains(e.err.Error(), "killed by signal: killed") {
		t.Errorf("exit error %q does not name SIGKILL", e.err)
	}
	waitUp(t, s)
	if w := workerOf(t, s); w.pid == old.pid {
		t.Errorf("worker pid still %d after the kill", w.pid)
	}
	if s.Restarts() != 1 {
		t.Errorf("Restarts = %d, want 1", s.Restarts())
	}
	checkCounts(t, s, 5, wantCounts(t, 5))
}

func TestSupervisorLoadRefused(t *testing.T) {
	dir := t.TempDir()
	b292 := writeBundle(t, dir, 292)
	bad := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fx := loadContent(t)
	tests := []struct {
		name    string
		version uint64
		path    string
		errHas  string
	}{
		{name: "not-a-bundle", version: 293, path: bad("text.bundle", []byte("hello\n")), errHas: "text.bundle"},
		{name: "empty-file", version: 293, path: bad("empty.bundle", nil), errHas: "empty.bundle"},
		{name: "truncated", version: 293, path: bad("cut.bundle", fx.encoded[:len(fx.encoded)/2]), errHas: "cut.bundle"},
		{name: "missing-file", version: 293, path: filepath.Join(dir, "missing.bundle"), errHas: "missing.bundle"},
		{name: "other-version-in-file", version: 294, path: b292, errHas: "holds acme/ipc@292"},
	}
	s, exits := newTestSupervisor(t, nil)
	start(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Load(ctx, "acme/ipc", 292, b292); err != nil {
		t.Fatal(err)
	}
	pid := workerOf(t, s).pid
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Load(ctx, "acme/ipc", tt.version, tt.path)
			if err == nil || errors.Is(err, ErrWorkerExited) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Load = %v, want a refusal naming %q", err, tt.errHas)
			}
			if got := s.Loaded("acme/ipc"); got != 292 {
				t.Errorf("Loaded = %d after a refused load, want 292", got)
			}
			if w := workerOf(t, s); w.pid != pid || len(exits) != 0 {
				t.Fatalf("the worker did not survive the bad bundle")
			}
			checkCounts(t, s, 2, wantCounts(t, 2))
		})
	}
}

func TestSupervisorStop(t *testing.T) {
	tests := []struct {
		name    string
		worker  string // testWorkerEnv
		cancel  bool   // end the context instead of calling Stop
		wantErr string
	}{
		{name: "graceful", worker: "1"},
		{name: "context-ends", worker: "1", cancel: true},
		{name: "hung-worker-killed", worker: "hang", wantErr: "killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, exits := newTestSupervisor(t, nil, testWorkerEnv+"="+tt.worker)
			if tt.worker == "hang" {
				s.stopTimeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			waitUp(t, s)
			w := workerOf(t, s)
			var err error
			if tt.cancel {
				cancel()
				<-s.done
				err = s.stopErr
			} else {
				err = s.Stop()
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("stop: %v, want error %q", err, tt.wantErr)
			}
			// Reaped: the process is gone.
			select {
			case <-w.exited:
			default:
				t.Fatal("the worker process is still running after Stop")
			}
			if w.cmd.ProcessState == nil {
				t.Fatal("the worker process was not waited for")
			}
			if len(exits) != 0 {
				t.Errorf("onExit called for a stop: %+v", <-exits)
			}
			if again := s.Stop(); again != err {
				t.Errorf("second Stop = %v, want %v again", again, err)
			}
			if err := s.Load(context.Background(), "acme/ipc", 292, "x"); !errors.Is(err, errSupervisorStopped) {
				t.Errorf("Load after Stop = %v, want errSupervisorStopped", err)
			}
			d := s.Dropped()
			s.Feed(loadContent(t).events[0])
			if s.Dropped() != d+1 {
				t.Error("Feed after Stop did not count a drop")
			}
		})
	}
}

func TestSupervisorFeedNeverBlocks(t *testing.T) {
	s, _ := newTestSupervisor(t, nil, testWorkerEnv+"=hang")
	s.stopTimeout = 100 * time.Millisecond
	line := loadContent(t).events[0]
	s.Feed(line)
	if s.Dropped() != 1 {
		t.Fatalf("Feed before Start: Dropped = %d, want 1", s.Dropped())
	}
	start(t, s)
	// The hung worker reads nothing: its pipe fills, then the queue.
	const n = 20000
	begin := time.Now()
	for range n {
		s.Feed(line)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("feeding %d events to a hung worker took %s", n, d)
	}
	if got := s.Dropped(); got < n-feedBuffer-(128<<10)/int64(len(line)) || got > n+1 {
		t.Errorf("Dropped = %d of %d fed to a hung worker", got, n)
	}
	s.Feed([]byte("two\nlines"))
	if s.Rejected() != 1 {
		t.Errorf("a line with a newline inside: Rejected = %d, want 1", s.Rejected())
	}
}

func TestRestartBackoff(t *testing.T) {
	const s, ms = time.Second, time.Millisecond
	tests := []struct {
		name    string
		uptimes []time.Duration
		want    []time.Duration
	}{
		{name: "first-restart-after-min", uptimes: []time.Duration{0}, want: []time.Duration{200 * ms}},
		{name: "doubles-while-dying-young", uptimes: []time.Duration{1 * s, 2 * s, 0, 59 * s}, want: []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms}},
		{name: "capped", uptimes: make([]time.Duration, 10),
			want: []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 25600 * ms, 30 * s, 30 * s}},
		{name: "reset-after-a-minute-up", uptimes: []time.Duration{0, 0, 0, 60 * s, 0}, want: []time.Duration{200 * ms, 400 * ms, 800 * ms, 200 * ms, 400 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := restartBackoff{min: restartMin, max: restartMax, reset: restartReset}
			for i, up := range tt.uptimes {
				if got := b.after(up); got != tt.want[i] {
					t.Errorf("restart %d after %s up: wait %s, want %s", i+1, up, got, tt.want[i])
				}
			}
		})
	}
}
