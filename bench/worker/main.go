// Command worker measures the memory of ringfence-agent-worker, the
// process that evaluates every sensor event: it builds the worker as the
// agent ships it (CGO_ENABLED=0), loads a synthetic bundle of 1,000
// instances, samples the resident memory once loaded (the idle figure,
// this run's baseline), feeds -events events and reads the peak resident
// memory (VmHWM) once the worker has counted them all. With -baseline REV
// it measures the worker of that git revision the same way, in the same
// run, for a before/after ratio. It prints one JSON object last.
//
//	go run ./bench/worker [-events 50000] [-baseline REV]
//
// Linux only (it reads /proc).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/agent/worker"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

// figures are one worker build's.
type figures struct {
	Build       string  `json:"build"`
	IdleRSSKB   int64   `json:"idle_rss_kb"`
	PeakRSSKB   int64   `json:"peak_rss_kb"`
	Events      int     `json:"events"`
	Seconds     float64 `json:"seconds"`
	EventsPerS  float64 `json:"events_per_s"`
	PeakPerIdle float64 `json:"peak_per_idle"`
}

func main() {
	events := flag.Int("events", 50000, "events to feed the worker")
	baseline := flag.String("baseline", "", "a git revision whose worker to measure too")
	flag.Parse()
	if err := run(*events, *baseline); err != nil {
		fmt.Fprintln(os.Stderr, "bench/worker:", err)
		os.Exit(1)
	}
}

func run(n int, baseline string) error {
	dir, err := os.MkdirTemp("", "bench-worker")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := synth.Compiled(1000, 1)
	bundle := filepath.Join(dir, "bundle")
	if err := os.WriteFile(bundle, c.Marshal(), 0o600); err != nil {
		return err
	}
	lines, err := eventLines(synth.Events(4096, 1000, 2))
	if err != nil {
		return err
	}
	out := map[string]any{"target_peak_rss_kb": 10 * 1024}
	builds := []struct{ name, src string }{{"current", "."}}
	if baseline != "" {
		src := filepath.Join(dir, "baseline")
		if b, err := exec.Command("git", "worktree", "add", "--detach", src, baseline).CombinedOutput(); err != nil {
			return fmt.Errorf("git worktree add %s: %v\n%s", baseline, err, b)
		}
		defer exec.Command("git", "worktree", "remove", "--force", src).Run()
		builds = append(builds, struct{ name, src string }{"baseline " + baseline, src})
	}
	var all []figures
	for _, b := range builds {
		bin := filepath.Join(dir, strings.ReplaceAll(b.name, " ", "-"))
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/ringfence-agent-worker")
		cmd.Dir, cmd.Env = b.src, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.name, err, out)
		}
		f, err := measure(bin, bundle, c.Vendor+"/"+c.Channel, c.Version, lines, n)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		f.Build = b.name
		fmt.Printf("%-20s idle %6d KB  peak %6d KB after %d events (%.0f events/s)\n", f.Build, f.IdleRSSKB, f.PeakRSSKB, f.Events, f.EventsPerS)
		all = append(all, f)
	}
	out["builds"] = all
	if len(all) == 2 && all[1].PeakRSSKB > 0 {
		out["peak_current_per_baseline"] = float64(all[0].PeakRSSKB) / float64(all[1].PeakRSSKB)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return nil
}

// eventLines frames events as the agent sends them to the worker.
func eventLines(evs []content.Event) ([][]byte, error) {
	var out [][]byte
	for _, e := range evs {
		inputs := make([]any, len(e.Inputs))
		for i, v := range e.Inputs {
			switch v.Kind {
			case content.KindString:
				inputs[i] = v.Str
			case content.KindUint:
				inputs[i] = v.Num
			case content.KindInt:
				inputs[i] = int64(v.Num)
			case content.KindBool:
				inputs[i] = v.Num == 1
			}
		}
		b, err := json.Marshal(map[string]any{"template_type": e.Type.String(), "inputs": inputs})
		if err != nil {
			return nil, err
		}
		out = append(out, append(append(append([]byte(nil), worker.EventPrefix...), b...), '}', '\n'))
	}
	return out, nil
}

func measure(bin, bundle, channel string, version uint64, lines [][]byte, n int) (figures, error) {
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return figures{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return figures{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return figures{}, err
	}
	defer cmd.Process.Kill()
	replies := bufio.NewReader(stdout)
	ask := func(req worker.Request) (worker.Reply, error) {
		b, _ := json.Marshal(req)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			return worker.Reply{}, err
		}
		line, err := replies.ReadBytes('\n')
		if err != nil {
			return worker.Reply{}, err
		}
		var r worker.Reply
		return r, json.Unmarshal(line, &r)
	}
	if r, err := ask(worker.Request{Op: worker.OpLoad, ID: 1, Channel: channel, Version: version, Path: bundle}); err != nil || !r.OK {
		return figures{}, fmt.Errorf("load: %+v %v", r, err)
	}
	time.Sleep(time.Second) // let the load's garbage go
	pid := cmd.Process.Pid
	idle, err := status(pid, "VmRSS")
	if err != nil {
		return figures{}, err
	}
	w := bufio.NewWriterSize(stdin, 1<<16)
	t0 := time.Now()
	for i := range n {
		if _, err := w.Write(lines[i%len(lines)]); err != nil {
			return figures{}, err
		}
	}
	if err := w.Flush(); err != nil {
		return figures{}, err
	}
	// The counts' reply comes after every event before it is evaluated.
	r, err := ask(worker.Request{Op: worker.OpCounts, ID: 2})
	if err != nil || r.ID != 2 {
		return figures{}, fmt.Errorf("counts: %+v %v", r, err)
	}
	secs := time.Since(t0).Seconds()
	peak, err := status(pid, "VmHWM")
	if err != nil {
		return figures{}, err
	}
	return figures{IdleRSSKB: idle, PeakRSSKB: peak, Events: n, Seconds: secs, EventsPerS: float64(n) / secs, PeakPerIdle: float64(peak) / float64(idle)}, nil
}

// status reads a figure in kB from /proc/PID/status.
func status(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}
