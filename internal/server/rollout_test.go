package server_test

// Staged rollout stories: given a fleet and a plan, when devices report X,
// then the release is Y. The fleet checks in over HTTP against the real
// server and store; the test moves the clock one check-in interval per
// round and runs one controller tick after it, as the server would.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// fleetDevice is an endpoint the stories drive: it applies what it is
// told, confirms it healthy after a probation, and can misbehave.
type fleetDevice struct {
	*device
	osBuild     string
	active, lkg uint64
	seq         uint64
	appliedAt   int // round it applied active (-1: confirmed)
	offered     bool
	silent      bool // stopped checking in (crashed hard)
	ignore      bool // never applies anything
	// pendingApplied: the next check-in reports an "applied" event.
	pendingApplied bool
	// shadow: active runs in shadow and lkg is enforced, as the server
	// asked.
	shadow bool
}

// fleet is an early-track organisation's devices.
type fleet struct {
	e     *env
	org   string
	devs  []*fleetDevice
	round int
	// onRelease adds events a device running the release version sends
	// each round; control for the others.
	onRelease, control func(d *fleetDevice) []server.EventReport
	// silenceOnOffer makes devices go silent as soon as they are offered
	// the new version, like hosts that crash loading it.
	silenceOnOffer bool
	// neverConfirm makes devices apply the new version and report it on
	// probation for ever, never healthy.
	neverConfirm bool
	newVersion   uint64
	// enforcedOnRelease counts the onRelease actions devices sent as
	// enforced (type actions): a shadow wave's storm enforces none.
	// Atomic: some stories check devices in side by side.
	enforcedOnRelease atomic.Int64
}

// stratum is "AGENT/OSBUILD" with a device count.
type stratum struct {
	agent, osBuild string
	n              int
}

// newFleet enrols an early-track organisation with devices in strata, all
// running 292 (the seed's completed release).
func (e *env) newFleet(t *testing.T, org string, strata ...stratum) *fleet {
	t.Helper()
	tok := e.createTenant(t, org, "org", store.RoleOrgAdmin)
	e.must(t, http.StatusOK, "PUT", "/v1/orgs/"+org+"/policies/acme/ipc", tok, map[string]any{"track": "early"}, nil)
	_, enr := e.enrollToken(t, org, 0)
	f := &fleet{e: e, org: org, newVersion: 293}
	for _, s := range strata {
		for range s.n {
			var out struct {
				DeviceID   string `json:"device_id"`
				Credential string `json:"credential"`
			}
			e.must(t, http.StatusCreated, "POST", "/v1/enroll", "", map[string]string{"token": enr, "platform": "windows", "os_build": s.osBuild, "agent_version": s.agent}, &out)
			f.devs = append(f.devs, &fleetDevice{device: &device{id: out.DeviceID, cred: out.Credential, agent: s.agent}, osBuild: s.osBuild, active: 292, lkg: 292, appliedAt: -1})
		}
	}
	f.checkinAll(t) // everyone reports 292 once
	return f
}

const probationRounds = 2 // 10 minutes at the default 5-minute interval

// checkin is one device's check-in: it reports, and returns the answer
// for the channel (follow acts on it).
func (f *fleet) checkin(t testing.TB, d *fleetDevice) server.ChannelDesired {
	state := "active"
	if d.appliedAt >= 0 {
		state = "probation"
	}
	var events []server.EventReport
	add := func(typ string, v uint64, counts map[string]int64) {
		d.seq++
		events = append(events, server.EventReport{Seq: d.seq, Time: f.e.clock.Now(), Type: typ, Channel: "acme/ipc", Version: v, Counts: counts})
	}
	if d.pendingApplied {
		add("applied", d.active, nil)
		d.pendingApplied = false
	}
	if d.appliedAt >= 0 && f.round-d.appliedAt >= probationRounds && !(f.neverConfirm && d.active == f.newVersion) {
		add("healthy", d.active, nil)
		d.appliedAt, state = -1, "active"
		if !d.shadow {
			d.lkg = d.active
		}
	}
	var extra []server.EventReport
	if d.active == f.newVersion && f.onRelease != nil {
		extra = f.onRelease(d)
	} else if d.active != f.newVersion && f.control != nil {
		extra = f.control(d)
	}
	for _, x := range extra {
		if x.Type == "actions" && d.shadow {
			add("shadow-actions", d.active, x.Counts) // what it would have done
			continue
		}
		if x.Type == "actions" && d.active == f.newVersion {
			f.enforcedOnRelease.Add(x.Counts["alert"] + x.Counts["block"])
		}
		add(x.Type, d.active, x.Counts)
	}
	if d.shadow && f.control != nil {
		// The enforced last-known-good acts as on any device.
		for _, x := range f.control(d) {
			add(x.Type, d.lkg, x.Counts)
		}
	}
	req := server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent, Events: events,
		Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: d.active, LKGVersion: d.lkg, State: state, Shadow: d.shadow}}}
	var resp server.CheckinResponse
	f.e.must(t, http.StatusOK, "POST", "/v1/checkin", d.cred, req, &resp)
	cd := channel(resp, "acme/ipc")
	if cd == nil {
		t.Fatalf("device %s: no answer for acme/ipc", d.id)
	}
	return *cd
}

