// Package server is Ringfence's control plane over HTTP: the device API
// (enrolment, check-in, artifact download), the admin API, health and
// readiness. Check-ins are served from an in-memory snapshot of releases
// and policies and written to the store in batches; nothing on the
// check-in path runs an aggregate query.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/version"
)

// Config holds the server's tunables; zero values take the defaults.
type Config struct {
	// CheckinInterval is the base interval the server asks devices to
	// wait between check-ins; each response jitters it by ±20%.
	CheckinInterval time.Duration
	// TLS, when set, is how ListenAndServe serves: HTTPS only.
	TLS *tls.Config
	// CounterWindow is the width of telemetry aggregation windows.
	CounterWindow time.Duration
	// SnapshotRefresh is how often the release snapshot is rebuilt from
	// the store, so that replicas see each other's changes.
	SnapshotRefresh time.Duration
	// BaseURL prefixes artifact URLs; empty means relative URLs.
	BaseURL string
	// Catalog is what bundles are validated against at publish.
	Catalog *content.Catalog
	// ControllerTick is how often the rollout controller judges every
	// live release: new telemetry halts a bad release within one tick.
	ControllerTick time.Duration
	// SilenceGrace is added to the longest jittered check-in interval
	// before a device that was offered a release counts as silent.
	SilenceGrace time.Duration
	// TUFDir is the signed-update repository's directory (package trust);
	// empty or without a root.json, the server publishes none.
	TUFDir string
	// StratumMin is K: every stratum of the early fleet with at least K
	// devices gets at least K of them in the canary wave.
	StratumMin int
	// Jitter, if set, draws the check-in jitter (a uniform number in
	// [0,1)) instead of the process's random source, so that a simulation
	// on one goroutine repeats exactly from its seed. It must be safe for
	// the server's concurrent check-ins, or the check-ins serial.
	Jitter func() float64
	// AuthFailures is how many failed authentications a source address
	// may make per minute (a burst of as many) before it is answered 429
	// without its credentials being looked at; default 10, negative for
	// no limit (failures are still logged and counted).
	AuthFailures int
	// EventsPerHour is how many events a device's check-ins may store an
	// hour, with a burst of one full check-in (1,000); beyond it a
	// check-in is answered 429 and nothing of it stored. Default 600,
	// negative for no limit.
	EventsPerHour int
	// Enrolments is how many devices may enrol a minute (a burst of as
	// many) with one enrolment token, and from one source address;
	// default 600, negative for no limit.
	Enrolments int
	// AuditKey keys the audit log's chain (nil: plain SHA-256, which
	// anyone who can write the database can recompute).
	AuditKey []byte
	// CheckpointKey signs checkpoints of the audit log about every
	// CheckpointEvery (default a minute); nil: none.
	CheckpointKey   ed25519.PrivateKey
	CheckpointEvery time.Duration
	// WebhookPoll is how often the sender looks for due webhook
	// deliveries (default a second); a change that enqueues one wakes it
	// at once.
	WebhookPoll time.Duration
	// WebhookRetry is how deliveries are retried (zero: notify.DefaultPolicy).
	WebhookRetry notify.Policy
	// WebhookClient sends deliveries (nil: notify.NewClient, which
	// follows no redirect to another host and, unless
	// WebhookAllowPrivate, connects to public addresses only).
	WebhookClient *http.Client
	// WebhookAllowPrivate lets subscriptions deliver to loopback, private
	// and link-local addresses: for receivers on the operator's own
	// network (and development).
	WebhookAllowPrivate bool
	// WebhookRand draws the retry jitter, uniform in [0,1) (nil: the
	// process's random source).
	WebhookRand func() float64
	// Console, if set, builds the web console (package console), which
	// the server mounts at /console/; a browser asking for "/" is sent
	// there. It is a constructor so that the console can read through
	// the server's own functions without the server importing it.
	Console func(*Server) http.Handler
	// MetricsAddr, when set, is where ListenAndServe serves the Prometheus
	// metrics, at GET /metrics: plain HTTP without a credential, on a
	// listener of its own that serves nothing else (docs/operations.md).
	MetricsAddr string
}

