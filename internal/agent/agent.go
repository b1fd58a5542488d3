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
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/trust"

	"github.com/ringfence/ringfence/internal/agent/worker"
)

// Config is how `ringfence-agent run` runs.
type Config struct {
	Data   string
	Policy Policy
	Worker WorkerSpec
	Fault  worker.Fault
	// Events, if set, is a JSON-lines file of events (content.ParseEvent's
	// format) replayed to the worker at EventsPerSecond, in a loop: a
	// stand-in for the host's sensor.
	Events          string
	EventsPerSecond float64
	// MaxBackoff caps the wait between attempts while the server is
	// unreachable or busy (default 10 minutes).
	MaxBackoff time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	HTTP       *http.Client

	// The simulator's live mode runs thousands of agents in one process,
	// on a compressed clock, with simulated workers; a real agent leaves
	// these unset.
	//
	// After waits as time.After does (in the clock of Now).
	After func(time.Duration) <-chan time.Time
	// NewWorker makes the worker host; nil starts worker processes with
	// a Supervisor.
	NewWorker func(onExit func(loaded map[string]uint64, err error)) Worker
	// Shared says the process is shared with other agents: it does not
	// hand memory back to the OS after each cycle, which would be a full
	// collection of everyone's heap.
	Shared bool
}

// Worker is what the agent needs of whatever runs its content: a
// Supervisor of worker processes, or the simulator's stand-in.
type Worker interface {
	Start(ctx context.Context) error
	Stop() error
	// Load makes the worker run version of channel from path; Unload
	// stops running the channel.
	Load(ctx context.Context, channel string, version uint64, path string) error
	Unload(ctx context.Context, channel string) error
	Loaded(channel string) uint64
	LoadedSlot(channel string) string
	// LoadShadow, UnloadShadow and LoadedShadow are the same for the
	// channel's content in shadow: evaluated next to the enforced
	// content, its matches counted apart.
	LoadShadow(ctx context.Context, channel string, version uint64, path string) error
	UnloadShadow(ctx context.Context, channel string) error
	LoadedShadow(channel string) uint64
	// Counts returns and resets the actions per channel since the last
	// call.
	Counts(ctx context.Context) (ActionCounts, error)
	Feed(line []byte)
}

// Agent is one device's agent. Its journal and queue are its memory; the
// mutex orders the main loop against the supervisor's crash callback.
type Agent struct {
	cfg   Config
	id    *Identity
	root  []byte
	queue *Queue
	sup   Worker
	log   *slog.Logger

	mu      sync.Mutex
	journal *Journal
	deny    trust.DenyList
	status  Status
	// holdEvents: the server's event quota is spent until then; check-ins
	// carry the device's state only, its events stay queued.
	holdEvents time.Time
	// launched: a launcher started this process, running build (its
	// channel version, 0 for the launcher's own binary); restart asks it
	// for the journal's build instead. checkedIn: a check-in succeeded in
	// this run, which a build on probation needs before it is healthy.
	launched  bool
	build     uint64
	restart   bool
	checkedIn bool
}

// errQuota is a check-in the server refused for its events: nothing of it
// was stored, and the agent checks in again at once without them.
var errQuota = errors.New("check-in: over the server's event quota")

// The data directory's layout, next to journal.json and events.jsonl.
const (
	runningFile = "running"   // present while the agent runs: a leftover means it did not stop cleanly
	denyFile    = "deny.json" // the last verified deny list, checked at boot even offline
	slotsDir    = "slots"     // slots/VENDOR/CHANNEL/{a,b}/VERSION.bundle
)

// New opens an enrolled data directory.
func New(cfg Config) (*Agent, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	cfg.Policy = cfg.Policy.WithDefaults()
	id, err := LoadIdentity(cfg.Data)
	if err != nil {
		return nil, err
	}
	root, err := os.ReadFile(filepath.Join(cfg.Data, "tuf", "root.json"))
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	j, err := LoadJournal(cfg.Data)
	if err != nil {
		return nil, err
	}
	q, err := OpenQueue(cfg.Data, 0)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, id: id, root: root, queue: q, journal: j, log: cfg.Log.With("device", id.DeviceID)}
	if b, err := os.ReadFile(filepath.Join(cfg.Data, denyFile)); err == nil {
		if err := json.Unmarshal(b, &a.deny); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(cfg.Data, denyFile), err)
		}
	}
	a.status, _ = ReadStatus(cfg.Data)
	a.build, a.launched = launchedBuild()
	return a, nil
}

