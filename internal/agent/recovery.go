package agent

import (
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
)

// Policy is when the agent gives up on new content by itself. The zero
// value means the defaults; see WithDefaults.
type Policy struct {
	// CrashLimit (K) worker crashes within CrashWindow (T) of each other
	// while new content is unconfirmed revert it: a crash loop.
	CrashLimit  int
	CrashWindow time.Duration
	// BootLimit (N) agent starts that find the same activation still
	// unconfirmed revert it before anything is loaded: a boot loop.
	BootLimit int
	// HangLimit (H) hangs of the worker (no answer within the
	// supervisor's timeout: killed) within CrashWindow of each other while
	// new content is unconfirmed revert it. Each hang blinds the device
	// for the timeout, so fewer are allowed than crashes.
	HangLimit int
	// Probation is how long new content must run in one go, with fewer
	// than CrashLimit crashes since activation, to become last-known-good.
	Probation time.Duration
}

// Default policy values.
const (
	DefaultCrashLimit  = 3
	DefaultCrashWindow = 5 * time.Minute
	DefaultBootLimit   = 3
	DefaultHangLimit   = 2
	DefaultProbation   = 10 * time.Minute
)

// WithDefaults fills in every zero or negative field with its default.
func (p Policy) WithDefaults() Policy {
	if p.CrashLimit <= 0 {
		p.CrashLimit = DefaultCrashLimit
	}
	if p.CrashWindow <= 0 {
		p.CrashWindow = DefaultCrashWindow
	}
	if p.BootLimit <= 0 {
		p.BootLimit = DefaultBootLimit
	}
	if p.HangLimit <= 0 {
		p.HangLimit = DefaultHangLimit
	}
	if p.Probation <= 0 {
		p.Probation = DefaultProbation
	}
	return p
}

// DecisionKind is what a recovery decision did to a channel.
type DecisionKind string

const (
	// DecisionNone: nothing changed.
	DecisionNone DecisionKind = ""
	// DecisionResumed: the agent started with an activation still on
	// probation and keeps it (Attempts says how many runs it survived).
	DecisionResumed DecisionKind = "resumed-probation"
	// DecisionReverted: the channel went back to last-known-good (or to
	// nothing, when there is none) and refuses the version it left.
	DecisionReverted DecisionKind = "reverted"
	// DecisionCrashed: the worker crashed and that is not (yet) a reason
	// to revert.
	DecisionCrashed DecisionKind = "crashed"
	// DecisionHealthy: the activation completed its probation and is now
	// last-known-good.
	DecisionHealthy DecisionKind = "healthy"
	// DecisionReturned: at the server's word the channel went back to its
	// last-known-good version, which is still in its slot.
	DecisionReturned DecisionKind = "returned-to-lkg"
	// DecisionEnforced: at the server's word the version in shadow is now
	// enforced.
	DecisionEnforced DecisionKind = "enforced"
)

// Cause is why a channel was reverted.
type Cause string

const (
	CauseBootLoop  Cause = "boot-loop"  // BootLimit starts without reaching healthy
	CauseCrashLoop Cause = "crash-loop" // CrashLimit crashes within CrashWindow
	CauseHang      Cause = "hang"       // HangLimit hangs within CrashWindow
	// CauseUnstable: probation ended with CrashLimit or more crashes, none
	// close enough together to be a crash loop. Such content never
	// becomes last-known-good, and staying on probation for ever is not a
	// state the server can act on.
	CauseUnstable Cause = "unstable"
)

// Decision says what a recovery function did, for the caller to log,
// queue as events (see Events) and act on: after DecisionReverted or
// DecisionReturned the worker must run ActiveSlot (or nothing).
type Decision struct {
	Kind    DecisionKind
	Cause   Cause // for DecisionReverted
	Channel string
	// Version is the version concerned: resumed, crashed, confirmed, or
	// left by a revert or return.
	Version uint64
	// To is the version active after a revert or return; 0 is none, the
	// content is unloaded.
	To       uint64
	Attempts int // for DecisionResumed and boot loops
	Reason   string
}

func label(ch *ChannelState, v uint64) string { return fmt.Sprintf("%s@%d", ch.Name, v) }

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// InactiveSlot is the slot to stage new content into: the one not holding
// the last-known-good version. With no last-known-good it is the one not
// active, so unconfirmed content that is running is not overwritten
// either; with neither, slot a. When the active content is unconfirmed
// and there is a last-known-good, the inactive slot is the active one:
// stop the worker before staging into it.
func (ch *ChannelState) InactiveSlot() Slot {
	switch {
	case ch.LKGSlot != SlotNone:
		return ch.LKGSlot.Other()
	case ch.ActiveSlot != SlotNone:
		return ch.ActiveSlot.Other()
	}
	return SlotA
}