func (c *Config) defaults() {
	if c.CheckinInterval == 0 {
		c.CheckinInterval = 5 * time.Minute
	}
	if c.CounterWindow == 0 {
		c.CounterWindow = time.Minute
	}
	if c.AuthFailures == 0 {
		c.AuthFailures = 10
	}
	if c.Enrolments == 0 {
		c.Enrolments = 600
	}
	if c.EventsPerHour == 0 {
		c.EventsPerHour = 600
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = time.Minute
	}
	if c.WebhookPoll == 0 {
		c.WebhookPoll = time.Second
	}
	if c.WebhookRetry == (notify.Policy{}) {
		c.WebhookRetry = notify.DefaultPolicy
	}
	if c.WebhookRand == nil {
		c.WebhookRand = defaultWebhookRand
	}
	if c.SnapshotRefresh == 0 {
		c.SnapshotRefresh = 5 * time.Second
	}
	if c.ControllerTick == 0 {
		c.ControllerTick = 5 * time.Second
	}
	if c.SilenceGrace == 0 {
		c.SilenceGrace = 9 * time.Minute
	}
	if c.StratumMin == 0 {
		c.StratumMin = rollout.DefaultStratumMin
	}
	if c.Catalog == nil {
		c.Catalog = &content.Catalog{Types: map[content.TypeRef]*content.TemplateType{}}
	}
}

// Server is the control plane.
type Server struct {
	cfg   Config
	store store.Store
	now   func() time.Time
	log   *slog.Logger

	snap atomic.Pointer[snapshot]
	// snapGen numbers the snapshots as they are built (AnswerGeneration).
	snapGen atomic.Uint64
	// metaCache maps "channel@version" to artifactMeta; artifacts are
	// immutable, so entries never go stale.
	metaCache sync.Map
	rebuild   chan struct{}
	devices   deviceCache
	writer    *batchWriter
	hb        heartbeats
	hbMu      sync.Mutex

	ready atomic.Bool
	// loops are the background loops Start began; Wait waits for them.
	loops sync.WaitGroup
	// storeDown is set when a store call fails as unavailable and cleared
	// when a ping succeeds again; while it is set, check-ins answer 503
	// with Retry-After so devices keep their queued events and come back.
	storeDown atomic.Bool
	// lastCheckpoint is the last audit entry this server signed.
	lastCheckpoint atomic.Int64

	// The controller lease, held by one replica at a time.
	leaseMu  sync.Mutex
	lease    store.Lease
	isLeader atomic.Bool
	// offered remembers "release\x00device" offers already stored, until
	// the device reports running the version.
	offered sync.Map
	// authFail limits failed authentications per source address;
	// enrolByToken and enrolByAddr limit enrolments.
	authFail                  authFailures
	enrolByToken, enrolByAddr limiters
	events                    limiters // per device
	enrolled                  enrolAudit
	budgets                   budgets
	// tufMu serialises changes to the signed-update repository's files.
	tufMu sync.Mutex
	// preflightSlot lets one publish run preflight at a time: a large
	// bundle takes seconds of a core, and check-ins need the others.
	preflightSlot chan struct{}
	// hooks is the webhook sender's state.
	hooks webhookSender
	// judged holds the controller's last judgement of each live release
	// (release id → judged), for pages that follow it (WatchStatus).
	judged sync.Map
	// console is the web console's handler, nil without one.
	console http.Handler
	// keySeed derives keys for purposes other than the audit chain
	// (DeriveKey) when the server has no audit key.
	keySeed []byte

	metrics *metrics
	// tick is what the last controller tick on this replica found, for
	// the metrics; nil before it and while another replica leads.
	tick atomic.Pointer[tickFigures]
	// metricsAddr is where the metrics listener is bound, once
	// ListenAndServe has bound it.
	metricsAddr atomic.Pointer[net.Addr]
}

// New builds a server on a store. now is the clock (time.Now in
// production, a fake in tests).
func New(cfg Config, st store.Store, now func() time.Time, log *slog.Logger) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, now: now, log: log, rebuild: make(chan struct{}, 1), preflightSlot: make(chan struct{}, 1)}
	s.metrics = newMetrics(s)
	st = meteredStore{Store: st, m: s.metrics}
	s.store = st
	s.authFail.perMinute = cfg.AuthFailures
	s.enrolByToken.perMinute, s.enrolByAddr.perMinute = cfg.Enrolments, cfg.Enrolments
	s.events.perMinute, s.events.burst = max(1, cfg.EventsPerHour/60), maxEventsPerCheckin
	if cfg.EventsPerHour < 0 {
		s.events.perMinute = -1
	}
	s.writer = newBatchWriter(st, log)
	s.hooks.wake = make(chan struct{}, 1)
	s.hooks.sender = notify.Sender{Client: cfg.WebhookClient, Now: now}
	if s.hooks.sender.Client == nil {
		s.hooks.sender.Client = notify.NewClient(cfg.WebhookAllowPrivate)
	}
	s.snap.Store(&snapshot{})
	if cfg.AuditKey != nil {
		st.SetAuditKey(cfg.AuditKey)
	}
	s.keySeed = cfg.AuditKey
	if s.keySeed == nil {
		s.keySeed = make([]byte, 32)
		rand.Read(s.keySeed)
	}
	if cfg.Console != nil {
		s.console = cfg.Console(s)
	}
	return s
}

