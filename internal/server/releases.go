package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// ReleaseReport is a release as the admin API shows it, with the
// telemetry figures the caller may see.
type ReleaseReport struct {
	ID        string           `json:"id"`
	Channel   string           `json:"channel"`
	Version   uint64           `json:"version"`
	State     string           `json:"state"`
	Wave      int              `json:"wave"`
	WaveName  string           `json:"wave_name"`
	Phase     string           `json:"phase,omitempty"`
	Lane      string           `json:"lane"`
	Plan      rollout.Plan     `json:"plan"`
	Reason    string           `json:"reason,omitempty"`
	HaltedBy  string           `json:"halted_by,omitempty"`
	Approvals []store.Approval `json:"approvals"`
	CreatedBy string           `json:"created_by"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
	Figures   []Figure         `json:"figures,omitempty"`
}

// Figure is one telemetry counter, summed to what the caller may see.
type Figure struct {
	Wave    int    `json:"wave"`
	Org     string `json:"org,omitempty"`
	Stratum string `json:"stratum,omitempty"`
	Metric  string `json:"metric"`
	Value   int64  `json:"value"`
}

func toReleaseReport(r store.Release) ReleaseReport {
	out := ReleaseReport{ID: r.ID, Channel: r.Channel, Version: r.Version, State: string(r.State), Wave: r.Wave, Phase: r.Phase,
		Lane: r.Lane, Reason: r.Reason, HaltedBy: r.HaltedBy, Approvals: r.Approvals, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if out.Approvals == nil {
		out.Approvals = []store.Approval{}
	}
	if out.Lane == "" {
		out.Lane = string(rollout.LaneNormal)
	}
	if plan, err := rollout.ParsePlan(r.Plan); err == nil {
		out.Plan = plan
		if r.Wave >= 0 && r.Wave < len(plan.Waves) {
			out.WaveName = plan.Waves[r.Wave].Name
		}
	}
	return out
}

// createRelease starts a release (or keeps it as a draft) in a lane.
func (s *Server) createRelease(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req struct {
		Channel string        `json:"channel"`
		Version uint64        `json:"version"`
		Plan    *rollout.Plan `json:"plan"`
		Lane    string        `json:"lane"`
		Draft   bool          `json:"draft"`
		// ShadowCanary runs the plan's canary waves in shadow.
		ShadowCanary bool `json:"shadow_canary"`
		// PlanTemplate names one of the vendor's plans instead of Plan.
		PlanTemplate string `json:"plan_template"`
	}
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	vendor, _, _ := strings.Cut(req.Channel, "/")
	if !validChannelID(req.Channel) {
		return badRequest("channel: %q is not VENDOR/CHANNEL", req.Channel)
	}
	if !p.vendorAccess(vendor, true) {
		return forbidden("token may not release on %s", req.Channel)
	}
	lane, err := rollout.ParseLane(req.Lane)
	if err != nil {
		return badRequest("lane: %v", err)
	}
	c, err := s.store.GetChannel(r.Context(), req.Channel)
	if err != nil {
		return storeError("channel "+req.Channel, err)
	}
	art, err := s.store.GetArtifact(r.Context(), req.Channel, req.Version)
	if err != nil {
		if isNotFound(err) {
			return badRequest("version: %s@%d was never published", req.Channel, req.Version)
		}
		return storeError("artifact", err)
	}
	plan := rollout.DefaultContentPlan()
	if c.Kind == store.ChannelAgent {
		plan = rollout.DefaultAgentPlan()
	}
	switch {
	case req.Plan != nil && req.PlanTemplate != "":
		return badRequest("plan, plan_template: give a plan or name one, not both")
	case req.Plan != nil:
		if err := req.Plan.Validate(); err != nil {
			return badRequest("plan: %v", err)
		}
		plan = *req.Plan
	case req.PlanTemplate != "":
		if plan, err = s.planTemplate(r.Context(), vendor, req.PlanTemplate); err != nil {
			return err
		}
	}
	if req.ShadowCanary {
		plan = plan.WithShadowCanaries()
		if !slices.ContainsFunc(plan.Waves, func(w rollout.Wave) bool { return w.Shadow }) {
			return badRequest("shadow_canary: the plan has no canary wave to run in shadow")
		}
	}
	if c.Kind == store.ChannelAgent && slices.ContainsFunc(plan.Waves, func(w rollout.Wave) bool { return w.Shadow }) {
		return badRequest("plan: %s carries agent builds, which cannot run in shadow: a build runs the host's agent itself, there is nothing to observe it beside", req.Channel)
	}
	if !req.Draft {
		if err := s.shippable(art, c.Kind, plan.Waves[0]); err != nil {
			return err
		}
	}
	planJSON, _ := jsonMarshal(plan)
	now := s.now()
	state, phase := store.ReleaseRolling, string(rollout.PhaseBaking)
	if req.Draft {
		state, phase = store.ReleaseDraft, ""
	}
	rel := store.Release{ID: fmt.Sprintf("rel-%s-%d-%s", strings.ReplaceAll(req.Channel, "/", "-"), req.Version, secret(3)),
		Channel: req.Channel, Version: req.Version, Plan: planJSON, State: state, Phase: phase, Lane: string(lane), Wave: 0,
		CreatedBy: p.actor(), CreatorToken: p.TokenID, CreatedAt: now, UpdatedAt: now, WaveStartedAt: now, GatesSince: now}
	if err := s.audited(r.Context(), p, "release.create", rel.ID, fmt.Sprintf("%s@%d, %s lane, %s", req.Channel, req.Version, lane, state), func(ctx context.Context) error {
		return asStoreError(fmt.Sprintf("release of %s@%d", req.Channel, req.Version), s.store.CreateRelease(ctx, rel))
	}); err != nil {
		return err
	}
	s.changed(r.Context())
	rel.Revision = 1
	writeJSON(w, http.StatusCreated, toReleaseReport(rel))
	return nil
}

// releaseFor loads a release the principal may see: vendors their own,
// organisations and admins all.
func (s *Server) releaseFor(ctx context.Context, p Principal, id string) (store.Release, error) {
	rel, err := s.store.GetRelease(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return rel, notFound("release %s", id)
		}
		return rel, storeError("release", err)
	}
	vendor, _, _ := strings.Cut(rel.Channel, "/")
	if !s.mayReadRelease(p, vendor) {
		return rel, notFound("release %s", id)
	}
	return rel, nil
}

func (s *Server) mayReadRelease(p Principal, vendor string) bool {
	return p.isAdmin() || p.vendorAccess(vendor, false) || s.tenantKind(p.Tenant) == store.TenantOrg
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request, p Principal) error {
	out, err := s.Releases(r.Context(), p, r.URL.Query().Get("channel"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Releases are the releases p may see, on one channel or ("") on all.
func (s *Server) Releases(ctx context.Context, p Principal, channel string) ([]ReleaseReport, error) {
	rs, err := s.store.ListReleases(ctx, channel)
	if err != nil {
		return nil, storeError("releases", err)
	}
	out := []ReleaseReport{}
	for _, rel := range rs {
		vendor, _, _ := strings.Cut(rel.Channel, "/")
		if s.mayReadRelease(p, vendor) {
			out = append(out, toReleaseReport(rel))
		}
	}
	return out, nil
}

// getRelease adds the telemetry figures the principal may see: a vendor
// gets totals per wave and metric (no organisation, no stratum); an
// organisation only its own cells; the operator everything.
func (s *Server) getRelease(w http.ResponseWriter, r *http.Request, p Principal) error {
	out, err := s.Release(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Release is release id with the telemetry figures p may see (getRelease).
func (s *Server) Release(ctx context.Context, p Principal, id string) (ReleaseReport, error) {
	rel, err := s.releaseFor(ctx, p, id)
	if err != nil {
		return ReleaseReport{}, err
	}
	cs, err := s.store.CounterTotals(ctx, rel.ID, false)
	if err != nil {
		return ReleaseReport{}, storeError("counters", err)
	}
	out := toReleaseReport(rel)
	type key struct {
		wave            int
		org, st, metric string
	}
	sum := map[key]int64{}
	var order []key
	for _, c := range cs {
		org, st, ok := s.figureCell(p, c)
		if !ok {
			continue
		}
		k := key{c.Wave, org, st, c.Metric}
		if _, ok := sum[k]; !ok {
			order = append(order, k)
		}
		sum[k] += c.Value
	}
	for _, k := range order {
		out.Figures = append(out.Figures, Figure{Wave: k.wave, Org: k.org, Stratum: k.st, Metric: k.metric, Value: sum[k]})
	}
	return out, nil
}

// figureCell is how much of counter c principal p may see: the operator
// every cell, an organisation its own cells (others not at all), a vendor
// totals per wave and metric, with no organisation and no stratum.
func (s *Server) figureCell(p Principal, c store.Counter) (org, stratum string, ok bool) {
	switch {
	case p.isAdmin():
		return c.Org, c.Stratum, true
	case s.tenantKind(p.Tenant) == store.TenantOrg:
		return c.Org, c.Stratum, c.Org == p.Tenant
	}
	return "", "", true
}

// TimelinePoint is one counter window of a release's telemetry, summed to
// what the caller may see (figureCell): the web console draws it.
type TimelinePoint struct {
	Window time.Time
	Wave   int
	Metric string
	Value  int64
}

// Timeline is release id's telemetry per counter window, oldest first.
func (s *Server) Timeline(ctx context.Context, p Principal, id string) ([]TimelinePoint, error) {
	rel, err := s.releaseFor(ctx, p, id)
	if err != nil {
		return nil, err
	}
	cs, err := s.store.Counters(ctx, rel.ID)
	if err != nil {
		return nil, storeError("counters", err)
	}
	type key struct {
		window time.Time
		wave   int
		metric string
	}
	sum := map[key]int64{}
	for _, c := range cs {
		if _, _, ok := s.figureCell(p, c); ok {
			sum[key{c.Window, c.Wave, c.Metric}] += c.Value
		}
	}
	out := make([]TimelinePoint, 0, len(sum))
	for k, v := range sum {
		out = append(out, TimelinePoint{Window: k.window, Wave: k.wave, Metric: k.metric, Value: v})
	}
	slices.SortFunc(out, func(a, b TimelinePoint) int {
		if c := a.Window.Compare(b.Window); c != 0 {
			return c
		}
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		return strings.Compare(a.Metric, b.Metric)
	})
	return out, nil
}

// ReleaseStatus is what `ringfence release status` shows: per wave the
// devices targeted, applied and confirmed, each gate's outcome with its
// figures, and in words why the release is where it is.
type ReleaseStatus struct {
	Release ReleaseReport `json:"release"`
	// Summary is one line, e.g. "halted: silence rate 38.0% vs 0.4% in
	// control (canary, 812 devices, 15 min window)".
	Summary         string               `json:"summary"`
	Waves           []WaveStatus         `json:"waves"`
	Gates           []rollout.GateResult `json:"gates"`
	ApprovalsNeeded int                  `json:"approvals_needed"`
	ApprovalsGiven  int                  `json:"approvals_given"`
	Frozen          bool                 `json:"frozen"`
	// Signing is how far the vendor signed the artifact: production,
	// canary or unsigned ("" without a signed-update repository), with
	// SigningNote saying what is missing.
	Signing     string `json:"signing,omitempty"`
	SigningNote string `json:"signing_note,omitempty"`
}

// WaveStatus is one wave's progress. Targeted is -1 until the controller
// has counted the wave's devices.
type WaveStatus struct {
	Name      string `json:"name"`
	Share     int    `json:"share"`
	Internal  bool   `json:"internal_only,omitempty"`
	Canary    bool   `json:"canary,omitempty"`
	Shadow    bool   `json:"shadow,omitempty"`
	Progress  string `json:"progress"` // done, current, pending
	Targeted  int    `json:"targeted"`
	Applied   int64  `json:"applied"`
	Confirmed int64  `json:"confirmed"`
}

// releaseStatus judges the release now, with the controller's code, for
// the vendor and the operator (organisations see releases, not the fleet
// figures behind the gates).
func (s *Server) releaseStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	out, err := s.Status(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// MayReadStatus reports whether p may read the status of a release on
// channel: its vendor and the operator.
func MayReadStatus(p Principal, channel string) bool {
	vendor, _, _ := strings.Cut(channel, "/")
	return p.vendorAccess(vendor, false)
}

// Status is release id's status as `ringfence release status` shows it.
func (s *Server) Status(ctx context.Context, p Principal, id string) (ReleaseStatus, error) {
	return s.status(ctx, p, id, false)
}

// WatchStatus is Status for a page that follows a release: it reuses the
// controller's judgement of the release from its last tick on this
// replica, when the release has not changed since and the tick is at most
// one tick old; otherwise (another replica leads) it judges now. The controller judges every
// live release every tick anyway, and at fleet scale a judgement reads
// the silence figures of every device.
func (s *Server) WatchStatus(ctx context.Context, p Principal, id string) (ReleaseStatus, error) {
	return s.status(ctx, p, id, true)
}

// judged is the controller's last judgement of a release.
type judged struct {
	revision int64
	at       time.Time
	plan     rollout.Plan
	j        judgement
}

func (s *Server) status(ctx context.Context, p Principal, id string, reuse bool) (ReleaseStatus, error) {
	rel, err := s.releaseFor(ctx, p, id)
	if err != nil {
		return ReleaseStatus{}, err
	}
	if !MayReadStatus(p, rel.Channel) {
		return ReleaseStatus{}, forbidden("release status is for the vendor and the operator")
	}
	var plan rollout.Plan
	var j judgement
	if v, ok := s.judged.Load(rel.ID); reuse && ok && v.(judged).revision == rel.Revision &&
		s.now().Sub(v.(judged).at) <= s.cfg.ControllerTick {
		plan, j = v.(judged).plan, v.(judged).j
	} else if plan, j, err = s.judgeNow(ctx, rel); err != nil {
		return ReleaseStatus{}, err
	}
	out := ReleaseStatus{Release: toReleaseReport(rel), Gates: j.gates, ApprovalsNeeded: j.status.Lane.Approvals(), ApprovalsGiven: j.status.Approvals, Frozen: j.status.Frozen,
		Signing: signingWords[j.status.Signing], SigningNote: j.status.SigningNote}
	if out.Gates == nil {
		out.Gates = []rollout.GateResult{}
	}
	for i, wv := range plan.Waves {
		ws := WaveStatus{Name: wv.Name, Share: wv.Share, Internal: wv.InternalOnly, Canary: wv.Canary, Shadow: wv.Shadow, Targeted: -1, Progress: "pending"}
		switch {
		case rel.State == store.ReleaseCompleted || i < rel.Wave:
			ws.Progress = "done"
		case i == rel.Wave && rel.State != store.ReleaseDraft:
			ws.Progress = "current"
		}
		if j.cohort != nil && i < len(j.cohort.Targeted) {
			ws.Targeted = j.cohort.Targeted[i]
		}
		for _, c := range j.counts {
			if c.Wave != i {
				continue
			}
			switch c.Metric {
			case "applied":
				ws.Applied += c.Value
			case "healthy":
				ws.Confirmed += c.Value
			}
		}
		out.Waves = append(out.Waves, ws)
	}
	switch st := j.status.State; {
	case st.Bad():
		out.Summary = rel.Reason
		if !strings.HasPrefix(out.Summary, "halted") {
			out.Summary = string(st) + ": " + rel.Reason
		}
	case st == rollout.StatePaused:
		out.Summary = rel.Reason
	case st.Live():
		v := rollout.Step(s.now(), j.status, j.gates)
		if v.State == rollout.StateHalted {
			// The controller acts on it at its next tick.
			out.Summary = "halting" + strings.TrimPrefix(v.Reason, "halted")
		} else {
			out.Summary = string(st) + ": " + v.Reason
		}
	default:
		out.Summary = string(st)
		if rel.Reason != "" {
			out.Summary += ": " + rel.Reason
		}
	}
	return out, nil
}

// judgeNow runs the controller's judgement of a release for a request.
func (s *Server) judgeNow(ctx context.Context, rel store.Release) (rollout.Plan, judgement, error) {
	plan, err := rollout.ParsePlan(rel.Plan)
	if err != nil {
		return plan, judgement{}, storeError("release plan", err)
	}
	all, err := s.store.ListReleases(ctx, rel.Channel)
	if err != nil {
		return plan, judgement{}, storeError("releases", err)
	}
	j, err := s.judge(ctx, rel, plan, all)
	if err != nil {
		return plan, j, storeError("release "+rel.ID, err)
	}
	return plan, j, nil
}

// reasonRequest is the body of every person's action on a release.
type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) decodeReason(w http.ResponseWriter, r *http.Request) (string, error) {
	var req reasonRequest
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return "", err
	}
	if err := checkText("reason", req.Reason, 1024, true); err != nil {
		return "", err
	}
	return req.Reason, nil
}

// Release actions: what a person may do to a release, and who may.
const (
	ActApprove = "approve"
	ActPause   = "pause"
	ActResume  = "resume"
	ActHalt    = "halt"
	ActPromote = "promote"
)

// ReleaseActions are the actions in the order a page offers them.
var ReleaseActions = []string{ActApprove, ActPromote, ActPause, ActResume, ActHalt}

// actionRules says who may take each action on a release of vendor's.
var actionRules = map[string]func(p Principal, vendor string) bool{
	ActApprove: approverOf,
	ActPause:   publisherOf,
	ActResume:  publisherOf,
	ActHalt:    anyVendorRole,
	ActPromote: publisherOf,
}

// MayAct reports whether p's role lets it take action on a release on
// channel (whether the release's state allows it is decided on the act).
func MayAct(p Principal, channel, action string) bool {
	may, ok := actionRules[action]
	vendor, _, _ := strings.Cut(channel, "/")
	return ok && may(p, vendor)
}

// releaseAction is the API handler of one action: the body carries the
// reason.
func (s *Server) releaseAction(action string) func(w http.ResponseWriter, r *http.Request, p Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		reason, err := s.decodeReason(w, r)
		if err != nil {
			return err
		}
		out, err := s.Act(r.Context(), p, r.PathValue("id"), action, reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// Act takes a person's action on release id, with a reason that goes into
// the audit log: the API and the web console both come here.
func (s *Server) Act(ctx context.Context, p Principal, id, action, reason string) (ReleaseReport, error) {
	may, ok := actionRules[action]
	if !ok {
		return ReleaseReport{}, badRequest("action: %q is not one of %s", action, strings.Join(ReleaseActions, ", "))
	}
	if err := checkText("reason", reason, 1024, true); err != nil {
		return ReleaseReport{}, err
	}
	rel, err := s.releaseFor(ctx, p, id)
	if err != nil {
		return ReleaseReport{}, err
	}
	vendor, _, _ := strings.Cut(rel.Channel, "/")
	if !may(p, vendor) {
		return ReleaseReport{}, forbidden("token may not %s releases on %s", action, rel.Channel)
	}
	var change func(ctx context.Context, rel *store.Release, reason string) error
	switch action {
	case ActPromote:
		return s.promote(ctx, p, rel, reason)
	case ActHalt:
		change = func(_ context.Context, rel *store.Release, reason string) error {
			if err := transition(rel, rollout.ActHalt); err != nil {
				return err
			}
			rel.Phase, rel.HaltedBy, rel.Reason = "", p.actor(), "halted by "+p.actor()+": "+reason
			return nil
		}
	case ActPause:
		change = func(_ context.Context, rel *store.Release, reason string) error {
			if err := transition(rel, rollout.ActPause); err != nil {
				return err
			}
			rel.Reason = "paused by " + p.actor() + ": " + reason
			return nil
		}
	case ActResume:
		change = s.resume(p)
	case ActApprove:
		change = s.approve(p)
	}
	return s.changeRelease(ctx, p, rel, reason, "release."+action, change)
}

// actionAttempts is how often a person's action is applied to a release
// that changed between reading and writing it before it is refused.
const actionAttempts = 5

// changeRelease applies a person's action: change mutates the release
// (returning a conflict when the state does not allow it). When the
// release changed meanwhile (the controller ticked: a phase, a ramp step,
// a wave), the action is applied again to the release as it is now, and
// refused only if its state no longer allows it: an operator's halt in an
// incident must not bounce because the controller was busy.
func (s *Server) changeRelease(ctx context.Context, p Principal, rel store.Release, reason, action string,
	change func(ctx context.Context, rel *store.Release, reason string) error) (ReleaseReport, error) {
	id := rel.ID
	for attempt := 1; ; attempt++ {
		next := rel
		next.Approvals = slices.Clone(rel.Approvals)
		if err := change(ctx, &next, reason); err != nil {
			var te *rollout.TransitionError
			if errors.As(err, &te) {
				return ReleaseReport{}, conflict("release %s: %v", rel.ID, te)
			}
			return ReleaseReport{}, err
		}
		next.UpdatedAt = s.now()
		rev, err := s.updateRelease(ctx, next, store.AuditEntry{Time: next.UpdatedAt, Actor: p.actor(), Action: action, Target: rel.ID, Reason: reason})
		if errors.Is(err, store.ErrStale) && attempt < actionAttempts {
			if rel, err = s.store.GetRelease(ctx, id); err != nil {
				return ReleaseReport{}, storeError("release "+id, err)
			}
			continue
		}
		if err != nil {
			if errors.Is(err, store.ErrStale) {
				return ReleaseReport{}, conflict("release %s kept changing (%d attempts); look at it again and retry", rel.ID, actionAttempts)
			}
			return ReleaseReport{}, storeError("release "+rel.ID, err)
		}
		rel = next
		rel.Revision = rev
		break
	}
	if action == "release.halt" {
		s.metrics.halted(p.actor())
	}
	s.changed(ctx)
	return toReleaseReport(rel), nil
}

func publisherOf(p Principal, vendor string) bool { return p.vendorAccess(vendor, true) }

// approverOf: the approver holds the vendor's approver role (the
// operator's admin role cannot approve).
func approverOf(p Principal, vendor string) bool {
	return p.Tenant == vendor && p.Role == store.RoleApprover
}

// anyVendorRole may halt: stopping a release is always safe, so approvers
// may do it too.
func anyVendorRole(p Principal, vendor string) bool {
	return p.vendorAccess(vendor, true) || (p.Tenant == vendor && p.Role == store.RoleApprover)
}

func transition(rel *store.Release, a rollout.Action) error {
	next, err := rollout.Apply(rel.State, a)
	if err != nil {
		return err
	}
	rel.State = next
	return nil
}

// resume takes a paused, halted or rolled-back release back to rolling.
// After a halt the wave starts over and the gates judge only telemetry
// from now on: the person decided the old figures are explained.
func (s *Server) resume(p Principal) func(ctx context.Context, rel *store.Release, reason string) error {
	return func(ctx context.Context, rel *store.Release, reason string) error {
		was := rel.State
		if err := transition(rel, rollout.ActResume); err != nil {
			return err
		}
		now := s.now()
		if was != store.ReleasePaused {
			if err := s.store.MarkCounters(ctx, rel.ID); err != nil {
				return storeError("release "+rel.ID, err)
			}
			rel.WaveStartedAt, rel.GatesSince, rel.HaltedBy = now, now, ""
		}
		rel.Phase, rel.Reason = string(rollout.PhaseBaking), "resumed by "+p.actor()+": "+reason
		return nil
	}
}

// approve records a sign-off; the approval must count under the
// separation of duties (duties.go).
func (s *Server) approve(p Principal) func(ctx context.Context, rel *store.Release, reason string) error {
	return func(_ context.Context, rel *store.Release, reason string) error {
		if _, err := rollout.Apply(rel.State, rollout.ActApprove); err != nil {
			return err
		}
		if slices.ContainsFunc(rel.Approvals, func(a store.Approval) bool { return a.Token == p.TokenID || a.Actor == p.actor() }) {
			return conflict("%s already approved release %s", p.actor(), rel.ID)
		}
		a := store.Approval{Actor: p.actor(), At: s.now(), Reason: reason, Token: p.TokenID, TokenCreator: p.CreatedBy}
		if why := notCounted(*rel, countedApprovals(*rel), a); why != "" {
			return conflict("separation of duties: %s", why)
		}
		rel.Approvals = append(rel.Approvals, a)
		return nil
	}
}

// promote moves a release on by hand: it starts a draft, or skips the
// rest of a wave's bake; a failing gate or a missing approval still
// refuses.
func (s *Server) promote(ctx context.Context, p Principal, rel store.Release, reason string) (ReleaseReport, error) {
	if rel.State == store.ReleaseDraft {
		if err := s.draftShippable(ctx, rel); err != nil {
			return ReleaseReport{}, err
		}
	}
	for attempt := 1; ; attempt++ {
		plan, j, err := s.judgeNow(ctx, rel)
		if err != nil {
			return ReleaseReport{}, err
		}
		v, err := rollout.Promote(j.status, j.gates)
		if err != nil {
			return ReleaseReport{}, conflict("release %s: %v", rel.ID, err)
		}
		v.Reason += " (" + p.actor() + ": " + reason + ")"
		next := rel
		if next.State == store.ReleaseDraft {
			next.WaveStartedAt, next.GatesSince = s.now(), s.now()
		}
		// applyVerdict writes the audit entry, naming the person.
		err = s.applyVerdict(ctx, next, plan, j.cohort, v, p.actor())
		if errors.Is(err, store.ErrStale) && attempt < actionAttempts {
			// The controller changed it meanwhile: judge it as it is now.
			if rel, err = s.store.GetRelease(ctx, next.ID); err != nil {
				return ReleaseReport{}, storeError("release "+next.ID, err)
			}
			continue
		}
		if errors.Is(err, store.ErrStale) {
			return ReleaseReport{}, conflict("release %s kept changing (%d attempts); look at it again and retry", next.ID, actionAttempts)
		}
		if err != nil {
			return ReleaseReport{}, storeError("release "+next.ID, err)
		}
		break
	}
	s.changed(ctx)
	got, err := s.store.GetRelease(ctx, rel.ID)
	if err != nil {
		return ReleaseReport{}, storeError("release "+rel.ID, err)
	}
	return toReleaseReport(got), nil
}

// draftShippable is shippable for a draft about to start.
func (s *Server) draftShippable(ctx context.Context, rel store.Release) error {
	plan, err := rollout.ParsePlan(rel.Plan)
	if err != nil {
		return storeError("release "+rel.ID, err)
	}
	c, err := s.store.GetChannel(ctx, rel.Channel)
	if err != nil {
		return storeError("channel "+rel.Channel, err)
	}
	a, err := s.store.GetArtifact(ctx, rel.Channel, rel.Version)
	if err != nil {
		return storeError("artifact", err)
	}
	return s.shippable(a, c.Kind, plan.Waves[0])
}

// --- kill switches and budgets ---

// listKillSwitches shows the global switch to everyone, and a channel's to
// the operator, the channel's vendor and the organisations (whose devices
// take the channel); another vendor does not learn about it.
func (s *Server) listKillSwitches(w http.ResponseWriter, r *http.Request, p Principal) error {
	out, err := s.KillSwitches(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// KillSwitches are the kill switches p may see (listKillSwitches).
func (s *Server) KillSwitches(ctx context.Context, p Principal) ([]store.KillSwitch, error) {
	ks, err := s.store.KillSwitches(ctx)
	if err != nil {
		return nil, storeError("kill switches", err)
	}
	out := []store.KillSwitch{}
	for _, k := range ks {
		vendor, _, _ := strings.Cut(k.Scope, "/")
		if k.Scope == "*" || s.mayReadRelease(p, vendor) {
			out = append(out, k)
		}
	}
	return out, nil
}

// setKillSwitch engages or releases the global kill switch, or one
// channel's: while engaged, no device gets a version still rolling out,
// devices on one return to their last-known-good, and the controller
// moves nothing.
func (s *Server) setKillSwitch(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !MayUseKillSwitches(p) {
		return forbidden("only the operator's admin tokens use kill switches")
	}
	var req struct {
		Engaged *bool  `json:"engaged"`
		Reason  string `json:"reason"`
	}
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if req.Engaged == nil {
		return badRequest("engaged: say true or false")
	}
	scope := "*"
	if v := r.PathValue("vendor"); v != "" {
		scope = v + "/" + r.PathValue("channel")
	}
	k, err := s.SetKillSwitch(r.Context(), p, scope, *req.Engaged, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

// MayUseKillSwitches: only the operator's admin tokens engage or release
// kill switches.
func MayUseKillSwitches(p Principal) bool { return p.isAdmin() }

// SetKillSwitch engages or releases the kill switch of scope ("*" or a
// channel), audited with the reason.
func (s *Server) SetKillSwitch(ctx context.Context, p Principal, scope string, engaged bool, reason string) (store.KillSwitch, error) {
	if !MayUseKillSwitches(p) {
		return store.KillSwitch{}, forbidden("only the operator's admin tokens use kill switches")
	}
	if err := checkText("reason", reason, 1024, true); err != nil {
		return store.KillSwitch{}, err
	}
	if scope != "*" {
		if !validChannelID(scope) {
			return store.KillSwitch{}, badRequest("channel: %q is not VENDOR/CHANNEL", scope)
		}
		if _, err := s.store.GetChannel(ctx, scope); err != nil {
			return store.KillSwitch{}, storeError("channel "+scope, err)
		}
	}
	k := store.KillSwitch{Scope: scope, Engaged: engaged, Reason: reason, Actor: p.actor(), At: s.now()}
	action := "kill-switch.release"
	if k.Engaged {
		action = "kill-switch.engage"
	}
	if err := s.audited(ctx, p, action, scope, reason, func(ctx context.Context) error {
		if err := s.store.SetKillSwitch(ctx, k); err != nil {
			return asStoreError("kill switch", err)
		}
		return asStoreError("webhook outbox", s.enqueue(ctx, s.killSwitchNotice(k)))
	}); err != nil {
		return store.KillSwitch{}, err
	}
	s.wakeWebhooks()
	s.changed(ctx)
	return k, nil
}

// Budget is an organisation's hourly cap on new versions, in basis points
// of its fleet (100 = 1%; 0 = no cap).
type Budget struct {
	Org       string `json:"org"`
	HourlyCap int    `json:"hourly_cap_bp"`
}

func (s *Server) getBudget(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	if !p.orgAccess(org, false) {
		return forbidden("token may not read organisation %s", org)
	}
	t, err := s.store.GetTenant(r.Context(), org)
	if err != nil || t.Kind != store.TenantOrg {
		if err == nil || isNotFound(err) {
			return notFound("organisation %s", org)
		}
		return storeError("organisation "+org, err)
	}
	writeJSON(w, http.StatusOK, Budget{Org: org, HourlyCap: t.HourlyCap})
	return nil
}

func (s *Server) setBudget(w http.ResponseWriter, r *http.Request, p Principal) error {
	org := r.PathValue("org")
	if !p.orgAccess(org, true) {
		return forbidden("token may not change organisation %s", org)
	}
	var req Budget
	if err := decodeJSON(w, r, maxAdminJSON, &req); err != nil {
		return err
	}
	if req.Org != "" && req.Org != org {
		return badRequest("org: the body names %q, the path %q", req.Org, org)
	}
	if req.HourlyCap < 0 || req.HourlyCap > rollout.Positions {
		return badRequest("hourly_cap_bp: %d is outside 0-%d basis points of the fleet", req.HourlyCap, rollout.Positions)
	}
	if s.tenantKind(org) != store.TenantOrg {
		return notFound("organisation %s", org)
	}
	if err := s.audited(r.Context(), p, "org.budget", org, fmt.Sprintf("hourly cap %d basis points", req.HourlyCap), func(ctx context.Context) error {
		return asStoreError("organisation "+org, s.store.SetHourlyCap(ctx, org, req.HourlyCap))
	}); err != nil {
		return err
	}
	s.changed(r.Context())
	writeJSON(w, http.StatusOK, Budget{Org: org, HourlyCap: req.HourlyCap})
	return nil
}
