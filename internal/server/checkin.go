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
	if err := decodeJSONFast(w, r, maxCheckinBody, &req, func(b []byte) bool { return parseCheckin(b, &req) }); err != nil {
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
	writeCheckin(w, &resp)
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

// checkin is the check-in of an authenticated device, in named steps. The
// device's cache entry is locked twice: once to read it and take what this
// check-in uses of its allowances (readDevice), once to record what the
// store accepted (commit). The entry's lock is a shard's, shared with
// other devices, so it is not held across the write.
func (s *Server) checkin(ctx context.Context, e *deviceEntry, req *CheckinRequest) (CheckinResponse, error) {
	c := &checkinRun{s: s, sn: s.snap.Load(), now: s.now(), e: e, id: e.id, org: e.org, req: req,
		stratum: stratumOf(req.Platform, req.AgentVersion, req.OSBuild)}
	c.window = c.now.Truncate(s.cfg.CounterWindow)
	c.wr = store.CheckinWrite{Device: store.Device{ID: c.id, Platform: req.Platform, OSBuild: req.OSBuild, AgentVersion: req.AgentVersion, LastSeen: c.now}}
	if err := c.readDevice(); err != nil {
		return CheckinResponse{}, err
	}
	c.countEvents()
	c.countPresence()
	c.answer()
	if err := c.commit(ctx); err != nil {
		return CheckinResponse{}, err
	}
	// Jitter spreads the fleet so it never checks in, or retries, in step.
	base := float64(s.cfg.CheckinInterval) / float64(time.Second)
	jitter := rand.Float64
	if s.cfg.Jitter != nil {
		jitter = s.cfg.Jitter
	}
	c.resp.NextCheckinS = max(1, int(base*(0.8+0.4*jitter())))
	return c.resp, nil
}

// checkinRun is one check-in's state as its steps build it.
type checkinRun struct {
	s       *Server
	sn      *snapshot
	now     time.Time
	e       *deviceEntry
	id, org string
	req     *CheckinRequest
	stratum string
	window  time.Time

	wr       store.CheckinWrite
	mustWait bool // something to store: the answer waits for the write
	// exposed: the channels whose reported version the device was
	// offered, as far as the device's record or this replica's offers
	// tell; the store answers for the changed ones in the write.
	exposed map[string]bool
	lastSeq uint64
	// What the events are judged against: the versions the device runs
	// (as it reports them now, or last did), and its allowance of action
	// counts, reserved so that its check-ins side by side share one.
	running   map[string]versions
	allowed   int64
	countBeat bool // this check-in is the device's heartbeat of the window
	// beatWindow is the window, in windows since the epoch: the store
	// counts one heartbeat per device and window across replicas.
	beatWindow int64
	countAct   bool // and its one device-window with blocks or alerts

	resp      CheckinResponse
	offerKeys []string
}

// readDevice compares the report with the device's cached record, takes
// the new events from the device's hourly allowance (all or none: a
// refused check-in uses up nothing else), reserves its action counts, and
// claims the window's heartbeat and action window, in one locked section.
func (c *checkinRun) readDevice() error {
	s, e, req := c.s, c.e, c.req
	s.devices.lock(e)
	defer s.devices.unlock(e)
	c.lastSeq = e.lastSeq
	if n := newEvents(req.Events, c.lastSeq); n > 0 {
		if retry, ok := s.events.takeN(c.id, n, c.now); !ok {
			he := tooMany(retry, fmt.Sprintf("%d events over the device's allowance of %d an hour; nothing was stored: check in without events, and send them after Retry-After", n, s.cfg.EventsPerHour))
			he.Quota = protocol.QuotaEvents
			return he
		}
	}
	c.mustWait = len(req.Events) > 0 || e.facts != factsOf(req.Platform, req.OSBuild, req.AgentVersion)
	for _, r := range req.Channels {
		c.diffChannel(r)
	}
	if len(req.Events) > 0 {
		c.running = make(map[string]versions, len(e.channels)+len(req.Channels))
		for _, ch := range e.channels {
			c.running[ch.channel] = versions{active: ch.active, lkg: ch.lkg}
		}
		for _, r := range req.Channels {
			c.running[r.Channel] = versions{active: r.ActiveVersion, lkg: r.LKGVersion, shadow: r.Shadow}
		}
		c.allowed = e.reserveActions(c.now, actionsAsked(req.Events, c.lastSeq))
	}
	win := c.now.UnixNano() / int64(s.cfg.CounterWindow)
	c.beatWindow = win
	// One heartbeat per device and window, however often it checks in; a
	// check-in that reports no channel does not use up the window.
	if c.countBeat = e.hbWindow < win && len(req.Channels) > 0; c.countBeat {
		e.hbWindow = win
	}
	// The action gate judges windows with blocks or alerts, one per device
	// and window, not the counts: one device's flood is one window.
	if c.countAct = c.actedAt() >= 0 && e.actWindow < win; c.countAct {
		e.actWindow = win
	}
	return nil
}

// reported is the device's report of channel ch, if it made one. The
// reports are few (validateCheckin caps them and refuses a channel twice):
// a scan costs less than a map per check-in.
func (c *checkinRun) reported(ch string) (ChannelReport, bool) {
	for _, r := range c.req.Channels {
		if r.Channel == ch {
			return r, true
		}
	}
	return ChannelReport{}, false
}

// diffChannel queues a channel whose report differs from the cached
// record for the write. Called with the device locked.
func (c *checkinRun) diffChannel(r ChannelReport) {
	old, ok := c.e.channel(r.Channel)
	sameVersion := ok && old.active == r.ActiveVersion
	if sameVersion && old.offered {
		c.expose(r.Channel)
	}
	if ok && old.active == r.ActiveVersion && old.lkg == r.LKGVersion && old.state == r.State {
		return
	}
	dc := store.DeviceChannel{Device: c.id, Channel: r.Channel, ActiveVersion: r.ActiveVersion, LKGVersion: r.LKGVersion, State: r.State, UpdatedAt: c.now,
		Offered: sameVersion && old.offered}
	if !dc.Offered {
		if ri := c.sn.release(r.Channel, r.ActiveVersion); ri != nil {
			dc.Release = ri.rel.ID
			if _, ok := c.s.offered.Load(ri.rel.ID + "\x00" + c.id); ok {
				c.expose(r.Channel)
			}
		}
	}
	c.wr.Channels = append(c.wr.Channels, dc)
	c.mustWait = true
}

func (c *checkinRun) expose(ch string) {
	if c.exposed == nil {
		c.exposed = map[string]bool{}
	}
	c.exposed[ch] = true
}

// acts reports whether an event is blocks or alerts on a channel that
// the action gate's device-windows count: enforced, or what content in
// shadow would have done.
func (c *checkinRun) acts(typ, channel string, version uint64, counts map[string]int64) bool {
	return protocol.ActionEvent(typ) && channel != "" && counts["alert"]+counts["block"] > 0 &&
		!c.running[channel].besideShadow(typ, version)
}

// actedAt is the index among the request's events of the first new one
// that acts, or -1.
func (c *checkinRun) actedAt() int {
	return slices.IndexFunc(c.req.Events, func(ev EventReport) bool {
		return ev.Seq > c.lastSeq && c.acts(ev.Type, ev.Channel, ev.Version, ev.Counts)
	})
}

// countEvents turns the new events into store events, each with the
// counters it is the device's testimony for.
func (c *checkinRun) countEvents() {
	s := c.s
	for _, ev := range c.req.Events {
		if ev.Seq <= c.lastSeq {
			continue // already stored; the store would drop it too
		}
		t := ev.Time
		if t.IsZero() || t.After(c.now.Add(5*time.Minute)) || t.Before(c.now.Add(-7*24*time.Hour)) {
			t = c.now // a device clock is not trusted for windows
		}
		se := store.Event{Device: c.id, Seq: ev.Seq, Time: t, Type: ev.Type, Channel: ev.Channel, Version: ev.Version, Reason: ev.Reason, Counts: ev.Counts}
		if protocol.ActionEvent(ev.Type) {
			ev.Counts, c.allowed = capActions(ev.Counts, c.allowed)
		}
		var believed bool
		se.Counters, believed = s.eventCounters(c.sn, c.id, c.org, c.stratum, t.Truncate(s.cfg.CounterWindow), ev, c.running[ev.Channel])
		if !believed {
			c.wr.Anomalies++
		}
		c.wr.Events = append(c.wr.Events, se)
	}
}

// countPresence counts the device-window with actions readDevice claimed,
// and hands the window's heartbeat to the heartbeat counter.
func (c *checkinRun) countPresence() {
	s, sn := c.s, c.sn
	if c.countAct {
		i := slices.IndexFunc(c.wr.Events, func(ev store.Event) bool { return c.acts(ev.Type, ev.Channel, ev.Version, ev.Counts) })
		ev := &c.wr.Events[i]
		for _, k := range s.cells(sn, c.org, c.stratum, c.window, ev.Channel, ev.Version, "action-device") {
			if ev.Type == protocol.EventShadowActions && k.Metric != "action-device" {
				continue // what shadow content would do is no control's
			}
			if ct, ok := testimonyOf(sn, ev.Channel, k, 1, c.id, c.running[ev.Channel], ev.Version); ok {
				ev.Counters = append(ev.Counters, ct)
			}
		}
	}
	var beats []store.CounterKey
	if c.countBeat {
		for _, r := range c.req.Channels {
			for _, k := range s.cells(sn, c.org, c.stratum, c.window, r.Channel, r.ActiveVersion, "heartbeat") {
				// A device's time on a version counts as the release's
				// exposure only if it was offered the release: a device
				// claiming a version it was never given dilutes no rate.
				if k.Metric == "heartbeat" && !c.exposed[r.Channel] && !sn.completed(r.Channel, k.Release) {
					continue
				}
				beats = append(beats, k)
			}
		}
	}
	s.hb.touch(c.id, c.now, c.beatWindow, beats)
}

// answer decides each channel's desired version for the device, and
// queues an offer (within the organisation's budget) for each upgrade.
func (c *checkinRun) answer() {
	sn := c.sn
	c.resp = CheckinResponse{Channels: []ChannelDesired{}, AckSeq: c.lastSeq}
	for _, ch := range sn.channelIDs {
		rep, hasRep := c.reported(ch)
		in := channelInputs(sn, c.s.cfg.Catalog, c.now, c.org, c.req.Platform, c.req.AgentVersion, c.stratum, ch)
		if len(in.Releases) == 0 && !hasRep {
			continue
		}
		dv := in.Device
		dv.Position, dv.Active, dv.LKG = rollout.CohortPosition(c.id, ch), rep.ActiveVersion, rep.LKGVersion
		d := rollout.Desired(c.now, in.Releases, dv, in.Unpausable, nil)
		i := slices.IndexFunc(in.Releases, func(v rollout.ReleaseView) bool { return v.Version == d.Version })
		if i < 0 || d.Version == 0 {
			c.resp.Channels = append(c.resp.Channels, ChannelDesired{Channel: ch, DesiredVersion: d.Version, Release: d.Release, Reason: d.Reason})
			continue
		}
		c.resp.Channels = append(c.resp.Channels, c.offer(ch, rep, d, in.Releases[i], in.targeted[i]))
	}
}

// ChannelInputs is what a check-in decides one channel from for devices
// of one organisation with the same facts: the releases that target them,
// and the device's view but for its own position and versions.
type ChannelInputs struct {
	Channel    string
	Releases   []rollout.ReleaseView
	Device     rollout.DeviceView // Position, Active and LKG are the device's
	Unpausable bool
	targeted   []*releaseInfo // parallel to Releases
}

func channelInputs(sn *snapshot, cat *content.Catalog, now time.Time, org, platform, agent, stratum, ch string) ChannelInputs {
	a := sn.aimedAt(cat, ch, platform, agent)
	return ChannelInputs{Channel: ch, Releases: a.views, targeted: a.infos, Unpausable: sn.channels[ch].Unpausable,
		Device: rollout.DeviceView{Track: sn.track(org, ch), OutsideWindow: !rollout.InAnyWindow(sn.windows[policyKey{org, ch}], now),
			Internal: sn.tenants[org].Internal, Stratum: stratum}}
}

// AnswerGeneration changes whenever what AnswerInputs returns may have
// changed, but for the clock (maintenance windows open and close by the
// minute): a caller that keeps AnswerInputs asks again when it changes.
func (s *Server) AnswerGeneration() uint64 { return s.snap.Load().gen }

// AnswerInputs is what the check-in's answer step decides channel from
// for a device of org with these facts, as of the current snapshot (kill
// switches, tracks, maintenance windows and targets applied). The fleet
// simulator decides its quiet devices with rollout.Desired on it, and
// sends a device through the full check-in when the answer would change
// what it runs.
func (s *Server) AnswerInputs(org, platform, agentVersion, osBuild, channel string) ChannelInputs {
	return channelInputs(s.snap.Load(), s.cfg.Catalog, s.now(), org, platform, agentVersion, stratumOf(platform, agentVersion, osBuild), channel)
}

// offer is the answer for a channel whose desired version has a release:
// its artifact, and for an upgrade an offer recorded before the device
// hears it, so a device that dies applying it still counts as exposed.
func (c *checkinRun) offer(ch string, rep ChannelReport, d rollout.Decision, view rollout.ReleaseView, ri *releaseInfo) ChannelDesired {
	s := c.s
	target := deviceTarget(ri, ri.target)
	if target == "" {
		// The device could not verify it: nothing is offered before the
		// vendor's signatures for its wave exist.
		return ChannelDesired{Channel: ch, DesiredVersion: rep.ActiveVersion, Reason: fmt.Sprintf("%d waits for its vendor's signatures", d.Version)}
	}
	if d.Version > rep.ActiveVersion && view.State.Reaches() {
		key := d.Release + "\x00" + c.id
		if _, known := s.offered.Load(key); !known {
			if !s.budgets.admit(c.sn, c.org) {
				return ChannelDesired{Channel: ch, DesiredVersion: rep.ActiveVersion,
					Reason: fmt.Sprintf("%d waits: the organisation's hourly budget for new versions is spent", d.Version)}
			}
			// The cap goes with the offer: the store decides it exactly,
			// across replicas (budgets only spares it hopeless writes).
			c.wr.Offers = append(c.wr.Offers, store.Offer{Release: d.Release, Device: c.id, Org: c.org, Wave: view.Wave, At: c.now,
				Cap: c.sn.budget[c.org].limit})
			c.offerKeys = append(c.offerKeys, key)
			c.mustWait = true
		}
	}
	return ChannelDesired{Channel: ch, DesiredVersion: d.Version, Release: d.Release, Reason: d.Reason, Shadow: d.Shadow,
		Artifact: &Artifact{URL: s.cfg.BaseURL + "/v1/artifacts/" + ch + "/" + strconv.FormatUint(d.Version, 10), SHA256: ri.sha256, Size: ri.size, Target: target}}
}

// withdraw takes back an offer the store refused because the
// organisation's hourly budget was spent on another replica: the device
// keeps what it runs, and is not remembered as offered the release.
func (c *checkinRun) withdraw(release string) {
	for i, cd := range c.resp.Channels {
		if cd.Release != release {
			continue
		}
		rep, _ := c.reported(cd.Channel)
		c.resp.Channels[i] = ChannelDesired{Channel: cd.Channel, DesiredVersion: rep.ActiveVersion,
			Reason: fmt.Sprintf("%d waits: the organisation's hourly budget for new versions is spent", cd.DesiredVersion)}
	}
	c.offerKeys = slices.DeleteFunc(c.offerKeys, func(k string) bool { return strings.HasPrefix(k, release+"\x00") })
}

// commit stores what the check-in changed, when it changed anything, and
// then records in the cache what the store accepted.
func (c *checkinRun) commit(ctx context.Context) error {
	if !c.mustWait {
		return nil
	}
	s, wr := c.s, &c.wr
	req := &writeReq{checkin: wr, done: make(chan writeResult, 1)}
	if err := s.writer.submit(req); err != nil {
		return busy()
	}
	res := <-req.done
	if res.err != nil {
		for _, o := range wr.Offers {
			s.budgets.release(o.Org)
		}
		if errors.Is(res.err, store.ErrUnavailable) {
			s.markStore(res.err)
			return unavailable(res.err)
		}
		if isNotFound(res.err) {
			s.forgetDevice(c.id)
			return errUnauthorized
		}
		return storeError("check-in", res.err)
	}
	for _, o := range wr.Offers {
		if slices.Contains(res.res.Capped, o.Release) {
			s.budgets.release(o.Org)
			s.budgets.exhaust(c.sn, o.Org)
			c.withdraw(o.Release)
			continue
		}
		s.budgets.stored(o.Org)
	}
	c.resp.AckSeq = res.res.LastSeq
	for _, ev := range wr.Events {
		s.metrics.event(ev.Type)
	}
	for _, k := range c.offerKeys {
		s.offered.Store(k, struct{}{})
	}
	// A device that reports running a version no longer needs its offer
	// remembered.
	for _, ch := range wr.Channels {
		for _, ri := range c.sn.releases[ch.Channel] {
			if ri.rel.Version == ch.ActiveVersion {
				s.offered.Delete(ri.rel.ID + "\x00" + c.id)
			}
		}
	}
	s.devices.lock(c.e)
	defer s.devices.unlock(c.e)
	c.e.lastSeq = max(c.e.lastSeq, res.res.LastSeq)
	c.e.facts = factsOf(c.req.Platform, c.req.OSBuild, c.req.AgentVersion)
	for _, ch := range wr.Channels {
		ch.Offered = ch.Offered || ch.Release != "" && slices.Contains(res.res.Offered, ch.Release)
		c.e.setChannel(ch)
	}
	return nil
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
	if rv.besideShadow(ev.Type, ev.Version) {
		// Enforced actions of a device whose release runs in shadow: it
		// is in the release's wave, so it is not its control, and the
		// release's figures are what the shadow content would have done.
		return nil, true
	}
	metrics := []string{ev.Type}
	values := []int64{1}
	if protocol.ActionEvent(ev.Type) {
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
			if ev.Type == protocol.EventShadowActions && k.Metric != m {
				continue // what shadow content would do is no control's
			}
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
// good, and whether the active version runs in shadow (the last known
// good is then enforced).
type versions struct {
	active, lkg uint64
	shadow      bool
}

// besideShadow reports whether an event of type typ about version v is
// the enforced actions of a device whose active version runs in shadow.
func (rv versions) besideShadow(typ string, v uint64) bool {
	return typ == protocol.EventActions && rv.shadow && v != rv.active
}

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
		if ev.Seq > lastSeq && protocol.ActionEvent(ev.Type) {
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