// follow applies the answer as an agent would (the next check-in reports
// it, with an "applied" event).
func (f *fleet) follow(d *fleetDevice, cd server.ChannelDesired) {
	want := cd.DesiredVersion
	if d.shadow && want == d.active && !cd.Shadow && cd.Release != "" {
		d.shadow = false // the release left its shadow waves
		if d.appliedAt < 0 {
			d.lkg = d.active
		}
		return
	}
	if want == d.active || want == 0 || d.silent {
		return
	}
	if want == f.newVersion {
		d.offered = true
		if f.silenceOnOffer {
			d.silent = true
			return
		}
		if d.ignore {
			return
		}
	}
	d.active, d.shadow = want, cd.Shadow
	if want > d.lkg {
		d.appliedAt = f.round
	} else {
		d.appliedAt, d.lkg, d.shadow = -1, want, false // told back to last-known-good
	}
	d.pendingApplied = true
}

func (f *fleet) checkinAll(t testing.TB) {
	for _, d := range f.devs {
		if d.silent {
			continue
		}
		f.follow(d, f.checkin(t, d))
	}
}

// tick moves the clock one check-in interval, lets every device check in,
// flushes the heartbeats and runs one controller tick.
func (f *fleet) tick(t testing.TB) {
	t.Helper()
	f.round++
	f.e.clock.Advance(5 * time.Minute)
	f.checkinAll(t)
	f.e.drain()
	if err := f.e.srv.ControlOnce(context.Background()); err != nil {
		t.Fatalf("controller tick: %v", err)
	}
}

// status is the release's status as its vendor sees it.
func (e *env) status(t testing.TB, id string) server.ReleaseStatus {
	t.Helper()
	var st server.ReleaseStatus
	e.must(t, http.StatusOK, "GET", "/v1/releases/"+id+"/status", e.creds.PublisherToken, nil, &st)
	return st
}

// quickPlan is the default content plan with half-hour bakes, so a story
// walks every wave in a few dozen rounds; its canary waves and gates are
// the defaults.
func quickPlan() rollout.Plan {
	p := rollout.DefaultContentPlan()
	for i := range p.Waves {
		p.Waves[i].Bake = rollout.Duration(30 * time.Minute)
		p.Waves[i].Deadline = rollout.Duration(3 * time.Hour)
	}
	return p
}

// startRelease publishes 293 and starts its release with plan and lane.
func (e *env) startRelease(t testing.TB, plan rollout.Plan, lane string) server.ReleaseReport {
	t.Helper()
	e.must(t, http.StatusCreated, "POST", "/v1/channels/acme/ipc/publish", e.creds.PublisherToken, bundleSource(t, "acme", "ipc", 293), nil)
	var rel server.ReleaseReport
	e.must(t, http.StatusCreated, "POST", "/v1/releases", e.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293, "plan": plan, "lane": lane}, &rel)
	return rel
}

// until ticks until cond holds or rounds run out.
func (f *fleet) until(t testing.TB, rounds int, what string, cond func(server.ReleaseStatus) bool, id string) server.ReleaseStatus {
	t.Helper()
	for range rounds {
		f.tick(t)
		if st := f.e.status(t, id); cond(st) {
			return st
		}
	}
	st := f.e.status(t, id)
	t.Fatalf("after %d rounds the release is not %s: %s (state %s, wave %s)", rounds, what, st.Summary, st.Release.State, st.Release.WaveName)
	return st
}

func inState(s string) func(server.ReleaseStatus) bool {
	return func(st server.ReleaseStatus) bool { return st.Release.State == s }
}

func onVersion(f *fleet, v uint64) int {
	n := 0
	for _, d := range f.devs {
		if d.active == v {
			n++
		}
	}
	return n
}