func (a *Agent) queueEvents(evs ...Event) {
	for _, e := range evs {
		if _, err := a.queue.Append(e); err != nil {
			a.log.Warn("event not queued", "type", e.Type, "err", err)
		}
	}
}

// saveLocked writes the journal; the caller holds a.mu.
func (a *Agent) saveLocked() error {
	if err := a.journal.Save(a.cfg.Data); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (a *Agent) slotFile(channel string, slot Slot, version uint64) string {
	return filepath.Join(a.slotDir(channel, slot), strconv.FormatUint(version, 10)+".bundle")
}

func (a *Agent) slotDir(channel string, slot Slot) string {
	return filepath.Join(a.cfg.Data, slotsDir, filepath.FromSlash(channel), string(slot))
}

// Start does what must happen before any content loads: count an
// unfinished activation (boot loop), note an unclean stop, and go back from
// anything on the deny list, all from the disk alone.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	// The running file is removed by a clean stop: present, the last run
	// ended some other way.
	starts := OnStartAfterCleanStop
	if _, err := os.Stat(filepath.Join(a.cfg.Data, runningFile)); err == nil {
		a.queueEvents(UncleanStop(a.journal, now, "the agent did not stop cleanly last time (host crash, power loss or kill)")...)
		starts = func(j *Journal, now time.Time) []Decision { return OnStart(j, a.cfg.Policy, now) }
	}
	for _, d := range starts(a.journal, now) {
		a.log.Warn("start", "channel", d.Channel, "decision", d.Kind, "reason", d.Reason)
		a.queueEvents(d.Events(now)...)
	}
	a.applyDenyListLocked(now)
	if err := a.saveLocked(); err != nil {
		return err
	}
	return writeFileAtomic(a.cfg.Data, runningFile, []byte(strconv.Itoa(os.Getpid())+"\n"))
}

// applyDenyListLocked moves every channel off a denied version: back to
// its last-known-good, or to nothing when that is denied too.
func (a *Agent) applyDenyListLocked(now time.Time) {
	for _, name := range a.journal.Names() {
		ch := a.journal.Channels[name]
		if ch.Shadow && a.denied(name, ch.LKGVersion) {
			// The version enforced beside the shadow one runs too.
			reason := fmt.Sprintf("%s@%d, enforced while %d runs in shadow, is on the signed deny list: unloaded; nothing enforced", name, ch.LKGVersion, ch.ActiveVersion)
			if !containsU64(ch.Refused, ch.LKGVersion) {
				ch.Refused = append(ch.Refused, ch.LKGVersion)
			}
			a.log.Warn("deny list", "channel", name, "reason", reason)
			a.queueEvents(Event{Time: now, Type: EventReverted, Channel: name, Version: ch.LKGVersion, Reason: reason})
			ch.LKGVersion, ch.LKGSlot = 0, SlotNone
		}
		if ch.ActiveVersion == 0 || !a.denied(name, ch.ActiveVersion) {
			continue
		}
		ch.Shadow = false
		from := ch.ActiveVersion
		reason := fmt.Sprintf("%s@%d is on the signed deny list", name, from)
		if !containsU64(ch.Refused, from) {
			ch.Refused = append(ch.Refused, from)
		}
		ch.Pending = nil
		if ch.LKGVersion != from && ch.LKGVersion != 0 && !a.denied(name, ch.LKGVersion) {
			ch.ActiveVersion, ch.ActiveSlot = ch.LKGVersion, ch.LKGSlot
			reason += fmt.Sprintf("; back to last-known-good %s@%d", name, ch.LKGVersion)
		} else {
			ch.ActiveVersion, ch.ActiveSlot, ch.LKGVersion, ch.LKGSlot = 0, SlotNone, 0, SlotNone
			reason += "; no good version on this device: content unloaded"
		}
		ch.State, ch.LastError = StateReverted, reason
		a.log.Warn("deny list", "channel", name, "reason", reason)
		a.queueEvents(Event{Time: now, Type: EventReverted, Channel: name, Version: from, Reason: reason})
	}
}