// BeginActivation records that version, staged and verified in
// ch.InactiveSlot(), is about to run: it becomes the active version in
// state pending, with no attempts and no crashes yet. It returns the slot
// the worker must load. A version newer than every refused version ends
// the refusals: the server has moved on.
//
// The caller must save the journal, fsynced, before it switches the
// worker to the new slot, and call StartProbation once the worker runs
// it. Saving first is what lets OnStart count a start that never got as
// far as saving anything: if the host dies loading the new content, the
// journal already says so.
func BeginActivation(ch *ChannelState, version uint64, now time.Time) Slot {
	slot := ch.InactiveSlot()
	if len(ch.Refused) > 0 && version > slices.Max(ch.Refused) {
		ch.Refused = nil
	}
	ch.Pending = &Pending{Version: version, Slot: slot, ActivatedAt: now}
	ch.ActiveVersion, ch.ActiveSlot = version, slot
	ch.State = StatePending
	ch.Shadow = false
	return slot
}

// BeginShadow is BeginActivation of a version to run in shadow: the
// worker evaluates it next to the last-known-good, which it keeps
// enforcing. The shadow version runs a probation as any activation does
// (a crash is a crash, enforced or not), but becomes last-known-good only
// once enforced.
func BeginShadow(ch *ChannelState, version uint64, now time.Time) Slot {
	slot := BeginActivation(ch, version, now)
	ch.Shadow = true
	return slot
}

// Enforce ends the shadow of the active version at the server's word: a
// version that completed its probation in shadow becomes last-known-good
// now; one still on probation goes on with it, enforced.
func Enforce(ch *ChannelState) Decision {
	if !ch.Shadow {
		return Decision{}
	}
	ch.Shadow = false
	d := Decision{Kind: DecisionEnforced, Channel: ch.Name, Version: ch.ActiveVersion}
	if ch.Pending != nil {
		d.Reason = fmt.Sprintf("%s leaves shadow: enforced, on probation", label(ch, ch.ActiveVersion))
		return d
	}
	d.Reason = fmt.Sprintf("%s leaves shadow: enforced, and last-known-good in place of %d", label(ch, ch.ActiveVersion), ch.LKGVersion)
	ch.LKGVersion, ch.LKGSlot = ch.ActiveVersion, ch.ActiveSlot
	return d
}

// LeavesShadow reports whether the server's answer ends the shadow of the
// active version (then call Enforce): it names the version's release
// without asking for shadow. Answers that name no release (a paused
// track, a spent budget, a version waiting for signatures) keep the
// device as it is.
func LeavesShadow(ch *ChannelState, cd protocol.ChannelDesired) bool {
	return ch.Shadow && cd.DesiredVersion != 0 && cd.DesiredVersion == ch.ActiveVersion && !cd.Shadow && cd.Release != ""
}

// Enforced is the version the worker enforces on the channel: the
// last-known-good while the active version runs in shadow.
func (ch *ChannelState) Enforced() (uint64, Slot) {
	if ch.Shadow {
		return ch.LKGVersion, ch.LKGSlot
	}
	return ch.ActiveVersion, ch.ActiveSlot
}

// StartProbation records that the worker runs the pending content: the
// probation period starts now.
func StartProbation(ch *ChannelState, now time.Time) {
	if ch.Pending == nil || ch.State != StatePending {
		return
	}
	ch.State = StateProbation
	ch.Pending.ActivatedAt = now
}

