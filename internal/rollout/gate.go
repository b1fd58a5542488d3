package rollout

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metric names what a gate measures.
type Metric string

const (
	// Rates per device-hour, treated devices against control devices of
	// the same strata over the same windows.
	GateWorkerCrash   Metric = "worker-crash"
	GateUncleanReboot Metric = "unclean-reboot" // hosts that came back from an unplanned reboot
	// GateBootLoop counts hosts that crashed at every start until their
	// agent reverted the content: the mark of content that takes hosts
	// down, which a healthy fleet almost never shows. With a control
	// group near zero a handful of devices is decisive, where the same
	// devices are lost among the background of unclean reboots.
	GateBootLoop   Metric = "boot-loop"
	GateActionRate Metric = "action-rate" // blocks and alerts
	// Shares of devices.
	GateSilence      Metric = "silence"       // offered the release, then not heard from in time
	GateApplyFailure Metric = "apply-failure" // against the previous release on the channel
	GateRevert       Metric = "revert"        // against the previous release on the channel
)

var metrics = []Metric{GateWorkerCrash, GateUncleanReboot, GateSilence, GateApplyFailure, GateRevert, GateActionRate, GateBootLoop}

// GateSpec is one gate: an absolute limit and a relative test with a
// stated false-alarm rate, judged only after a minimum exposure.
type GateSpec struct {
	Metric Metric `json:"metric"`
	// Limit is the absolute limit: events per device-hour for rates, a
	// fraction of devices for shares. The gate fails when the one-sided
	// (1-Alpha) lower confidence bound is above it.
	Limit float64 `json:"limit"`
	// Ratio is the smallest effect worth halting for: the treated rate
	// this many times the control rate. The relative test bets on effects
	// from half of it up to 1000 times (evidence.go).
	Ratio float64 `json:"ratio"`
	// Alpha is the false-alarm rate of the relative test.
	Alpha float64 `json:"alpha"`
	// MinExposure is device-hours (rates) or devices (shares) the treated
	// group must reach before the gate decides anything.
	MinExposure float64 `json:"min_exposure"`
}

// Validate checks a gate's numbers.
func (g GateSpec) Validate() error {
	known := false
	for _, m := range metrics {
		known = known || g.Metric == m
	}
	switch {
	case !known:
		return fmt.Errorf("unknown metric %q", g.Metric)
	case !(g.Limit > 0) || math.IsInf(g.Limit, 0):
		return fmt.Errorf("%s: limit %v must be above 0", g.Metric, g.Limit)
	case g.share() && g.Limit > 1:
		return fmt.Errorf("%s: limit %v is a fraction of devices, at most 1", g.Metric, g.Limit)
	case !(g.Ratio > 1) || math.IsInf(g.Ratio, 0):
		return fmt.Errorf("%s: ratio %v must be above 1", g.Metric, g.Ratio)
	case !(g.Alpha > 0 && g.Alpha < 0.5):
		return fmt.Errorf("%s: alpha %v must be between 0 and 0.5", g.Metric, g.Alpha)
	case !(g.MinExposure >= 0) || math.IsInf(g.MinExposure, 0):
		return fmt.Errorf("%s: min_exposure %v must be 0 or more", g.Metric, g.MinExposure)
	}
	return nil
}

func (g GateSpec) share() bool {
	return g.Metric == GateSilence || g.Metric == GateApplyFailure || g.Metric == GateRevert
}

// DefaultGates judge every wave unless its plan says otherwise.
func DefaultGates() []GateSpec {
	return []GateSpec{
		{Metric: GateWorkerCrash, Limit: 0.05, Ratio: 3, Alpha: 0.001, MinExposure: 5},
		{Metric: GateUncleanReboot, Limit: 0.02, Ratio: 3, Alpha: 0.001, MinExposure: 5},
		{Metric: GateSilence, Limit: 0.10, Ratio: 3, Alpha: 0.001, MinExposure: 10},
		{Metric: GateApplyFailure, Limit: 0.05, Ratio: 3, Alpha: 0.001, MinExposure: 10},
		{Metric: GateRevert, Limit: 0.02, Ratio: 3, Alpha: 0.001, MinExposure: 10},
		{Metric: GateActionRate, Limit: 100, Ratio: 5, Alpha: 0.001, MinExposure: 5},
		{Metric: GateBootLoop, Limit: 0.005, Ratio: 3, Alpha: 0.001, MinExposure: 5},
	}
}

