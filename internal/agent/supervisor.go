package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ringfence/ringfence/internal/content"

	"github.com/ringfence/ringfence/internal/agent/worker"
)

// ErrWorkerExited is wrapped by the errors of requests that could not
// complete because the worker process exited, or was not running.
var ErrWorkerExited = errors.New("worker exited")

var errSupervisorStopped = errors.New("worker supervisor stopped")

// WorkerExitError describes how the worker process ended. It matches
// ErrWorkerExited.
type WorkerExitError struct {
	Status int    // exit status; -1 when killed by a signal
	Signal string // the signal that killed it, if one did
	// Stderr holds the last lines the worker wrote to stderr, which name
	// what went wrong when the worker knew.
	Stderr []string
	// HungAfter, when set, is how long the worker went without answering
	// a request before the supervisor killed it as hung.
	HungAfter time.Duration
}

func (e *WorkerExitError) Error() string {
	msg := fmt.Sprintf("worker exited with status %d", e.Status)
	switch {
	case e.HungAfter > 0:
		msg = fmt.Sprintf("worker hung: no answer within %s, killed", e.HungAfter)
	case e.Signal != "":
		msg = "worker killed by signal: " + e.Signal
	}
	if n := len(e.Stderr); n > 0 {
		msg += ": " + strings.Join(e.Stderr[max(0, n-exitErrorLines):], " / ")
	}
	return msg
}

// Is makes errors.Is(err, ErrWorkerExited) true.
func (e *WorkerExitError) Is(target error) bool { return target == ErrWorkerExited }

// clean says whether the worker ended as asked: stdin closed, status 0.
func (e *WorkerExitError) clean() bool { return e.Status == 0 && e.Signal == "" }

// WorkerSpec is how to start the worker: ringfence-agent starts itself
// with Args ["worker"]. Env, as for exec.Cmd, is the whole environment;
// nil inherits the agent's.
type WorkerSpec struct {
	Path string
	Args []string
	Env  []string
	// AnswerTimeout is how long the worker may take to answer a request
	// (a load, an unload, its counts at each check-in) before it is
	// killed as hung: the watchdog. 0 means DefaultAnswerTimeout.
	AnswerTimeout time.Duration
}

// DefaultAnswerTimeout is the watchdog's default: far above a load of the
// largest bundle, far below a probation.
const DefaultAnswerTimeout = 10 * time.Second

// Timing of restarts and stops.
const (
	restartMin    = 200 * time.Millisecond
	restartMax    = 30 * time.Second
	restartReset  = 60 * time.Second // a worker up this long restarts after restartMin again
	stopTimeout   = 5 * time.Second
	reloadTimeout = 30 * time.Second // a restarted worker that takes longer to load is hung: killed

	feedBuffer     = 1024     // events queued for the worker; Feed drops beyond
	stderrLines    = 20       // kept for the exit error and Stderr
	exitErrorLines = 3        // of those, quoted in the exit error
	maxStderrLine  = 1024     // longer stderr lines are cut
	maxReplyLine   = 16 << 20 // a counts reply grows with the channels loaded
)

type workerState int

const (
	// stateDown: no worker; not yet started, or between an exit and the
	// restart. Load and Unload only record the desired content.
	stateDown workerState = iota
	// stateStarting: the worker runs and is given the desired content;
	// requests wait until it is up.
	stateStarting
	stateUp
	stateStopped
)

type loadSpec struct {
	channel string
	shadow  bool // the channel's shadow content (worker.Request.Shadow)
	version uint64
	path    string
}

// desiredKey is a load's key in Supervisor.desired: a channel runs at
// most one enforced and one shadow version.
func desiredKey(channel string, shadow bool) string {
	if shadow {
		return channel + "\x00shadow" // channel names have no NUL
	}
	return channel
}

func (d loadSpec) request() worker.Request {
	return worker.Request{Op: worker.OpLoad, Channel: d.channel, Shadow: d.shadow, Version: d.version, Path: d.path}
}

func (d loadSpec) String() string {
	if d.shadow {
		return fmt.Sprintf("%s@%d (shadow)", d.channel, d.version)
	}
	return fmt.Sprintf("%s@%d", d.channel, d.version)
}

