package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/sim"
)

func newSimCmd() *cobra.Command {
	var scenario, out string
	var devices, seeds, parallel int
	var seed uint64
	var asJSON, list, quiet, live bool
	var speed float64
	var liveDir string
	c := &cobra.Command{
		Use:   "sim [--scenario NAME|FILE] [--devices N] [--seed S] [--seeds N [--parallel P]] [--live [--speed X]] [--json] [--out DIR]",
		Short: "Simulate a fleet: how far a bad update gets, how fast it halts, how fast devices heal",
		Long: `Run a fleet simulation in virtual time with the real rollout code: the server's
check-in and controller (cohorts, strata, gates, halts) and the agent's own
recovery decisions, over a modelled world of devices, faults, noise and
outages. Built-in scenarios: ` + strings.Join(sim.Builtin(), ", ") + `; or a YAML file
(docs/simulator.md).

--live runs the scenario through the real API instead: a real server on a
loopback port and a real agent per device (2,000 by default, goroutines with
their own data directories, workers simulated), on a clock --speed times
faster than real time. It prints the same figures.

--json prints one JSON object last: the run's figures, or with --seeds N the
runs, the false-halt rate and median/p95/max of each figure; the seeds run
--parallel at a time, one per core by default. --out DIR writes
a Markdown report and a PNG chart of the run (the first seed's).

Exit status: 0 ran, 2 usage or a scenario that is not valid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if list {
				for _, n := range sim.Builtin() {
					sc, err := sim.Load(n)
					if err != nil {
						return usage(err)
					}
					fmt.Fprintf(w, "%-14s %10d devices  %s\n", n, sc.Devices, firstSentence(sc.Description))
				}
				return nil
			}
			if seeds < 1 {
				return usage(errors.New("--seeds: want 1 or more"))
			}
			sc, err := sim.Load(scenario)
			if err != nil {
				return usage(err)
			}
			var progress io.Writer
			if !quiet {
				progress = cmd.ErrOrStderr()
			}
			if parallel < 0 {
				return usage(fmt.Errorf("--parallel %d: want 0 (one run per core) or more", parallel))
			}
			o := sim.Options{Devices: devices, Seed: seed, Parallel: parallel}
			if live {
				if seeds > 1 {
					return usage(errors.New("--live runs one seed at a time"))
				}
				if devices > sim.MaxLiveDevices {
					return usage(fmt.Errorf("--devices: --live runs at most %d devices (the engine runs millions)", sim.MaxLiveDevices))
				}
				l, err := sim.NewLive(cmd.Context(), sc, sim.LiveOptions{Devices: devices, Seed: seed, Speed: speed, Dir: liveDir})
				if err != nil {
					return usage(err)
				}
				defer l.Close()
				return finish(cmd.Context(), w, out, sc, asJSON, l, progress)
			}
			if seeds > 1 {
				sum, err := sim.RunSeeds(cmd.Context(), sc, o, seeds, progress)
				if err != nil {
					return usage(err)
				}
				if asJSON {
					return writeJSONLine(w, sum)
				}
				printSummary(w, sum)
				return nil
			}
			s, err := sim.New(cmd.Context(), sc, o)
			if err != nil {
				return usage(err)
			}
			defer s.Close()
			return finish(cmd.Context(), w, out, sc, asJSON, s, progress)
		},
	}
	f := c.Flags()
	f.StringVar(&scenario, "scenario", "july19-bypass", "built-in scenario name or YAML file")
	f.IntVar(&devices, "devices", 0, "override the scenario's device count")
	f.Uint64Var(&seed, "seed", 0, "override the scenario's seed")
	f.IntVar(&seeds, "seeds", 1, "run this many seeds (seed, seed+1, ...) and summarise")
	f.IntVar(&parallel, "parallel", 0, "with --seeds: runs at once (0: one per core)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object last")
	f.StringVar(&out, "out", "", "write a Markdown report and a PNG chart here")
	f.BoolVar(&list, "list", false, "list the built-in scenarios")
	f.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	f.BoolVar(&live, "live", false, "run through a real server and real agents on loopback")
	f.Float64Var(&speed, "speed", sim.DefaultLiveSpeed, "with --live: virtual seconds per second")
	f.StringVar(&liveDir, "live-dir", "", "with --live: keep the server's and devices' data here (default: a temporary directory, removed)")
	return c
}

// run is a simulation, in virtual time or live.
type run interface {
	Run(ctx context.Context, progress io.Writer) (*sim.Result, error)
	Series() []sim.Point
	HaltedAt() int64
}

func finish(ctx context.Context, w io.Writer, out string, sc *sim.Scenario, asJSON bool, r run, progress io.Writer) error {
	res, err := r.Run(ctx, progress)
	if err != nil {
		return usage(err)
	}
	if out != "" {
		if err := sim.WriteReport(out, sc, res, r.Series(), r.HaltedAt()); err != nil {
			return usage(err)
		}
	}
	if asJSON {
		return writeJSONLine(w, res)
	}
	printResult(w, res)
	return nil
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func seconds(s float64) string {
	if s < 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

func printResult(w io.Writer, r *sim.Result) {
	mode := ""
	if r.Live {
		mode = " (live: real server, real agents)"
	}
	if r.RejectedAtPublish {
		fmt.Fprintf(w, "%s%s: %d devices, seed %d: %s; 0 devices exposed\n", r.Scenario, mode, r.Devices, r.Seed, r.Rejection)
		return
	}
	state := "neither halted nor completed"
	switch {
	case r.Halted:
		state = "halted after " + seconds(r.TimeToHaltS) + ": " + r.HaltReason
	case r.Completed:
		state = "completed every wave"
	}
	fmt.Fprintf(w, "%s%s: %d devices, seed %d, %s virtual in %.1f s\n", r.Scenario, mode, r.Devices, r.Seed, seconds(r.VirtualS), r.WallS)
	fields(w, "  release", state,
		"  exposed", fmt.Sprint(r.ExposedDevices),
		"  crashed", fmt.Sprintf("%d (at most %d at once)", r.CrashedDevices, r.PeakCrashed),
		"  recovered in", seconds(r.TimeToRecoverS),
		"  by hand", fmt.Sprint(r.ManualInterventions),
		"  memory", fmt.Sprintf("peak RSS %d MB, %.0f bytes per device", r.PeakRSSBytes>>20, r.BytesPerDevice))
}

func printSummary(w io.Writer, s *sim.Summary) {
	fmt.Fprintf(w, "%s: %d devices, %d seeds: %d halted, %d completed, false-halt rate %.3f\n", s.Scenario, s.Devices, s.Seeds, s.HaltedRuns, s.CompletedRuns, s.FalseHaltRate)
	var rows [][]string
	for _, name := range []string{"exposed_devices", "crashed_devices", "peak_crashed", "time_to_halt_s", "time_to_recover_s", "manual_interventions", "wall_s"} {
		sp := s.Figures[name]
		rows = append(rows, []string{name, fmt.Sprint(sp.Median), fmt.Sprint(sp.P95), fmt.Sprint(sp.Max)})
	}
	table(w, []string{"FIGURE", "MEDIAN", "P95", "MAX"}, rows)
}