// standardFleet: a big stratum and a small one, both above K=20.
func standardFleet(t *testing.T, e *env) *fleet {
	return e.newFleet(t, "fabrikam", stratum{"7.12.0", "22631", 90}, stratum{"7.11.0", "19045", 30})
}

func TestRolloutGoodReleaseCompletesEveryWave(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")

		// The internal wave reaches nobody (no internal organisation) and
		// is skipped; the canary wave gives each stratum K=20 devices.
		st := f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		// Two devices may share a position, so a stratum can have one more.
		canary := st.Waves[1].Targeted
		if canary < 40 || canary > 42 {
			t.Fatalf("canary targets %d devices, want 40 (20 per stratum, ties aside)", canary)
		}
		st = f.until(t, 20, "awaiting approval", inState("awaiting-approval"), rel.ID)
		perStratum := map[string]int{}
		for _, d := range f.devs {
			if d.active == 293 {
				perStratum[d.agent]++
			}
		}
		if perStratum["7.12.0"] < 20 || perStratum["7.11.0"] < 20 || onVersion(f, 293) > canary {
			t.Fatalf("canary reached %v, want at least 20 per stratum and %d in all", perStratum, canary)
		}
		for _, g := range st.Gates {
			if g.Outcome != rollout.Pass {
				t.Errorf("gate %s: %s (%s); every gate should pass before approval", g.Metric, g.Outcome, g.Message)
			}
		}
		if !strings.Contains(st.Summary, "needs 1 approval") {
			t.Errorf("summary %q should say an approval is needed", st.Summary)
		}
		// Without the approval, the release stays in the canary.
		for range 3 {
			f.tick(t)
		}
		if st = e.status(t, rel.ID); st.Release.State != "awaiting-approval" || st.Release.WaveName != "canary" {
			t.Fatalf("without approval: %s in %s, want awaiting-approval in canary", st.Release.State, st.Release.WaveName)
		}
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "canary figures reviewed"}, nil)
		st = f.until(t, 200, "completed", inState("completed"), rel.ID)
		for _, w := range st.Waves {
			if w.Progress != "done" {
				t.Errorf("wave %s: progress %s, want done", w.Name, w.Progress)
			}
		}
		// A completed release reaches ga organisations too.
		ga := e.enroll(t, "7.12.0")
		if got := e.desired(t, ga, 292); got != 293 {
			t.Errorf("ga device after completion: told %d, want 293", got)
		}
		if n := onVersion(f, 293); n != len(f.devs) {
			t.Errorf("%d of %d early devices run 293 after completion", n, len(f.devs))
		}
	})
}

// haltStory runs a canary with misbehaving devices and checks the halt,
// the reason and the way back to last-known-good.
func haltStory(t *testing.T, e *env, f *fleet, mention string) {
	t.Helper()
	rel := e.startRelease(t, quickPlan(), "normal")
	st := f.until(t, 12, "halted", inState("halted"), rel.ID)
	if !strings.HasPrefix(st.Summary, "halted: ") || !strings.Contains(st.Summary, mention) || !strings.Contains(st.Summary, "canary") {
		t.Fatalf("halt summary %q should start with \"halted: \" and name %q and the canary wave", st.Summary, mention)
	}
	if st.Release.HaltedBy != "controller" {
		t.Errorf("halted by %q, want controller", st.Release.HaltedBy)
	}
	if st.Release.WaveName != "canary" {
		t.Errorf("halted in wave %s, want canary", st.Release.WaveName)
	}
	// Devices on the halted version go back to 292 on their next check-in
	// and are never offered 293 again.
	f.onRelease = nil
	f.tick(t)
	for _, d := range f.devs {
		if !d.silent && d.active == 293 {
			t.Fatalf("device %s still runs halted 293 after a check-in", d.id)
		}
	}
	for range 3 {
		f.tick(t)
	}
	for _, d := range f.devs {
		if !d.silent && d.active != 292 {
			t.Fatalf("device %s runs %d, want 292", d.id, d.active)
		}
	}
	if st := e.status(t, rel.ID); mention != "silence" && st.Release.State != "rolled-back" {
		t.Errorf("once no device runs 293 the release should be rolled-back, got %s (%s)", st.Release.State, st.Summary)
	}
}

func TestRolloutCrashingDevicesHaltTheCanary(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		f.onRelease = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "worker-crash"}}
		}
		haltStory(t, e, f, "worker-crash rate")
	})
}

func TestRolloutSilentDevicesHaltTheCanary(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		f.silenceOnOffer = true // like 19 July: they crash loading it and go quiet
		haltStory(t, e, f, "silence rate 100.0% vs 0.0% in control (canary, ")
	})
}