// OnStart runs on every agent start after a run that did not stop
// cleanly, before any content is loaded. Each activation still
// unconfirmed means a run that ended before reaching healthy (a host
// crash, a hang, a power cut, a kill). The BootLimit-th such start
// reverts to last-known-good, with no server needed; earlier ones resume
// the probation from the start. The caller saves the journal before
// loading anything. After a clean stop the caller uses
// OnStartAfterCleanStop instead.
//
// Whether the host rebooted uncleanly is not known here: the caller, which
// can see the boot history, queues "unclean-reboot" itself.
func OnStart(j *Journal, p Policy, now time.Time) []Decision {
	p = p.WithDefaults()
	var ds []Decision
	for ch := range pendingChannels(j) {
		name, pd := ch.Name, ch.Pending
		pd.Attempts++
		if pd.Attempts >= p.BootLimit {
			reason := fmt.Sprintf("boot loop: %s started %s without reaching healthy", label(ch, pd.Version), times(pd.Attempts))
			d := revert(ch, CauseBootLoop, reason)
			d.Attempts = pd.Attempts
			ds = append(ds, d)
			continue
		}
		ch.State = StateProbation
		pd.ActivatedAt = now
		ds = append(ds, Decision{
			Kind: DecisionResumed, Channel: name, Version: pd.Version, Attempts: pd.Attempts,
			Reason: fmt.Sprintf("resumed probation of %s: %d of %d starts without reaching healthy", label(ch, pd.Version), pd.Attempts, p.BootLimit),
		})
	}
	return ds
}

// OnStartAfterCleanStop runs on an agent start after the last run
// stopped cleanly (the agent's own stop ran: a service restart, an
// update, an orderly reboot). Such a run did not end because of its
// content, so an unconfirmed activation resumes its probation from the
// start without counting the start towards the boot-loop limit: planned
// restarts during probation must not revert good content.
func OnStartAfterCleanStop(j *Journal, now time.Time) []Decision {
	var ds []Decision
	for ch := range pendingChannels(j) {
		name, pd := ch.Name, ch.Pending
		ch.State = StateProbation
		pd.ActivatedAt = now
		ds = append(ds, Decision{
			Kind: DecisionResumed, Channel: name, Version: pd.Version, Attempts: pd.Attempts,
			Reason: fmt.Sprintf("resumed probation of %s after a clean stop (not counted as a failed start: %d so far)", label(ch, pd.Version), pd.Attempts),
		})
	}
	return ds
}

// pendingChannels yields, in name order, the channels whose activation
// is still unconfirmed, with their names filled in.
func pendingChannels(j *Journal) iter.Seq[*ChannelState] {
	return func(yield func(*ChannelState) bool) {
		for _, name := range j.Names() {
			ch := j.Channels[name]
			ch.Name = name
			if ch.Pending != nil && !yield(ch) {
				return
			}
		}
	}
}

// OnWorkerHang records a hang of the worker: it did not answer within the
// supervisor's timeout and was killed. HangLimit hangs within CrashWindow
// of each other, counted from activation on, revert unconfirmed content;
// a hang running confirmed content is reported as a crash (the server
// counts it) and reverts nothing.
func OnWorkerHang(ch *ChannelState, p Policy, now time.Time) Decision {
	p = p.WithDefaults()
	pd := ch.Pending
	if pd == nil || (ch.State != StatePending && ch.State != StateProbation) {
		return Decision{Kind: DecisionCrashed, Channel: ch.Name, Version: ch.ActiveVersion,
			Reason: fmt.Sprintf("worker hung running confirmed %s: killed", label(ch, ch.ActiveVersion))}
	}
	pd.Hangs = insertTime(pd.Hangs, now)
	k := p.HangLimit
	if _, _, ok := clustered(pd.Hangs, k, p.CrashWindow); ok {
		return revert(ch, CauseHang, fmt.Sprintf("worker hung %s within %s running %s on probation (no answer: killed each time)",
			times(k), p.CrashWindow, label(ch, pd.Version)))
	}
	return Decision{
		Kind: DecisionCrashed, Channel: ch.Name, Version: pd.Version,
		Reason: fmt.Sprintf("worker hung running %s on probation: killed; %d hangs since activation; %d within %s revert",
			label(ch, pd.Version), len(pd.Hangs), k, p.CrashWindow),
	}
}

// insertTime adds t to ts, kept in time order so that a clock stepped
// back between failures cannot hide a loop.
func insertTime(ts []time.Time, t time.Time) []time.Time {
	i, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int { return a.Compare(b) })
	return slices.Insert(ts, i, t)
}

// clustered finds k of the sorted ts within window of each other: the
// first and last of the earliest such run.
func clustered(ts []time.Time, k int, window time.Duration) (first, last time.Time, ok bool) {
	for i := 0; i+k <= len(ts); i++ {
		if ts[i+k-1].Sub(ts[i]) <= window {
			return ts[i], ts[i+k-1], true
		}
	}
	return time.Time{}, time.Time{}, false
}

