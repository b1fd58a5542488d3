package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// controllerActor is the audit log's name for the rollout controller.
const controllerActor = "controller"

// controllerLoop runs the rollout controller on the replica that holds the
// lease: every tick it judges each live release with the same pure
// functions the simulator uses, and writes what changed.
func (s *Server) controllerLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ControllerTick)
	defer t.Stop()
	defer s.resign()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.leading(ctx) {
			continue
		}
		if err := s.ControlOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("rollout controller tick failed", "err", err)
		}
	}
}

// leading takes or checks the controller lease.
func (s *Server) leading(ctx context.Context) bool {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.lease != nil {
		err := s.lease.Check(ctx)
		if err == nil {
			return true
		}
		s.log.Warn("lost the rollout controller lease", "err", err)
		s.lease.Release()
		s.lease = nil
		s.isLeader.Store(false)
		s.tick.Store(nil) // the gate figures are the new leader's to show
	}
	l, err := s.store.Lead(ctx)
	if err != nil {
		if !errors.Is(err, store.ErrNotLeader) {
			s.log.Warn("cannot take the rollout controller lease", "err", err)
		}
		return false
	}
	s.lease = l
	s.isLeader.Store(true)
	s.log.Info("this replica is the rollout controller")
	return true
}

func (s *Server) resign() {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.lease != nil {
		s.lease.Release()
		s.lease = nil
		s.isLeader.Store(false)
		s.tick.Store(nil)
	}
}

// IsController reports whether this replica holds the controller lease.
func (s *Server) IsController() bool { return s.isLeader.Load() }

// ControlOnce is one controller tick over every release: tests call it
// directly with a fake clock. What its gates found is kept for the metrics
// until the next tick.
func (s *Server) ControlOnce(ctx context.Context) (err error) {
	t0 := time.Now()
	defer func() {
		s.metrics.tickSeconds.Observe(time.Since(t0).Seconds())
		if err != nil && ctx.Err() == nil {
			s.metrics.tickFailures.Inc()
		}
	}()
	rels, err := s.store.ListReleases(ctx, "")
	if err != nil {
		return fmt.Errorf("releases: %w", err)
	}
	changed := false
	var errs []error
	figs := &tickFigures{}
	for _, rel := range rels {
		c, err := s.controlReleaseSafely(ctx, rel, rels, figs)
		changed = changed || c
		if err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", rel.ID, err))
		}
	}
	figs.at = s.now()
	s.tick.Store(figs)
	if changed {
		s.changed(ctx)
	}
	if err := s.syncDenyList(ctx, rels, changed); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// controlReleaseSafely is controlRelease with the failure of one release
// kept to that release: a panic while judging it (a defect, or stored data
// the code did not expect) is logged with its stack and halts that release
// for a person, while the other releases are judged and the server keeps
// serving. A halt is the safe side: devices go back to the version they
// last confirmed, and nothing moves until someone resumes.
func (s *Server) controlReleaseSafely(ctx context.Context, rel store.Release, all []store.Release, figs *tickFigures) (changed bool, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		s.metrics.tickPanics.Inc()
		s.log.Error("rollout controller panicked judging a release; halting it", "release", rel.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		changed, err = s.haltAfterPanic(ctx, rel, p)
	}()
	return s.controlRelease(ctx, rel, all, figs)
}

// haltAfterPanic halts a live release whose judgement panicked. One that
// is not live is left as it is: there is nothing to stop.
func (s *Server) haltAfterPanic(ctx context.Context, rel store.Release, p any) (bool, error) {
	failure := fmt.Errorf("the controller failed judging it: panic: %v", p)
	if st, perr := rollout.ParseState(string(rel.State)); perr != nil || !st.Live() {
		return false, failure
	}
	// The controller's own way of writing a halt: audit entry, webhook,
	// metric and log as for a failing gate. The plan is not needed for a
	// halt (it may be what panicked).
	v := rollout.Verdict{State: rollout.StateHalted, Wave: rel.Wave, Reason: fmt.Sprintf("halted: %v; a person must look", failure)}
	if err := s.applyVerdict(ctx, rel, rollout.Plan{}, nil, v, controllerActor); err != nil {
		return false, errors.Join(failure, fmt.Errorf("halting it: %w", err))
	}
	return true, failure
}