// Outcome is a gate's typed verdict. Only pass promotes; fail halts;
// inconclusive and no-data wait (until the wave's deadline); error means
// the figures could not be read, and also waits.
type Outcome string

const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
	NoData       Outcome = "no-data"
	Error        Outcome = "error"
)

// GateResult is one gate's verdict with its figures.
type GateResult struct {
	Metric  Metric  `json:"metric"`
	Outcome Outcome `json:"outcome"`
	// Treated and Control are rates per device-hour or shares (0-1).
	Treated float64 `json:"treated"`
	Control float64 `json:"control"`
	// Exposure is device-hours (rates) or devices (shares) in the treated
	// group; Events what it counted there.
	Exposure float64 `json:"exposure"`
	Events   int64   `json:"events"`
	// Evidence is the relative test's e-value (0: not run): the gate
	// fails at 1/Alpha and leans worse from 1/sqrt(Alpha).
	Evidence float64 `json:"evidence,omitempty"`
	// Suspect are the strata the evidence points at when the gate leans
	// worse without failing: the controller may widen them to resolve it.
	Suspect []string `json:"suspect,omitempty"`
	// Leaning is set on an inconclusive gate whose evidence leans worse,
	// against its limit or its control: at the wave's deadline such a
	// gate halts the release in its own name (Step).
	Leaning bool   `json:"leaning,omitempty"`
	Message string `json:"message"`
}

// Count is a telemetry counter summed over organisations and windows.
// Metrics are the server's counter names: heartbeat, applied,
// apply-failed, healthy, reverted, worker-crash, unclean-reboot,
// boot-loop, action-log, action-alert, action-block, and the same with a
// "control-" prefix for devices of the stratum not on the release.
type Count struct {
	Wave    int
	Stratum string
	Metric  string
	Value   int64
}

// SilenceCount is one organisation's and stratum's silence figures (see
// store.SilenceStat): devices offered the release, of which Confirmed
// confirmed it healthy and OfferedSilent are quiet without having done so,
// and the control group of devices not offered it.
type SilenceCount struct {
	Org             string
	Stratum         string
	Offered         int64
	OfferedSilent   int64
	Confirmed       int64
	ConfirmedSilent int64
	Control         int64
	ControlSilent   int64
}

// Telemetry is everything the gates read about a release.
type Telemetry struct {
	Counts []Count
	// Previous are the counters of the channel's previous completed
	// release: the baseline for apply failures and reverts.
	Previous []Count
	Silence  []SilenceCount
	// HeartbeatSpan is the device time one heartbeat stands for: the
	// server counts at most one per device and check-in interval.
	HeartbeatSpan time.Duration
	// SilentAfter is how long a device may stay quiet before it counts as
	// silent (its check-in interval with jitter, plus a grace).
	SilentAfter time.Duration
	// Err is why the figures could not be read, if they could not.
	Err error

	// memo holds the counts summed per stratum, which every gate of one
	// look reads: Evaluate sums them once, not once a gate (with a
	// thousand organisations a look sums tens of thousands of counts).
	memo *tallies
}

type tallies struct {
	byWave, all, prev sums
}

// sums returns the counts (or the previous release's) summed per stratum,
// or per wave and stratum.
func (t Telemetry) sums(byWave, previous bool) sums {
	cs := t.Counts
	if previous {
		cs = t.Previous
	}
	if t.memo == nil {
		return group(cs, byWave)
	}
	slot := &t.memo.all
	switch {
	case previous:
		slot = &t.memo.prev
	case byWave:
		slot = &t.memo.byWave
	}
	if *slot == nil {
		*slot = group(cs, byWave)
	}
	return *slot
}

// sums adds counts per stratum and metric.
type sums map[string]map[string]int64

// group adds counts per stratum, or per wave and stratum. The crash and
// action tests condition on each wave's stratum separately: counters are
// filed under the wave the release was in when they were counted, for
// treated and control devices alike, so a baseline that moves while the
// treated share grows (a fleet-wide crash spike as a wave starts) cannot
// look like an effect of the release.
func group(cs []Count, byWave bool) sums {
	// Counts come per organisation too: key them without building a
	// string per count, and name each group once.
	type key struct {
		wave    int
		stratum string
	}
	byKey := map[key]map[string]int64{}
	for _, c := range cs {
		k := key{stratum: c.Stratum}
		if byWave {
			k.wave = c.Wave
		}
		m := byKey[k]
		if m == nil {
			m = map[string]int64{}
			byKey[k] = m
		}
		m[c.Metric] += c.Value
	}
	out := make(sums, len(byKey))
	for k, m := range byKey {
		name := k.stratum
		if byWave {
			name = strconv.Itoa(k.wave) + "|" + k.stratum
		}
		out[name] = m
	}
	return out
}