func containsU64(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (a *Agent) denied(channel string, version uint64) bool {
	ext := "bundle"
	if ch, ok := a.journal.Channels[channel]; ok && ch.Kind == KindBuild {
		ext = "build"
	}
	return a.deny.Denies(fmt.Sprintf("%s/%d.%s", channel, version, ext))
}

// Run starts the worker with the active content and checks in until ctx
// ends. Offline, it keeps running what it has.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Start(); err != nil {
		return err
	}
	a.mu.Lock()
	restart := a.wantsRestartLocked()
	a.mu.Unlock()
	if restart {
		// The start reverted the build on probation (or the journal names
		// another): the launcher runs that one.
		return a.stopForRestart()
	}
	if a.cfg.NewWorker != nil {
		a.sup = a.cfg.NewWorker(a.onWorkerExit)
	} else {
		a.sup = NewSupervisor(a.cfg.Worker, a.log, a.onWorkerExit)
	}
	if err := a.sup.Start(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	a.mu.Lock()
	loads := map[string]string{}
	versions := map[string]uint64{}
	for _, name := range a.journal.Names() {
		if ch := a.journal.Channels[name]; ch.ActiveVersion != 0 && ch.Kind != KindBuild {
			loads[name], versions[name] = a.slotFile(name, ch.ActiveSlot, ch.ActiveVersion), ch.ActiveVersion
		}
	}
	a.mu.Unlock()
	for name, file := range loads {
		// Content that takes the host down does so at every start while
		// it is loaded, as on 19 July: only the boot-loop limit, counted
		// by Start from the journal, takes it off.
		a.crashIfFaulted(name, versions[name], "loading at start")
		if err := a.sup.Load(ctx, name, versions[name], file); err != nil {
			a.log.Warn("content not loaded at start", "channel", name, "err", err)
		}
	}
	a.mu.Lock()
	for name := range loads {
		StartProbation(a.journal.Channels[name], a.cfg.Now())
	}
	err := a.saveLocked()
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if a.cfg.Events != "" {
		go a.replayEvents(ctx)
	}

	interval := time.Duration(max(a.id.CheckinInterval, 1)) * time.Second
	failures := 0
	next := a.cfg.Now()
	for {
		wait := next.Sub(a.cfg.Now())
		if p := a.nextProbationEnd(); !p.IsZero() && p.Sub(a.cfg.Now()) < wait {
			wait = p.Sub(a.cfg.Now())
		}
		select {
		case <-ctx.Done():
			return a.stop()
		case <-a.cfg.After(max(wait, 0)):
		}
		a.tick()
		if a.restartNow() {
			return a.stopForRestart()
		}
		if a.cfg.Now().Before(next) {
			continue
		}
		resp, retryAfter, err := a.checkin(ctx)
		if errors.Is(err, errQuota) {
			// Hear what to run now, events or not: a rollback must not wait
			// for the quota.
			a.holdEvents = a.cfg.Now().Add(max(retryAfter, time.Minute))
			a.log.Warn("event quota spent; checking in without events", "until", a.holdEvents)
			resp, retryAfter, err = a.checkin(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return a.stop()
			}
			failures++
			next = a.cfg.Now().Add(max(Backoff(failures, interval, a.cfg.MaxBackoff, nil), retryAfter))
			a.setStatus(func(s *Status) { s.LastError, s.NextCheckin, s.Failures = err.Error(), next, failures })
			a.log.Warn("check-in failed; keeping the content it has", "err", err, "retry_in", next.Sub(a.cfg.Now()).Round(time.Second))
			continue
		}
		failures = 0
		a.checkedIn = true
		if resp.NextCheckinS > 0 {
			interval = time.Duration(resp.NextCheckinS) * time.Second
		}
		next = a.cfg.Now().Add(interval)
		a.setStatus(func(s *Status) {
			s.LastCheckin, s.NextCheckin, s.Failures, s.LastError, s.AgentVersion = a.cfg.Now(), next, 0, "", a.reportedVersion()
		})
		a.follow(ctx, resp)
		if a.restartNow() {
			return a.stopForRestart()
		}
		// A cycle's garbage (the check-in, a TUF refresh) would otherwise
		// stay resident until the next one: on an endpoint that idles
		// between check-ins, hand it back now. One small GC a minute.
		if !a.cfg.Shared {
			debug.FreeOSMemory()
		}
	}
}