// judgement is a release's state as the controller and the status page
// see it.
type judgement struct {
	status rollout.ReleaseStatus
	gates  []rollout.GateResult
	counts []rollout.Count
	cohort *rollout.Cohort
	// silence is the silence gate's figures per organisation and stratum.
	silence []rollout.SilenceCount
}

func (s *Server) controlRelease(ctx context.Context, rel store.Release, all []store.Release, figs *tickFigures) (bool, error) {
	st, err := rollout.ParseState(string(rel.State))
	if err != nil {
		return false, err
	}
	if st.Bad() {
		return s.checkRolledBack(ctx, rel, st)
	}
	if !st.Live() {
		return false, nil
	}
	plan, err := rollout.ParsePlan(rel.Plan)
	if err != nil {
		return false, fmt.Errorf("plan: %w", err)
	}
	j, err := s.judge(ctx, rel, plan, all)
	if err != nil {
		return false, err
	}
	// Pages that follow the release show this judgement (WatchStatus)
	// until the release changes or the next tick.
	s.judged.Store(rel.ID, judged{revision: rel.Revision, at: s.now(), plan: plan, j: j})
	figs.releases = append(figs.releases, figuresOf(rel, j))
	if j.cohort == nil || j.cohort.Wave != rel.Wave {
		// First tick of a wave: find who it reaches before judging it.
		if err := s.updateCohort(ctx, &rel, plan, j.cohort, rollout.Growth{}); err != nil {
			return false, err
		}
		return true, nil
	}
	now := s.now()
	v := rollout.Step(now, j.status, j.gates)
	if !v.Changed(j.status) {
		return s.widen(ctx, rel, plan, j, now)
	}
	return true, s.applyVerdict(ctx, rel, plan, j.cohort, v, controllerActor)
}

// applyVerdict writes the controller's (or a person's promote) verdict.
func (s *Server) applyVerdict(ctx context.Context, rel store.Release, plan rollout.Plan, cohort *rollout.Cohort, v rollout.Verdict, actor string) error {
	now := s.now()
	action := "release.phase"
	rel.State, rel.Wave, rel.Phase = v.State, v.Wave, string(v.Phase)
	rel.UpdatedAt = now
	switch {
	case v.State == rollout.StateHalted:
		action, rel.HaltedBy, rel.Reason = "release.halt", actor, v.Reason
	case v.State == rollout.StateCompleted:
		action, rel.CompletedAt, rel.Reason = "release.complete", now, v.Reason
	case v.State == rollout.StateAwaitingApproval:
		action, rel.Reason = "release.await-approval", v.Reason
	case v.Advanced:
		action, rel.WaveStartedAt, rel.Reason = "release.promote", now, v.Reason
	}
	var audit []store.AuditEntry
	if action != "release.phase" {
		audit = append(audit, store.AuditEntry{Time: now, Actor: actor, Action: action, Target: rel.ID, Reason: v.Reason})
	}
	rev, err := s.updateRelease(ctx, rel, audit...)
	if errors.Is(err, store.ErrStale) && actor == controllerActor {
		return nil // a person changed it meanwhile; judge again next tick
	}
	if err != nil {
		return err
	}
	rel.Revision = rev
	if v.State == rollout.StateHalted {
		s.metrics.halted(actor)
	}
	if action != "release.phase" {
		s.log.Info("release changed", "release", rel.ID, "state", rel.State, "wave", rel.Wave, "reason", v.Reason, "by", actor)
	}
	if v.Advanced && v.State.Live() {
		return s.updateCohort(ctx, &rel, plan, cohort, rollout.Growth{})
	}
	return nil
}