func (s sums) total(metrics ...string) int64 {
	var n int64
	for _, m := range s {
		for _, k := range metrics {
			n += m[k]
		}
	}
	return n
}

func (s sums) strata() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Evaluate runs a wave's gates on the telemetry.
func Evaluate(gates []GateSpec, wave string, t Telemetry) []GateResult {
	out := make([]GateResult, 0, len(gates))
	if t.memo == nil {
		t.memo = &tallies{}
	}
	for _, g := range gates {
		out = append(out, evaluate(g, wave, t))
	}
	return out
}

func evaluate(g GateSpec, wave string, t Telemetry) GateResult {
	res := GateResult{Metric: g.Metric}
	if t.Err != nil {
		res.Outcome, res.Message = Error, fmt.Sprintf("%s: could not measure: %v", g.Metric, t.Err)
		return res
	}
	if err := g.Validate(); err != nil {
		res.Outcome, res.Message = Error, fmt.Sprintf("%s: bad gate: %v", g.Metric, err)
		return res
	}
	switch g.Metric {
	case GateWorkerCrash:
		names := []string{"worker-crash"}
		return rateGate(g, wave, t, names, names, 1)
	case GateUncleanReboot:
		names := []string{"unclean-reboot"}
		return rateGate(g, wave, t, names, names, 1)
	case GateBootLoop:
		names := []string{"boot-loop"}
		return rateGate(g, wave, t, names, names, 1)
	case GateActionRate:
		return rateGate(g, wave, t, []string{"action-alert", "action-block"}, []string{"action-device"}, ActionTolerance)
	case GateSilence:
		return silenceGate(g, wave, t)
	case GateApplyFailure:
		return shareGate(g, wave, t, "apply-failed", []string{"applied", "apply-failed"})
	default: // GateRevert
		return shareGate(g, wave, t, "reverted", []string{"applied"})
	}
}

// ActionTolerance is how many times the control group's share of
// device-windows with blocks or alerts the release's devices may show
// before the action gate's relative test counts it as evidence. Action
// counts are over-dispersed (one busy server alerts all day, a site's
// traffic shifts): the gate counts each device at most once per counter
// window, and tests "no more than 1.5x the control's" rather than
// "exactly the control's", so the ordinary spread of a noisy fleet is not
// read as a false-positive storm, which is many times the control's.
const ActionTolerance = 1.5

func prefixed(p string, ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = p + m
	}
	return out
}

// judgement is what the e-values say: fail at 1/alpha, lean at
// 1/sqrt(alpha) (the gate then waits for more data rather than pass).
func judge(e float64, alpha float64) (fail, leaning bool) {
	return e >= 1/alpha, e >= 1/math.Sqrt(alpha)
}

// rateGate compares event rates per device-hour, treated devices against
// control devices of the same stratum over the same wave. The absolute
// limit and the relative test are both e-processes (evidence.go), so the
// gate may fail at any look, even before MinExposure; it passes only
// from MinExposure on. shown are the counters its figures report, tested
// those its relative test judges against r0 times the control's rate.
func rateGate(g GateSpec, wave string, t Telemetry, shown, tested []string, r0 float64) GateResult {
	res := GateResult{Metric: g.Metric}
	s := t.sums(true, false)
	span := t.HeartbeatSpan.Hours()
	if span <= 0 {
		span = 1.0 / 60
	}
	var x, y int64
	var tExp, cExp float64
	var cells []cell
	for _, st := range s.strata() {
		m := s[st]
		tx, cx := float64(m["heartbeat"])*span, float64(m["control-heartbeat"])*span
		x, y = x+sum(m, shown), y+sum(m, prefixed("control-", shown))
		tExp, cExp = tExp+tx, cExp+cx
		_, stratum, _ := strings.Cut(st, "|")
		cells = append(cells, cell{stratum: stratum, x: sum(m, tested), y: sum(m, prefixed("control-", tested)), t: tx, c: cx})
	}
	res.Exposure, res.Events = tExp, x
	if tExp > 0 {
		res.Treated = float64(x) / tExp
	}
	if cExp > 0 {
		res.Control = float64(y) / cExp
	}
	what := fmt.Sprintf("%s rate %.3g vs %.3g per device-hour in control", g.Metric, res.Treated, res.Control)
	where := fmt.Sprintf("%s, %.1f device-hours", wave, tExp)
	if tExp == 0 && x == 0 {
		res.Outcome, res.Message = NoData, fmt.Sprintf("%s: no device on the release has reported yet (%s)", g.Metric, wave)
		return res
	}
	fail, over := judge(poissonE(x, tExp, g.Limit), g.Alpha)
	if fail {
		res.Outcome, res.Message = Fail, fmt.Sprintf("%s, above the limit of %.3g (%s)", what, g.Limit, where)
		return res
	}
	leaning, failed := relative(&res, g, cells, r0, what, where)
	if failed {
		return res
	}
	if tExp < g.MinExposure {
		res.Outcome, res.Message, res.Leaning = Inconclusive, fmt.Sprintf("%s (%s; judged from %.3g)", what, where, g.MinExposure), over || leaning
		return res
	}
	return settle(res, g, what, where, over, leaning)
}

