// Command switchover measures how long a device is without its agent
// when it updates itself: from the moment the running build stops to run
// the new one until the new one's worker is up, and until the server hears
// the new version. The baseline, measured in the same run, is the same
// agent's cold start under the launcher: from the launcher starting it to
// its worker being up, which no update can beat.
//
// It builds ringfence and -rounds+1 agent builds (with their workers, as
// they ship: CGO_ENABLED=0), starts `ringfence server --dev` on loopback
// with a 1 s check-in interval, enrols a Linux device and runs it under
// `ringfence-agent launch`, then publishes and releases each newer build in
// turn, reading the launcher's and the agent's JSON logs. It prints one
// JSON object last.
//
//	go run ./bench/switchover [-rounds 5]
//
// Linux only.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 5, "updates to measure")
	flag.Parse()
	if err := run(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/switchover:", err)
		os.Exit(1)
	}
}

// logLine is one JSON log line of the launcher or the agent.
type logLine struct {
	Time  time.Time `json:"time"`
	Msg   string    `json:"msg"`
	Build uint64    `json:"build"`
}

// logs collects the launcher's and the agent's lines as they come.
type logs struct {
	mu    sync.Mutex
	lines []logLine
}

func (l *logs) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ln logLine
		if json.Unmarshal(sc.Bytes(), &ln) == nil && !ln.Time.IsZero() {
			l.mu.Lock()
			l.lines = append(l.lines, ln)
			l.mu.Unlock()
		}
	}
}

// after returns the first line with msg at or after t (and of build, if
// not 0).
func (l *logs) after(t time.Time, msg string, build uint64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		if ln.Msg == msg && !ln.Time.Before(t) && (build == 0 || ln.Build == build) {
			return ln.Time, true
		}
	}
	return time.Time{}, false
}

type result struct {
	Rounds int `json:"rounds"`
	// Per update, in milliseconds: the running build's stop to the new
	// build's worker up (no content is evaluated in between), and to the
	// server hearing the new version.
	WorkerGapMS  []float64 `json:"worker_gap_ms"`
	CheckinGapMS []float64 `json:"checkin_gap_ms"`
	// The baseline: the first build's cold start under the launcher, from
	// the launcher starting it to its worker up.
	ColdStartMS      float64 `json:"cold_start_ms"`
	MedianWorkerGap  float64 `json:"median_worker_gap_ms"`
	MedianCheckinGap float64 `json:"median_checkin_gap_ms"`
	Ratio            float64 `json:"median_worker_gap_vs_cold_start"`
}

