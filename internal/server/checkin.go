package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// The device protocol's wire types live in package protocol, which the
// agent imports without the server.
type (
	CheckinRequest  = protocol.CheckinRequest
	ChannelReport   = protocol.ChannelReport
	EventReport     = protocol.EventReport
	CheckinResponse = protocol.CheckinResponse
	ChannelDesired  = protocol.ChannelDesired
	Artifact        = protocol.Artifact
)

const (
	maxChannelsPerCheckin = protocol.MaxChannelsPerCheckin
	maxEventsPerCheckin   = protocol.MaxEventsPerCheckin
)

func validateCheckin(req *CheckinRequest) error {
	if err := checkDeviceFacts(req.Platform, req.OSBuild, req.AgentVersion); err != nil {
		return err
	}
	if len(req.Channels) > maxChannelsPerCheckin {
		return badRequest("channels: %d reported, at most %d", len(req.Channels), maxChannelsPerCheckin)
	}
	seen := map[string]bool{}
	for i, c := range req.Channels {
		if !validChannelID(c.Channel) {
			return badRequest("channels[%d].channel: %q is not VENDOR/CHANNEL", i, c.Channel)
		}
		if seen[c.Channel] {
			return badRequest("channels[%d].channel: %s reported twice", i, c.Channel)
		}
		seen[c.Channel] = true
		if !protocol.KnownState(c.State) {
			return badRequest("channels[%d].state: %q is not one of active, pending, probation, reverted", i, c.State)
		}
	}
	if len(req.Events) > maxEventsPerCheckin {
		return badRequest("events: %d queued, at most %d per check-in; send the rest next time", len(req.Events), maxEventsPerCheckin)
	}
	var last uint64
	for i, e := range req.Events {
		if e.Seq == 0 || e.Seq <= last {
			return badRequest("events[%d].seq: %d; sequence numbers start at 1 and increase", i, e.Seq)
		}
		last = e.Seq
		if !protocol.KnownEvent(e.Type) {
			return badRequest("events[%d].type: unknown event type %q", i, e.Type)
		}
		if e.Channel != "" && !validChannelID(e.Channel) {
			return badRequest("events[%d].channel: %q is not VENDOR/CHANNEL", i, e.Channel)
		}
		if err := checkText(fmt.Sprintf("events[%d].reason", i), e.Reason, protocol.MaxReason, false); err != nil {
			return err
		}
		for k, v := range e.Counts {
			if k != "log" && k != "alert" && k != "block" {
				return badRequest("events[%d].counts: unknown action %q (log, alert, block)", i, k)
			}
			if v < 0 || v > protocol.MaxActionCount {
				return badRequest("events[%d].counts.%s: %d is out of range", i, k, v)
			}
		}
	}
	return nil
}

func validChannelID(id string) bool { return protocol.ValidChannel(id) }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// handleCheckin answers from the snapshot and queues the device's writes,
// and counts the check-in and its latency.
func (s *Server) handleCheckin(w http.ResponseWriter, r *http.Request) error {
	t0 := time.Now()
	err := s.serveCheckin(w, r)
	s.metrics.checkinDone(err, time.Since(t0))
	return err
}