// relative runs a gate's relative test on its cells against r0 times the
// control: it records the e-value, fails the gate at 1/alpha, and names
// the suspect strata when the evidence leans worse.
func relative(res *GateResult, g GateSpec, cells []cell, r0 float64, what, where string) (leaning, failed bool) {
	ev := mixture(cells, r0, g.Ratio/2)
	res.Evidence = ev.e()
	failed, leaning = judge(res.Evidence, g.Alpha)
	if failed {
		res.Outcome, res.Message = Fail, fmt.Sprintf("%s (%s; %s)", what, where, ev.describe(g.Alpha))
		return leaning, true
	}
	if leaning {
		res.Suspect = ev.members
	}
	return leaning, false
}

// describe says what the evidence is and where, for a failing gate.
func (ev evidence) describe(alpha float64) string {
	return fmt.Sprintf("evidence %.3g against \"no worse than control\", strongest %s at %gx, halts from %.0f", ev.e(), ev.where(), ev.ratio, 1/alpha)
}

// settle ends a gate that did not fail: evidence leaning worse, against
// the limit (over) or the control (leaning), waits for more data;
// otherwise it passes. Leaning is the evidence, not the point estimate:
// one background crash among a small wave's few device-hours is a rate
// over the limit and an e-value near 1, and waiting on it held good
// releases on a rough day until the wave's deadline halted them.
// leaningWaits ends the message of a gate that leans worse and waits.
const leaningWaits = "leaning worse, waiting for more data"

func settle(res GateResult, g GateSpec, what, where string, over, leaning bool) GateResult {
	if over || leaning {
		res.Outcome, res.Leaning = Inconclusive, true
		res.Message = fmt.Sprintf("%s (%s; %s)", what, where, leaningWaits)
		return res
	}
	res.Outcome, res.Message = Pass, fmt.Sprintf("%s (%s)", what, where)
	return res
}

func sum(m map[string]int64, names []string) int64 {
	var n int64
	for _, k := range names {
		n += m[k]
	}
	return n
}