// OnWorkerCrash records a crash of the worker. CrashLimit crashes within
// CrashWindow of each other, counted from activation on, revert
// unconfirmed content. A crash running confirmed content is reported but
// reverts nothing: there is nothing better to go back to.
func OnWorkerCrash(ch *ChannelState, p Policy, now time.Time) Decision {
	p = p.WithDefaults()
	pd := ch.Pending
	if pd == nil || (ch.State != StatePending && ch.State != StateProbation) {
		reason := fmt.Sprintf("worker crashed running confirmed %s", label(ch, ch.ActiveVersion))
		if ch.ActiveVersion == 0 {
			reason = fmt.Sprintf("worker crashed with no content of %s loaded", ch.Name)
		}
		return Decision{Kind: DecisionCrashed, Channel: ch.Name, Version: ch.ActiveVersion, Reason: reason}
	}
	pd.Crashes = insertTime(pd.Crashes, now)
	k := p.CrashLimit
	if first, last, ok := clustered(pd.Crashes, k, p.CrashWindow); ok {
		reason := fmt.Sprintf("crash loop: worker crashed %s within %s of activating %s", times(k), p.CrashWindow, label(ch, pd.Version))
		if last.Sub(pd.ActivatedAt) > p.CrashWindow {
			reason = fmt.Sprintf("crash loop: worker crashed %s in %s (limit: %d within %s) running %s on probation",
				times(k), last.Sub(first), k, p.CrashWindow, label(ch, pd.Version))
		}
		return revert(ch, CauseCrashLoop, reason)
	}
	return Decision{
		Kind: DecisionCrashed, Channel: ch.Name, Version: pd.Version,
		Reason: fmt.Sprintf("worker crashed running %s on probation: %d crashes since activation; %d within %s revert",
			label(ch, pd.Version), len(pd.Crashes), k, p.CrashWindow),
	}
}

// Tick ends a probation that has run its time: with fewer than CrashLimit
// crashes since activation the version becomes last-known-good (the
// caller reports "healthy"); with more it is reverted as unstable. Content
// still pending, never started by the worker, cannot become healthy.
func Tick(ch *ChannelState, p Policy, now time.Time) Decision {
	p = p.WithDefaults()
	pd := ch.Pending
	if pd == nil || ch.State != StateProbation || now.Sub(pd.ActivatedAt) < p.Probation {
		return Decision{}
	}
	if n := len(pd.Crashes); n >= p.CrashLimit {
		reason := fmt.Sprintf("unstable: worker crashed %d times since activating %s, %d or more by the end of its %s probation",
			n, label(ch, pd.Version), p.CrashLimit, p.Probation)
		return revert(ch, CauseUnstable, reason)
	}
	d := Decision{
		Kind: DecisionHealthy, Channel: ch.Name, Version: pd.Version,
		Reason: fmt.Sprintf("%s ran its %s probation with %d worker crashes: now last-known-good", label(ch, pd.Version), p.Probation, len(pd.Crashes)),
	}
	if ch.Shadow {
		// Healthy as far as running it goes; what it would block is for
		// the server's action gate to judge before anyone enforces it.
		d.Reason = fmt.Sprintf("%s ran its %s probation in shadow with %d worker crashes: healthy; last-known-good %d stays enforced",
			label(ch, pd.Version), p.Probation, len(pd.Crashes), ch.LKGVersion)
	} else {
		ch.LKGVersion, ch.LKGSlot = pd.Version, pd.Slot
	}
	ch.ActiveVersion, ch.ActiveSlot = pd.Version, pd.Slot
	ch.Pending = nil
	ch.State = StateActive
	ch.LastError = ""
	return d
}

// revert puts the channel back on its last-known-good version, or on
// nothing when there is none, and refuses the version it leaves.
func revert(ch *ChannelState, cause Cause, reason string) Decision {
	from := ch.ActiveVersion
	if ch.Pending != nil {
		from = ch.Pending.Version
	}
	if !slices.Contains(ch.Refused, from) {
		ch.Refused = append(ch.Refused, from)
	}
	if ch.LKGVersion == 0 {
		reason += "; no last-known-good version to return to: content unloaded"
	} else {
		reason += fmt.Sprintf("; back to last-known-good %s", label(ch, ch.LKGVersion))
	}
	ch.Pending = nil
	ch.ActiveVersion, ch.ActiveSlot = ch.LKGVersion, ch.LKGSlot
	ch.State = StateReverted
	ch.Shadow = false
	ch.LastError = reason
	return Decision{Kind: DecisionReverted, Cause: cause, Channel: ch.Name, Version: from, To: ch.LKGVersion, Reason: reason}
}

