package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/version"
)

// metrics are the server's Prometheus metrics, in a registry the server
// owns: several servers in one process (tests, the live simulator) each
// have their own. What the check-in path touches is resolved here once,
// children of labelled metrics included, so a check-in adds an atomic
// increment and a histogram observation, and no lock or map of labels.
// Release and gate figures are read when a scrape asks, from the snapshot
// and the last controller tick (releaseCollector): they are never stale and
// leave with their release. Every label value comes from a fixed set or an
// identifier the server made or validated, never from free text.
type metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	checkins       [numCheckinOutcomes]prometheus.Counter
	checkinSeconds prometheus.Histogram
	// events by type, read-only after newMetrics; otherEvents for any
	// type outside the protocol's (validation refuses those today).
	events      map[string]prometheus.Counter
	otherEvents prometheus.Counter

	tickSeconds  prometheus.Histogram
	tickFailures prometheus.Counter
	tickPanics   prometheus.Counter
	storeErrors  [2]prometheus.Counter // storeUnavailable, storeFailed
	halts        [2]prometheus.Counter // haltByController, haltByPerson
	webhooks     map[WebhookOutcome]prometheus.Counter
}

// Check-in outcomes: the values of ringfence_checkins_total's outcome.
const (
	checkinOK           = iota // 2xx
	checkinRejected            // another 4xx: the request was wrong
	checkinUnauthorized        // 401 or 403
	checkinThrottled           // 429: the event quota or an authentication limit
	checkinUnavailable         // 503: the store is down or the write queue full
	checkinError               // another 5xx
	numCheckinOutcomes
)

var checkinOutcomeNames = [numCheckinOutcomes]string{"ok", "rejected", "unauthorized", "throttled", "unavailable", "error"}

const (
	storeUnavailable = iota
	storeFailed
)

const (
	haltByController = iota
	haltByPerson
)

// WebhookOutcome is how one webhook delivery attempt ended: the outcome
// label of ringfence_webhook_deliveries_total.
type WebhookOutcome string

const (
	// WebhookDelivered: the receiver answered 2xx.
	WebhookDelivered WebhookOutcome = "delivered"
	// WebhookFailed: the attempt failed and will be retried.
	WebhookFailed WebhookOutcome = "failed"
	// WebhookAbandoned: the attempt failed and no other will be made.
	WebhookAbandoned WebhookOutcome = "abandoned"
)

var webhookOutcomes = []WebhookOutcome{WebhookDelivered, WebhookFailed, WebhookAbandoned}

// CountWebhookDelivery counts one webhook delivery attempt in
// ringfence_webhook_deliveries_total. An outcome outside the three
// constants is counted as failed.
func (s *Server) CountWebhookDelivery(o WebhookOutcome) {
	c, ok := s.metrics.webhooks[o]
	if !ok {
		c = s.metrics.webhooks[WebhookFailed]
	}
	c.Inc()
}

// releaseMetricsKeep is how long a completed or rolled-back release stays
// in the release metrics; draft, live and halted ones stay while they are.
const releaseMetricsKeep = 24 * time.Hour

var releaseStates = []store.ReleaseState{store.ReleaseDraft, store.ReleaseRolling, store.ReleaseAwaitingApproval, store.ReleasePaused,
	store.ReleaseCompleted, store.ReleaseHalted, store.ReleaseRolledBack}