// DeriveKey is a 32-byte key for purpose, derived from the audit key, so
// that replicas sharing the audit key (they must) share it too; without an
// audit key it is random for this process.
func (s *Server) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, s.keySeed)
	m.Write([]byte("ringfence derived key: " + purpose))
	return m.Sum(nil)
}

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.now() }

// Log is the server's logger.
func (s *Server) Log() *slog.Logger { return s.log }

// Start loads the first snapshot and starts the background loops; they
// stop when ctx is done.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.AuditKey != nil {
		// Entries from before the server had a key are sealed with it
		// once, so that from now on every entry is keyed.
		n, err := s.store.SealAuditLog(ctx, s.cfg.AuditKey)
		switch {
		case err != nil:
			s.log.Error("audit log not sealed with the audit key; audit verify will name what is wrong", "err", err)
		case n > 0:
			s.log.Info("audit log sealed with the audit key", "entries", n)
			if _, err := s.store.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: "server", Action: "audit.seal",
				Reason: fmt.Sprintf("%d entries written before the audit key existed were checked and chained with it", n)}); err != nil {
				return fmt.Errorf("audit log: %w", err)
			}
		}
	}
	if err := s.refresh(ctx); err != nil {
		s.log.Warn("first snapshot failed; will retry", "err", err)
	}
	for _, loop := range []func(context.Context){s.writer.run, s.snapshotLoop, s.heartbeatLoop, s.healthLoop,
		s.controllerLoop, s.tufLoop, s.checkpointLoop, s.webhookLoop, s.watchLoop} {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			loop(ctx)
		}()
	}
	return nil
}

// Wait returns once the background loops have ended, after Start's
// context is done: a store or a directory they write is then free to
// close or remove.
func (s *Server) Wait() { s.loops.Wait() }

// Drain waits until every queued check-in write is stored and writes the
// pending heartbeats. Call it when no check-in is being served (after the
// HTTP server shut down, or between a simulation's serial check-ins).
func (s *Server) Drain() {
	s.writer.drain()
	s.flushEnrolments(context.Background(), true)
	if err := s.flushHeartbeats(context.Background()); err != nil {
		s.log.Warn("heartbeats not written", "err", err)
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		s.log.Warn("audit checkpoint not written", "err", err)
	}
}

func (s *Server) snapshotLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SnapshotRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.rebuild:
		}
		if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("snapshot refresh failed", "err", err)
		}
	}
}

// Refresh rebuilds the snapshot check-ins are answered from now, rather
// than at the next refresh tick.
func (s *Server) Refresh(ctx context.Context) error { return s.refresh(ctx) }

// changed rebuilds the snapshot after a change to releases, kill switches
// or policies, synchronously so the caller's next request sees it, and
// tells the other replicas (store.Announce), which rebuild theirs at once.
func (s *Server) changed(ctx context.Context) {
	if err := s.refresh(ctx); err != nil {
		s.log.Warn("snapshot refresh failed", "err", err)
		s.askRebuild()
	}
	if err := s.store.Announce(ctx); err != nil {
		// The others still refresh every SnapshotRefresh.
		s.log.Warn("change not announced to the other replicas", "err", err)
	}
}

func (s *Server) askRebuild() {
	select {
	case s.rebuild <- struct{}{}:
	default:
	}
}