func (s *Server) serveCheckin(w http.ResponseWriter, r *http.Request) error {
	if s.storeDown.Load() {
		return unavailable(nil)
	}
	e, err := s.authDevice(r.Context(), r)
	if err != nil {
		return err
	}
	var req CheckinRequest
	if err := decodeJSON(w, r, maxCheckinBody, &req); err != nil {
		return err
	}
	if err := validateCheckin(&req); err != nil {
		return err
	}
	if req.DeviceID != "" && req.DeviceID != e.id {
		return badRequest("device_id %q does not match the credential", req.DeviceID)
	}
	resp, err := s.checkin(r.Context(), e, &req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// CheckinAs runs a device's check-in as the HTTP handler does once the
// credential is checked: the fleet simulator (internal/sim) drives the
// server's own check-in code with it. It is not reachable over HTTP.
func (s *Server) CheckinAs(ctx context.Context, id string, req CheckinRequest) (CheckinResponse, error) {
	if s.storeDown.Load() {
		return CheckinResponse{}, unavailable(nil)
	}
	e, err := s.device(ctx, id)
	if err != nil {
		return CheckinResponse{}, err
	}
	if err := validateCheckin(&req); err != nil {
		return CheckinResponse{}, err
	}
	return s.checkin(ctx, e, &req)
}

// Heartbeats counts n check-ins that report nothing new, by devices of
// one organisation with the same facts and channel reports, as n calls of
// the check-in would (one heartbeat per device and window): the fleet
// simulator sends its quiet devices this way. Their last-seen times are
// the caller's to record.
func (s *Server) Heartbeats(org, platform, agentVersion, osBuild string, reports []ChannelReport, n int64) {
	sn := s.snap.Load()
	window := s.now().Truncate(s.cfg.CounterWindow)
	stratum := stratumOf(platform, agentVersion, osBuild)
	for _, c := range reports {
		s.hb.add(s.cells(sn, org, stratum, window, c.Channel, c.ActiveVersion, "heartbeat"), n)
	}
}

// checkin is the check-in of an authenticated device.
func (s *Server) checkin(ctx context.Context, e *deviceEntry, reqp *CheckinRequest) (CheckinResponse, error) {
	req := *reqp
	now := s.now()
	sn := s.snap.Load()
	agent, agentErr := content.ParseAgentVersion(req.AgentVersion)

	s.devices.lock(e)
	id, org := e.id, e.org
	wr := store.CheckinWrite{Device: store.Device{ID: id, Platform: req.Platform, OSBuild: req.OSBuild, AgentVersion: req.AgentVersion, LastSeen: now}}
	mustWait := len(req.Events) > 0 || e.facts != factsOf(req.Platform, req.OSBuild, req.AgentVersion)
	reported := map[string]ChannelReport{}
	// exposed: the channels whose reported version the device was offered,
	// as far as the device's record or this replica's offers tell; the
	// store answers for the changed ones in the write.
	var exposed map[string]bool
	for _, c := range req.Channels {
		reported[c.Channel] = c
		old, ok := e.channel(c.Channel)
		sameVersion := ok && old.active == c.ActiveVersion
		if sameVersion && old.offered {
			if exposed == nil {
				exposed = map[string]bool{}
			}
			exposed[c.Channel] = true
		}
		if !ok || old.active != c.ActiveVersion || old.lkg != c.LKGVersion || old.state != c.State {
			dc := store.DeviceChannel{Device: id, Channel: c.Channel, ActiveVersion: c.ActiveVersion, LKGVersion: c.LKGVersion, State: c.State, UpdatedAt: now,
				Offered: sameVersion && old.offered}
			if !dc.Offered {
				if ri := sn.release(c.Channel, c.ActiveVersion); ri != nil {
					dc.Release = ri.rel.ID
					if _, ok := s.offered.Load(ri.rel.ID + "\x00" + id); ok {
						if exposed == nil {
							exposed = map[string]bool{}
						}
						exposed[c.Channel] = true
					}
				}
			}
			wr.Channels = append(wr.Channels, dc)
			mustWait = true
		}
	}
	lastSeq := e.lastSeq
	// What the events are judged against: the versions the device runs
	// (as it reports them now, or last did), and its allowance of action
	// counts, reserved here so that its check-ins side by side share one.
	var running map[string]versions
	var allowed int64
	if len(req.Events) > 0 {
		running = make(map[string]versions, len(e.channels)+len(reported))
		for _, c := range e.channels {
			running[c.channel] = versions{c.active, c.lkg}
		}
		for ch, c := range reported {
			running[ch] = versions{c.ActiveVersion, c.LKGVersion}
		}
		allowed = e.reserveActions(now, actionsAsked(req.Events, lastSeq))
	}
	s.devices.unlock(e)
	if n := newEvents(req.Events, lastSeq); n > 0 {
		if retry, ok := s.events.takeN(id, n, now); !ok {
			he := tooMany(retry, fmt.Sprintf("%d events over the device's allowance of %d an hour; nothing was stored: check in without events, and send them after Retry-After", n, s.cfg.EventsPerHour))
			he.Quota = protocol.QuotaEvents
			return CheckinResponse{}, he
		}
	}

	stratum := stratumOf(req.Platform, req.AgentVersion, req.OSBuild)
	window := now.Truncate(s.cfg.CounterWindow)
	for _, ev := range req.Events {
		if ev.Seq <= lastSeq {
			continue // already stored; the store would drop it too
		}
		t := ev.Time
		if t.IsZero() || t.After(now.Add(5*time.Minute)) || t.Before(now.Add(-7*24*time.Hour)) {
			t = now // a device clock is not trusted for windows
		}
		se := store.Event{Device: id, Seq: ev.Seq, Time: t, Type: ev.Type, Channel: ev.Channel, Version: ev.Version, Reason: ev.Reason, Counts: ev.Counts}
		if ev.Type == "actions" {
			ev.Counts, allowed = capActions(ev.Counts, allowed)
		}
		var believed bool
		se.Counters, believed = s.eventCounters(sn, id, org, stratum, t.Truncate(s.cfg.CounterWindow), ev, running[ev.Channel])
		if !believed {
			wr.Anomalies++
		}
		wr.Events = append(wr.Events, se)
	}
	// One heartbeat per device and window, however often it checks in.
	var beats []store.CounterKey
	win := now.UnixNano() / int64(s.cfg.CounterWindow)
	acted := slices.IndexFunc(wr.Events, func(ev store.Event) bool {
		return ev.Type == "actions" && ev.Channel != "" && ev.Counts["alert"]+ev.Counts["block"] > 0
	})
	s.devices.lock(e)
	// A check-in that reports no channel does not use up the window.
	countBeat := e.hbWindow < win && len(req.Channels) > 0
	if countBeat {
		e.hbWindow = win
	}
	// The action gate judges windows with blocks or alerts, one per device
	// and window, not the counts: one device's flood is one window.
	countAct := acted >= 0 && e.actWindow < win
	if countAct {
		e.actWindow = win
	}
	s.devices.unlock(e)
	if countAct {
		ev := &wr.Events[acted]
		for _, k := range s.cells(sn, org, stratum, window, ev.Channel, ev.Version, "action-device") {
			if c, ok := testimonyOf(sn, ev.Channel, k, 1, id, running[ev.Channel], ev.Version); ok {
				ev.Counters = append(ev.Counters, c)
			}
		}
	}
	if countBeat {
		for _, c := range req.Channels {
			for _, k := range s.cells(sn, org, stratum, window, c.Channel, c.ActiveVersion, "heartbeat") {
				// A device's time on a version counts as the release's
				// exposure only if it was offered the release: a device
				// claiming a version it was never given dilutes no rate.
				if k.Metric == "heartbeat" && !exposed[c.Channel] && !sn.completed(c.Channel, k.Release) {
					continue
				}
				beats = append(beats, k)
			}
		}
	}
	s.hb.touch(id, now, beats)

	resp := CheckinResponse{Channels: []ChannelDesired{}, AckSeq: lastSeq}
	var offerKeys []string
	for _, ch := range sn.channelIDs {
		rels := sn.releases[ch]
		rep, hasRep := reported[ch]
		var views []rollout.ReleaseView
		var targeted []*releaseInfo // parallel to views
		for _, ri := range rels {
			if ri.targetsDevice(s.cfg.Catalog, req.Platform, agent, agentErr == nil) {
				views = append(views, ri.view)
				targeted = append(targeted, ri)
			}
		}
		if len(views) == 0 && !hasRep {
			continue
		}
		chInfo := sn.channels[ch]
		dv := rollout.DeviceView{Position: rollout.CohortPosition(id, ch), Track: sn.track(org, ch), Active: rep.ActiveVersion, LKG: rep.LKGVersion,
			OutsideWindow: !rollout.InAnyWindow(sn.windows[policyKey{org, ch}], now), Internal: sn.tenants[org].Internal, Stratum: stratum}
		d := rollout.Desired(now, views, dv, chInfo.Unpausable, nil)
		cd := ChannelDesired{Channel: ch, DesiredVersion: d.Version, Release: d.Release, Reason: d.Reason}
		i := slices.IndexFunc(views, func(v rollout.ReleaseView) bool { return v.Version == d.Version })
		target := ""
		if i >= 0 && d.Version != 0 {
			if target = deviceTarget(targeted[i], targeted[i].target); target == "" {
				// The device could not verify it: nothing is offered
				// before the vendor's signatures for its wave exist.
				resp.Channels = append(resp.Channels, ChannelDesired{Channel: ch, DesiredVersion: rep.ActiveVersion,
					Reason: fmt.Sprintf("%d waits for its vendor's signatures", d.Version)})
				continue
			}
		}
		if i >= 0 && d.Version != 0 && d.Version > rep.ActiveVersion && views[i].State.Reaches() {
			// An upgrade: record the offer before the device hears it, so a
			// device that dies applying it still counts as exposed.
			key := d.Release + "\x00" + id
			if _, known := s.offered.Load(key); !known {
				if !s.budgets.admit(sn, org) {
					cd = ChannelDesired{Channel: ch, DesiredVersion: rep.ActiveVersion,
						Reason: fmt.Sprintf("%d waits: the organisation's hourly budget for new versions is spent", d.Version)}
					resp.Channels = append(resp.Channels, cd)
					continue
				}
				wr.Offers = append(wr.Offers, store.Offer{Release: d.Release, Device: id, Org: org, Wave: views[i].Wave, At: now})
				offerKeys = append(offerKeys, key)
				mustWait = true
			}
		}
		if i >= 0 && d.Version != 0 {
			ri := targeted[i]
			cd.Artifact = &Artifact{URL: s.cfg.BaseURL + "/v1/artifacts/" + ch + "/" + strconv.FormatUint(d.Version, 10),
				SHA256: ri.sha256, Size: ri.size, Target: target}
		}
		resp.Channels = append(resp.Channels, cd)
	}

	if mustWait {
		req2 := &writeReq{checkin: &wr, done: make(chan writeResult, 1)}
		if err := s.writer.submit(req2); err != nil {
			return CheckinResponse{}, busy()
		}
		res := <-req2.done
		if res.err != nil {
			for _, o := range wr.Offers {
				s.budgets.release(o.Org)
			}
			if errors.Is(res.err, store.ErrUnavailable) {
				s.markStore(res.err)
				return CheckinResponse{}, unavailable(res.err)
			}
			if isNotFound(res.err) {
				s.forgetDevice(id)
				return CheckinResponse{}, errUnauthorized
			}
			return CheckinResponse{}, storeError("check-in", res.err)
		}
		for _, o := range wr.Offers {
			s.budgets.stored(o.Org)
		}
		resp.AckSeq = res.res.LastSeq
		for _, ev := range wr.Events {
			s.metrics.event(ev.Type)
		}
		for _, k := range offerKeys {
			s.offered.Store(k, struct{}{})
		}
		// A device that reports running a version no longer needs its
		// offer remembered.
		for _, c := range wr.Channels {
			for _, ri := range sn.releases[c.Channel] {
				if ri.rel.Version == c.ActiveVersion {
					s.offered.Delete(ri.rel.ID + "\x00" + id)
				}
			}
		}
		s.devices.lock(e)
		e.lastSeq = max(e.lastSeq, res.res.LastSeq)
		e.facts = factsOf(req.Platform, req.OSBuild, req.AgentVersion)
		for _, c := range wr.Channels {
			c.Offered = c.Offered || c.Release != "" && slices.Contains(res.res.Offered, c.Release)
			e.setChannel(c)
		}
		s.devices.unlock(e)
	}
	// Jitter spreads the fleet so it never checks in, or retries, in step.
	base := float64(s.cfg.CheckinInterval) / float64(time.Second)
	jitter := rand.Float64
	if s.cfg.Jitter != nil {
		jitter = s.cfg.Jitter
	}
	resp.NextCheckinS = max(1, int(base*(0.8+0.4*jitter())))
	return resp, nil
}

// cells names the counter cells for metric that a device on version v of a
// channel feeds: the release of v itself, and, when another release is
// rolling out on the channel, that release's control group
// ("control-"+metric).
func (s *Server) cells(sn *snapshot, org, stratum string, window time.Time, channel string, v uint64, metric string) []store.CounterKey {
	var out []store.CounterKey
	for _, ri := range sn.releases[channel] {
		k := store.CounterKey{Release: ri.rel.ID, Wave: ri.rel.Wave, Org: org, Stratum: stratum, Window: window, Metric: metric}
		switch {
		case ri.rel.Version == v:
			out = append(out, k)
		case ri.view.State.Live():
			k.Metric = "control-" + metric
			out = append(out, k)
		}
	}
	return out
}

// eventCounters names the counters one event of a device feeds, each the
// device's testimony (store.Counter): about a release, only if it was
// offered to the device, and once per device (onceFor); as control for a
// release rolling out, only about the version the device runs (now or as
// its last known good), else it is not believed (false: an anomaly).
func (s *Server) eventCounters(sn *snapshot, device, org, stratum string, window time.Time, ev EventReport, rv versions) ([]store.Counter, bool) {
	if ev.Channel == "" || ev.Type == "boot-loop" {
		// An agent reports a boot loop only of content on probation, so
		// the count would have no control group: the boot-loop gate counts
		// hosts with bootLoopReboots unclean reboots instead, treated and
		// control alike (the event is kept).
		return nil, true
	}
	metrics := []string{ev.Type}
	values := []int64{1}
	if ev.Type == "actions" {
		metrics, values = nil, nil
		for _, a := range actionKinds {
			if n := ev.Counts[a]; n > 0 {
				metrics, values = append(metrics, "action-"+a), append(values, n)
			}
		}
	}
	believed := true
	var out []store.Counter
	for i, m := range metrics {
		for _, k := range s.cells(sn, org, stratum, window, ev.Channel, ev.Version, m) {
			c, ok := testimonyOf(sn, ev.Channel, k, values[i], device, rv, ev.Version)
			if !ok {
				believed = false
				continue
			}
			out = append(out, c)
			if base, _ := strings.CutPrefix(m, "control-"); base == "unclean-reboot" {
				loop := c
				loop.Metric, loop.Nth = strings.Replace(c.Metric, "unclean-reboot", "boot-loop", 1), bootLoopReboots
				out = append(out, loop)
			}
		}
	}
	return out, believed
}

// testimonyOf is a device's counter for cell k about version v of
// channel, on which it runs rv. A count about a
// release is the testimony of a device it was offered to (the store
// checks); of a completed release, also of one that runs it (a rollback
// sends devices back to it without an offer). A control count is that of
// a device running v. False: not believed.
func testimonyOf(sn *snapshot, channel string, k store.CounterKey, value int64, device string, rv versions, v uint64) (store.Counter, bool) {
	runs := rv.runs(v)
	c := store.Counter{CounterKey: k, Value: value, Device: device, Once: onceFor(k.Metric)}
	if strings.HasPrefix(k.Metric, "control-") {
		return c, runs
	}
	c.Offered = !runs || !sn.completed(channel, k.Release)
	return c, true
}

// versions are what a device runs on a channel and keeps as last known
// good.
type versions struct{ active, lkg uint64 }

// runs reports whether the device runs v, or keeps it to fall back to.
func (rv versions) runs(v uint64) bool { return rv.active == v || v != 0 && rv.lkg == v }

var actionKinds = []string{"log", "alert", "block"}

// maxActionsPerHour is how many detections a device's reports count for in
// an hour: a busy host's real load is far below it, and one device cannot
// fake a storm of them (the events are stored whole).
const maxActionsPerHour = 10000

// newEvents counts the events after lastSeq: retries of stored ones cost
// nothing.
func newEvents(evs []EventReport, lastSeq uint64) int {
	n := 0
	for _, ev := range evs {
		if ev.Seq > lastSeq {
			n++
		}
	}
	return n
}

// actionsAsked sums the action counts of the new events, each kind of each
// event as at most the hourly cap.
func actionsAsked(evs []EventReport, lastSeq uint64) int64 {
	var n int64
	for _, ev := range evs {
		if ev.Seq > lastSeq && ev.Type == "actions" {
			for _, a := range actionKinds {
				n += max(0, min(ev.Counts[a], maxActionsPerHour))
			}
		}
	}
	return n
}

// reserveActions takes up to asked from the device's allowance of action
// counts for the hour of now, and returns what it took. Called with the
// device locked.
func (e *deviceEntry) reserveActions(now time.Time, asked int64) int64 {
	if h := now.Unix() / 3600; e.actHour != h {
		e.actHour, e.actSpent = h, 0
	}
	got := min(asked, max(0, maxActionsPerHour-e.actSpent))
	e.actSpent += got
	return got
}

// capActions takes what is left of the allowance from an event's counts,
// in a copy: the stored event keeps what the device said.
func capActions(counts map[string]int64, allowed int64) (map[string]int64, int64) {
	out := make(map[string]int64, len(counts))
	for _, a := range actionKinds {
		n := min(max(0, counts[a]), allowed)
		if n > 0 {
			out[a] = n
			allowed -= n
		}
	}
	return out, allowed
}

// bootLoopReboots is how many unclean reboots make a host's boot loop for
// the boot-loop gate: the agent's own limit (agent.DefaultBootLimit), at
// which it reverts content on probation.
const bootLoopReboots = 3

// onceFor names what a device says about a release at most once: that it
// applied, failed, reverted or confirmed it, that its worker crashed, and
// that its host rebooted uncleanly (the tally that also makes its boot
// loop, at bootLoopReboots). The gates count devices, not events: a crash
// loop, or a forged flood, is one crashed device.
func onceFor(metric string) string {
	base, control := strings.CutPrefix(metric, "control-")
	switch base {
	case "applied", "apply-failed", "reverted", "healthy", "worker-crash", "unclean-reboot":
	default:
		return ""
	}
	if control {
		return "control-" + base
	}
	return base
}

// handleArtifact serves an artifact's bytes to enrolled devices.
func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authDevice(r.Context(), r); err != nil {
		return err
	}
	ch := r.PathValue("vendor") + "/" + r.PathValue("channel")
	v, err := strconv.ParseUint(r.PathValue("version"), 10, 63)
	if err != nil || !validChannelID(ch) {
		return badRequest("want /v1/artifacts/VENDOR/CHANNEL/VERSION")
	}
	// Only versions with a release are served: a device cannot fetch an
	// artifact nobody decided to ship.
	sn := s.snap.Load()
	released := false
	for _, ri := range sn.releases[ch] {
		released = released || (ri.rel.Version == v && ri.view.State.Reaches())
	}
	if !released {
		return notFound("no released artifact %s@%d", ch, v)
	}
	a, err := s.store.GetArtifact(r.Context(), ch, v)
	if err != nil {
		return storeError(fmt.Sprintf("artifact %s@%d", ch, v), err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(a.Bytes)), 10))
	w.Header().Set("X-Ringfence-SHA256", a.SHA256)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(a.Bytes)
	return err
}