func TestRolloutFalsePositiveStormHaltsTheCanary(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		f.onRelease = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": 40, "alert": 10}}}
		}
		f.control = func(d *fleetDevice) []server.EventReport {
			return []server.EventReport{{Type: "actions", Counts: map[string]int64{"block": 1}}}
		}
		haltStory(t, e, f, "action-rate")
	})
}

// No reports never promote: devices that never apply leave the canary
// undecided; at its deadline the release halts for a person, who resumes
// it, and it goes on once devices report.
func TestRolloutNoReportsNeverPromoteAndResumeContinues(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		for _, d := range f.devs {
			d.ignore = true
		}
		rel := e.startRelease(t, quickPlan(), "normal")
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "approved in advance"}, nil)
		for f.round < 30 { // 2.5 h: bake long over, deadline (3 h) not yet
			f.tick(t)
			if st := e.status(t, rel.ID); st.Release.WaveName != "canary" && st.Release.WaveName != "internal" || st.Release.State != "rolling" {
				t.Fatalf("round %d: %s in %s; a release without reports must wait in the canary", f.round, st.Release.State, st.Release.WaveName)
			}
		}
		st := f.until(t, 10, "halted at the deadline", inState("halted"), rel.ID)
		if !strings.Contains(st.Summary, "deadline") || !strings.Contains(st.Summary, "a person must look") {
			t.Fatalf("deadline halt summary %q should name the deadline and ask for a person", st.Summary)
		}
		// Halting is sticky: ticks do not resume it. No device runs 293,
		// so it is rolled back at once.
		for range 3 {
			f.tick(t)
		}
		if st := e.status(t, rel.ID); st.Release.State != "rolled-back" {
			t.Fatalf("a halted release nobody runs moved by itself to %s, want rolled-back", st.Release.State)
		}
		code, body := e.call(t, "POST", "/v1/releases/"+rel.ID+"/resume", e.creds.PublisherToken, map[string]string{})
		wantError(t, code, body, http.StatusBadRequest, "reason")
		for _, d := range f.devs {
			d.ignore = false
		}
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/resume", e.creds.PublisherToken, map[string]string{"reason": "agents were held by a proxy; fixed"}, nil)
		st = f.until(t, 20, "past the canary", func(st server.ReleaseStatus) bool { return st.Release.Wave > 1 }, rel.ID)
		if st.Release.State != "rolling" {
			t.Fatalf("resumed release: %s, want rolling", st.Release.State)
		}
	})
}

// A burst of check-ins at once cannot take the release past its wave.
func TestRolloutBurstCannotExceedTheWave(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		for _, d := range f.devs { // forget what the rounds applied
			d.active, d.lkg, d.appliedAt = 292, 292, -1
		}
		var mu sync.Mutex
		offered := 0
		var wg sync.WaitGroup
		for _, d := range f.devs {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if f.checkin(t, d).DesiredVersion == 293 {
						mu.Lock()
						offered++
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		st := e.status(t, rel.ID)
		if offered == 0 || offered > 3*st.Waves[1].Targeted {
			t.Fatalf("burst: %d answers named 293, want some and at most 3 x %d", offered, st.Waves[1].Targeted)
		}
		told := map[string]bool{}
		for _, d := range f.devs {
			if f.checkin(t, d).DesiredVersion == 293 {
				told[d.id] = true
			}
		}
		if len(told) != st.Waves[1].Targeted {
			t.Fatalf("%d distinct devices offered 293, want exactly the canary's %d", len(told), st.Waves[1].Targeted)
		}
	})
}

// The kill switch: devices on a version still rolling out go back to
// last-known-good, nobody new gets it, and the release does not move.
func TestRolloutKillSwitch(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 6, "in the canary with devices on 293", func(st server.ReleaseStatus) bool {
			return st.Release.WaveName == "canary" && onVersion(f, 293) > 0
		}, rel.ID)
		code, body := e.call(t, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.PublisherToken, map[string]any{"engaged": true, "reason": "x"})
		wantError(t, code, body, http.StatusForbidden, "admin")
		e.must(t, http.StatusOK, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.AdminToken, map[string]any{"engaged": true, "reason": "suspicious detections"}, nil)
		for range 12 {
			f.tick(t)
		}
		if n := onVersion(f, 293); n != 0 {
			t.Fatalf("%d devices still on 293 under the kill switch", n)
		}
		st := e.status(t, rel.ID)
		if st.Release.WaveName != "canary" || !st.Frozen {
			t.Fatalf("under the kill switch the release moved to %s (frozen %v)", st.Release.WaveName, st.Frozen)
		}
		e.must(t, http.StatusOK, "PUT", "/v1/channels/acme/ipc/kill-switch", e.creds.AdminToken, map[string]any{"engaged": false, "reason": "false alarm"}, nil)
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "ok"}, nil)
		f.until(t, 20, "past the canary", func(st server.ReleaseStatus) bool { return st.Release.Wave > 1 }, rel.ID)
	})
}

