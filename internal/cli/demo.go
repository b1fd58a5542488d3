package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/console"
	"github.com/ringfence/ringfence/internal/sim"
	"github.com/ringfence/ringfence/internal/store"
)

// demoScenarios are what `ringfence demo --scenario` runs: small fleets
// with fast plans (internal/sim/scenarios/demo*.yaml), so that a release
// moves through its waves in minutes.
var demoScenarios = map[string]string{
	"good":          "demo",
	"july19-bypass": "demo-july19-bypass",
}

func newDemoCmd() *cobra.Command {
	var scenario, listen, dir string
	var devices int
	var speed float64
	var exit bool
	c := &cobra.Command{
		Use:   "demo [--scenario good|july19-bypass] [--listen ADDR] [--devices N] [--speed X] [--exit]",
		Short: "Watch a release roll out: a server, a few hundred real agents and the web console, on a fast clock",
		Long: `Start a server with the web console and a few hundred real agents (the
simulator's live mode: real check-ins, real signed updates, the agents' own
recovery), on a clock --speed times faster than real time, and roll a release
out through a fast plan: internal, canary, early and broad waves of 10 to 15
minutes each. It prints the console's address and tokens to sign in with.

--scenario good (the default) runs a good release through every wave, with a
simulated approver signing it off; --scenario july19-bypass runs the 19 July
channel file with validation bypassed: the internal wave takes the first hit,
a gate halts the release, and the crashed hosts revert by themselves.

The server keeps running after the release ends, for the console, until
Ctrl-C; --exit ends it with the release. Nothing is kept: the data directory
is temporary unless --dir names one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ok := demoScenarios[scenario]
			if !ok {
				return usage(fmt.Errorf("--scenario %q: want one of %s", scenario, strings.Join(demoNames(), ", ")))
			}
			sc, err := sim.Load(name)
			if err != nil {
				return err
			}
			if devices < 1 || devices > 5000 {
				return usage(fmt.Errorf("--devices %d: want 1 to 5000 (a demo; ringfence sim runs millions)", devices))
			}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return usage(fmt.Errorf("--dir: %w", err))
				}
				dir = filepath.Clean(dir)
			}
			ctx := cmd.Context()
			errOut, out := cmd.ErrOrStderr(), cmd.OutOrStdout()
			fmt.Fprintf(errOut, "starting a server and enrolling %d agents...\n", devices)
			l, err := sim.NewLive(ctx, sc, sim.LiveOptions{Devices: devices, Speed: speed, Dir: dir, Listen: listen, Console: console.Handler})
			if err != nil {
				return usage(fmt.Errorf("demo: %w", err))
			}
			defer l.Close()
			if err := printDemoAccess(ctx, out, l); err != nil {
				return err
			}
			res, err := l.Run(ctx, errOut)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			if err != nil {
				return rejected(fmt.Errorf("demo: %w", err))
			}
			fmt.Fprintf(out, "\n%s\n", demoOutcome(res))
			if exit {
				return nil
			}
			fmt.Fprintf(errOut, "the server keeps running for the console at %s/console/; Ctrl-C stops it\n", l.URL())
			<-ctx.Done()
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&scenario, "scenario", "good", "good, or july19-bypass: a bad release halted and its hosts healing")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "the server's address")
	f.IntVar(&devices, "devices", 300, "agents to run")
	f.Float64Var(&speed, "speed", 60, "virtual seconds per second (the clock slows by itself when the machine cannot keep up)")
	f.StringVar(&dir, "dir", "", "keep the server's and agents' data here (default: a temporary directory, removed)")
	f.BoolVar(&exit, "exit", false, "end when the release ends, instead of serving the console until Ctrl-C")
	return c
}

func demoNames() []string {
	var names []string
	for n := range demoScenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// printDemoAccess creates a token per role a person may try the console
// with, and prints them with the console's address.
func printDemoAccess(ctx context.Context, w io.Writer, l *sim.Live) error {
	orgs := l.Orgs()
	org := orgs[len(orgs)-1]
	people := []struct {
		label, tenant string
		role          store.Role
	}{
		{"operator (admin)", "", store.RoleAdmin},
		{"acme publisher", "acme", store.RolePublisher},
		{"acme approver", "acme", store.RoleApprover},
		{org + " admin (one organisation)", org, store.RoleOrgAdmin},
		{org + " viewer", org, store.RoleViewer},
	}
	fmt.Fprintf(w, "console: %s/console/  (sign in with a token below)\n\n", l.URL())
	for _, p := range people {
		tok, err := l.AddToken(ctx, p.tenant, p.role, "demo "+p.label)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-40s %s\n", p.label, tok)
	}
	fmt.Fprintf(w, "\nthe same from a shell: RINGFENCE_SERVER=%s RINGFENCE_TOKEN=<publisher token> ringfence release list\n\n", l.URL())
	return nil
}

// demoOutcome says in a line how the release ended.
func demoOutcome(r *sim.Result) string {
	switch {
	case r.Completed:
		return fmt.Sprintf("the release completed every wave: %d devices took it, %d crashed", r.ExposedDevices, r.CrashedDevices)
	case r.FinalState == string(store.ReleaseHalted) || r.FinalState == string(store.ReleaseRolledBack):
		return fmt.Sprintf("%s; %d of %d devices exposed crashed, %d healed by themselves, %d need hands",
			r.Why, r.CrashedDevices, r.ExposedDevices, r.CrashedDevices-r.ManualInterventions, r.ManualInterventions)
	}
	return fmt.Sprintf("the release is %s in wave %s: %s", r.FinalState, r.FinalWave, r.Why)
}
