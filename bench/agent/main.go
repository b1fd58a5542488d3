// Command agent measures the idle footprint of ringfence-agent with its
// worker: resident memory and CPU over a window, on a real development
// server over loopback. It builds both binaries, starts `ringfence server
// --dev` with the check-in interval given, enrols an agent, waits until it
// has confirmed the seed content (so the worker holds a loaded bundle),
// then samples every 5 s for -duration. In the same run it measures a
// baseline: a minimal Go program (bench/agent/idle) that does the same
// HTTP check-in cadence and nothing else, to show what any Go process of
// the kind costs on this machine. Everything is built as the agent ships:
// CGO_ENABLED=0. It prints one JSON object last.
//
//	go run ./bench/agent [-duration 5m] [-interval 60s]
//
// Linux only (it reads /proc).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

func main() {
	duration := flag.Duration("duration", 5*time.Minute, "measurement window once the agent is idle")
	interval := flag.Duration("interval", 60*time.Second, "the server's check-in interval")
	flag.Parse()
	if err := run(*duration, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

type sample struct {
	RSS, PSS, Anon int64 // bytes
}

type figures struct {
	AgentRSSMax      int64   `json:"agent_rss_max_bytes"`
	AgentAnonMax     int64   `json:"agent_anonymous_max_bytes"`
	WorkerAnonMax    int64   `json:"worker_anonymous_max_bytes"`
	WorkerRSSMax     int64   `json:"worker_rss_max_bytes"`
	TotalRSSMax      int64   `json:"total_rss_max_bytes"`
	TotalPSSMax      int64   `json:"total_pss_max_bytes"`
	CPUPercent       float64 `json:"cpu_percent_of_one_core"`
	BaselineRSSMax   int64   `json:"baseline_rss_max_bytes"`
	BaselineCPU      float64 `json:"baseline_cpu_percent_of_one_core"`
	RSSRatio         float64 `json:"total_rss_vs_baseline"`
	TargetRSS        int64   `json:"target_rss_bytes"`
	TargetCPU        float64 `json:"target_cpu_percent"`
	DurationS        float64 `json:"duration_s"`
	IntervalS        float64 `json:"checkin_interval_s"`
	WorkerRestarts   int     `json:"worker_pid_changes"`
	MeetsRSSTarget   bool    `json:"meets_rss_target"`
	MeetsCPUTarget   bool    `json:"meets_cpu_target"`
	AgentBinarySize  int64   `json:"agent_binary_bytes"`
	WorkerBinarySize int64   `json:"worker_binary_bytes"`
}

func run(duration, interval time.Duration) error {
	dir, err := os.MkdirTemp("", "bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins := map[string]string{}
	for _, pkg := range []string{"./cmd/ringfence", "./cmd/ringfence-agent", "./cmd/ringfence-agent-worker", "./bench/agent/idle"} {
		out := filepath.Join(dir, filepath.Base(pkg))
		build := exec.Command("go", "build", "-o", out, pkg)
		// As the agent ships: static, without cgo, so no C library is
		// mapped into it (about 1.5 MB resident).
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		bins[filepath.Base(pkg)] = out
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	data := filepath.Join(dir, "server")
	srv := exec.Command(bins["ringfence"], "server", "--dev", "--data", data, "--listen", addr, "--log-level", "warn", "--checkin-interval", interval.String())
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	url := "http://" + addr
	var creds struct {
		Enroll string `json:"enroll_token"`
	}
	if err := waitFor(20*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(data, "dev-credentials.json"))
		return err == nil && json.Unmarshal(b, &creds) == nil && creds.Enroll != "" && ready(url)
	}); err != nil {
		return fmt.Errorf("server not ready: %w", err)
	}
	agentData := filepath.Join(dir, "agent")
	if b, err := exec.Command(bins["ringfence-agent"], "enroll", "--server", url, "--token", creds.Enroll, "--data", agentData,
		"--platform", "windows", "--os-build", "22631").CombinedOutput(); err != nil {
		return fmt.Errorf("enroll: %v\n%s", err, b)
	}
	ag := exec.Command(bins["ringfence-agent"], "run", "--data", agentData, "--probation", "5s", "--log-level", "warn")
	ag.Stderr = os.Stderr
	if err := ag.Start(); err != nil {
		return err
	}
	defer func() { _ = ag.Process.Kill(); _ = ag.Wait() }()
	if err := waitFor(60*time.Second, func() bool {
		b, _ := exec.Command(bins["ringfence-agent"], "status", "--data", agentData, "--json").Output()
		return bytes.Contains(b, []byte(`"lkg_version": 292`))
	}); err != nil {
		return fmt.Errorf("the agent never confirmed 292: %w", err)
	}
	base := exec.Command(bins["idle"], url+"/healthz", interval.String())
	if err := base.Start(); err != nil {
		return err
	}
	defer func() { _ = base.Process.Kill(); _ = base.Wait() }()
	fmt.Fprintf(os.Stderr, "agent idle on 292; measuring for %s (check-in every %s)\n", duration, interval)

	worker := func() int { return child(ag.Process.Pid) }
	cpu0 := cpuTicks(ag.Process.Pid) + cpuTicks(worker())
	bcpu0 := cpuTicks(base.Process.Pid)
	start := time.Now()
	var f figures
	pids := map[int]bool{}
	for time.Since(start) < duration {
		w := worker()
		pids[w] = true
		a, ws, b := mem(ag.Process.Pid), mem(w), mem(base.Process.Pid)
		f.AgentRSSMax = max(f.AgentRSSMax, a.RSS)
		f.AgentAnonMax, f.WorkerAnonMax = max(f.AgentAnonMax, a.Anon), max(f.WorkerAnonMax, ws.Anon)
		f.WorkerRSSMax = max(f.WorkerRSSMax, ws.RSS)
		f.TotalRSSMax = max(f.TotalRSSMax, a.RSS+ws.RSS)
		f.TotalPSSMax = max(f.TotalPSSMax, a.PSS+ws.PSS)
		f.BaselineRSSMax = max(f.BaselineRSSMax, b.RSS)
		time.Sleep(5 * time.Second)
	}
	elapsed := time.Since(start).Seconds()
	f.CPUPercent = 100 * float64(cpuTicks(ag.Process.Pid)+cpuTicks(worker())-cpu0) / clkTck / elapsed
	f.BaselineCPU = 100 * float64(cpuTicks(base.Process.Pid)-bcpu0) / clkTck / elapsed
	f.RSSRatio = float64(f.TotalRSSMax) / float64(max(f.BaselineRSSMax, 1))
	f.TargetRSS, f.TargetCPU = 20<<20, 0.1
	f.MeetsRSSTarget, f.MeetsCPUTarget = f.TotalRSSMax <= f.TargetRSS, f.CPUPercent <= f.TargetCPU
	f.DurationS, f.IntervalS, f.WorkerRestarts = elapsed, interval.Seconds(), len(pids)-1
	if st, err := os.Stat(bins["ringfence-agent"]); err == nil {
		f.AgentBinarySize = st.Size()
	}
	if st, err := os.Stat(bins["ringfence-agent-worker"]); err == nil {
		f.WorkerBinarySize = st.Size()
	}
	out, _ := json.MarshalIndent(f, "", "  ")
	fmt.Println(string(out))
	return nil
}

func ready(url string) bool {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func waitFor(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// child is the agent's worker: its only child process.
func child(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}

// mem reads VmRSS and the proportional set size (shared pages split
// between the processes that map them) of a process.
func mem(pid int) sample {
	var s sample
	if pid == 0 {
		return s
	}
	s.RSS = kbField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	s.PSS = kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	s.Anon = kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Anonymous:")
	return s
}

func kbField(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == key {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// cpuTicks is a process's user plus system time in clock ticks.
func cpuTicks(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields count from after its ")".
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
