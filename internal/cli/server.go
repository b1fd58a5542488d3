package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/ringfence/ringfence/internal/console"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/version"
)

type serverFlags struct {
	data            string
	listen          string
	db              string
	dev             bool
	logFormat       string
	logLevel        string
	checkinInterval time.Duration
	controllerTick  time.Duration
	silenceGrace    time.Duration
	authFailures    int
	enrolments      int
	eventsPerHour   int
	catalog         string
	config          string
	tlsCert, tlsKey string
	insecureHTTP    bool
	auditKey        string
	auditSigningKey string
	checkpointEvery time.Duration
	webhookRetry    time.Duration
	webhookAttempts int
	webhookPrivate  bool
	metricsAddr     string
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane",
		Long: `Run the Ringfence control plane: device API (enrolment, check-in, artifacts),
admin API, /healthz and /readyz, and Prometheus metrics with --metrics-addr.

Every flag can also be set by a RINGFENCE_* environment variable (--checkin-interval
is RINGFENCE_CHECKIN_INTERVAL) or by a key in a YAML file named by --config
(checkin_interval: 5m). A flag on the command line wins over the environment,
which wins over the file.

--tls-cert and --tls-key serve HTTPS (TLS 1.2 or later); SIGHUP loads them
again, so a renewed certificate needs no restart (a reload that fails keeps the
certificate in use, and says so in the log). Plain HTTP carries bearer tokens
and device credentials in clear: on an address other than loopback it needs
--insecure-http, for a server behind a proxy that terminates TLS.

--metrics-addr serves Prometheus metrics at /metrics on a listener of its own,
plain HTTP without a credential and nothing else on it: bind it to loopback or
an internal network that only the scraper reaches (docs/operations.md). Off by
default.

--dev seeds a development setup and writes its credentials to
<data>/dev-credentials.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyConfig(cmd.LocalFlags(), f.config); err != nil {
				return usage(err)
			}
			return runServer(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "./ringfence-data", "data directory (the embedded database lives here)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fl.StringVar(&f.db, "db", "", "database URL: empty for embedded SQLite in the data directory, postgres://... for PostgreSQL")
	fl.BoolVar(&f.dev, "dev", false, "development mode: seed tenants, tokens and a released bundle")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.DurationVar(&f.checkinInterval, "checkin-interval", 5*time.Minute, "base interval between device check-ins (jittered ±20%)")
	fl.DurationVar(&f.controllerTick, "controller-tick", 5*time.Second, "how often the rollout controller judges live releases (a failing gate halts within one tick)")
	fl.IntVar(&f.authFailures, "auth-failures", 10, "failed authentications a source address may make per minute before it is answered 429 (-1: no limit; behind a proxy, all clients share its address)")
	fl.IntVar(&f.eventsPerHour, "events-per-hour", 600, "events a device's check-ins may store an hour, beyond a burst of 1,000 (-1: no limit)")
	fl.IntVar(&f.enrolments, "enrolments", 600, "devices that may enrol a minute with one enrolment token, and from one source address (-1: no limit)")
	fl.DurationVar(&f.silenceGrace, "silence-grace", 9*time.Minute, "grace after a device's longest jittered check-in interval before it counts as silent")
	fl.StringVar(&f.catalog, "catalog", "", "directory with template-types/ and manifests/ to validate published bundles against (default: the embedded examples)")
	fl.StringVar(&f.config, "config", "", "YAML config file")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain to serve HTTPS with (reloaded on SIGHUP)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP on an address other than loopback (behind a proxy that terminates TLS)")
	fl.StringVar(&f.auditKey, "audit-key-file", "", "key the audit log is chained with, hex (default <data>/audit.key, made on first start; every replica needs the same)")
	fl.DurationVar(&f.checkpointEvery, "audit-checkpoint-interval", time.Minute, "how often the head of the audit log is signed, when it moved")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "address to serve Prometheus metrics on at /metrics: its own listener, plain HTTP, no credential (loopback or an internal network; empty: off)")
	fl.StringVar(&f.auditSigningKey, "audit-signing-key-file", "", "ed25519 seed audit checkpoints are signed with, hex (default <data>/audit-signing.key, made on first start; every replica needs the same)")
	fl.DurationVar(&f.webhookRetry, "webhook-retry", notify.DefaultPolicy.First, "wait after a webhook delivery's first failed attempt; each later wait doubles, up to an hour, with jitter")
	fl.IntVar(&f.webhookAttempts, "webhook-attempts", notify.DefaultPolicy.Attempts, "attempts a webhook delivery gets before it is marked failed")
	fl.BoolVar(&f.webhookPrivate, "webhook-allow-private", false, "deliver webhooks to loopback, private and link-local addresses too (receivers on your own network; always on with --dev)")
	return c
}

// applyConfig fills flags not given on the command line from RINGFENCE_*
// variables, then from the config file.
func applyConfig(fs *pflag.FlagSet, file string) error {
	if file == "" {
		file = os.Getenv("RINGFENCE_CONFIG")
	}
	fileValues := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&fileValues); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: %v", file, err)
		}
		for k := range fileValues {
			if fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil || k == "config" {
				return fmt.Errorf("config %s: unknown key %q", file, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "config" {
			return
		}
		env := "RINGFENCE_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", env, v, err))
			}
			return
		}
		if v, ok := fileValues[strings.ReplaceAll(fl.Name, "-", "_")]; ok {
			if err := fs.Set(fl.Name, fmt.Sprint(v)); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s: %v", file, fl.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

func runServer(ctx context.Context, f serverFlags, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return usage(err)
	}
	if f.checkinInterval < time.Second {
		return usage(fmt.Errorf("--checkin-interval: %v is below one second", f.checkinInterval))
	}
	if f.controllerTick < 10*time.Millisecond || f.controllerTick > time.Minute {
		return usage(fmt.Errorf("--controller-tick: %v is outside 10ms-1m", f.controllerTick))
	}
	if f.webhookRetry < 10*time.Millisecond || f.webhookRetry > time.Hour {
		return usage(fmt.Errorf("--webhook-retry: %v is outside 10ms-1h", f.webhookRetry))
	}
	if f.webhookAttempts < 1 || f.webhookAttempts > 100 {
		return usage(fmt.Errorf("--webhook-attempts: %d: want 1 to 100", f.webhookAttempts))
	}
	if f.authFailures == 0 || f.authFailures < -1 {
		return usage(fmt.Errorf("--auth-failures: %d: want 1 or more, or -1 for no limit", f.authFailures))
	}
	if f.eventsPerHour < 60 && f.eventsPerHour != -1 {
		return usage(fmt.Errorf("--events-per-hour: %d: want 60 or more, or -1 for no limit", f.eventsPerHour))
	}
	if f.enrolments == 0 || f.enrolments < -1 {
		return usage(fmt.Errorf("--enrolments: %d: want 1 or more, or -1 for no limit", f.enrolments))
	}
	if f.silenceGrace <= 0 {
		return usage(fmt.Errorf("--silence-grace: %v must be above zero", f.silenceGrace))
	}
	if f.checkpointEvery < 100*time.Millisecond || f.checkpointEvery > 24*time.Hour {
		return usage(fmt.Errorf("--audit-checkpoint-interval: %v is outside 100ms-24h", f.checkpointEvery))
	}
	var certs *server.CertFiles
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usage(errors.New("--tls-cert and --tls-key: give both, or neither"))
	}
	if f.tlsCert != "" {
		if certs, err = server.LoadCertFiles(f.tlsCert, f.tlsKey); err != nil {
			return usage(err)
		}
	} else if !f.insecureHTTP && !loopback(f.listen) {
		return usage(fmt.Errorf("--listen %s is not a loopback address: serve HTTPS there with --tls-cert and --tls-key, or say --insecure-http if a proxy in front terminates TLS (plain HTTP carries tokens in clear)", f.listen))
	}
	cat, err := server.ExampleCatalog()
	if f.catalog != "" {
		cat, err = content.LoadCatalog(filepath.Join(f.catalog, "template-types"), filepath.Join(f.catalog, "manifests"))
	}
	if err != nil {
		return usage(fmt.Errorf("catalog: %w", err))
	}
	server.TuneGC()
	// The port first: a port in use must not leave a data directory and
	// new keys behind.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	defer ln.Close()
	st, err := sqlstore.Open(ctx, f.db, f.data)
	if err != nil {
		return usage(err)
	}
	defer st.Close()
	log.Info("store open", "dialect", st.Dialect(), "data", f.data)
	if f.auditKey == "" {
		f.auditKey = filepath.Join(f.data, "audit.key")
	}
	if f.auditSigningKey == "" {
		f.auditSigningKey = filepath.Join(f.data, "audit-signing.key")
	}
	auditKey, err := keyFile(f.auditKey, 32, log)
	if err != nil {
		return usage(fmt.Errorf("--audit-key-file: %w", err))
	}
	seed, err := keyFile(f.auditSigningKey, ed25519.SeedSize, log)
	if err != nil {
		return usage(fmt.Errorf("--audit-signing-key-file: %w", err))
	}
	scheme := "http"
	var tlsCfg *tls.Config
	if certs != nil {
		scheme, tlsCfg = "https", certs.TLSConfig()
		log.Info("serving HTTPS", "cert", f.tlsCert, "not_after", certs.NotAfter())
		// Subscribed before serving: a SIGHUP that came before the
		// subscription would end the process.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go reloadOnHangup(ctx, hup, certs, log)
	}
	srv := server.New(server.Config{TLS: tlsCfg, AuditKey: auditKey, CheckpointKey: ed25519.NewKeyFromSeed(seed), CheckpointEvery: f.checkpointEvery, CheckinInterval: f.checkinInterval, ControllerTick: f.controllerTick, SilenceGrace: f.silenceGrace, AuthFailures: f.authFailures, Enrolments: f.enrolments, EventsPerHour: f.eventsPerHour, Catalog: cat,
		TUFDir:              filepath.Join(f.data, "tuf"),
		WebhookRetry:        notify.Policy{First: f.webhookRetry, Max: max(f.webhookRetry, notify.DefaultPolicy.Max), Attempts: f.webhookAttempts},
		WebhookAllowPrivate: f.webhookPrivate || f.dev,
		Console:             console.Handler,
		MetricsAddr:         f.metricsAddr}, st, time.Now, log)
	return srv.Serve(ctx, ln, func(addr net.Addr) {
		url := scheme + "://" + addr.String()
		if !f.dev {
			return
		}
		creds, err := srv.SeedDev(ctx, f.data, url)
		if err != nil {
			log.Error("dev mode seeding failed", "err", err)
			return
		}
		path := filepath.Join(f.data, "dev-credentials.json")
		metrics := "off (--metrics-addr 127.0.0.1:9464 serves them)"
		if a := srv.MetricsAddr(); a != nil {
			metrics = "http://" + a.String() + "/metrics"
		}
		fmt.Fprintf(stdout, `
Ringfence %s is running in development mode at %s
  web console: %s/console/ (sign in with a token below)
  vendor acme (channel acme/ipc, bundle 292 released), organisation contoso
  credentials: %s
  metrics: %s

Try:
  export RINGFENCE_SERVER=%s RINGFENCE_TOKEN=%s
  ringfence release list
  curl -s %s/v1/enroll -d '{"token":"%s","platform":"windows","os_build":"22631","agent_version":"7.12.0"}'

Development mode keeps secrets in a plain file; never use it for real fleets.
`, version.String(), url, url, path, metrics, url, creds.AdminToken, url, creds.EnrollToken)
	})
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadOnHangup loads the TLS certificate again on every hangup signal
// until ctx ends.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, certs *server.CertFiles, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := certs.Reload(); err != nil {
				log.Error("TLS certificate not reloaded; serving the previous one", "err", err)
				continue
			}
			log.Info("TLS certificate reloaded", "not_after", certs.NotAfter())
		}
	}
}

// keyFile reads a secret of n bytes, hex, from path; a missing file is
// made with a new random secret, readable by the owner only.
func keyFile(path string, n int, log *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, n)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = fmt.Fprintln(fh, hex.EncodeToString(key))
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		log.Info("made a new key; keep it with the data, and give the same file to every replica", "file", path)
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != n {
		return nil, fmt.Errorf("%s: want %d bytes in hex on one line", path, n)
	}
	return key, nil
}