// silenceGate compares the share of devices gone quiet after being offered
// the release without having confirmed it healthy with the share of the
// control group gone quiet, within each organisation and stratum: silence
// comes in clusters (a site's link, a time zone's night, a partition) that
// silence every device of an organisation, whatever it runs, while
// content that takes hosts down silences only those that loaded it. Every
// offered device stays in the treated group once it confirmed (a device
// that passed its probation and later went quiet is the world's, so it is
// not counted silent): dropping it would leave behind the devices that
// went offline before confirming and make the group look silent. An
// organisation with no control devices of a stratum (all of them offered:
// the internal wave, or the last one) has nothing to compare with inside
// it, and another organisation is no comparison (a partition right after
// its offers would read as a defect, found by the simulator): once enough
// of its devices confirmed the release, their silence is its reference for
// the absolute limit; until then silence says nothing about it, and its
// devices must confirm before the wave can pass. The e-value is the other
// gates' (evidence.go). Silence is a state, not a count: each look's e-value is
// valid for that look, and the looks see overlapping snapshots of the same
// devices (docs/rollout.md says what that means for the false-halt rate;
// the tests measure it).
func silenceGate(g GateSpec, wave string, t Telemetry) GateResult {
	res := GateResult{Metric: g.Metric}
	var n, x, cn, cx int64
	for _, s := range t.Silence {
		if s.Offered < 0 || s.OfferedSilent < 0 || s.Confirmed < 0 || s.ConfirmedSilent < 0 || s.Confirmed > s.Offered ||
			s.OfferedSilent > s.Offered-s.Confirmed || s.ConfirmedSilent > s.Confirmed ||
			s.Control < 0 || s.ControlSilent < 0 || s.ControlSilent > s.Control {
			res.Outcome, res.Message = Error, fmt.Sprintf("silence: inconsistent figures for stratum %s%s", s.Stratum, orgSuffix(s.Org))
			return res
		}
		cn, cx = cn+s.Control, cx+s.ControlSilent
		n, x = n+s.Offered, x+s.OfferedSilent
	}
	var cells []cell
	// jn and jx are the offered devices the absolute limit judges (those of
	// organisations with a reference of their own), and expected how many
	// of them the references predict silent: the limit is on silence
	// beyond that.
	var jn, jx int64
	var expected float64
	for _, s := range t.Silence {
		if s.Offered == 0 {
			continue
		}
		switch {
		case s.Control > 0:
			cells = append(cells, cell{stratum: s.Stratum, x: s.OfferedSilent, t: float64(s.Offered), y: s.ControlSilent, c: float64(s.Control)})
			expected += float64(s.Offered) * float64(s.ControlSilent) / float64(s.Control)
		case s.Confirmed >= minReference:
			// The devices that confirmed the release are the world's
			// silence in this organisation (a cut silences them too).
			expected += float64(s.Offered) * float64(s.ConfirmedSilent) / float64(s.Confirmed)
		default:
			continue
		}
		jn, jx = jn+s.Offered, jx+s.OfferedSilent
	}
	res.Exposure, res.Events = float64(n), x
	if n > 0 {
		res.Treated = float64(x) / float64(n)
	}
	if cn > 0 {
		res.Control = float64(cx) / float64(cn)
	}
	window := fmtMinutes(t.SilentAfter)
	what := fmt.Sprintf("silence rate %.1f%% vs %.1f%% in control", 100*res.Treated, 100*res.Control)
	where := fmt.Sprintf("%s, %d devices, %s window", wave, n, window)
	if n == 0 {
		res.Outcome, res.Message = NoData, fmt.Sprintf("silence: no device has been offered the release yet (%s)", wave)
		return res
	}
	// When the control group is as silent, the fleet went quiet, not the
	// release's devices: the control plane was down or cut off (devices
	// back off and come back over minutes). The absolute limit then says
	// nothing about the release; only an excess over control does.
	fleetSilent := cn > 0 && binomialLower(cx, cn, g.Alpha) > g.Limit
	// Devices fall silent for reasons of their own (laptops closed, a
	// site's network cut), so the absolute limit is on silence beyond what
	// each organisation's other devices predict: a partition that happens
	// to cut off more treated devices than control ones is not the
	// release's doing (found by the simulator's live mode, where 3 of 10
	// organisations cut off halted a good release at 24% vs 15%).
	// The limit fails at the bound of level alpha and leans worse (waits)
	// at sqrt(alpha), as the e-value tests do: one or two devices of a
	// small wave gone quiet are a point estimate over the limit but no
	// evidence, and waiting on them halted good releases at a small
	// wave's deadline.
	beyond := func(alpha float64) bool {
		return !fleetSilent && jn > 0 && binomialLower(jx, jn, alpha)-expected/float64(jn) > g.Limit
	}
	if float64(jn) >= g.MinExposure && beyond(g.Alpha) {
		res.Outcome, res.Message = Fail, fmt.Sprintf("%s (%s)", what, where)
		return res
	}
	leaning, failed := relative(&res, g, cells, 1, what, where)
	if failed {
		return res
	}
	if float64(n) < g.MinExposure {
		res.Outcome, res.Message, res.Leaning = Inconclusive, fmt.Sprintf("%s (%s; judged from %.0f devices)", what, where, g.MinExposure), leaning
		return res
	}
	// Most of the control group unheard is an outage, not a rough day:
	// nothing the devices say can be heard, so nothing promotes.
	if cn > 0 && binomialLower(cx, cn, g.Alpha) > 0.5 {
		res.Outcome, res.Leaning = Inconclusive, leaning
		res.Message = fmt.Sprintf("%s (%s): the control group is as quiet, so the fleet went silent, not the release's devices (an outage or a network cut?)", what, where)
		return res
	}
	// The limit is on silence beyond the references': a fleet where a
	// third of the devices are offline for hours is no reason to wait.
	return settle(res, g, what, where, beyond(math.Sqrt(g.Alpha)), leaning)
}