// Supervisor runs the worker process and keeps it running the desired
// content. The worker is where content is evaluated, so content that
// faults kills the worker, never the agent: the supervisor reports the
// exit to the agent (onExit), which counts it and may revert, then starts
// a new worker with the desired content as it stands after onExit.
//
// Locking: mu guards the state and the desired set and is never held
// while waiting on the worker; opMu orders Load and Unload and is held
// across the round trip. onExit runs on the supervising goroutine while
// the worker is down, so the Load or Unload it makes only records the
// change (no worker to wait for), and a request that was in flight has
// already failed and released opMu: nothing waits on onExit but the
// restart.
type Supervisor struct {
	spec   WorkerSpec
	log    *slog.Logger
	onExit func(loaded map[string]uint64, err error)

	// Copies of the timing constants, shortened by tests.
	restart                    restartBackoff
	stopTimeout, reloadTimeout time.Duration

	live     atomic.Pointer[workerProc] // the worker Feed writes to; nil unless up
	nextID   atomic.Uint64
	dropped  atomic.Int64
	rejected atomic.Int64
	restarts atomic.Int64

	opMu sync.Mutex

	mu      sync.Mutex
	state   workerState
	w       *workerProc   // nil while down
	upCh    chan struct{} // closed when w is up
	desired map[string]loadSpec
	started bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when supervision has ended
	stopErr error         // set before done is closed
}

// NewSupervisor returns a supervisor for the worker spec. onExit is
// called, on the supervising goroutine, each time the worker exits
// unexpectedly, with the content it was running or loading then and a
// *WorkerExitError; the worker is restarted after it returns. onExit may
// call Load and Unload (they only record, as the worker is down), but not
// Stop, which waits for the supervising goroutine.
func NewSupervisor(spec WorkerSpec, log *slog.Logger, onExit func(loaded map[string]uint64, err error)) *Supervisor {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if onExit == nil {
		onExit = func(map[string]uint64, error) {}
	}
	return &Supervisor{
		spec: spec, log: log, onExit: onExit,
		restart:     restartBackoff{min: restartMin, max: restartMax, reset: restartReset},
		stopTimeout: stopTimeout, reloadTimeout: reloadTimeout,
		desired: map[string]loadSpec{},
	}
}

// Start starts the worker, with any content loaded before, and supervises
// it in the background until ctx ends or Stop is called; either stops the
// worker. It returns once the process runs, an error if it cannot start.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.state == stateStopped:
		s.mu.Unlock()
		return errSupervisorStopped
	case s.started:
		s.mu.Unlock()
		return errors.New("worker supervisor already started")
	}
	sctx, cancel := context.WithCancel(ctx)
	s.started, s.cancel, s.done = true, cancel, make(chan struct{})
	done := s.done
	s.mu.Unlock()
	w, err := s.spawn()
	if err != nil {
		cancel()
		s.mu.Lock()
		s.started = false
		s.mu.Unlock()
		close(done) // a Stop meanwhile waits for it
		return err
	}
	go s.supervise(sctx, w)
	return nil
}

// Stop stops the worker: it closes the worker's stdin, so the worker
// finishes the line it is on and exits, and kills it if it has not within
// a few seconds. It returns an error if the worker had to be killed or did
// not exit cleanly. Stop is safe to call more than once.
func (s *Supervisor) Stop() error {
	s.mu.Lock()
	if !s.started {
		s.state = stateStopped
		s.mu.Unlock()
		return nil
	}
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-done
	return s.stopErr
}

// Load makes the worker run version of channel from the compiled bundle
// at path, in place of what it ran for the channel. It returns the
// worker's refusal (bad bundle; the worker keeps what it ran), or an error
// wrapping ErrWorkerExited if the worker died meanwhile: the content then
// stays desired and is counted in onExit, as it may be what killed it.
// While the worker is down, Load only records the content, which the
// restarted worker loads.
func (s *Supervisor) Load(ctx context.Context, channel string, version uint64, path string) error {
	return s.change(ctx, channel, false, &loadSpec{channel: channel, version: version, path: path})
}

// Unload stops evaluating channel, as Load does.
func (s *Supervisor) Unload(ctx context.Context, channel string) error {
	return s.change(ctx, channel, false, nil)
}

// LoadShadow makes the worker evaluate version of channel in shadow, next
// to the channel's enforced content, counting its matches apart
// (ActionCounts.Shadow); otherwise as Load.
func (s *Supervisor) LoadShadow(ctx context.Context, channel string, version uint64, path string) error {
	return s.change(ctx, channel, true, &loadSpec{channel: channel, shadow: true, version: version, path: path})
}