// widen reaches more devices of strata whose evidence leans worse without
// deciding (rollout.Widen), and says so in the audit log.
func (s *Server) widen(ctx context.Context, rel store.Release, plan rollout.Plan, j judgement, now time.Time) (bool, error) {
	w, ok := rollout.Widen(now, j.status, j.gates, *j.cohort, s.widenEvery())
	if !ok {
		return false, nil
	}
	c := *j.cohort
	c.Widened = now
	var audit []store.AuditEntry
	if w.Why != "" { // else a routine ramp step
		audit = append(audit, store.AuditEntry{Time: now, Actor: controllerActor, Action: "release.widen", Target: rel.ID, Reason: w.Why})
	}
	if err := s.updateCohort(ctx, &rel, plan, &c, w.Growth, audit...); err != nil {
		return false, err
	}
	if w.Why != "" {
		s.log.Info("release widened", "release", rel.ID, "reason", w.Why)
	}
	return true, nil
}

// stillToReach is how many more devices the wave reaches once every
// stratum has ramped up.
func stillToReach(c rollout.Cohort) int {
	n := 0
	for s, full := range c.Full {
		n += max(0, full-c.Reach[s])
	}
	return n
}

// widenEvery is how long the controller waits between widenings of one
// wave: long enough for the new devices to check in, apply the release and
// show what it does to them.
func (s *Server) widenEvery() time.Duration {
	return max(3*s.cfg.CheckinInterval, 10*time.Minute)
}