// shareGate judges events per device that applied the release, against the
// channel's previous release when it has figures, stratum by stratum.
func shareGate(g GateSpec, wave string, t Telemetry, event string, base []string) GateResult {
	res := GateResult{Metric: g.Metric}
	cur, prev := t.sums(false, false), t.sums(false, true)
	x, n := cur.total(event), cur.total(base...)
	px, pn := prev.total(event), prev.total(base...)
	res.Exposure, res.Events = float64(n), x
	if n > 0 {
		res.Treated = math.Min(1, float64(x)/float64(n))
	}
	if pn > 0 {
		res.Control = math.Min(1, float64(px)/float64(pn))
	}
	what := fmt.Sprintf("%s rate %.1f%% vs %.1f%% for the previous release", g.Metric, 100*res.Treated, 100*res.Control)
	if pn == 0 {
		what = fmt.Sprintf("%s rate %.1f%% (no previous release to compare with)", g.Metric, 100*res.Treated)
	}
	where := fmt.Sprintf("%s, %d devices", wave, n)
	if n == 0 {
		res.Outcome, res.Message = NoData, fmt.Sprintf("%s: no device has applied the release yet (%s)", g.Metric, wave)
		return res
	}
	fail, over := judge(binomialE(x, n, g.Limit), g.Alpha)
	if fail {
		res.Outcome, res.Message = Fail, fmt.Sprintf("%s, above the limit of %.1f%% (%s)", what, 100*g.Limit, where)
		return res
	}
	leaning := false
	if pn > 0 {
		var cells []cell
		for _, st := range cur.strata() {
			m, pm := cur[st], prev[st]
			cells = append(cells, cell{stratum: st, x: min(m[event], sum(m, base)), t: float64(sum(m, base)),
				y: min(pm[event], sum(pm, base)), c: float64(sum(pm, base))})
		}
		var failed bool
		if leaning, failed = relative(&res, g, cells, 1, what, where); failed {
			return res
		}
	}
	if float64(n) < g.MinExposure {
		res.Outcome, res.Message, res.Leaning = Inconclusive, fmt.Sprintf("%s (%s; judged from %.0f devices)", what, where, g.MinExposure), over || leaning
		return res
	}
	return settle(res, g, what, where, over, leaning)
}

// minReference is the fewest confirmed devices that stand for an
// organisation's own silence.
const minReference = 5

func orgSuffix(org string) string {
	if org == "" {
		return ""
	}
	return " of organisation " + org
}

func fmtMinutes(d time.Duration) string {
	if d <= 0 {
		return "0 min"
	}
	return fmt.Sprintf("%.0f min", math.Ceil(d.Minutes()))
}

// Summary lists gates that did not pass, for messages.
func Summary(rs []GateResult) string {
	if len(rs) == 0 {
		// Not "every gate passed": Step never passes a wave on no results.
		return "no gate has judged the wave"
	}
	var parts []string
	for _, r := range rs {
		if r.Outcome != Pass {
			parts = append(parts, fmt.Sprintf("%s %s", r.Metric, r.Outcome))
		}
	}
	if len(parts) == 0 {
		return "every gate passed"
	}
	return strings.Join(parts, ", ")
}

// shareMetric reports whether a gate's figures are shares of devices (0-1)
// rather than events per device-hour (GateSpec says which).
func shareMetric(m Metric) bool {
	return m == GateSilence || m == GateApplyFailure || m == GateRevert
}

// Figures are a gate's treated and control figures and exposure as people
// read them (`ringfence release status`, the web console): "38.0%" and
// "812 devices" for shares, "0.052/h" and "12.5 device-h" for rates; "-"
// when the gate measured nothing.
func (g GateResult) Figures() (treated, control, exposure string) {
	if g.Outcome == NoData || g.Outcome == Error {
		return "-", "-", "-"
	}
	if shareMetric(g.Metric) {
		pct := func(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }
		return pct(g.Treated), pct(g.Control), fmt.Sprintf("%.0f devices", g.Exposure)
	}
	rate := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "/h" }
	return rate(g.Treated), rate(g.Control), fmt.Sprintf("%.1f device-h", g.Exposure)
}
