// Command checkin measures the control plane's check-in path on the
// embedded default store: it starts `ringfence server --dev` logic in a
// child process (so the server's memory is measured alone), enrols
// -devices devices over loopback HTTP, drives check-ins from all of them
// over -conns keep-alive connections, and in the same run drives a trivial
// JSON handler, served by the same child, with the same client as the
// ceiling. The server serves its Prometheus metrics as `ringfence server
// --metrics-addr` does, and the benchmark scrapes them as Prometheus would
// while it drives check-ins (every -scrape), then checks that the check-in
// counter says how many it made. It prints one JSON object last.
//
//	go run ./bench/checkin [-devices 100000] [-conns 64] [-duration 20s] [-scrape 5s] [-rounds 5]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

type result struct {
	Devices               int     `json:"devices"`
	CheckinsPerS          float64 `json:"checkins_per_s"`
	P50ms                 float64 `json:"p50_ms"`
	P99ms                 float64 `json:"p99_ms"`
	TrivialPerS           float64 `json:"trivial_per_s"`
	Ratio                 float64 `json:"ratio"`
	RSSBytes              int64   `json:"rss_bytes"`
	RSSBytesPer100kDevice int64   `json:"rss_bytes_per_100k_devices"`
	EnrolPerS             float64 `json:"enrol_per_s"`
	FirstCheckinsPerS     float64 `json:"first_checkins_per_s"`
	EventCheckinShare     float64 `json:"event_checkin_share"`
	// CPUusPerCheckin is the server's CPU time (user and system) per
	// steady-state check-in, in microseconds: on a busy machine it moves
	// less than the rates do.
	CPUusPerCheckin float64 `json:"cpu_us_per_checkin"`
	// Scrapes of /metrics during the steady state; MetricsCheckins is
	// ringfence_checkins_total{outcome="ok"} after it, which must be every
	// check-in answered.
	Scrapes         int     `json:"scrapes"`
	MetricsCheckins float64 `json:"metrics_checkins_ok"`
	Errors          int64   `json:"errors"`
	// RoundRatios are the ratios of each pair of slices (check-ins, then
	// the trivial handler), in order; Ratio is of their sums.
	RoundRatios []float64 `json:"round_ratios"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	devices := flag.Int("devices", 100000, "devices to enrol")
	conns := flag.Int("conns", 64, "keep-alive connections")
	duration := flag.Duration("duration", 20*time.Second, "how long to drive steady-state check-ins (and the trivial handler)")
	eventShare := flag.Float64("event-share", 0.01, "share of check-ins carrying an event (written durably before the answer)")
	scrape := flag.Duration("scrape", 5*time.Second, "how often to scrape the server's /metrics during the steady state (0: never)")
	rounds := flag.Int("rounds", 5, "slices the duration is cut into, check-ins and the trivial handler taking turns")
	flag.Parse()
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(*devices, *conns, *duration, *eventShare, *scrape, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// child serves the real server and the trivial handler until stdin closes.
func child(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	server.TuneGC() // as `ringfence server` does
	st, err := sqlstore.Open(ctx, "", dir)
	if err != nil {
		return err
	}
	defer st.Close()
	cat, err := server.ExampleCatalog()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The whole fleet enrols from this one address with one token, far
	// faster than a real deployment: no enrolment limit.
	srv := server.New(server.Config{Catalog: cat, Enrolments: -1, MetricsAddr: "127.0.0.1:0"}, st, time.Now, log)

	trivial, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(trivial, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&v)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "next_checkin_s": 300})
	}))
	if a := os.Getenv("BENCH_PPROF"); a != "" {
		go http.ListenAndServe(a, nil) // net/http/pprof, for investigating the server
	}
	return srv.ListenAndServe(ctx, "127.0.0.1:0", func(addr net.Addr) {
		creds, err := srv.SeedDev(ctx, dir, "http://"+addr.String())
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		fmt.Printf("READY %s %s %s %s\n", addr, trivial.Addr(), creds.EnrollToken, srv.MetricsAddr())
	})
}

func run(devices, conns int, duration time.Duration, eventShare float64, scrapeEvery time.Duration, rounds int) error {
	dir, err := os.MkdirTemp("", "ringfence-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(os.Args[0], "-child", dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server did not start: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "READY" {
		return fmt.Errorf("unexpected server output %q", line)
	}
	base, trivialURL, enroll, metricsURL := "http://"+f[1], "http://"+f[2], f[3], "http://"+f[4]+"/metrics"
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}, Timeout: 30 * time.Second}

	// Enrolment.
	creds := make([]string, devices)
	t0 := time.Now()
	var errs atomic.Int64
	parallel(conns, devices, func(i int) {
		platform, agent := "windows", []string{"7.10.0", "7.11.0", "7.12.0"}[i%3]
		body := fmt.Sprintf(`{"token":%q,"platform":%q,"os_build":"22631","agent_version":%q}`, enroll, platform, agent)
		var resp struct {
			Credential string `json:"credential"`
		}
		if err := post(client, base+"/v1/enroll", "", body, &resp); err != nil {
			errs.Add(1)
			return
		}
		creds[i] = resp.Credential
	})
	enrolRate := float64(devices) / time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "enrolled %d devices in %v (%d errors)\n", devices, time.Since(t0).Round(time.Millisecond), errs.Load())

	// First check-in of every device: reports its state, written durably.
	t0 = time.Now()
	var firstOK atomic.Int64
	parallel(conns, devices, func(i int) {
		if creds[i] == "" {
			return
		}
		if err := post(client, base+"/v1/checkin", creds[i], checkinBody(i, 0), nil); err != nil {
			errs.Add(1)
			return
		}
		firstOK.Add(1)
	})
	firstRate := float64(devices) / time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "first check-ins in %v\n", time.Since(t0).Round(time.Millisecond))

	// Steady state, scraped as Prometheus would, then the trivial ceiling
	// with the same client.
	scraper := &http.Client{Timeout: 10 * time.Second}
	scrapes := 0
	stopScraping := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		if scrapeEvery <= 0 {
			scraped <- nil
			return
		}
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-stopScraping:
				scraped <- nil
				return
			case <-t.C:
			}
			if _, err := checkinsOK(scraper, metricsURL); err != nil {
				scraped <- err
				return
			}
			scrapes++
		}
	}()
	seqs := make([]atomic.Uint64, devices)
	var withEvents atomic.Int64
	// The check-ins and the trivial ceiling take turns in short slices, so
	// that whatever else the machine does meanwhile weighs on both alike:
	// measured one after the other, each for the whole duration, their
	// ratio moved from 0.57 to 0.88 between runs of one build on an idle
	// machine.
	var lat []time.Duration
	var n, nt, offset int
	var cpu time.Duration
	var roundRatios []float64
	slice := duration / time.Duration(rounds)
	for range rounds {
		cpu0 := childCPU(cmd.Process.Pid)
		l, k := drive(conns, slice, func(k int) error {
			k += offset
			i := k % devices
			if creds[i] == "" {
				return nil
			}
			seq := uint64(0)
			if float64((k*7919)%10000)/10000 < eventShare {
				seq = seqs[i].Add(1)
				withEvents.Add(1)
			}
			return post(client, base+"/v1/checkin", creds[i], checkinBody(i, seq), nil)
		}, &errs)
		cpu += childCPU(cmd.Process.Pid) - cpu0
		lat, n, offset = append(lat, l...), n+k, offset+k+conns
		_, kt := drive(conns, slice, func(k int) error {
			return post(client, trivialURL+"/", "", checkinBody(k%devices, 0), nil)
		}, &errs)
		nt += kt
		if kt > 0 {
			roundRatios = append(roundRatios, float64(k)/float64(kt))
		}
	}
	close(stopScraping)
	if err := <-scraped; err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	counted, err := checkinsOK(scraper, metricsURL)
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	if want := float64(firstOK.Load()) + float64(n); counted != want {
		return fmt.Errorf("ringfence_checkins_total{outcome=\"ok\"} is %v after %v check-ins answered", counted, want)
	}
	rss := childRSS(cmd.Process.Pid)
	if os.Getenv("BENCH_SMAPS") != "" {
		c := exec.Command("sh", "-c", fmt.Sprintf(`awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6; range=$1} /^Rss:/{ if ($2>1000) print $2" kB", range, name}' /proc/%d/smaps | sort -rn | head -12`, cmd.Process.Pid))
		c.Stdout = os.Stderr
		c.Run()
	}

	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	r := result{Devices: devices, CheckinsPerS: float64(n) / duration.Seconds(), P50ms: pct(0.50), P99ms: pct(0.99),
		TrivialPerS: float64(nt) / duration.Seconds(), RSSBytes: rss, EnrolPerS: enrolRate, FirstCheckinsPerS: firstRate, Errors: errs.Load(),
		Scrapes: scrapes, MetricsCheckins: counted, RoundRatios: roundRatios}
	if n > 0 {
		r.EventCheckinShare = float64(withEvents.Load()) / float64(n)
		r.CPUusPerCheckin = float64(cpu.Microseconds()) / float64(n)
	}
	if r.TrivialPerS > 0 {
		r.Ratio = r.CheckinsPerS / r.TrivialPerS
	}
	r.RSSBytesPer100kDevice = rss * 100000 / int64(devices)
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if r.Errors > 0 {
		return fmt.Errorf("%d requests failed", r.Errors)
	}
	return nil
}