var gateOutcomes = []rollout.Outcome{rollout.Pass, rollout.Fail, rollout.Inconclusive, rollout.NoData, rollout.Error}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, events: map[string]prometheus.Counter{}, webhooks: map[WebhookOutcome]prometheus.Counter{}}

	checkins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringfence_checkins_total",
		Help: "Device check-ins answered over HTTP, by outcome: ok (2xx), rejected (another 4xx), unauthorized (401, 403), throttled (429), unavailable (503), error (another 5xx).",
	}, []string{"outcome"})
	for i, name := range checkinOutcomeNames {
		m.checkins[i] = checkins.WithLabelValues(name)
	}
	m.checkinSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ringfence_checkin_duration_seconds",
		Help:    "Time to answer a device check-in over HTTP, whatever the outcome: from the request's headers to its answer written.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringfence_device_events_total",
		Help: "Device events stored from check-ins, by type (the device protocol's event types; other for anything else).",
	}, []string{"type"})
	for _, t := range protocol.EventTypes {
		m.events[t] = events.WithLabelValues(t)
	}
	m.otherEvents = events.WithLabelValues("other")

	m.tickSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ringfence_controller_tick_duration_seconds",
		Help:    "Time one rollout controller tick took to judge every release, on the replica holding the lease.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	})
	m.tickFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringfence_controller_tick_failures_total",
		Help: "Controller ticks that could not judge or update every release (the log says which and why).",
	})
	m.tickPanics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringfence_controller_panics_total",
		Help: "Releases whose judgement panicked; each was halted for a person (the log has the stack).",
	})
	storeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringfence_store_errors_total",
		Help: "Store calls that failed, by kind: unavailable (the database could not be reached) or failed (any other error). Not found, conflicts and concurrent changes are answers, not errors.",
	}, []string{"kind"})
	m.storeErrors[storeUnavailable] = storeErrors.WithLabelValues("unavailable")
	m.storeErrors[storeFailed] = storeErrors.WithLabelValues("failed")
	halts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringfence_release_halts_total",
		Help: "Releases halted on this replica, by who halted them: controller (a gate failed, or a wave's deadline passed) or person (the halt API).",
	}, []string{"by"})
	m.halts[haltByController] = halts.WithLabelValues("controller")
	m.halts[haltByPerson] = halts.WithLabelValues("person")
	webhooks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringfence_webhook_deliveries_total",
		Help: "Webhook delivery attempts, by outcome: delivered (the receiver answered 2xx), failed (to be retried), abandoned (failed, and the last attempt).",
	}, []string{"outcome"})
	for _, o := range webhookOutcomes {
		m.webhooks[o] = webhooks.WithLabelValues(string(o))
	}

	reg.MustRegister(checkins, m.checkinSeconds, events, m.tickSeconds, m.tickFailures, m.tickPanics, storeErrors, halts, webhooks,
		releaseCollector{s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		Registry:            reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return m
}

// checkinDone counts an HTTP check-in and its latency; err is what the
// handler returned (nil: answered 200).
func (m *metrics) checkinDone(err error, took time.Duration) {
	m.checkins[checkinOutcome(err)].Inc()
	m.checkinSeconds.Observe(took.Seconds())
}

func checkinOutcome(err error) int {
	if err == nil {
		return checkinOK
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		he = storeError("check-in", err) // as serve renders it
	}
	switch c := he.Code; {
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		return checkinUnauthorized
	case c == http.StatusTooManyRequests:
		return checkinThrottled
	case c == http.StatusServiceUnavailable:
		return checkinUnavailable
	case c >= 500:
		return checkinError
	case c >= 400:
		return checkinRejected
	}
	return checkinOK
}

// event counts one stored device event.
func (m *metrics) event(typ string) {
	if c, ok := m.events[typ]; ok {
		c.Inc()
		return
	}
	m.otherEvents.Inc()
}

// storeError counts a failed store call. Answers (not found, conflict,
// stale, not the leader) and calls whose caller went away (its context
// cancelled, as at shutdown) are not failures; a call that ran out of the
// time it was given is.
func (m *metrics) storeError(err error, ctxErr error) {
	switch {
	case err == nil, errors.Is(ctxErr, context.Canceled),
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrStale), errors.Is(err, store.ErrNotLeader):
	case errors.Is(err, store.ErrUnavailable):
		m.storeErrors[storeUnavailable].Inc()
	default:
		m.storeErrors[storeFailed].Inc()
	}
}

// halted counts a halt by actor.
func (m *metrics) halted(actor string) {
	if actor == controllerActor {
		m.halts[haltByController].Inc()
		return
	}
	m.halts[haltByPerson].Inc()
}

// MetricsHandler serves the server's metrics in Prometheus's text format
// (or OpenMetrics, when a scraper asks for it). ListenAndServe serves it
// at /metrics on Config.MetricsAddr; a test or an embedding program may
// serve it anywhere.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler }

