// Package agentcli is ringfence-agent's command line: enroll, run, status
// and the hidden worker the agent starts for itself. Exit statuses: 0 ok,
// 1 refused (by the server, or the state on disk says no), 2 usage or I/O
// error, 75 (run) stopped cleanly for the launcher to start another agent
// build.
package agentcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/agent/worker"
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usage(err error) error   { return &exitError{2, err} }
func refused(err error) error { return &exitError{1, err} }

// Run executes the command line and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "ringfence-agent:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ringfence-agent",
		Short: "The Ringfence endpoint agent",
		Long: `ringfence-agent installs only content its vendor signed, runs it in a supervised
worker process and goes back to last-known-good content by itself when new
content crashes the worker or the host. See docs/agent.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       agent.Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usage(fmt.Errorf("%s: %w", c.CommandPath(), err)) })
	root.AddCommand(newEnrollCmd(), newRunCmd(), newLaunchCmd(), newStatusCmd(), newWorkerCmd())
	return root
}

func newEnrollCmd() *cobra.Command {
	var o agent.EnrollOptions
	var rootFile, caFile string
	c := &cobra.Command{
		Use:   "enroll --server URL --token TOKEN --data DIR [--root root.json] [--ca ca.pem]",
		Short: "Enrol this device with an organisation's enrolment token",
		Long: `Exchange an organisation's enrolment token for this device's identity, written to
DIR/device.json (mode 0600), with the initial trusted root in DIR/tuf/root.json.
--root is the root.json shipped with the agent; without it the server's first
root is trusted on first use, which is for development only. The server's TLS
certificate is verified with the system's roots, or with --ca alone (a private
CA), which is kept in DIR for run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Server == "" || o.Token == "" || o.Data == "" {
				return usage(errors.New("--server, --token and --data are required"))
			}
			if rootFile != "" {
				b, err := os.ReadFile(rootFile)
				if err != nil {
					return usage(err)
				}
				o.Root = b
			}
			if caFile != "" {
				b, err := agent.ReadCA(caFile, "")
				if err != nil {
					return usage(err)
				}
				if _, err := agent.HTTPClient(b, 0); err != nil {
					return usage(fmt.Errorf("--ca %s: %w", caFile, err))
				}
				o.CA = b
			}
			id, tofu, err := agent.Enroll(cmd.Context(), o)
			if err != nil {
				return refused(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "enrolled device %s in organisation %s at %s\n", id.DeviceID, id.Org, id.Server)
			if tofu {
				fmt.Fprintln(w, "warning: the signed-update root was trusted on first use; ship root.json with the agent (--root) for a real fleet")
			}
			fmt.Fprintf(w, "run it: ringfence-agent launch --data %s (or run, which cannot update itself)\n", o.Data)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Server, "server", "", "control plane URL")
	f.StringVar(&o.Token, "token", "", "the organisation's enrolment token")
	f.StringVar(&o.Data, "data", "", "the agent's data directory")
	f.StringVar(&rootFile, "root", "", "the initial trusted root.json shipped with the agent")
	f.StringVar(&caFile, "ca", "", "PEM CA certificates to verify the server's TLS certificate with, instead of the system's roots (kept for run)")
	f.StringVar(&o.Platform, "platform", "", "report this platform instead of this machine's (simulation, tests)")
	f.StringVar(&o.OSBuild, "os-build", "", "report this OS build instead of this machine's (simulation, tests)")
	f.StringVar(&o.AgentVersion, "agent-version", "", "report this agent version instead of "+agent.Version+" (simulation, tests)")
	return c
}

