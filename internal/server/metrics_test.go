package server_test

// The Prometheus metrics are tested as a scraper and an operator meet
// them: a live server's /metrics passes promtool's checks, the example
// alert rules load and fire when they should, and a halt moves the
// release's state in the metrics.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/version"
)

const alertRules = "../../deploy/prometheus/ringfence-alerts.yml"

// promisedMetrics are the families docs/operations.md describes; every one
// is in a scrape once a release has been judged.
var promisedMetrics = []string{
	"ringfence_build_info",
	"ringfence_checkins_total",
	"ringfence_checkin_duration_seconds",
	"ringfence_device_events_total",
	"ringfence_release_state",
	"ringfence_release_wave",
	"ringfence_release_waves",
	"ringfence_release_halts_total",
	"ringfence_release_devices_offered",
	"ringfence_release_devices_silent",
	"ringfence_gate_outcome",
	"ringfence_gate_treated",
	"ringfence_gate_control",
	"ringfence_gate_exposure",
	"ringfence_gate_evidence",
	"ringfence_controller_leader",
	"ringfence_controller_tick_duration_seconds",
	"ringfence_controller_tick_failures_total",
	"ringfence_controller_last_tick_timestamp_seconds",
	"ringfence_store_errors_total",
	"ringfence_webhook_deliveries_total",
}

// scrape is one scrape: each series as the text format writes it,
// name{label="value",...} with the labels sorted, and its value.
type scrape struct {
	text   string
	series map[string]float64
}

func parseScrape(t testing.TB, text string) scrape {
	t.Helper()
	s := scrape{text: text, series: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics: cannot read %q", line)
		}
		s.series[line[:i]] = v
	}
	return s
}

// key writes a series as the text format does.
func key(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	type pair struct{ k, v string }
	var ps []pair
	for i := 0; i+1 < len(labels); i += 2 {
		ps = append(ps, pair{labels[i], labels[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	var b strings.Builder
	b.WriteString(name + "{")
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.k + `="` + p.v + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// value is a series' value; the test fails if the scrape lacks it.
func (s scrape) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.series[key(name, labels...)]
	if !ok {
		t.Fatalf("no series %s in the scrape:\n%s", key(name, labels...), s.grep("ringfence_"))
	}
	return v
}

func (s scrape) has(name string, labels ...string) bool {
	_, ok := s.series[key(name, labels...)]
	return ok
}

// family reports whether any series of a metric family is there.
func (s scrape) family(name string) bool {
	for k := range s.series {
		base, _, _ := strings.Cut(k, "{")
		if base == name || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, "_bucket"), "_sum"), "_count") == name {
			return true
		}
	}
	return false
}

// grep is the scrape's lines that contain s.
func (s scrape) grep(sub string) string {
	var out []string
	for _, l := range strings.Split(s.text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// scrape reads the server's metrics through its handler.
func (e *env) scrape(t testing.TB) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	return parseScrape(t, rec.Body.String())
}

// promtool is the path of Prometheus's promtool, or "" without it; under
// CI=true a missing promtool fails the test: scripts/test installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not on PATH under CI=true; scripts/test installs it (scripts/promtool, Debian's prometheus package)")
		}
		t.Log("promtool is not on PATH, so its checks are left out; scripts/promtool installs it")
		return ""
	}
	return p
}