// watchLoop rebuilds the snapshot whenever a replica announces a change
// (its own included: one rebuild more, harmless).
func (s *Server) watchLoop(ctx context.Context) {
	if err := s.store.WatchChanges(ctx, s.askRebuild); err != nil && ctx.Err() == nil {
		s.log.Warn("not watching the other replicas' changes; the snapshot refreshes every "+s.cfg.SnapshotRefresh.String(), "err", err)
	}
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	health := map[string]string{"status": "ok", "version": version.String()}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, health)
	})
	mux.Handle("GET /readyz", s.serve(s.handleReady))

	mux.Handle("POST /v1/enroll", s.serve(s.handleEnroll))
	mux.Handle("POST /v1/checkin", s.serve(s.handleCheckin))
	mux.Handle("GET /v1/artifacts/{vendor}/{channel}/{version}", s.serve(s.handleArtifact))
	mux.Handle("GET /tuf/metadata/{file}", s.serve(s.handleTUF))
	mux.Handle("GET /tuf/targets/{path...}", s.serve(s.handleTUF))

	s.adminRoutes(mux)
	s.webhookRoutes(mux)
	if s.console != nil {
		// The web console serves HTML under its own prefix, with its own
		// session and CSRF checks (docs/api.md, "Web console"); it is no
		// part of the JSON API the OpenAPI document describes.
		mux.Handle("/console/", s.console)
	}
	// The catch-all keeps 404s in JSON; it also takes requests that the
	// mux would answer 405, so it answers those itself.
	mux.Handle("/", s.serve(func(w http.ResponseWriter, r *http.Request) error {
		if s.console != nil && r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && wantsHTML(r) {
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
			return nil
		}
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return &HTTPError{Code: http.StatusMethodNotAllowed, Msg: "method not allowed",
				Detail: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))}
		}
		return notFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	return plainPaths(mux)
}

// wantsHTML reports whether a request prefers an HTML page: a browser's
// Accept names text/html; API clients ask for JSON or anything.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
			return true
		}
	}
	return false
}

// plainPaths refuses a path with a control character (a NUL reached the
// file system as a 500 before) before any route sees it.
func plainPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if at, c, bad := unprintable(r.URL.Path); bad {
			writeError(w, badRequest("path: character %U at byte %d is not allowed in a path", c, at))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedMethods lists the methods that have a route for r's path.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.markStore(err)
		return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "not ready", Detail: "store unreachable or schema not migrated", Err: err, RetryAfter: 5}
	}
	s.storeDown.Store(false)
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// ListenAndServe serves on addr until ctx is done, then shuts down
// gracefully: it stops accepting, finishes requests in flight and flushes
// queued writes. ready, if not nil, receives the bound address.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln, ready)
}

// Serve is ListenAndServe on a listener the caller bound: a command can
// bind its port before it creates anything on disk, so that a port in
// use leaves no data directory behind.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) (err error) {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	var metricsHS *http.Server
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics: listen on %s: %w", s.cfg.MetricsAddr, err)
		}
		a := mln.Addr()
		s.metricsAddr.Store(&a)
		metricsHS = &http.Server{
			Handler:           s.metricsOnly(),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		go metricsHS.Serve(mln)
		s.log.Info("serving metrics", "addr", "http://"+a.String()+"/metrics")
		defer metricsHS.Close()
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	if err := s.Start(runCtx); err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// ready runs before the first request is served (connections wait in
	// the listen backlog), so what it sets up, such as dev-mode seeding, is
	// in place when /readyz first answers.
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "version", version.String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = hs.Shutdown(shutCtx)
	if metricsHS != nil {
		metricsHS.Shutdown(shutCtx) // a scrape in flight finishes; Close above ends the rest
	}
	s.Drain()
	stop()
	s.Wait() // the caller closes the store next
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// MetricsAddr is the address the metrics listener is bound to, once
// ListenAndServe has bound it (nil: none, or not yet).
func (s *Server) MetricsAddr() net.Addr {
	if a := s.metricsAddr.Load(); a != nil {
		return *a
	}
	return nil
}

// markStore notes a store error; an unavailable store flips the server
// into answering check-ins with 503 until a ping succeeds.
func (s *Server) markStore(err error) {
	if errors.Is(err, store.ErrUnavailable) && !s.storeDown.Swap(true) {
		s.log.Error("store unavailable; check-ins answer 503 until it returns", "err", err)
	}
}

// healthLoop pings the store: every second while it is down, so service
// resumes promptly, and every ten seconds otherwise.
func (s *Server) healthLoop(ctx context.Context) {
	for {
		wait := 10 * time.Second
		if s.storeDown.Load() {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.store.Ping(pctx)
		cancel()
		switch {
		case err == nil:
			if s.storeDown.Swap(false) {
				s.log.Info("store reachable again; serving check-ins")
			}
		case ctx.Err() == nil:
			s.markStore(err)
		}
	}
}

// TuneGC applies the server's garbage-collector default: GOGC=50 unless the
// GOGC environment variable says otherwise. The server's heap is mostly its
// long-lived device cache, so the default GOGC=100 would let the heap grow
// to twice that cache between collections; 50 keeps memory per device
// within its budget for a few percent of CPU (see docs/benchmarks.md).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}
