// Command narrow measures how many hosts a narrow defect crashes before a
// gate halts its release: a grid of defect rate × share of the fleet the
// defect's stratum holds × fleet size, each cell run with several seeds
// through the fleet simulator (the real server, controller, gates and
// agent decisions, with the default content plan). It prints a Markdown
// table of the median and 95th-percentile crashed hosts, the exposed
// devices, and how the releases were halted (by a gate, by a deadline, or
// not at all), and with -json every run.
//
//	go run ./bench/narrow                       # 100,000 devices, 5 seeds
//	go run ./bench/narrow -devices 1000000 -rates 0.005,0.02 -shares 0.05
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ringfence/ringfence/internal/sim"
)

// stratum shares: the agent version × OS build cell the defect is confined
// to, and the weights that give it that share of the fleet (agents 7.10,
// 7.11, 7.12 at 2:5:3; the OS builds chosen so that 7.12.0 on 20348 is the
// share).
var osWeights = map[float64]string{
	0.01: `{"19045": 5.2, "22631": 4.47, "20348": 0.33}`,
	0.05: `{"19045": 5, "22631": 3.33, "20348": 1.67}`,
	0.15: `{"19045": 3, "22631": 2, "20348": 5}`,
}

const template = `name: narrow-%[1]v-%[2]v
devices: %[5]d
seed: 1
duration: 10h
checkin_interval: 5m
fleet:
  platform: windows
  agents: {"7.10.0": 2, "7.11.0": 5, "7.12.0": 3}
  os_builds: %[3]s
  orgs: %[4]d
  early_orgs: 0.1
  internal: 0.0001
release:
  bundle: ipc-292
  version: 292
  start: 10m
faults:
  - {kind: host-crash, agents: ["7.12.0"], os_builds: ["20348"], probability: %[1]v}
noise:
  crashes_per_device_hour: 0.0002
  reboots_per_device_hour: 0.001
  offline: 0.1
  offline_for: 2h
`

type cell struct {
	Rate, Share float64
	Devices     int
	Runs        []*sim.Result
}

func main() {
	devices := flag.Int("devices", 100_000, "fleet size")
	seeds := flag.Int("seeds", 5, "runs per cell")
	rates := flag.String("rates", "0.005,0.01,0.02", "defect rates (share of the stratum's hosts it crashes)")
	shares := flag.String("shares", "0.01,0.05,0.15", "the stratum's share of the fleet: 0.01, 0.05 or 0.15")
	parallel := flag.Int("parallel", runtime.NumCPU(), "runs at once")
	asJSON := flag.Bool("json", false, "print every run as JSON after the table")
	flag.Parse()

	var cells []*cell
	for _, r := range floats(*rates) {
		for _, s := range floats(*shares) {
			if _, ok := osWeights[s]; !ok {
				fail("share %v: want one of 0.01, 0.05, 0.15", s)
			}
			cells = append(cells, &cell{Rate: r, Share: s, Devices: *devices, Runs: make([]*sim.Result, *seeds)})
		}
	}
	type job struct {
		c    *cell
		seed int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range max(1, *parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r := runOne(j.c, j.seed)
				mu.Lock()
				j.c.Runs[j.seed] = r
				fmt.Fprintf(os.Stderr, "rate %v share %v seed %d: exposed %d, crashed %d, halted %v (%s)\n",
					j.c.Rate, j.c.Share, j.seed+1, r.ExposedDevices, r.CrashedDevices, r.Halted, firstWords(r.HaltReason))
				mu.Unlock()
			}
		}()
	}
	for _, c := range cells {
		for k := range *seeds {
			jobs <- job{c, k}
		}
	}
	close(jobs)
	wg.Wait()

	fmt.Printf("%d devices, %d seeds per cell, default content plan (detect 1%% of strata of 2,000)\n\n", *devices, *seeds)
	fmt.Println("| defect rate | stratum share | crashed: median | p95 | max | exposed: median | max | halted by a gate | by a deadline | not halted |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cells {
		var crashed, exposed []float64
		gate, deadline, none := 0, 0, 0
		for _, r := range c.Runs {
			crashed = append(crashed, float64(r.CrashedDevices))
			exposed = append(exposed, float64(r.ExposedDevices))
			switch {
			case !r.Halted:
				none++
			case strings.Contains(r.HaltReason, "deadline"):
				deadline++
			default:
				gate++
			}
		}
		fmt.Printf("| %v %% | %v %% | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %d | %d |\n", c.Rate*100, c.Share*100,
			pct(crashed, 0.5), pct(crashed, 0.95), pct(crashed, 1), pct(exposed, 0.5), pct(exposed, 1), gate, deadline, none)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(cells, "", "  ")
		fmt.Println(string(b))
	}
}

func runOne(c *cell, seed int) *sim.Result {
	orgs := max(20, min(2000, c.Devices/500))
	src := fmt.Sprintf(template, c.Rate, c.Share, osWeights[c.Share], orgs, c.Devices)
	sc, err := sim.Parse("narrow", []byte(src))
	if err != nil {
		fail("%v", err)
	}
	s, err := sim.New(context.Background(), sc, sim.Options{Devices: c.Devices, Seed: uint64(seed + 1)})
	if err != nil {
		fail("%v", err)
	}
	defer s.Close()
	r, err := s.Run(context.Background(), nil)
	if err != nil {
		fail("%v", err)
	}
	return r
}

// pct is the q-quantile (nearest rank) of xs.
func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(len(s)-1, i))]
}

func floats(s string) []float64 {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			fail("%q: not a number", f)
		}
		out = append(out, v)
	}
	return out
}

func firstWords(s string) string {
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "narrow: "+format+"\n", a...)
	os.Exit(2)
}