// checkMetrics runs promtool check metrics on a scrape: the format, and
// its lint of names, units, suffixes and help. Without promtool (outside
// CI) it does nothing.
func checkMetrics(t *testing.T, bin, text string) {
	t.Helper()
	if bin == "" {
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsListenerPassesPromtool serves the metrics on their own
// listener, as `ringfence server --metrics-addr` does, drives check-ins,
// a release and a halt through the API, and hands the scrape to promtool.
func TestMetricsListenerPassesPromtool(t *testing.T) {
	bin := promtool(t)
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Catalog: cat, MetricsAddr: "127.0.0.1:0", ControllerTick: 20 * time.Millisecond, AuthFailures: -1},
		st, time.Now, quietLogger())
	runCtx, cancel := context.WithCancel(ctx)
	type ready struct {
		url   string
		creds *server.DevCredentials
		err   error
	}
	readyc := make(chan ready, 1)
	served := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		served <- srv.ListenAndServe(runCtx, "127.0.0.1:0", func(a net.Addr) {
			url := "http://" + a.String()
			creds, err := srv.SeedDev(ctx, dir, url)
			readyc <- ready{url, creds, err}
		})
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()
	var r ready
	select {
	case r = <-readyc:
	case err := <-served:
		t.Fatalf("ListenAndServe returned before it was ready: %v", err)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if srv.MetricsAddr() == nil {
		t.Fatal("MetricsAddr: nil after ListenAndServe bound the metrics listener")
	}
	metricsURL := "http://" + srv.MetricsAddr().String()
	e := &env{st: st, srv: srv, url: r.url, creds: r.creds}

	// Check-ins: answered, refused for the credential, refused for the body.
	d := e.enroll(t, "7.12.0")
	e.checkin(t, d, d.report(292, server.EventReport{Seq: 1, Type: "worker-crash", Channel: "acme/ipc", Version: 292}))
	e.call(t, "POST", "/v1/checkin", "rfd_not-a-credential", d.report(292))
	e.call(t, "POST", "/v1/checkin", d.cred, `{"platform":`)
	rel := e.startRelease(t, quickPlan(), "normal")

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	// The controller ticks every 20 ms: wait until it has judged 293.
	var s scrape
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := get(metricsURL + "/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: %d\n%s", code, body)
		}
		s = parseScrape(t, body)
		if s.has("ringfence_controller_leader") && s.value(t, "ringfence_controller_leader") == 1 &&
			s.has("ringfence_release_devices_offered", "release", rel.ID, "channel", "acme/ipc") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not judge %s within 20s:\n%s", rel.ID, s.grep("ringfence_"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The controller updates the release every tick, so a halt may meet
	// its change and be asked to retry (409, "changed meanwhile").
	for try := 0; ; try++ {
		code, b := e.call(t, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "metrics test"})
		if code == http.StatusOK {
			break
		}
		if code != http.StatusConflict || !strings.Contains(string(b), "changed meanwhile") || try == 50 {
			t.Fatalf("halt: %d %s", code, b)
		}
	}
	_, body := get(metricsURL + "/metrics")
	s = parseScrape(t, body)
	checkMetrics(t, bin, body)

	for _, name := range promisedMetrics {
		if !s.family(name) {
			t.Errorf("metric %s is missing from the scrape", name)
		}
	}
	for name, want := range map[string]float64{
		key("ringfence_checkins_total", "outcome", "ok"):                                                                            1,
		key("ringfence_checkins_total", "outcome", "unauthorized"):                                                                  1,
		key("ringfence_checkins_total", "outcome", "rejected"):                                                                      1,
		key("ringfence_checkin_duration_seconds_count"):                                                                             3,
		key("ringfence_device_events_total", "type", "worker-crash"):                                                                1,
		key("ringfence_release_halts_total", "by", "person"):                                                                        1,
		key("ringfence_build_info", "version", version.String(), "revision", version.Get().Revision, "goversion", version.Get().Go): 1,
	} {
		if got, ok := s.series[name]; !ok || got != want {
			t.Errorf("%s: got %v (present %v), want %v", name, got, ok, want)
		}
	}
	// Every metric the example alert rules use is one the server exports.
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\bringfence_[a-z_]+`).FindAllString(string(rules), -1) {
		if strings.HasSuffix(name, "_") || name == "ringfence_releases" || name == "ringfence_controller" {
			continue // group names
		}
		if !s.family(name) {
			t.Errorf("%s uses %s, which the server does not export", alertRules, name)
		}
	}

	// The API's listener serves no metrics; the metrics listener nothing else.
	if code, _ := get(r.url + "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d, want 404", code)
	}
	if code, _ := get(metricsURL + "/v1/releases"); code != http.StatusNotFound {
		t.Errorf("GET /v1/releases on the metrics listener: %d, want 404", code)
	}
}

// TestAlertRules loads the example rules with promtool and runs their
// unit tests: a halted release and a missing controller fire, and stop.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	if bin == "" {
		t.Skip("needs promtool")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertRules)},
		{"test", "rules", "ringfence-alerts.test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = filepath.Dir(alertRules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestMetricsFollowAHalt: devices crash on 293, the controller halts it,
// and the metrics say so: the state moves from rolling to halted, the
// halt is counted, and the gate that failed shows its figures.
func TestMetricsFollowAHalt(t *testing.T) {
	e := newEnv(t, "")
	f := standardFleet(t, e)
	f.onRelease = func(d *fleetDevice) []server.EventReport {
		return []server.EventReport{{Type: "worker-crash"}}
	}
	rel := e.startRelease(t, quickPlan(), "normal")
	state := func(s scrape, st store.ReleaseState) float64 {
		t.Helper()
		return s.value(t, "ringfence_release_state", "release", rel.ID, "channel", "acme/ipc", "state", string(st))
	}
	before := e.scrape(t)
	if state(before, store.ReleaseRolling) != 1 || state(before, store.ReleaseHalted) != 0 {
		t.Fatalf("a rolling release: %s", before.grep(rel.ID))
	}
	if n := before.value(t, "ringfence_release_halts_total", "by", "controller"); n != 0 {
		t.Fatalf("halts before any: %v", n)
	}

	st := f.until(t, 12, "halted", inState("halted"), rel.ID)
	after := e.scrape(t)
	if state(after, store.ReleaseHalted) != 1 || state(after, store.ReleaseRolling) != 0 {
		t.Fatalf("after the halt (%s): %s", st.Summary, after.grep(rel.ID))
	}
	if n := after.value(t, "ringfence_release_halts_total", "by", "controller"); n != 1 {
		t.Errorf("halts by the controller: got %v, want 1", n)
	}
	wave := strconv.Itoa(st.Release.Wave)
	if w := after.value(t, "ringfence_release_wave", "release", rel.ID, "channel", "acme/ipc"); strconv.Itoa(int(w)) != wave {
		t.Errorf("wave: got %v, want %s (%s)", w, wave, st.Release.WaveName)
	}
	gate := []string{"release", rel.ID, "channel", "acme/ipc", "wave", wave, "metric", string(rollout.GateWorkerCrash)}
	if v := after.value(t, "ringfence_gate_outcome", append(gate, "outcome", "fail")...); v != 1 {
		t.Errorf("worker-crash gate: not failed in the tick that halted:\n%s", after.grep("ringfence_gate_outcome{"))
	}
	if treated, control := after.value(t, "ringfence_gate_treated", gate...), after.value(t, "ringfence_gate_control", gate...); !(treated > control) {
		t.Errorf("worker-crash gate: treated %v is not above control %v", treated, control)
	}
	if ex := after.value(t, "ringfence_gate_exposure", gate...); !(ex > 0) || !after.has("ringfence_gate_evidence", gate...) {
		t.Errorf("worker-crash gate: exposure %v, or no evidence:\n%s", ex, after.grep("metric=\"worker-crash\""))
	}
	if n := after.value(t, "ringfence_release_devices_offered", "release", rel.ID, "channel", "acme/ipc"); n < 40 {
		t.Errorf("devices offered: %v, want the canary's 40 or more", n)
	}
	if n := after.value(t, "ringfence_device_events_total", "type", "worker-crash"); n < 40 {
		t.Errorf("worker-crash events stored: %v, want one or more from each of the canary's devices", n)
	}
	if n := after.value(t, "ringfence_controller_tick_duration_seconds_count"); n < 2 {
		t.Errorf("controller ticks observed: %v", n)
	}
	checkMetrics(t, promtool(t), after.text)

	// The next tick no longer judges it: its gate figures leave.
	f.onRelease = nil
	f.tick(t)
	if s := e.scrape(t); s.has("ringfence_gate_outcome", append(gate, "outcome", "fail")...) {
		t.Errorf("gate figures of a release no longer judged are still exported:\n%s", s.grep("ringfence_gate_outcome{"))
	}
}

// TestMetricsForgetFinishedReleases: a person's halt is counted as such; the
// release, rolled back at the next tick as no device ran it, stays in
// the metrics for a day and then leaves them.
func TestMetricsForgetFinishedReleases(t *testing.T) {
	e := newEnv(t, "")
	rel := e.startRelease(t, quickPlan(), "normal")
	e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "wrong bundle"}, nil)
	s := e.scrape(t)
	if v := s.value(t, "ringfence_release_state", "release", rel.ID, "channel", "acme/ipc", "state", "halted"); v != 1 {
		t.Fatalf("halted by a person: %s", s.grep(rel.ID))
	}
	if n := s.value(t, "ringfence_release_halts_total", "by", "person"); n != 1 {
		t.Errorf("halts by a person: %v, want 1", n)
	}
	if err := e.srv.ControlOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = e.scrape(t)
	if v := s.value(t, "ringfence_release_state", "release", rel.ID, "channel", "acme/ipc", "state", "rolled-back"); v != 1 {
		t.Fatalf("rolled back: %s", s.grep(rel.ID))
	}
	e.clock.Advance(25 * time.Hour)
	if err := e.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.scrape(t); strings.Contains(s.text, rel.ID) || strings.Contains(s.text, seedRelease) {
		t.Errorf("releases finished more than a day ago are still exported:\n%s", s.grep("release="))
	}
}

// TestMetricsCountCheckins: every outcome of a check-in lands in its own
// series, and events by their type.
func TestMetricsCountCheckins(t *testing.T) {
	e := newEnvConfig(t, "", server.Config{ControllerTick: 24 * time.Hour, EventsPerHour: 60})
	d := e.enroll(t, "7.12.0")
	var evs []server.EventReport
	for i, typ := range []string{"applied", "healthy", "actions", "actions"} {
		ev := server.EventReport{Seq: uint64(i + 1), Type: typ, Channel: "acme/ipc", Version: 292}
		if typ == "actions" {
			ev.Counts = map[string]int64{"log": 3}
		}
		evs = append(evs, ev)
	}
	e.checkin(t, d, d.report(292, evs...))
	e.checkin(t, d, d.report(292, evs...)) // a retry: nothing new is stored
	e.call(t, "POST", "/v1/checkin", "", d.report(292))
	e.call(t, "POST", "/v1/checkin", d.cred, `{"platform":"windows","events":[{"seq":1,"type":"not-a-type"}]}`)
	// The event quota is a burst of 1,000, then 60 an hour (the clock
	// stands still): 996 more are stored, the next one is answered 429.
	var flood []server.EventReport
	for i := range 996 {
		flood = append(flood, server.EventReport{Seq: uint64(10 + i), Type: "reverted", Channel: "acme/ipc", Version: 292})
	}
	e.checkin(t, d, d.report(292, flood...))
	code, _ := e.call(t, "POST", "/v1/checkin", d.cred, d.report(292, server.EventReport{Seq: 2000, Type: "reverted", Channel: "acme/ipc", Version: 292}))
	if code != http.StatusTooManyRequests {
		t.Fatalf("over the event quota: %d, want 429", code)
	}
	s := e.scrape(t)
	for series, want := range map[string]float64{
		key("ringfence_checkins_total", "outcome", "ok"):             3,
		key("ringfence_checkins_total", "outcome", "unauthorized"):   1,
		key("ringfence_checkins_total", "outcome", "rejected"):       1,
		key("ringfence_checkins_total", "outcome", "throttled"):      1,
		key("ringfence_checkins_total", "outcome", "unavailable"):    0,
		key("ringfence_checkins_total", "outcome", "error"):          0,
		key("ringfence_checkin_duration_seconds_count"):              6,
		key("ringfence_device_events_total", "type", "applied"):      1,
		key("ringfence_device_events_total", "type", "healthy"):      1,
		key("ringfence_device_events_total", "type", "actions"):      2,
		key("ringfence_device_events_total", "type", "reverted"):     996,
		key("ringfence_device_events_total", "type", "worker-crash"): 0,
		key("ringfence_device_events_total", "type", "other"):        0,
	} {
		if got, ok := s.series[series]; !ok || got != want {
			t.Errorf("%s: got %v (present %v), want %v", series, got, ok, want)
		}
	}
	// Only the protocol's event types are labels: a type the device made
	// up never becomes a series.
	if strings.Contains(s.text, "not-a-type") {
		t.Error("an unknown event type became a label value")
	}
}

// unreachable is a store whose database is gone: every ping fails.
type unreachable struct{ store.Store }

func (unreachable) Ping(context.Context) error { return store.ErrUnavailable }

func TestMetricsCountStoreErrors(t *testing.T) {
	e := newEnv(t, "")
	before := e.scrape(t)
	srv := server.New(server.Config{}, unreachable{e.st}, time.Now, quietLogger())
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	resp, err := client.Get(hs.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz on an unreachable store: %d", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	s := parseScrape(t, rec.Body.String())
	if n := s.value(t, "ringfence_store_errors_total", "kind", "unavailable"); n != 1 {
		t.Errorf("store errors after a failed ping: %v, want 1", n)
	}
	// Answers are not errors: an unknown release is a 404, not a failure.
	e.call(t, "GET", "/v1/releases/rel-nope", e.creds.PublisherToken, nil)
	after := e.scrape(t)
	for _, kind := range []string{"unavailable", "failed"} {
		if a, b := after.value(t, "ringfence_store_errors_total", "kind", kind), before.value(t, "ringfence_store_errors_total", "kind", kind); a != b {
			t.Errorf("store errors of kind %s went from %v to %v on a healthy store", kind, b, a)
		}
	}
}

// TestMetricsAreTheServers: two servers in one process keep their own
// figures (neither uses the global registry), and a webhook sender counts
// its deliveries with CountWebhookDelivery.
func TestMetricsAreTheServers(t *testing.T) {
	a, b := newEnv(t, ""), newEnv(t, "")
	a.srv.CountWebhookDelivery(server.WebhookDelivered)
	a.srv.CountWebhookDelivery(server.WebhookFailed)
	a.srv.CountWebhookDelivery(server.WebhookFailed)
	a.srv.CountWebhookDelivery(server.WebhookAbandoned)
	a.srv.CountWebhookDelivery("made-up")
	sa, sb := a.scrape(t), b.scrape(t)
	for outcome, want := range map[string]float64{"delivered": 1, "failed": 3, "abandoned": 1} {
		if got := sa.value(t, "ringfence_webhook_deliveries_total", "outcome", outcome); got != want {
			t.Errorf("server a, %s: got %v, want %v", outcome, got, want)
		}
		if got := sb.value(t, "ringfence_webhook_deliveries_total", "outcome", outcome); got != 0 {
			t.Errorf("server b, %s: got %v, want 0 (another server's deliveries)", outcome, got)
		}
	}
	if strings.Contains(sa.text, "made-up") {
		t.Error("an unknown webhook outcome became a label value")
	}
}

// TestMetricsLeadership: the replica holding the lease says so.
func TestMetricsLeadership(t *testing.T) {
	e := newEnvConfig(t, "", server.Config{ControllerTick: 10 * time.Millisecond})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s := e.scrape(t)
		if s.value(t, "ringfence_controller_leader") == 1 && s.has("ringfence_controller_last_tick_timestamp_seconds") {
			if !e.srv.IsController() {
				t.Error("the metric says leader, IsController says not")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leadership within 10s:\n%s", s.grep("ringfence_controller"))
		}
	}
}

func TestHealthNamesTheVersion(t *testing.T) {
	e := newEnv(t, "")
	var out map[string]string
	e.must(t, http.StatusOK, "GET", "/healthz", "", nil, &out)
	if out["status"] != "ok" || out["version"] != version.String() || out["version"] == "" {
		t.Errorf("/healthz: got %v, want status ok and version %q", out, version.String())
	}
}