func run(rounds int) error {
	dir, err := os.MkdirTemp("", "bench-switchover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := func(out, pkg, version string) error {
		args := []string{"build", "-o", out}
		if version != "" {
			args = append(args, "-ldflags", "-X github.com/ringfence/ringfence/internal/agent.Version="+version)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	rf := filepath.Join(dir, "ringfence")
	if err := build(rf, "./cmd/ringfence", ""); err != nil {
		return err
	}
	var agents []string
	for i := 0; i <= rounds; i++ {
		v := fmt.Sprintf("7.%d.0", 12+i)
		d := filepath.Join(dir, v)
		for _, name := range []string{"ringfence-agent", "ringfence-agent-worker"} {
			if err := build(filepath.Join(d, name), "./cmd/"+name, v); err != nil {
				return err
			}
		}
		agents = append(agents, filepath.Join(d, "ringfence-agent"))
	}

	data := filepath.Join(dir, "server")
	srv := exec.Command(rf, "server", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--checkin-interval", "1s", "--controller-tick", "1s")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var creds struct {
		Server    string `json:"server"`
		Enroll    string `json:"enroll_token"`
		Publisher string `json:"publisher_token"`
		OrgAdmin  string `json:"org_admin_token"`
		Admin     string `json:"admin_token"`
	}
	if err := waitFor(20*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(data, "dev-credentials.json"))
		return err == nil && json.Unmarshal(b, &creds) == nil && creds.Server != ""
	}); err != nil {
		return fmt.Errorf("server not ready: %w", err)
	}
	api := func(method, path, token string, body any) ([]byte, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, creds.Server+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		return out, nil
	}
	if _, err := api("PUT", "/v1/orgs/contoso/policies/acme/sensor-linux", creds.OrgAdmin, map[string]string{"track": "early"}); err != nil {
		return err
	}

	agentData := filepath.Join(dir, "agent")
	if b, err := exec.Command(agents[0], "enroll", "--server", creds.Server, "--token", creds.Enroll, "--data", agentData,
		"--platform", "linux", "--os-build", "6.8").CombinedOutput(); err != nil {
		return fmt.Errorf("enroll: %v\n%s", err, b)
	}
	var id struct {
		DeviceID string `json:"device_id"`
	}
	b, _ := os.ReadFile(filepath.Join(agentData, "device.json"))
	_ = json.Unmarshal(b, &id)
	agentVersion := func() string {
		b, err := api("GET", "/v1/devices/"+id.DeviceID, creds.Admin, nil)
		if err != nil {
			return ""
		}
		var d struct {
			AgentVersion string `json:"agent_version"`
		}
		_ = json.Unmarshal(b, &d)
		return d.AgentVersion
	}

	var lg logs
	launcher := exec.Command(agents[0], "launch", "--data", agentData, "--log-format", "json", "--",
		"--probation", "2s", "--log-format", "json", "--log-level", "info")
	pr, pw := io.Pipe()
	launcher.Stdout, launcher.Stderr = pw, pw
	go lg.read(pr)
	t0 := time.Now()
	if err := launcher.Start(); err != nil {
		return err
	}
	defer func() { _ = launcher.Process.Kill(); _ = launcher.Wait() }()
	var res result
	if err := waitFor(30*time.Second, func() bool { _, ok := lg.after(t0, "worker up", 0); return ok }); err != nil {
		return fmt.Errorf("the first build never started its worker: %w", err)
	}
	started, _ := lg.after(t0, "agent started", 0)
	up, _ := lg.after(t0, "worker up", 0)
	res.ColdStartMS = ms(up.Sub(started))

	for i := 1; i <= rounds; i++ {
		v := fmt.Sprintf("7.%d.0", 12+i)
		if err := waitFor(60*time.Second, func() bool { return agentVersion() == fmt.Sprintf("7.%d.0", 11+i) }); err != nil {
			return fmt.Errorf("round %d: the device does not run the previous build: %w", i, err)
		}
		// The previous build confirmed (or this is the first): publish and
		// release the next.
		mark := time.Now()
		pub := exec.Command(rf, "publish", "--build", agents[i], "--channel", "acme/sensor-linux", "--version", fmt.Sprint(i))
		pub.Env = append(os.Environ(), "RINGFENCE_SERVER="+creds.Server, "RINGFENCE_TOKEN="+creds.Publisher)
		if b, err := pub.CombinedOutput(); err != nil {
			return fmt.Errorf("publish %s: %v\n%s", v, err, b)
		}
		plan := map[string]any{"waves": []map[string]any{{"name": "everyone", "share": 10000, "canary": true, "min_devices": 1, "bake": "1h"}}}
		if _, err := api("POST", "/v1/releases", creds.Publisher, map[string]any{"channel": "acme/sensor-linux", "version": i, "plan": plan}); err != nil {
			return err
		}
		if err := waitFor(60*time.Second, func() bool { return agentVersion() == v }); err != nil {
			return fmt.Errorf("round %d: the server never heard %s: %w", i, v, err)
		}
		heard := time.Now()
		stop, ok1 := lg.after(mark, "restarting into another agent build", 0)
		up, ok2 := lg.after(stop, "worker up", 0)
		if !ok1 || !ok2 {
			return fmt.Errorf("round %d: no stop or no worker up in the logs", i)
		}
		res.WorkerGapMS = append(res.WorkerGapMS, ms(up.Sub(stop)))
		res.CheckinGapMS = append(res.CheckinGapMS, ms(heard.Sub(stop)))
		// The next build may be released once this one is healthy; the
		// device's version is the sign it checked in.
		if err := waitFor(30*time.Second, func() bool {
			b, _ := exec.Command(agents[0], "status", "--data", agentData, "--json").Output()
			return bytes.Contains(b, []byte(fmt.Sprintf(`"lkg_version": %d`, i)))
		}); err != nil {
			return fmt.Errorf("round %d: build %d never became last-known-good: %w", i, i, err)
		}
		fmt.Fprintf(os.Stderr, "round %d: %s, worker back after %.0f ms, server heard it after %.0f ms\n", i, v, res.WorkerGapMS[i-1], res.CheckinGapMS[i-1])
	}
	res.Rounds = rounds
	res.MedianWorkerGap, res.MedianCheckinGap = median(res.WorkerGapMS), median(res.CheckinGapMS)
	if res.ColdStartMS > 0 {
		res.Ratio = res.MedianWorkerGap / res.ColdStartMS
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