// restartNow reports whether the agent should stop for the launcher to
// run another build.
func (a *Agent) restartNow() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.restart || a.wantsRestartLocked()
}

// stopForRestart stops cleanly and asks the launcher for the journal's
// build: a planned restart, which no probation counts as a failed start.
func (a *Agent) stopForRestart() error {
	a.mu.Lock()
	if ch := BuildChannel(a.journal); ch != nil {
		a.log.Info("restarting into another agent build", "channel", ch.Name, "from", a.build, "to", ch.ActiveVersion)
	}
	a.mu.Unlock()
	if err := a.stop(); err != nil {
		return err
	}
	return ErrRestart
}

// stop ends a run cleanly: the worker stops and the running marker goes,
// so the next start does not count an unclean stop.
func (a *Agent) stop() error {
	if a.sup != nil {
		_ = a.sup.Stop()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.saveLocked(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(a.cfg.Data, runningFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Backoff is the wait before the next attempt after failures failed
// check-ins in a row: exponential with full jitter, so a fleet that lost
// its server does not come back all at once; never above limit. rng nil
// uses the process's generator (the simulator passes its own).
func Backoff(failures int, interval, limit time.Duration, rng *rand.Rand) time.Duration {
	base := min(interval, 30*time.Second)
	ceil := base << min(failures, 20)
	if ceil <= 0 || ceil > limit {
		ceil = limit
	}
	if rng == nil {
		return base/2 + rand.N(ceil)
	}
	return base/2 + time.Duration(rng.Int64N(int64(ceil)))
}

func (a *Agent) nextProbationEnd() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var first time.Time
	for _, ch := range a.journal.Channels {
		if ch.Pending != nil && ch.State == StateProbation {
			if end := ch.Pending.ActivatedAt.Add(a.cfg.Policy.Probation); first.IsZero() || end.Before(first) {
				first = end
			}
		}
	}
	return first
}

// tick confirms content that ran its probation, or reverts it.
func (a *Agent) tick() {
	a.decide("probation", func(now time.Time) []Decision {
		var ds []Decision
		for _, name := range a.journal.Names() {
			ch := a.journal.Channels[name]
			if ch.Kind == KindBuild && (!a.checkedIn || !a.launched || ch.ActiveVersion != a.build) {
				// A build is healthy only once it ran its probation and
				// reached the server: a binary that cannot check in must
				// not become the one to fall back to.
				continue
			}
			ds = append(ds, Tick(ch, a.cfg.Policy, now))
		}
		return ds
	})
}

// decide runs recovery decisions under the lock, queues their events,
// saves the journal, and then switches the worker of every channel they
// reverted (outside the lock: the supervisor may call back).
func (a *Agent) decide(what string, decisions func(now time.Time) []Decision) {
	a.mu.Lock()
	now := a.cfg.Now()
	var reload []string
	for _, d := range decisions(now) {
		if d.Kind == DecisionNone {
			continue
		}
		a.log.Info(what, "channel", d.Channel, "decision", d.Kind, "reason", d.Reason)
		a.queueEvents(d.Events(now)...)
		if d.Kind == DecisionReverted {
			reload = append(reload, d.Channel)
		}
	}
	if err := a.saveLocked(); err != nil {
		a.log.Error("journal not saved", "err", err)
	}
	a.mu.Unlock()
	for _, name := range reload {
		a.loadActive(context.Background(), name)
	}
}

// loadActive makes the worker run the channel's active version (or
// nothing): enforced, or in shadow beside the last-known-good it then
// enforces.
func (a *Agent) loadActive(ctx context.Context, name string) {
	a.mu.Lock()
	ch := a.journal.Channels[name]
	var sv uint64
	var sfile string
	if ch.Shadow {
		sv, sfile = ch.ActiveVersion, a.slotFile(name, ch.ActiveSlot, ch.ActiveVersion)
	}
	build := ch.Kind == KindBuild
	a.mu.Unlock()
	if build {
		return // the launcher runs builds: see restartNow
	}
	// The shadow first: a version leaving shadow is loaded enforced only
	// once it is no longer evaluated twice.
	var err error
	if sv == 0 {
		err = a.sup.UnloadShadow(ctx, name)
	} else if a.sup.LoadedShadow(name) != sv {
		err = a.sup.LoadShadow(ctx, name, sv, sfile)
	}
	if err != nil {
		a.log.Warn("worker did not switch shadow content", "channel", name, "version", sv, "err", err)
	}
	a.loadEnforced(ctx, name, sv == 0)
}

// loadEnforced makes the worker enforce the version the journal says (or
// nothing); unless always, only if it runs another.
func (a *Agent) loadEnforced(ctx context.Context, name string, always bool) {
	a.mu.Lock()
	v, slot := a.journal.Channels[name].Enforced()
	file := a.slotFile(name, slot, v)
	a.mu.Unlock()
	if !always && a.sup.Loaded(name) == v {
		return
	}
	var err error
	if v == 0 {
		err = a.sup.Unload(ctx, name)
	} else {
		err = a.sup.Load(ctx, name, v, file)
	}
	if err != nil {
		a.log.Warn("worker did not switch content", "channel", name, "version", v, "err", err)
	}
}

// onWorkerExit is the supervisor's callback when the worker dies: each
// channel it was running counts a crash, and a crash loop reverts.
func (a *Agent) onWorkerExit(loaded map[string]uint64, exitErr error) {
	a.decide("worker crashed", func(now time.Time) []Decision {
		var ds []Decision
		for name := range loaded {
			ch, ok := a.journal.Channels[name]
			if !ok {
				continue
			}
			var d Decision
			if we := (*WorkerExitError)(nil); errors.As(exitErr, &we) && we.HungAfter > 0 {
				d = OnWorkerHang(ch, a.cfg.Policy, now) // the watchdog killed it
			} else {
				d = OnWorkerCrash(ch, a.cfg.Policy, now)
			}
			if d.Reason != "" && exitErr != nil {
				d.Reason += " (" + exitErr.Error() + ")"
			}
			ds = append(ds, d)
		}
		return ds
	})
}

// checkin reports state and events and returns the server's answer.
func (a *Agent) checkin(ctx context.Context) (*protocol.CheckinResponse, time.Duration, error) {
	if counts, err := a.sup.Counts(ctx); err == nil {
		now := a.cfg.Now()
		a.mu.Lock()
		for _, name := range slices.Sorted(maps.Keys(counts.Enforced)) {
			if ch, ok := a.journal.Channels[name]; ok && len(counts.Enforced[name]) > 0 {
				v, _ := ch.Enforced()
				a.queueEvents(Event{Time: now, Type: EventActions, Channel: name, Version: v, Counts: counts.Enforced[name]})
			}
		}
		for _, name := range slices.Sorted(maps.Keys(counts.Shadow)) {
			if ch, ok := a.journal.Channels[name]; ok && ch.Shadow && len(counts.Shadow[name]) > 0 {
				a.queueEvents(Event{Time: now, Type: EventShadowActions, Channel: name, Version: ch.ActiveVersion, Counts: counts.Shadow[name]})
			}
		}
		a.mu.Unlock()
	}
	req := protocol.CheckinRequest{DeviceID: a.id.DeviceID, Platform: a.id.Platform, OSBuild: a.id.OSBuild, AgentVersion: a.reportedVersion(),
		Channels: []protocol.ChannelReport{}, Events: []protocol.EventReport{}}
	a.mu.Lock()
	for _, name := range a.journal.Names() {
		ch := a.journal.Channels[name]
		req.Channels = append(req.Channels, protocol.ChannelReport{Channel: name, ActiveVersion: ch.ActiveVersion, LKGVersion: ch.LKGVersion, State: string(ch.State), Shadow: ch.Shadow})
	}
	a.mu.Unlock()
	var pending []Event
	if !a.cfg.Now().Before(a.holdEvents) {
		pending = a.queue.Pending(MaxEventsPerCheckin)
	}
	for _, e := range pending {
		req.Events = append(req.Events, protocol.EventReport{Seq: e.Seq, Time: e.Time, Type: string(e.Type), Channel: e.Channel, Version: e.Version, Reason: e.Reason, Counts: e.Counts})
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.id.Server+"/v1/checkin", bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+a.id.Credential)
	resp, err := a.cfg.HTTP.Do(hr)
	if err != nil {
		return nil, 0, fmt.Errorf("check-in: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var retry time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retry = time.Duration(s) * time.Second
		}
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get(protocol.QuotaHeader) == protocol.QuotaEvents && len(req.Events) > 0 {
			return nil, retry, fmt.Errorf("%w: %s", errQuota, strings.TrimSpace(string(b)))
		}
		return nil, retry, fmt.Errorf("check-in: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out protocol.CheckinResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, 0, fmt.Errorf("check-in: unexpected answer: %w", err)
	}
	if err := a.queue.Ack(out.AckSeq); err != nil {
		a.log.Warn("events not acknowledged locally", "err", err)
	}
	return &out, 0, nil
}

// follow acts on the server's answer, channel by channel. One TUF
// session serves the whole cycle (a fresh one per cycle, as TUF wants) and
// refreshes the deny list.
func (a *Agent) follow(ctx context.Context, resp *protocol.CheckinResponse) {
	var sess *trust.Session
	open := func() (*trust.Session, error) {
		if sess != nil {
			return sess, nil
		}
		s, err := trust.Open(trust.ClientConfig{MetadataURL: a.id.Server + "/tuf/metadata/", TargetsURL: a.id.Server + "/tuf/targets/",
			Root: a.root, MetadataDir: filepath.Join(a.cfg.Data, "tuf"), TargetsDir: filepath.Join(a.cfg.Data, "tuf", "targets"), HTTP: a.cfg.HTTP})
		if err != nil {
			return nil, err
		}
		sess = s
		deny, err := s.DenyList()
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(deny)
		if err := writeFileAtomic(a.cfg.Data, denyFile, b); err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.deny = deny
		a.applyDenyListLocked(a.cfg.Now())
		err = a.saveLocked()
		a.mu.Unlock()
		return sess, err
	}
	// The deny list is refreshed every cycle, not only when something is
	// to be installed: a halted version must leave devices that run it.
	if _, err := open(); err != nil {
		a.noteError(err)
	}
	for _, cd := range resp.Channels {
		a.followChannel(ctx, cd, open)
	}
	// A channel moved off a denied version needs its worker switched.
	a.mu.Lock()
	names := a.journal.Names()
	a.mu.Unlock()
	if a.sup != nil {
		for _, name := range names {
			a.syncWorker(ctx, name)
		}
	}
}

// syncWorker reloads a channel if the worker runs other versions than the
// journal says, enforced or in shadow.
func (a *Agent) syncWorker(ctx context.Context, name string) {
	a.mu.Lock()
	ch := a.journal.Channels[name]
	want, _ := ch.Enforced()
	var shadow uint64
	if ch.Shadow {
		shadow = ch.ActiveVersion
	}
	build := ch.Kind == KindBuild
	a.mu.Unlock()
	if !build && (a.sup.Loaded(name) != want || a.sup.LoadedShadow(name) != shadow) {
		a.loadActive(ctx, name)
	}
}

func (a *Agent) noteError(err error) {
	if errors.Is(err, trust.ErrExpired) {
		err = fmt.Errorf("%w; keeping the content this device runs", err)
	}
	a.log.Warn("signed-update check failed", "err", err)
	a.setStatus(func(s *Status) { s.LastError = err.Error() })
}

func (a *Agent) followChannel(ctx context.Context, cd protocol.ChannelDesired, open func() (*trust.Session, error)) {
	name, want := cd.Channel, cd.DesiredVersion
	a.mu.Lock()
	ch := a.journal.Channel(name)
	ok, why := Accept(ch, want)
	lkg := want != 0 && want == ch.LKGVersion && ch.LKGSlot != SlotNone
	if LeavesShadow(ch, cd) {
		// The release left its shadow waves: enforce what runs in shadow.
		d := Enforce(ch)
		a.log.Info("shadow ended", "channel", name, "reason", d.Reason)
		err := a.saveLocked()
		a.mu.Unlock()
		if err == nil {
			a.loadActive(ctx, name)
		}
		return
	}
	a.mu.Unlock()
	if !ok {
		if want != 0 && want != ch.ActiveVersion {
			a.log.Info("offer not taken", "channel", name, "version", want, "why", why)
		}
		return
	}
	now := a.cfg.Now()
	if lkg {
		a.mu.Lock()
		d := ReturnToLKG(ch)
		a.queueEvents(d.Events(now)...)
		err := a.saveLocked()
		a.mu.Unlock()
		if err == nil {
			a.loadActive(ctx, name)
		}
		return
	}
	fail := func(err error) {
		reason := fmt.Sprintf("%s@%d not installed: %v", name, want, err)
		// An unreachable update server is the network's failure, not the
		// version's: try again next cycle, and do not tell the server the
		// version failed to apply.
		unreachable := trust.Unreachable(err)
		if unreachable {
			a.log.Warn("apply postponed: update server unreachable", "channel", name, "version", want, "err", err)
		} else {
			a.log.Warn("apply failed", "channel", name, "version", want, "err", err)
		}
		a.mu.Lock()
		ch.LastError = reason
		if !unreachable {
			a.queueEvents(Event{Time: a.cfg.Now(), Type: EventApplyFailed, Channel: name, Version: want, Reason: reason})
		}
		_ = a.saveLocked()
		a.mu.Unlock()
	}
	ext := "bundle"
	if cd.Artifact != nil && strings.HasSuffix(cd.Artifact.Target, ".build") {
		ext = "build"
	}
	if cd.Artifact == nil || !validTarget(cd.Artifact.Target, name, want, ext) {
		fail(fmt.Errorf("the server named no signed target for it (got %+v)", cd.Artifact))
		return
	}
	a.mu.Lock()
	kindKnown := ch.Kind == KindBuild || ch.ActiveVersion == 0 && ch.LKGVersion == 0
	if ext == "build" && kindKnown {
		ch.Kind = KindBuild // for the deny list's name, before any download
	}
	isBuild, denied := ch.Kind == KindBuild, a.denied(name, want)
	a.mu.Unlock()
	if isBuild != (ext == "build") {
		fail(fmt.Errorf("the server named %s, which is not what this channel installs", cd.Artifact.Target))
		return
	}
	if denied {
		fail(fmt.Errorf("it is on the signed deny list"))
		return
	}
	sess, err := open()
	if err != nil {
		fail(err)
		return
	}
	if isBuild {
		a.followBuild(ctx, ch, want, cd.Artifact.Target, cd.Artifact.SHA256, sess, fail)
		return
	}
	a.mu.Lock()
	slot := ch.InactiveSlot()
	dir := a.slotDir(name, slot)
	a.mu.Unlock()
	if a.sup.Loaded(name) != 0 && a.sup.LoadedSlot(name) == dir {
		// The inactive slot is the one running unconfirmed content.
		_ = a.sup.Unload(ctx, name)
	}
	a.mu.Lock()
	inShadow := ch.Shadow && a.slotDir(name, ch.ActiveSlot) == dir
	a.mu.Unlock()
	if inShadow {
		_ = a.sup.UnloadShadow(ctx, name) // likewise for the shadow
	}
	if err := os.RemoveAll(dir); err != nil {
		fail(err)
		return
	}
	file, info, err := sess.Stage(cd.Artifact.Target, dir)
	if err != nil {
		fail(err)
		return
	}
	if cd.Artifact.SHA256 != "" && cd.Artifact.SHA256 != info.SHA256 {
		fail(fmt.Errorf("the server says sha256 %s, the vendor signed %s", cd.Artifact.SHA256, info.SHA256))
		return
	}
	if want := a.slotFile(name, slot, want); file != want {
		if err := os.Rename(file, want); err != nil {
			fail(err)
			return
		}
	}
	// Journal first, fsynced, then the worker: a host that dies loading
	// the content finds the activation counted on its next start. The
	// applied event is queued (durably) before the load too: a device
	// that the content takes down is one the release reached, and the
	// server's share gates must count it among those it applied to (found
	// by the simulator's live mode, where the boot loops' reverts
	// otherwise outnumbered the applies the server heard of).
	a.mu.Lock()
	load := a.sup.Load
	if cd.Shadow {
		BeginShadow(ch, want, now)
		load = a.sup.LoadShadow
	} else {
		BeginActivation(ch, want, now)
	}
	a.queueEvents(Event{Time: now, Type: EventApplied, Channel: name, Version: want})
	err = a.saveLocked()
	a.mu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	a.crashIfFaulted(name, want, "activating")
	if cd.Shadow {
		// The last-known-good stays enforced: the worker may have run the
		// unconfirmed version that the shadow one replaces.
		a.loadEnforced(ctx, name, false)
	}
	if err := load(ctx, name, want, a.slotFile(name, slot, want)); err != nil && !errors.Is(err, ErrWorkerExited) {
		// The worker refused the content (it did not crash): revert. The
		// server heard it applied, so it hears a revert (the revert share
		// is of devices that applied; apply failures are of those that
		// never got that far).
		a.mu.Lock()
		d := revertRefused(ch, fmt.Sprintf("the worker could not load %s@%d: %v", name, want, err))
		a.queueEvents(Event{Time: a.cfg.Now(), Type: EventReverted, Channel: name, Version: want, Reason: d})
		_ = a.saveLocked()
		a.mu.Unlock()
		a.loadActive(ctx, name)
		return
	}
	a.mu.Lock()
	StartProbation(ch, a.cfg.Now())
	if err := a.saveLocked(); err != nil {
		a.log.Error("journal not saved", "err", err)
	}
	a.mu.Unlock()
	a.log.Info("applied; on probation", "channel", name, "version", want, "probation", a.cfg.Policy.Probation, "shadow", cd.Shadow)
}

// crashIfFaulted kills the agent, as a host crash would (no deferred
// cleanup, no journal update), when a host-crash fault names the version
// it is about to load.
func (a *Agent) crashIfFaulted(channel string, version uint64, when string) {
	if !a.cfg.Fault.HostCrash(channel, version) {
		return
	}
	a.log.Error("fault injected: host crash "+when, "channel", channel, "version", version)
	KillSelf()
}

// KillSelf ends the process as kill -9 would: no deferred cleanup, no
// journal update. For injected faults.
func KillSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {} // the kill arrives; nothing after this runs
}

// revertRefused undoes an activation the worker refused to load.
func revertRefused(ch *ChannelState, reason string) string {
	d := revert(ch, CauseCrashLoop, reason)
	return d.Reason
}

// validTarget: the signed target must be this channel's version, under
// its production or canary name, so a server cannot pass one version's
// signed bytes off as another.
func validTarget(target, channel string, version uint64, ext string) bool {
	v := strconv.FormatUint(version, 10) + "." + ext
	return target == channel+"/"+v || target == channel+"/canary/"+v
}

// replayEvents feeds the events file to the worker in a loop.
func (a *Agent) replayEvents(ctx context.Context) {
	rate := a.cfg.EventsPerSecond
	if rate <= 0 {
		rate = 10
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		f, err := os.Open(a.cfg.Events)
		if err != nil {
			a.log.Warn("events file", "err", err)
			return
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		n := 0
		for sc.Scan() {
			select {
			case <-ctx.Done():
				f.Close()
				return
			case <-tick.C:
			}
			a.sup.Feed(append([]byte(nil), sc.Bytes()...))
			n++
		}
		f.Close()
		if n == 0 {
			return
		}
	}
}