// MetricsRegistry is the registry the server's metrics are in: a component
// running beside the server registers its own there.
func (s *Server) MetricsRegistry() prometheus.Registerer { return s.metrics.reg }

// metricsOnly is what the metrics listener serves: GET /metrics and
// nothing else, so that opening it to a scraper's network opens no API.
func (s *Server) metricsOnly() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			writeError(w, notFound("no such endpoint: %s %s; this listener serves GET /metrics only", r.Method, r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, &HTTPError{Code: http.StatusMethodNotAllowed, Msg: "method not allowed", Detail: r.Method + " /metrics: use GET"})
			return
		}
		s.metrics.handler.ServeHTTP(w, r)
	})
}

// tickFigures are what the last controller tick on this replica found: the
// gates and silence figures of every release it judged.
type tickFigures struct {
	at       time.Time
	releases []releaseFigures
}

type releaseFigures struct {
	id, channel     string
	wave            int
	gates           []rollout.GateResult
	offered, silent int64
}

// figuresOf is what a judgement says for the metrics.
func figuresOf(rel store.Release, j judgement) releaseFigures {
	f := releaseFigures{id: rel.ID, channel: rel.Channel, wave: rel.Wave, gates: j.gates}
	for _, c := range j.silence {
		f.offered += c.Offered
		f.silent += c.OfferedSilent
	}
	return f
}

// releaseCollector reads the release, gate and leadership figures when a
// scrape asks for them.
type releaseCollector struct{ s *Server }

// The descriptions of the figures read at scrape time.
var (
	buildInfoDesc = prometheus.NewDesc("ringfence_build_info",
		"Always 1; the labels name the running build, as ringfence version prints it.",
		[]string{"version", "revision", "goversion"}, nil)
	leaderDesc = prometheus.NewDesc("ringfence_controller_leader",
		"1 while this replica holds the rollout controller lease, else 0; summed over the replicas it should be 1.", nil, nil)
	lastTickDesc = prometheus.NewDesc("ringfence_controller_last_tick_timestamp_seconds",
		"When this replica last finished a controller tick, in Unix seconds (absent before its first, and while it does not hold the lease).", nil, nil)
	releaseStateDesc = prometheus.NewDesc("ringfence_release_state",
		"1 for the release's current state, 0 for the others (draft, rolling, awaiting-approval, paused, completed, halted, rolled-back). "+
			"Lists releases that are not finished, or halted; completed and rolled-back ones for 24 hours after.",
		[]string{"release", "channel", "state"}, nil)
	releaseWaveDesc = prometheus.NewDesc("ringfence_release_wave",
		"The release's current wave, counted from 0 in its plan.", []string{"release", "channel"}, nil)
	releaseWavesDesc = prometheus.NewDesc("ringfence_release_waves",
		"How many waves the release's plan has.", []string{"release", "channel"}, nil)
	killSwitchDesc = prometheus.NewDesc("ringfence_kill_switch_engaged",
		"1 for each engaged kill switch; scope is a channel, or * for every channel.", []string{"scope"}, nil)
	gateOutcomeDesc = prometheus.NewDesc("ringfence_gate_outcome",
		"1 for the gate's outcome at the last controller tick on this replica, 0 for the others (pass, fail, inconclusive, no-data, error).",
		[]string{"release", "channel", "wave", "metric", "outcome"}, nil)
	gateTreatedDesc = prometheus.NewDesc("ringfence_gate_treated",
		"The treated group's figure at the last controller tick: events per device-hour for rate gates (worker-crash, unclean-reboot, boot-loop, action-rate), a fraction of devices for share gates (silence, apply-failure, revert).",
		[]string{"release", "channel", "wave", "metric"}, nil)
	gateControlDesc = prometheus.NewDesc("ringfence_gate_control",
		"The control group's figure at the last controller tick, in the unit of ringfence_gate_treated.",
		[]string{"release", "channel", "wave", "metric"}, nil)
	gateExposureDesc = prometheus.NewDesc("ringfence_gate_exposure",
		"The treated group's size at the last controller tick: device-hours for rate gates, devices for share gates.",
		[]string{"release", "channel", "wave", "metric"}, nil)
	gateEvidenceDesc = prometheus.NewDesc("ringfence_gate_evidence",
		"The relative test's e-value at the last controller tick (0: not run); the gate fails at 1/alpha of its spec.",
		[]string{"release", "channel", "wave", "metric"}, nil)
	devicesOfferedDesc = prometheus.NewDesc("ringfence_release_devices_offered",
		"Devices offered the release, from the silence figures of the last controller tick.", []string{"release", "channel"}, nil)
	devicesSilentDesc = prometheus.NewDesc("ringfence_release_devices_silent",
		"Devices offered the release that were not heard from in time and did not confirm it healthy, at the last controller tick.",
		[]string{"release", "channel"}, nil)
)