// UnloadShadow stops evaluating the channel's shadow content.
func (s *Supervisor) UnloadShadow(ctx context.Context, channel string) error {
	return s.change(ctx, channel, true, nil)
}

func (s *Supervisor) change(ctx context.Context, channel string, shadow bool, want *loadSpec) error {
	key := desiredKey(channel, shadow)
	req := worker.Request{Op: worker.OpUnload, Channel: channel, Shadow: shadow}
	what := "unload " + channel
	if shadow {
		what += " (shadow)"
	}
	if want != nil {
		req, what = want.request(), "load "+want.String()
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	for {
		s.mu.Lock()
		switch s.state {
		case stateStopped:
			s.mu.Unlock()
			return fmt.Errorf("%s: %w", what, errSupervisorStopped)
		case stateDown:
			s.setDesiredLocked(key, want)
			s.mu.Unlock()
			s.log.Info("worker not running: content recorded for its start", "request", what)
			return nil
		case stateStarting:
			w, up := s.w, s.upCh
			s.mu.Unlock()
			select {
			case <-up:
			case <-w.exited:
			case <-ctx.Done():
				return fmt.Errorf("%s: waiting for the worker to start: %w", what, ctx.Err())
			}
			continue
		}
		prev, had := s.desired[key]
		if want == nil && !had {
			s.mu.Unlock()
			return nil
		}
		s.setDesiredLocked(key, want)
		w := s.w
		s.mu.Unlock()
		rep, err := s.call(ctx, w, req)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if rep.Error != "" {
			s.mu.Lock()
			if had {
				s.desired[key] = prev
			} else {
				delete(s.desired, key)
			}
			s.mu.Unlock()
			return fmt.Errorf("%s: the worker refused it: %s", what, rep.Error)
		}
		return nil
	}
}

func (s *Supervisor) setDesiredLocked(key string, want *loadSpec) {
	if want == nil {
		delete(s.desired, key)
	} else {
		s.desired[key] = *want
	}
}

// Loaded is the version of channel the worker runs, or will run once
// restarted; 0 if none.
func (s *Supervisor) Loaded(channel string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired[channel].version
}

// LoadedShadow is the version of channel the worker evaluates in shadow,
// or will once restarted; 0 if none.
func (s *Supervisor) LoadedShadow(channel string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired[desiredKey(channel, true)].version
}

// LoadedSlot is the directory of the bundle file Loaded comes from: its
// slot. "" if none.
func (s *Supervisor) LoadedSlot(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.desired[channel]; ok {
		return filepath.Dir(d.path)
	}
	return ""
}

func (s *Supervisor) loadedLocked() map[string]uint64 {
	m := make(map[string]uint64, len(s.desired))
	for _, d := range s.desired {
		if !d.shadow || m[d.channel] == 0 {
			m[d.channel] = d.version
		}
	}
	return m
}

// Feed queues one event line (content.ParseEvent's format) for the
// worker and keeps line until it is written: do not modify it. It never
// blocks: with the worker down, or its queue full because it falls
// behind, the event is dropped and counted (Dropped). Lines that could
// not be framed as one message (too long, or several lines) are counted
// as rejected.
func (s *Supervisor) Feed(line []byte) {
	line = bytes.TrimRight(line, " \t\r\n")
	if len(line) == 0 {
		return
	}
	if len(line) > content.MaxEventLine || bytes.IndexByte(line, '\n') >= 0 {
		s.rejected.Add(1)
		return
	}
	w := s.live.Load()
	if w == nil {
		s.dropped.Add(1)
		return
	}
	select {
	case w.in <- workerMsg{b: line, event: true}:
	default:
		s.dropped.Add(1)
	}
}

// ActionCounts are matches per channel and action name ("log", "alert",
// "block"): of the enforced content, and of the content in shadow.
type ActionCounts struct {
	Enforced, Shadow map[string]map[string]int64
}

// Counts returns the matches since the last call. Counts of events the
// worker had not reported when it died are lost with it.
func (s *Supervisor) Counts(ctx context.Context) (ActionCounts, error) {
	for {
		s.mu.Lock()
		state, w, up := s.state, s.w, s.upCh
		s.mu.Unlock()
		switch state {
		case stateStarting:
			select {
			case <-up:
			case <-w.exited:
			case <-ctx.Done():
				return ActionCounts{}, fmt.Errorf("counts: waiting for the worker to start: %w", ctx.Err())
			}
			continue
		case stateUp:
		default:
			return ActionCounts{}, fmt.Errorf("counts: %w: not running", ErrWorkerExited)
		}
		rep, err := s.call(ctx, w, worker.Request{Op: worker.OpCounts})
		if err != nil {
			return ActionCounts{}, fmt.Errorf("counts: %w", err)
		}
		if rep.Error != "" {
			return ActionCounts{}, fmt.Errorf("counts: the worker refused: %s", rep.Error)
		}
		s.rejected.Add(rep.Rejected)
		if rep.Counts == nil {
			rep.Counts = map[string]map[string]int64{}
		}
		return ActionCounts{Enforced: rep.Counts, Shadow: rep.Shadow}, nil
	}
}

// Restarts is how many times the worker was restarted after an exit.
func (s *Supervisor) Restarts() int { return int(s.restarts.Load()) }

// Dropped is how many events Feed dropped: the worker was down or behind.
func (s *Supervisor) Dropped() int64 { return s.dropped.Load() }

// Rejected is how many events could not be evaluated because they were
// malformed, as far as the worker has reported (see Counts).
func (s *Supervisor) Rejected() int64 { return s.rejected.Load() }

// workerProc is one run of the worker process.
type workerProc struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	log     *slog.Logger

	in       chan workerMsg // to the stdin writer: requests and events, in order
	quit     chan struct{}  // closed to close stdin: the graceful stop
	quitOnce sync.Once

	mu      sync.Mutex
	pending map[uint64]chan worker.Reply

	stderr []string // last lines; written by the stderr reader only

	// hungAfter is set (before the kill) when the watchdog kills it.
	hungAfter atomic.Int64

	// Set before exited is closed.
	exited       chan struct{}
	exitErr      *WorkerExitError
	exitedAt     time.Time
	loadedAtExit map[string]uint64
}