// checkinsOK scrapes the server's metrics and reads the check-ins answered
// ok.
func checkinsOK(c *http.Client, url string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	const series = `ringfence_checkins_total{outcome="ok"} `
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", url, strings.TrimSpace(series))
}

func checkinBody(i int, seq uint64) string {
	agent := []string{"7.10.0", "7.11.0", "7.12.0"}[i%3]
	events := "[]"
	if seq > 0 {
		events = fmt.Sprintf(`[{"seq":%d,"type":"actions","channel":"acme/ipc","version":292,"counts":{"alert":1}}]`, seq)
	}
	return fmt.Sprintf(`{"platform":"windows","os_build":"22631","agent_version":%q,"channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":292,"state":"active"}],"events":%s}`, agent, events)
}

func post(c *http.Client, url, cred, body string, v any) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

func parallel(workers, n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// drive runs fn from workers goroutines for d and returns the latencies
// and the number of calls made.
func drive(workers int, d time.Duration, fn func(k int) error, errs *atomic.Int64) ([]time.Duration, int) {
	var next atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				k := int(next.Add(1) - 1)
				t := time.Now()
				if err := fn(k); err != nil {
					if errs.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "request failed:", err)
					}
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, len(all)
}

// childCPU is the CPU time a process has used, user and system, from
// /proc/PID/stat (in clock ticks of 10 ms: Linux reports USER_HZ, 100).
func childCPU(pid int) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it are fixed.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func childRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