func newRunCmd() *cobra.Command {
	var cfg agent.Config
	var level, format, caFile string
	var workerTimeout time.Duration
	c := &cobra.Command{
		Use:   "run --data DIR",
		Short: "Check in, install signed content and keep it healthy, until stopped",
		Long: `Run the agent: on start, before loading anything, an activation that never
reached healthy is counted and, after --boot-limit starts, reverted; then the
worker starts with the active content and the agent checks in on the server's
interval, backing off with jitter while the server is unreachable.

RINGFENCE_FAULT injects faults for tests and demos:
  worker-crash:VENDOR/CHANNEL@VERSION  the worker crashes whenever it loads it
  host-crash:VENDOR/CHANNEL@VERSION    the agent kills itself while activating it, and at
                                       every start while it is loaded (a boot loop)
  hang:VENDOR/CHANNEL@VERSION          the worker stops answering once it loads it`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Data == "" {
				return usage(errors.New("--data is required"))
			}
			log, err := logger(cmd.ErrOrStderr(), level, format)
			if err != nil {
				return usage(err)
			}
			fault, err := worker.ParseFault(os.Getenv(worker.FaultEnv))
			if err != nil {
				return usage(fmt.Errorf("%s: %w", worker.FaultEnv, err))
			}
			spec, err := workerSpec()
			if err != nil {
				return usage(err)
			}
			ca, err := agent.ReadCA(caFile, cfg.Data)
			if err != nil {
				return usage(err)
			}
			if cfg.HTTP, err = agent.HTTPClient(ca, 60*time.Second); err != nil {
				return usage(fmt.Errorf("CA: %w", err))
			}
			spec.AnswerTimeout = workerTimeout
			cfg.Fault, cfg.Log, cfg.Worker = fault, log, spec
			// The agent's heap is small and mostly garbage from a
			// check-in and a TUF refresh a minute; collecting at half the
			// default growth keeps the idle process smaller on endpoints
			// for a negligible amount of CPU. GOGC still overrides it.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			return runAgent(cmd.Context(), cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Data, "data", "", "the agent's data directory (enrolled)")
	f.DurationVar(&cfg.Policy.Probation, "probation", agent.DefaultProbation, "how long new content runs without crashes before it is last-known-good")
	f.IntVar(&cfg.Policy.CrashLimit, "crash-limit", agent.DefaultCrashLimit, "worker crashes within --crash-window that revert new content")
	f.DurationVar(&cfg.Policy.CrashWindow, "crash-window", agent.DefaultCrashWindow, "see --crash-limit")
	f.IntVar(&cfg.Policy.BootLimit, "boot-limit", agent.DefaultBootLimit, "starts without reaching healthy that revert new content")
	f.IntVar(&cfg.Policy.HangLimit, "hang-limit", agent.DefaultHangLimit, "worker hangs within --crash-window that revert new content")
	f.DurationVar(&workerTimeout, "worker-timeout", agent.DefaultAnswerTimeout, "the watchdog: a worker that does not answer a request within this is killed as hung")
	f.DurationVar(&cfg.MaxBackoff, "max-backoff", 10*time.Minute, "longest wait between check-ins while the server is unreachable")
	f.StringVar(&cfg.Events, "events", "", "replay this JSON-lines events file to the worker (a stand-in for the host's sensor)")
	f.Float64Var(&cfg.EventsPerSecond, "events-rate", 10, "events per second from --events")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&format, "log-format", "text", "text or json")
	f.StringVar(&caFile, "ca", "", "PEM CA certificates to verify the server with (default: the one given at enrolment, else the system's roots)")
	return c
}

// workerSpec is how the agent starts its worker: the small
// ringfence-agent-worker next to this binary, or this binary's own hidden
// worker command without it (same behaviour, a larger process: every
// package this binary links is initialised in the worker too).
func workerSpec() (agent.WorkerSpec, error) {
	exe, err := os.Executable()
	if err != nil {
		return agent.WorkerSpec{}, err
	}
	name := "ringfence-agent-worker"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if w := filepath.Join(filepath.Dir(exe), name); fileExists(w) {
		return agent.WorkerSpec{Path: w, Env: os.Environ()}, nil
	}
	return agent.WorkerSpec{Path: exe, Args: []string{"worker"}, Env: os.Environ()}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// runAgent runs the agent, as a Windows service when the service manager
// started it.
func runAgent(ctx context.Context, cfg agent.Config) error {
	if os.Getenv(agent.LaunchedEnv) != "" {
		// Under the launcher, stdin is its request to stop: closed (or
		// the launcher gone), the agent stops cleanly.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	run := func(ctx context.Context) error {
		a, err := agent.New(cfg)
		if err != nil {
			return refused(err)
		}
		err = a.Run(ctx)
		if errors.Is(err, agent.ErrRestart) {
			// The launcher starts the build the journal now names.
			return &exitError{agent.ExitRestart, err}
		}
		return err
	}
	if handled, err := runAsService(run); handled {
		return err
	}
	return run(ctx)
}

func logger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func newStatusCmd() *cobra.Command {
	var data string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status --data DIR [--json]",
		Short: "Show what each channel runs, its last-known-good and the last check-in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return usage(errors.New("--data is required"))
			}
			r, err := agent.ReadReport(data)
			if err != nil {
				return refused(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printReport(w, r)
			return nil
		},
	}
	c.Flags().StringVar(&data, "data", "", "the agent's data directory")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printReport(w io.Writer, r *agent.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "device\t%s\nserver\t%s\nagent\t%s\n", r.DeviceID, r.Server, r.AgentVersion)
	last := "never"
	if !r.LastCheckin.IsZero() {
		last = r.LastCheckin.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "last check-in\t%s\n", last)
	if r.Failures > 0 {
		fmt.Fprintf(tw, "failed check-ins\t%d in a row\n", r.Failures)
	}
	fmt.Fprintf(tw, "last error\t%s\nqueued events\t%d\n", orDash(r.LastError), r.QueuedEvents)
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tACTIVE\tLKG\tSLOT\tSTATE\tLAST ERROR")
	for _, c := range r.Channels {
		state := string(c.State)
		if c.Pending != 0 && c.PendingAttempts > 0 {
			state += fmt.Sprintf(" (start %d)", c.PendingAttempts+1)
		}
		if c.Shadow {
			state += ", in shadow (lkg enforced)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Channel, version(c.ActiveVersion), version(c.LKGVersion), orDash(string(c.Slot)), orDash(state), orDash(c.LastError))
	}
	tw.Flush()
}

func version(v uint64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Short:  "The content worker the agent starts and supervises (not for people)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fault, err := worker.ParseFault(os.Getenv(worker.FaultEnv))
			if err != nil {
				return usage(err)
			}
			return worker.Run(cmd.Context(), os.Stdin, os.Stdout, fault)
		},
	}
}