func (c releaseCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfoDesc, leaderDesc, lastTickDesc, releaseStateDesc, releaseWaveDesc, releaseWavesDesc, killSwitchDesc,
		gateOutcomeDesc, gateTreatedDesc, gateControlDesc, gateExposureDesc, gateEvidenceDesc, devicesOfferedDesc, devicesSilentDesc} {
		ch <- d
	}
}

func (c releaseCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bi := version.Get()
	gauge(buildInfoDesc, 1, bi.Version, bi.Revision, bi.Go)
	leader := 0.0
	if s.isLeader.Load() {
		leader = 1
	}
	gauge(leaderDesc, leader)

	sn := s.snap.Load()
	now := s.now()
	for _, ri := range sn.byID {
		r := ri.rel
		switch r.State {
		case store.ReleaseCompleted, store.ReleaseRolledBack:
			if now.Sub(r.UpdatedAt) > releaseMetricsKeep {
				continue
			}
		}
		for _, st := range releaseStates {
			v := 0.0
			if st == r.State {
				v = 1
			}
			gauge(releaseStateDesc, v, r.ID, r.Channel, string(st))
		}
		gauge(releaseWaveDesc, float64(r.Wave), r.ID, r.Channel)
		gauge(releaseWavesDesc, float64(len(ri.view.Plan.Waves)), r.ID, r.Channel)
	}
	for scope := range sn.kills {
		gauge(killSwitchDesc, 1, scope)
	}

	t := s.tick.Load()
	if t == nil {
		return
	}
	gauge(lastTickDesc, float64(t.at.UnixNano())/1e9)
	for _, f := range t.releases {
		wave := strconv.Itoa(f.wave)
		gauge(devicesOfferedDesc, float64(f.offered), f.id, f.channel)
		gauge(devicesSilentDesc, float64(f.silent), f.id, f.channel)
		seen := make([]rollout.Metric, 0, len(f.gates))
		for _, g := range worstFirst(f.gates) {
			// A plan that names a metric twice in a wave shows its worse
			// gate: one series per release and metric.
			if slices.Contains(seen, g.Metric) {
				continue
			}
			seen = append(seen, g.Metric)
			m := string(g.Metric)
			for _, o := range gateOutcomes {
				v := 0.0
				if o == g.Outcome {
					v = 1
				}
				gauge(gateOutcomeDesc, v, f.id, f.channel, wave, m, string(o))
			}
			gauge(gateTreatedDesc, g.Treated, f.id, f.channel, wave, m)
			gauge(gateControlDesc, g.Control, f.id, f.channel, wave, m)
			gauge(gateExposureDesc, g.Exposure, f.id, f.channel, wave, m)
			gauge(gateEvidenceDesc, g.Evidence, f.id, f.channel, wave, m)
		}
	}
}

// worstFirst orders gates fail, error, inconclusive, no-data, pass, keeping
// the plan's order among equals.
func worstFirst(gs []rollout.GateResult) []rollout.GateResult {
	rank := func(o rollout.Outcome) int {
		switch o {
		case rollout.Fail:
			return 0
		case rollout.Error:
			return 1
		case rollout.Inconclusive:
			return 2
		case rollout.NoData:
			return 3
		}
		return 4
	}
	out := slices.Clone(gs)
	slices.SortStableFunc(out, func(a, b rollout.GateResult) int { return rank(a.Outcome) - rank(b.Outcome) })
	return out
}