type workerMsg struct {
	b     []byte
	event bool // b is an event line, framed by the writer
}

// spawn starts a worker process, in state starting.
func (s *Supervisor) spawn() (*workerProc, error) {
	cmd := exec.Command(s.spec.Path, s.spec.Args...)
	cmd.Env = s.spec.Env
	cmd.SysProcAttr = workerSysProcAttr()
	// Pipes of our own rather than exec's StdinPipe and friends: the
	// writer end of stdin is then closed when we choose (a graceful stop),
	// and Wait does not wait for the output to be read.
	var files []*os.File
	pipe := func() (r, w *os.File) {
		if r, w, err := os.Pipe(); err == nil {
			files = append(files, r, w)
			return r, w
		}
		return nil, nil
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	if len(files) < 6 {
		closeAll(files)
		return nil, fmt.Errorf("start worker %s: could not create its pipes", s.spec.Path)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err := cmd.Start()
	// The child has its copies; ours would keep the pipes open after it
	// died, and the readers would never see the end.
	closeAll([]*os.File{inR, outW, errW})
	if err != nil {
		closeAll([]*os.File{inW, outR, errR})
		return nil, fmt.Errorf("start worker %s: %w", s.spec.Path, err)
	}
	if err := bindWorker(cmd.Process); err != nil {
		s.log.Warn("the worker may outlive the agent", "err", err)
	}
	w := &workerProc{
		cmd: cmd, pid: cmd.Process.Pid, started: time.Now(),
		in: make(chan workerMsg, feedBuffer), quit: make(chan struct{}),
		pending: map[uint64]chan worker.Reply{}, exited: make(chan struct{}),
	}
	w.log = s.log.With("worker_pid", w.pid)
	s.mu.Lock()
	s.w, s.state, s.upCh = w, stateStarting, make(chan struct{})
	s.mu.Unlock()
	w.log.Info("worker started", "path", s.spec.Path)

	var readers sync.WaitGroup
	readers.Go(func() { w.readReplies(outR) })
	readers.Go(func() { w.readStderr(errR) })
	go w.writeInput(inW)
	go s.reap(w, &readers)
	return w, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// reap waits for the process to end and its output to be read, then
// marks the worker down, which fails the requests waiting on it.
func (s *Supervisor) reap(w *workerProc, readers *sync.WaitGroup) {
	waitErr := w.cmd.Wait()
	readers.Wait()
	e := &WorkerExitError{Status: -1, Stderr: w.stderr, HungAfter: time.Duration(w.hungAfter.Load())}
	if ps := w.cmd.ProcessState; ps != nil {
		e.Status = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal().String()
		}
	} else if waitErr != nil {
		e.Stderr = append(slices.Clone(e.Stderr), "wait: "+waitErr.Error())
	}
	s.mu.Lock()
	w.exitErr, w.exitedAt = e, time.Now()
	if s.w == w {
		w.loadedAtExit = s.loadedLocked()
		s.w = nil
		if s.state != stateStopped {
			s.state = stateDown
		}
	}
	s.live.CompareAndSwap(w, nil)
	s.mu.Unlock()
	// Events still queued die with this worker; the next one has its own
	// queue, so requests meant for this one cannot reach it.
	s.dropped.Add(int64(countEvents(w.in)))
	close(w.exited)
}

func countEvents(in chan workerMsg) int {
	n := 0
	for {
		select {
		case m := <-in:
			if m.event {
				n++
			}
		default:
			return n
		}
	}
}

// supervise waits for the worker to exit and restarts it, until ctx ends.
func (s *Supervisor) supervise(ctx context.Context, w *workerProc) {
	defer close(s.done)
	for {
		if err := s.reload(ctx, w); err != nil && ctx.Err() == nil {
			w.log.Warn("worker not given its content", "err", err)
		}
		select {
		case <-ctx.Done():
			s.stopErr = s.shutdown(w)
			return
		case <-w.exited:
		}
		uptime := w.exitedAt.Sub(w.started)
		w.log.Error("worker exited", "err", w.exitErr, "loaded", w.loadedAtExit, "uptime", uptime.Round(time.Millisecond))
		s.onExit(w.loadedAtExit, w.exitErr)
		for {
			delay := s.restart.after(uptime)
			w.log.Info("restarting worker", "after", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				s.stopErr = s.shutdown(nil)
				return
			case <-t.C:
			}
			nw, err := s.spawn()
			if err == nil {
				w = nw
				break
			}
			s.log.Error("worker did not start", "err", err)
			uptime = 0
		}
		s.restarts.Add(1)
	}
}

// restartBackoff spaces restarts: content that kills the worker at once
// must not make it spin, and a worker that ran for a while and then died
// is restarted quickly.
type restartBackoff struct {
	min, max, reset time.Duration
	next            time.Duration // 0: min
}

// after is the wait before restarting a worker that ran for uptime:
// doubling from min up to max while workers keep dying young, back to
// min once one stayed up reset or longer.
func (b *restartBackoff) after(uptime time.Duration) time.Duration {
	if b.next == 0 || uptime >= b.reset {
		b.next = b.min
	}
	d := b.next
	b.next = min(2*b.next, b.max)
	return d
}

// reload gives a started worker the desired content, then marks it up.
// The desired set does not change meanwhile: Load and Unload wait for a
// starting worker.
func (s *Supervisor) reload(ctx context.Context, w *workerProc) error {
	s.mu.Lock()
	if s.w != w {
		s.mu.Unlock()
		return nil // exited already; supervise sees it
	}
	want := maps.Clone(s.desired)
	s.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(want)) {
		d := want[key]
		rctx, cancel := context.WithTimeout(ctx, s.reloadTimeout)
		rep, err := s.call(rctx, w, d.request())
		cancel()
		switch {
		case errors.Is(err, ErrWorkerExited) || ctx.Err() != nil:
			return fmt.Errorf("load %s: %w", d, err)
		case err != nil:
			w.kill()
			return fmt.Errorf("load %s: no answer within %s, worker killed as hung: %w", d, s.reloadTimeout, err)
		case rep.Error != "":
			// It ran before; now its file is unreadable. Leaving it desired
			// would make Loaded lie; dropping it lets the agent see the
			// difference and load again.
			w.log.Error("worker refused content it ran before: dropped", "content", d.String(), "err", rep.Error)
			s.mu.Lock()
			if s.desired[key] == d {
				delete(s.desired, key)
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != w {
		return nil
	}
	s.state = stateUp
	close(s.upCh)
	s.live.Store(w)
	w.log.Info("worker up", "loaded", s.loadedLocked())
	return nil
}

// shutdown stops the worker w (nil when there is none) for good.
func (s *Supervisor) shutdown(w *workerProc) error {
	s.mu.Lock()
	s.state = stateStopped
	s.live.Store(nil)
	running := w != nil && s.w == w
	s.mu.Unlock()
	if !running {
		return nil
	}
	w.closeInput()
	t := time.NewTimer(s.stopTimeout)
	defer t.Stop()
	select {
	case <-w.exited:
	case <-t.C:
		w.kill()
		<-w.exited
		return fmt.Errorf("stop worker %d: still running %s after its input closed: killed", w.pid, s.stopTimeout)
	}
	if !w.exitErr.clean() {
		return fmt.Errorf("stop worker %d: %w", w.pid, w.exitErr)
	}
	w.log.Info("worker stopped")
	return nil
}

// call sends a request and waits for its reply, the worker's exit or ctx.
func (s *Supervisor) call(ctx context.Context, w *workerProc, req worker.Request) (worker.Reply, error) {
	req.ID = s.nextID.Add(1)
	b, err := json.Marshal(req)
	if err != nil {
		return worker.Reply{}, err
	}
	ch := make(chan worker.Reply, 1)
	w.mu.Lock()
	w.pending[req.ID] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.pending, req.ID)
		w.mu.Unlock()
	}()
	// The watchdog: a worker that neither reads the request nor answers
	// it within the timeout is hung, and killed; its exit says so.
	limit := s.spec.AnswerTimeout
	if limit <= 0 {
		limit = DefaultAnswerTimeout
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	hung := func() (worker.Reply, error) {
		w.log.Error("worker hung: killed", "request", req.Op, "timeout", limit)
		w.hungAfter.Store(int64(limit))
		w.kill()
		<-w.exited
		return worker.Reply{}, w.exitErr
	}
	select {
	case w.in <- workerMsg{b: append(b, '\n')}:
	case <-w.exited:
		return worker.Reply{}, w.exitErr
	case <-ctx.Done():
		return worker.Reply{}, ctx.Err()
	case <-timer.C:
		return hung()
	}
	select {
	case <-timer.C:
		return hung()
	case rep := <-ch:
		return rep, nil
	case <-w.exited:
		// The reply may have come just before the end.
		select {
		case rep := <-ch:
			return rep, nil
		default:
			return worker.Reply{}, w.exitErr
		}
	case <-ctx.Done():
		return worker.Reply{}, ctx.Err()
	}
}

func (w *workerProc) kill() {
	if err := w.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.log.Error("could not kill the worker", "err", err)
	}
}

func (w *workerProc) closeInput() { w.quitOnce.Do(func() { close(w.quit) }) }

// writeInput is the only writer of the worker's stdin. Requests and events
// share one queue so that a request is answered after the events fed
// before it (Counts covers them).
func (w *workerProc) writeInput(stdin *os.File) {
	defer stdin.Close()
	bw := bufio.NewWriterSize(stdin, 32<<10)
	for {
		var m workerMsg
		select {
		case m = <-w.in:
		case <-w.quit:
			_ = bw.Flush()
			return
		case <-w.exited:
			return
		}
		var err error
		if m.event {
			bw.Write(worker.EventPrefix)
			bw.Write(m.b)
			_, err = bw.WriteString("}\n")
		} else {
			_, err = bw.Write(m.b)
		}
		// Events are written in batches; a request goes now.
		if err == nil && (!m.event || len(w.in) == 0) {
			err = bw.Flush()
		}
		if err != nil {
			// The worker is gone or going; reap reports how.
			return
		}
	}
}

func (w *workerProc) readReplies(stdout *os.File) {
	defer stdout.Close()
	lr := worker.NewLineReader(stdout, maxReplyLine)
	for {
		line, long, err := lr.Next()
		if err != nil {
			return
		}
		var rep worker.Reply
		if long {
			w.log.Error("worker reply too long: ignored", "limit", maxReplyLine)
			continue
		}
		if err := json.Unmarshal(line, &rep); err != nil {
			w.log.Error("worker wrote something that is not a reply", "err", err)
			continue
		}
		if rep.ID == 0 {
			w.log.Error("worker could not read a request", "err", rep.Error)
			continue
		}
		w.mu.Lock()
		ch := w.pending[rep.ID]
		w.mu.Unlock()
		if ch != nil {
			select {
			case ch <- rep:
			default: // a second reply to one id: not ours to block on
			}
		}
	}
}

func (w *workerProc) readStderr(stderr *os.File) {
	defer stderr.Close()
	lr := worker.NewLineReader(stderr, maxStderrLine)
	for {
		line, _, err := lr.Next()
		if err != nil {
			return
		}
		l := strings.ToValidUTF8(string(bytes.TrimRight(line, " \t\r")), "?")
		w.log.Warn("worker stderr", "line", l)
		if w.stderr = append(w.stderr, l); len(w.stderr) > stderrLines {
			w.stderr = w.stderr[1:]
		}
	}
}