// checkRolledBack marks a halted release rolled back once no device runs
// its version any more.
func (s *Server) checkRolledBack(ctx context.Context, rel store.Release, st rollout.ReleaseState) (bool, error) {
	if st != rollout.StateHalted {
		return false, nil
	}
	n, err := s.store.DevicesOnVersion(ctx, rel.Channel, rel.Version)
	if err != nil || n > 0 {
		return false, err
	}
	now := s.now()
	why := fmt.Sprintf("rolled back: no device runs %s@%d any more", rel.Channel, rel.Version)
	rel.State, rel.UpdatedAt = store.ReleaseRolledBack, now
	rel.Reason = rel.Reason + "; " + why
	if _, err := s.updateRelease(ctx, rel, store.AuditEntry{Time: now, Actor: controllerActor, Action: "release.rolled-back", Target: rel.ID, Reason: why}); err != nil {
		if errors.Is(err, store.ErrStale) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// judge reads a release's telemetry and runs its current wave's gates.
func (s *Server) judge(ctx context.Context, rel store.Release, plan rollout.Plan, all []store.Release) (judgement, error) {
	st, err := rollout.ParseState(string(rel.State))
	if err != nil {
		return judgement{}, err
	}
	lane, err := rollout.ParseLane(rel.Lane)
	if err != nil {
		return judgement{}, err
	}
	j := judgement{status: rollout.ReleaseStatus{State: st, Wave: rel.Wave, Phase: rollout.Phase(rel.Phase), Lane: lane, Plan: plan,
		WaveStartedAt: rel.WaveStartedAt, Approvals: approvals(rel), Targeted: -1, Frozen: s.snap.Load().frozen(rel.Channel)}}
	if ri := s.snap.Load().byID[rel.ID]; ri != nil {
		j.status.Signing, j.status.SigningNote = ri.signing, ri.signingNote
	}
	if len(rel.Cohort) > 0 {
		var c rollout.Cohort
		if err := json.Unmarshal(rel.Cohort, &c); err != nil {
			return j, fmt.Errorf("cohort: %w", err)
		}
		j.cohort = &c
		if c.Wave == rel.Wave && rel.Wave < len(c.Targeted) {
			j.status.Targeted = c.Targeted[rel.Wave]
			if c.Ramping() {
				j.status.Ramping = true
				j.status.Ramp = fmt.Sprintf("%d devices reached of %d, %d strata still growing", c.Targeted[rel.Wave], c.Targeted[rel.Wave]+stillToReach(c), len(c.Ramp))
			}
		}
	}
	t := rollout.Telemetry{HeartbeatSpan: max(s.cfg.CounterWindow, s.cfg.CheckinInterval), SilentAfter: s.silentAfter()}
	// A resumed release is judged on what came after the resume.
	cs, err := s.store.CounterTotals(ctx, rel.ID, true)
	if err == nil {
		j.counts = toCounts(cs)
		t.Counts = j.counts
		for _, c := range j.counts {
			if c.Metric == "healthy" {
				j.status.Confirmed += c.Value
			}
		}
		if prev := previousRelease(rel, all); prev != "" {
			var pcs []store.Counter
			if pcs, err = s.store.CounterTotals(ctx, prev, false); err == nil {
				t.Previous = toCounts(pcs)
			}
		}
	}
	if err == nil {
		var ss []store.SilenceStat
		ss, err = s.store.SilenceStats(ctx, store.SilenceQuery{Release: rel.ID, Since: rel.GatesSince, OverdueBefore: s.now().Add(-t.SilentAfter), Channel: rel.Channel, Version: rel.Version})
		for _, x := range ss {
			t.Silence = append(t.Silence, rollout.SilenceCount(x))
		}
		j.silence = t.Silence
	}
	if err != nil {
		// The gates say "error" rather than guess; the controller waits.
		s.markStore(err)
		t.Err = err
	}
	if rel.Wave >= 0 && rel.Wave < len(plan.Waves) {
		j.gates = rollout.Evaluate(j.status.WaveGates(), plan.Waves[rel.Wave].Label(), t)
	}
	return j, nil
}

// silentAfter is how long a device may stay quiet before it counts as
// silent: the longest jittered check-in interval plus the grace.
func (s *Server) silentAfter() time.Duration {
	return s.cfg.CheckinInterval*6/5 + s.cfg.SilenceGrace
}

func approvals(rel store.Release) int { return len(countedApprovals(rel)) }

func toCounts(cs []store.Counter) []rollout.Count {
	out := make([]rollout.Count, len(cs))
	for i, c := range cs {
		out[i] = rollout.Count{Wave: c.Wave, Stratum: c.Stratum, Metric: c.Metric, Value: c.Value}
	}
	return out
}

// previousRelease is the newest completed release below rel on its channel.
func previousRelease(rel store.Release, all []store.Release) string {
	var best store.Release
	for _, r := range all {
		if r.Channel == rel.Channel && r.Version < rel.Version && r.State == store.ReleaseCompleted && r.Version > best.Version {
			best = r
		}
	}
	return best.ID
}

// updateCohort computes who the release's current wave reaches and stores
// it with the release.
func (s *Server) updateCohort(ctx context.Context, rel *store.Release, plan rollout.Plan, prev *rollout.Cohort, g rollout.Growth, audit ...store.AuditEntry) error {
	sn := s.snap.Load()
	ri := sn.byID[rel.ID]
	var devs []rollout.CohortDevice
	after := ""
	for {
		ds, err := s.store.ListDevices(ctx, store.DeviceFilter{After: after, Limit: 5000})
		if err != nil {
			return fmt.Errorf("cohort: %w", err)
		}
		for _, d := range ds {
			if d.Revoked {
				continue
			}
			if ri != nil {
				agent, err := content.ParseAgentVersion(d.AgentVersion)
				if !ri.targetsDevice(s.cfg.Catalog, d.Platform, agent, err == nil) {
					continue
				}
			}
			// Paused (on a pausable channel) and pinned organisations take
			// no wave, internal ones included.
			tr := sn.track(d.Org, rel.Channel).Kind
			waits := tr == rollout.TrackPinned || (tr == rollout.TrackPaused && !sn.channels[rel.Channel].Unpausable)
			devs = append(devs, rollout.CohortDevice{Position: rollout.CohortPosition(d.ID, rel.Channel),
				Stratum: stratumOf(d.Platform, d.AgentVersion, d.OSBuild), Internal: sn.tenants[d.Org].Internal && !waits,
				Early: tr == rollout.TrackEarly})
		}
		if len(ds) < 5000 {
			break
		}
		after = ds[len(ds)-1].ID
	}
	c := rollout.ComputeCohort(plan, rel.Wave, devs, s.cfg.StratumMin, prev, g)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	rel.Cohort = b
	rel.UpdatedAt = s.now()
	rev, err := s.store.UpdateRelease(ctx, *rel, audit...)
	if errors.Is(err, store.ErrStale) {
		return nil
	}
	if err != nil {
		return err
	}
	rel.Revision = rev
	return nil
}

func stratumOf(platform, agent, osBuild string) string { return platform + "/" + agent + "/" + osBuild }