// The emergency lane keeps every wave and gate, bakes a quarter as long
// and needs two approvers, neither the creator.
func TestRolloutEmergencyLaneNeedsTwoApprovers(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, rollout.DefaultContentPlan(), "emergency")
		code, body := e.call(t, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.PublisherToken, map[string]string{"reason": "mine"})
		wantError(t, code, body, http.StatusForbidden, "approve")
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "first"}, nil)
		code, body = e.call(t, "POST", "/v1/releases/"+rel.ID+"/approve", e.creds.ApproverToken, map[string]string{"reason": "again"})
		wantError(t, code, body, http.StatusConflict, "already approved")
		// Canary bake is 1 h / 4 = 15 min: awaiting the second approval
		// well before an hour.
		st := f.until(t, 8, "awaiting approval", inState("awaiting-approval"), rel.ID)
		if !strings.Contains(st.Summary, "needs 2 approval(s), 1 given") {
			t.Fatalf("summary %q should ask for a second approver", st.Summary)
		}
		code, body = e.call(t, "POST", "/v1/releases/"+rel.ID+"/promote", e.creds.PublisherToken, map[string]string{"reason": "urgent"})
		wantError(t, code, body, http.StatusConflict, "approval")
		second := e.createToken(t, "acme", store.RoleApprover)
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/approve", second, map[string]string{"reason": "second pair of eyes"}, nil)
		f.tick(t)
		if st := e.status(t, rel.ID); st.Release.WaveName != "early" {
			t.Fatalf("after two approvals: wave %s (%s), want early", st.Release.WaveName, st.Summary)
		}
	})
}

// An organisation's hourly cap limits how many of its devices new releases
// reach per hour, whatever the waves allow.
func TestRolloutOrganisationHourlyBudget(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		e.must(t, http.StatusOK, "PUT", "/v1/orgs/fabrikam/budget", e.creds.AdminToken, map[string]any{"hourly_cap_bp": 1000}, nil) // 10%: 12 devices
		var b server.Budget
		e.must(t, http.StatusOK, "GET", "/v1/orgs/fabrikam/budget", e.creds.AdminToken, nil, &b)
		if b.Org != "fabrikam" || b.HourlyCap != 1000 {
			t.Fatalf("budget read back: %+v, want fabrikam at 1000 basis points", b)
		}
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		f.tick(t)
		// Never past the budget. An offer stored while a snapshot reads the
		// store may be counted twice (budgets errs towards the cap), and the
		// snapshot loop runs on its own: one or two fewer is the price.
		if n := onVersion(f, 293); n > 12 || n < 10 {
			t.Fatalf("%d devices got 293 in the first hour, want the budget's 12 (10 if offers were stored during a snapshot read), never more", n)
		}
		for range 14 { // an hour and two check-ins later
			f.tick(t)
			if err := e.srv.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if n := onVersion(f, 293); n <= 12 || n > 24 {
			t.Fatalf("%d devices on 293 after the second hour began, want 13-24", n)
		}
	})
}

// Only "healthy", reported after a device's probation, counts towards a
// wave's min_devices: devices that apply the release and then never
// confirm it (they stay on probation, quiet about crashes) keep the canary
// wave from passing, however clean its gates, until its deadline halts
// the release for a person.
func TestAppliedWithoutHealthyNeverPassesAWave(t *testing.T) {
	e := newEnv(t, "")
	f := standardFleet(t, e)
	f.neverConfirm = true
	rel := e.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	st := f.until(t, 45, "halted", inState("halted"), rel.ID)
	if st.Release.WaveName != "canary" || !strings.Contains(st.Release.Reason, "still undecided") || !strings.Contains(st.Release.Reason, "0 of") {
		t.Fatalf("halted in wave %s: %s; want the canary wave's deadline with no device confirmed healthy", st.Release.WaveName, st.Release.Reason)
	}
	offered := 0
	for _, d := range f.devs {
		if d.offered {
			offered++
		}
	}
	if offered == 0 {
		t.Fatal("no device was offered 293: the story tests nothing")
	}
}
