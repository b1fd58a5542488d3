package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/ringfence/ringfence/internal/agent/worker"
	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/trust"
)

// Self-update. The agent follows its agent-build channel as it follows
// content: a build is verified through TUF, staged into the slot that
// does not hold the last-known-good build, journaled as an activation on
// probation, and becomes last-known-good only after a probation in which
// the new binary checked in. What differs is who switches: an agent
// cannot replace itself while running, so the launcher
// (`ringfence-agent launch`, the process the service manager starts)
// runs whichever build the journal names, and the agent exits with
// ExitRestart when it wants another.
//
// The launcher is the watchdog that is not the new binary. Before it
// starts a build on probation it counts the start in launch.json; a build
// that used BootLimit starts without reaching healthy, or that is still
// on probation TrialTimeout after it started, is reverted by the
// launcher itself (journal and events, as the agent would), and the
// last-known-good build runs. So a build that cannot even start, or that
// starts and never checks in, costs a device three short restarts and no
// more. The launcher itself is never updated by a build: like a boot
// loader it is what the device was installed with.

// KindBuild marks the journal channel that carries the agent's builds.
const KindBuild = "build"

// LaunchedEnv is how the launcher tells the agent which build it started:
// the channel version ("0" for the launcher's own binary). Unset, the
// agent runs without a launcher and cannot update itself.
const LaunchedEnv = "RINGFENCE_LAUNCHED_BUILD"

// ExitRestart is the agent's exit status when it stopped cleanly to run
// another build: the launcher starts the journal's build at once.
const ExitRestart = 75

// ErrRestart is Run's error when the agent stopped for the launcher to
// start another build.
var ErrRestart = errors.New("stopped cleanly to run another agent build")

// launchFile counts the launcher's starts of the build on probation.
const launchFile = "launch.json"

// ExeName is the agent executable's name on this platform.
func ExeName() string {
	if runtime.GOOS == "windows" {
		return "ringfence-agent.exe"
	}
	return "ringfence-agent"
}

// BuildExe is where an installed build's executable lives.
func BuildExe(data, channel string, slot Slot, version uint64) string {
	return filepath.Join(data, slotsDir, filepath.FromSlash(channel), string(slot), strconv.FormatUint(version, 10), ExeName())
}