// ReturnToLKG switches the channel back to its last-known-good version,
// which is still in its slot, when the server asks for that version (a
// halted or rolled-back release): no download, no probation, and no
// refusal, since this device saw nothing wrong. DecisionNone when there is
// no last-known-good or it is already active. As with BeginActivation,
// save the journal before switching the worker.
func ReturnToLKG(ch *ChannelState) Decision {
	if ch.LKGSlot == SlotNone || (ch.ActiveVersion == ch.LKGVersion && ch.Pending == nil) {
		return Decision{}
	}
	from := ch.ActiveVersion
	ch.Pending = nil
	ch.ActiveVersion, ch.ActiveSlot = ch.LKGVersion, ch.LKGSlot
	ch.State = StateActive
	ch.Shadow = false
	return Decision{
		Kind: DecisionReturned, Channel: ch.Name, Version: from, To: ch.LKGVersion,
		Reason: fmt.Sprintf("the server asked for last-known-good %s; left %s", label(ch, ch.LKGVersion), label(ch, from)),
	}
}

// Accept says whether to install a version the server offers, and why.
// Refused versions stay refused until a version newer than all of them
// is offered (BeginActivation then forgets them); the active version needs
// nothing done. Older versions are taken: a server moving a device back
// from a halted release is the rollback working. When the offer is the
// last-known-good still on disk, use ReturnToLKG instead of downloading.
func Accept(ch *ChannelState, offered uint64) (ok bool, why string) {
	switch {
	case offered == 0:
		return false, fmt.Sprintf("no version of %s offered", ch.Name)
	case slices.Contains(ch.Refused, offered):
		return false, fmt.Sprintf("%s was reverted on this device; refused until a version newer than %d is offered", label(ch, offered), slices.Max(ch.Refused))
	case offered == ch.ActiveVersion:
		return false, fmt.Sprintf("%s is already active", label(ch, offered))
	case offered == ch.LKGVersion:
		return true, fmt.Sprintf("%s is the last-known-good, still in slot %s", label(ch, offered), ch.LKGSlot)
	case offered > ch.ActiveVersion:
		why := fmt.Sprintf("%s is newer than the active version %d", label(ch, offered), ch.ActiveVersion)
		if len(ch.Refused) > 0 && offered > slices.Max(ch.Refused) {
			why += "; newer than every refused version, which are no longer refused once it is activated"
		}
		return true, why
	}
	return true, fmt.Sprintf("%s is older than the active %s: the server moves this device back", label(ch, offered), label(ch, ch.ActiveVersion))
}

// Events are the events the decision is reported with; the caller queues
// them. A crash loop is reported as the crash that made it and the revert,
// a boot loop as the loop and the revert. A resumed probation has none of
// its own: see OnStart.
func (d Decision) Events(at time.Time) []Event {
	ev := func(t EventType, v uint64) Event {
		return Event{Time: at, Type: t, Channel: d.Channel, Version: v, Reason: d.Reason}
	}
	switch d.Kind {
	case DecisionReverted:
		switch d.Cause {
		case CauseBootLoop:
			return []Event{ev(EventBootLoop, d.Version), ev(EventReverted, d.Version)}
		case CauseCrashLoop, CauseHang:
			// A hung worker is killed: the server hears a crash.
			return []Event{ev(EventWorkerCrash, d.Version), ev(EventReverted, d.Version)}
		}
		return []Event{ev(EventReverted, d.Version)}
	case DecisionCrashed:
		return []Event{ev(EventWorkerCrash, d.Version)}
	case DecisionHealthy:
		return []Event{ev(EventHealthy, d.Version)}
	case DecisionReturned:
		return []Event{ev(EventApplied, d.To)}
	}
	return nil
}

// UncleanStop is what a start after an unclean stop reports: one
// unclean-reboot event per channel that was running content, attributed
// to the version it ran (the one on probation, if any), so the server's
// gate counts it against the release that may have caused it. Call it
// before OnStart, which may revert that version.
func UncleanStop(j *Journal, at time.Time, reason string) []Event {
	var out []Event
	for _, name := range j.Names() {
		ch := j.Channels[name]
		v := ch.ActiveVersion
		if ch.Pending != nil {
			v = ch.Pending.Version
		}
		if v != 0 {
			out = append(out, Event{Time: at, Type: EventUncleanReboot, Channel: name, Version: v, Reason: reason})
		}
	}
	return out
}
