package agentcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/agent/worker"
)

// launchOptions are the launcher's flags.
type launchOptions struct {
	data         string
	bootLimit    int
	trialTimeout time.Duration
	stopTimeout  time.Duration
	runArgs      []string
	log          *slog.Logger
	fault        worker.Fault
}

func newLaunchCmd() *cobra.Command {
	var o launchOptions
	var level, format string
	c := &cobra.Command{
		Use:   "launch --data DIR [-- RUN FLAGS]",
		Short: "Run the agent build the journal names, and take back a new build that fails",
		Long: `The process the service manager starts (systemd unit, Windows service). It runs
"ringfence-agent run --data DIR RUN FLAGS" from the agent build the journal
names: its own binary until the device installs a build from its agent
channel, then that build, and again when the agent exits to switch builds.

It is the watchdog that is not the new build: it counts each start of a build
on probation, and a build that started --boot-limit times without reaching
healthy, or is still on probation --trial-timeout after it started (it never
checked in, or hangs), is reverted to the last-known-good build by the
launcher itself, with the events the agent reports on its next check-in.
See docs/agent.md, "Updating itself".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.data == "" {
				return usage(errors.New("--data is required"))
			}
			log, err := logger(cmd.ErrOrStderr(), level, format)
			if err != nil {
				return usage(err)
			}
			o.log, o.runArgs = log.With("launcher", true), args
			if o.fault, err = worker.ParseFault(os.Getenv(worker.FaultEnv)); err != nil {
				return usage(fmt.Errorf("%s: %w", worker.FaultEnv, err))
			}
			exe, err := os.Executable()
			if err != nil {
				return usage(err)
			}
			run := func(ctx context.Context) error { return launch(ctx, o, exe) }
			if handled, err := runAsService(run); handled {
				return err
			}
			return run(cmd.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.data, "data", "", "the agent's data directory (enrolled)")
	f.IntVar(&o.bootLimit, "boot-limit", agent.DefaultBootLimit, "starts of a build on probation without reaching healthy that revert it")
	f.DurationVar(&o.trialTimeout, "trial-timeout", 30*time.Minute, "a build still on probation this long after it started is stopped and reverted (more than the agent's --probation)")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "how long the agent has to stop cleanly before it is killed")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&format, "log-format", "text", "text or json")
	return c
}

// launch runs builds until ctx ends.
func launch(ctx context.Context, o launchOptions, self string) error {
	failures := 0
	for {
		l, prepErr := agent.PrepareLaunch(o.data, o.bootLimit, time.Now())
		if prepErr != nil {
			// A journal it cannot read or a build gone from disk: the
			// launcher's own binary still runs the agent, which reports.
			o.log.Error("cannot prepare the journal's build; running the launcher's own", "err", prepErr)
			l = agent.Launch{}
		}
		if l.Reverted != "" {
			o.log.Warn("agent build reverted", "reason", l.Reverted)
		}
		if l.Trial && o.fault.Switch(worker.FaultSwitchLaunch, l.Channel, l.Version) {
			o.log.Error("fault injected: launcher killed at "+string(worker.FaultSwitchLaunch), "build", l.Version)
			agent.KillSelf()
		}
		exe := l.Exe
		if exe == "" {
			exe = self
		}
		started := time.Now()
		code, err := o.runBuild(ctx, exe, l)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			o.log.Error("agent did not run", "exe", exe, "err", err)
		case code == agent.ExitRestart && prepErr == nil:
			failures = 0
			continue
		case code == agent.ExitRestart:
			// The agent asks for the journal's build, which cannot be
			// run: back off rather than spin between the two.
			o.log.Warn("the agent asks for a build the launcher cannot run", "err", prepErr)
		default:
			o.log.Warn("agent exited", "exe", exe, "status", code)
		}
		// A crash restarts soon, but not in a tight loop: the same back-off
		// as a service manager, reset by a run that lasted.
		if time.Since(started) > time.Minute {
			failures = 0
		}
		failures++
		wait := min(time.Duration(1<<min(failures-1, 5))*time.Second, 30*time.Second)
		if l.Trial {
			wait = time.Second // counted starts: the boot limit decides soon
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// runBuild runs one agent process and returns its exit status. A build on
// probation that outlives the trial timeout is stopped and reverted.
func (o launchOptions) runBuild(ctx context.Context, exe string, l agent.Launch) (int, error) {
	args := append([]string{"run", "--data", o.data}, o.runArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), agent.LaunchedEnv+"="+strconv.FormatUint(l.Version, 10))
	// The agent's stdin is how the launcher asks it to stop on every
	// platform: closing it (Windows has no signal to ask with).
	stopR, stopW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	defer stopW.Close()
	cmd.Stdin = stopR
	err = cmd.Start()
	stopR.Close()
	if err != nil {
		if l.Trial {
			// A build that cannot even be executed is a failed start.
			return -1, fmt.Errorf("start %s: %w", exe, err)
		}
		return -1, err
	}
	o.log.Info("agent started", "exe", exe, "build", l.Version, "on_probation", l.Trial, "pid", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var trial <-chan time.Time
	if l.Trial {
		t := time.NewTimer(o.trialTimeout)
		defer t.Stop()
		trial = t.C
	}
	for {
		select {
		case err := <-done:
			return exitStatus(err)
		case <-ctx.Done():
			o.stop(cmd, stopW, done)
			return 0, nil
		case <-trial:
			trial = nil
			// Still on probation? Healthy builds leave the journal's
			// pending activation, and then nothing is done.
			if !o.stillOnTrial(l.Version) {
				continue
			}
			_ = cmd.Process.Kill()
			<-done
			reason := fmt.Sprintf("agent build %d did not reach healthy within %s of starting (no check-in, or it hangs): stopped by the launcher", l.Version, o.trialTimeout)
			if _, err := agent.AbandonTrial(o.data, l.Version, reason, time.Now()); err != nil {
				return -1, err
			}
			o.log.Warn("agent build reverted", "reason", reason)
			return agent.ExitRestart, nil
		}
	}
}

// stillOnTrial reads the journal: is version still the build on probation?
func (o launchOptions) stillOnTrial(version uint64) bool {
	j, err := agent.LoadJournal(o.data)
	if err != nil {
		return true
	}
	ch := agent.BuildChannel(j)
	return ch != nil && ch.Pending != nil && ch.Pending.Version == version
}

// stop asks the agent to stop cleanly, closing its stdin (and, where
// there are signals, with SIGINT too), and kills it after the stop
// timeout. A clean stop leaves no running marker, so a planned restart
// is not counted as a failed start of content on probation.
func (o launchOptions) stop(cmd *exec.Cmd, ask io.Closer, done <-chan error) {
	_ = ask.Close()
	if runtime.GOOS != "windows" {
		_ = cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-done:
	case <-time.After(o.stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return -1, err
}