// launchedBuild reads LaunchedEnv: the channel version of the running
// build, and whether a launcher started it.
func launchedBuild() (uint64, bool) {
	s, ok := os.LookupEnv(LaunchedEnv)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// BuildChannel is the journal's agent-build channel, or nil.
func BuildChannel(j *Journal) *ChannelState {
	for _, name := range j.Names() {
		if ch := j.Channels[name]; ch.Kind == KindBuild {
			ch.Name = name
			return ch
		}
	}
	return nil
}

// wantsRestartLocked reports whether the journal names another build than
// the one running: after an update was staged, a revert, a return to
// last-known-good or the deny list.
func (a *Agent) wantsRestartLocked() bool {
	ch := BuildChannel(a.journal)
	if !a.launched || ch == nil {
		return false
	}
	return ch.ActiveVersion != a.build
}

// followBuild installs an agent build the server offers: verified, checked
// for this host, unpacked into the inactive slot, journaled, and then the
// agent stops for the launcher to start it.
func (a *Agent) followBuild(ctx context.Context, ch *ChannelState, want uint64, target, sha string, sess *trust.Session, fail func(error)) {
	name := ch.Name
	if !a.launched {
		fail(errors.New("this agent was not started by ringfence-agent launch, so it cannot replace its own binary"))
		return
	}
	a.mu.Lock()
	other := BuildChannel(a.journal)
	slot := ch.InactiveSlot()
	a.mu.Unlock()
	if other != nil && other.Name != name {
		fail(fmt.Errorf("this device follows agent builds on %s", other.Name))
		return
	}
	dir := a.slotDir(name, slot)
	if err := os.RemoveAll(dir); err != nil {
		fail(err)
		return
	}
	file, info, err := sess.Stage(target, dir)
	if err != nil {
		fail(err)
		return
	}
	if sha != "" && sha != info.SHA256 {
		fail(fmt.Errorf("the server says sha256 %s, the vendor signed %s", sha, info.SHA256))
		return
	}
	h, err := unpackBuild(file, BuildExe(a.cfg.Data, name, slot, want))
	if err != nil {
		fail(err)
		return
	}
	a.dieAtSwitch(worker.FaultSwitchStaged, name, want)
	now := a.cfg.Now()
	a.mu.Lock()
	ch.Kind = KindBuild
	BeginActivation(ch, want, now)
	a.queueEvents(Event{Time: now, Type: EventApplied, Channel: name, Version: want,
		Reason: fmt.Sprintf("agent %s to %s (%s@%d): restarting into it", a.reportedVersion(), h.AgentVersion, name, want)})
	err = a.saveLocked()
	a.restart = err == nil
	a.mu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	a.dieAtSwitch(worker.FaultSwitchJournaled, name, want)
	a.log.Info("agent build staged; restarting into it", "channel", name, "version", want, "agent_version", h.AgentVersion)
}

// dieAtSwitch kills the agent at a step of a build's switch-over when a
// fault names it.
func (a *Agent) dieAtSwitch(step worker.FaultKind, channel string, version uint64) {
	if a.cfg.Fault.Switch(step, channel, version) {
		a.log.Error("fault injected: killed at "+string(step), "channel", channel, "version", version)
		KillSelf()
	}
}

// unpackBuild checks a verified build against this host and writes its
// executable to exe, and its worker next to it, durably; the envelope is
// removed.
func unpackBuild(file, exe string) (agentbuild.Header, error) {
	f, err := os.Open(file)
	if err != nil {
		return agentbuild.Header{}, err
	}
	defer f.Close()
	dir := filepath.Dir(exe)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return agentbuild.Header{}, err
	}
	workerExe := filepath.Join(dir, workerName())
	outs := []string{exe + ".partial", workerExe + ".partial"}
	var files []*os.File
	for _, p := range outs {
		o, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
		if err != nil {
			return agentbuild.Header{}, err
		}
		defer os.Remove(p) // gone once renamed; otherwise left over
		files = append(files, o)
	}
	h, err := agentbuild.Extract(f, files[0], files[1])
	if err == nil && (h.Platform != runtime.GOOS || h.Arch != runtime.GOARCH) {
		err = fmt.Errorf("the build is for %s/%s; this host is %s/%s", h.Platform, h.Arch, runtime.GOOS, runtime.GOARCH)
	}
	for _, o := range files {
		if err == nil {
			err = o.Sync()
		}
		if cerr := o.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil && h.WorkerSize > 0 {
		err = replaceFile(outs[1], workerExe)
	}
	if err == nil {
		err = replaceFile(outs[0], exe)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return h, err
	}
	_ = os.Remove(file)
	return h, nil
}

// workerName is the worker executable's name on this platform.
func workerName() string {
	if runtime.GOOS == "windows" {
		return "ringfence-agent-worker.exe"
	}
	return "ringfence-agent-worker"
}

// reportedVersion is the agent version check-ins report: the one given at
// enrolment when it was given (simulations, tests), else this binary's.
func (a *Agent) reportedVersion() string {
	if a.id.AgentVersionSet || a.id.AgentVersion != "" && !a.launched {
		return a.id.AgentVersion
	}
	return Version
}

// launchCount is launch.json: the launcher's starts of one build on
// probation.
type launchCount struct {
	Channel string `json:"channel"`
	Version uint64 `json:"version"`
	Starts  int    `json:"starts"`
}

// Launch is what the launcher starts next.
type Launch struct {
	// Exe is the build's executable; "" is the launcher's own binary (no
	// build installed, or none to go back to).
	Exe string
	// Version is the build's channel version, for LaunchedEnv (0: own).
	Version uint64
	// Trial is set when the build is on probation: the launcher gives it
	// TrialTimeout to reach healthy.
	Trial bool
	// Channel is the build channel, when one is installed.
	Channel string
	// Reverted says why the launcher reverted a build before this start.
	Reverted string
}

// PrepareLaunch decides, from the journal, which build the launcher
// starts, and counts the start of a build on probation. A build that has
// used limit starts without reaching healthy is reverted first, with the
// events the agent sends on its next check-in. Nothing else runs in the
// data directory while the launcher prepares.
func PrepareLaunch(data string, limit int, now time.Time) (Launch, error) {
	if limit <= 0 {
		limit = DefaultBootLimit
	}
	j, err := LoadJournal(data)
	if err != nil {
		return Launch{}, err
	}
	ch := BuildChannel(j)
	if ch == nil {
		return Launch{}, nil
	}
	out := Launch{Channel: ch.Name}
	if pd := ch.Pending; pd != nil {
		var c launchCount
		if b, err := os.ReadFile(filepath.Join(data, launchFile)); err == nil {
			_ = json.Unmarshal(b, &c)
		}
		if c.Channel != ch.Name || c.Version != pd.Version {
			c = launchCount{Channel: ch.Name, Version: pd.Version}
		}
		if c.Starts > 0 {
			if err := blameTrial(data, ch, now); err != nil {
				return Launch{}, err
			}
		}
		if c.Starts >= limit {
			reason := fmt.Sprintf("boot loop: the launcher started agent build %s %s and it never reached healthy", label(ch, pd.Version), times(c.Starts))
			if err := revertBuild(data, j, ch, CauseBootLoop, reason, now); err != nil {
				return Launch{}, err
			}
			out.Reverted = ch.LastError
		} else {
			c.Starts++
			b, _ := json.Marshal(c)
			if err := writeFileAtomic(data, launchFile, b); err != nil {
				return Launch{}, err
			}
			out.Trial = true
		}
	}
	if ch.ActiveVersion == 0 {
		return out, nil
	}
	out.Exe, out.Version = BuildExe(data, ch.Name, ch.ActiveSlot, ch.ActiveVersion), ch.ActiveVersion
	if _, err := os.Stat(out.Exe); err != nil {
		return Launch{}, fmt.Errorf("agent build %s: %w", label(ch, ch.ActiveVersion), err)
	}
	return out, nil
}

// blameTrial charges an unclean end of the last run, a start of the build
// on probation, to that build alone: an unclean-reboot event about it,
// and the running marker gone, so that the next start neither reports
// the content it ran nor counts a failed start of content on probation.
// A build that dies at every start would otherwise revert good content
// with it, and its crashes would count against the content's release.
func blameTrial(data string, ch *ChannelState, now time.Time) error {
	marker := filepath.Join(data, runningFile)
	if _, err := os.Stat(marker); err != nil {
		return nil // it stopped cleanly, or never got as far as starting
	}
	q, err := OpenQueue(data, 0)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("agent build %s, on probation, did not stop cleanly", label(ch, ch.Pending.Version))
	if _, err := q.Append(Event{Time: now, Type: EventUncleanReboot, Channel: ch.Name, Version: ch.Pending.Version, Reason: reason}); err != nil {
		return err
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// AbandonTrial reverts the build on probation, if version still is, after
// the launcher stopped it for not reaching healthy in time. The stop was
// the launcher's, not a host crash: the running marker goes, so the next
// start does not count it against content.
func AbandonTrial(data string, version uint64, reason string, now time.Time) (bool, error) {
	j, err := LoadJournal(data)
	if err != nil {
		return false, err
	}
	ch := BuildChannel(j)
	if ch == nil || ch.Pending == nil || ch.Pending.Version != version {
		return false, nil
	}
	if err := os.Remove(filepath.Join(data, runningFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, revertBuild(data, j, ch, CauseUnstable, reason, now)
}

// revertBuild reverts the build channel's activation and queues the
// events, as the agent does for content.
func revertBuild(data string, j *Journal, ch *ChannelState, cause Cause, reason string, now time.Time) error {
	d := revert(ch, cause, reason)
	q, err := OpenQueue(data, 0)
	if err != nil {
		return err
	}
	for _, e := range d.Events(now) {
		if _, err := q.Append(e); err != nil {
			return err
		}
	}
	if err := j.Save(data); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(data, launchFile))
	return nil
}
