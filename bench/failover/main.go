// Command failover measures how long the rollout controller is without a
// leader when the replica holding its lease dies: from kill -9 of that
// process to the first tick another replica finishes. The baseline, in
// the same run, is the controller's own period (the interval between two
// ticks of a steady leader): the target is a failover within two of them.
//
// It builds ringfence, creates a fresh database on the PostgreSQL server
// it is given, starts three replicas on it (the first in development
// mode), and kills the leader -rounds times, starting each killed replica
// again. It reads each replica's ringfence_controller_leader and
// ringfence_controller_last_tick_timestamp_seconds from its metrics
// listener, and prints one JSON object last.
//
//	export RINGFENCE_TEST_POSTGRES="$(scripts/postgres start | tail -1)"
//	go run ./bench/failover [-rounds 5] [-tick 1s]
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	rounds := flag.Int("rounds", 5, "leaders to kill")
	tick := flag.Duration("tick", time.Second, "the replicas' --controller-tick (the lease period)")
	dbURL := flag.String("db", os.Getenv("RINGFENCE_TEST_POSTGRES"), "PostgreSQL server URL (default $RINGFENCE_TEST_POSTGRES); a fresh database is made on it")
	flag.Parse()
	if err := run(*rounds, *tick, *dbURL); err != nil {
		fmt.Fprintln(os.Stderr, "bench/failover:", err)
		os.Exit(1)
	}
}

type replica struct {
	args    []string
	cmd     *exec.Cmd
	metrics string
	mu      sync.Mutex
	log     strings.Builder
}

var metricsURL = regexp.MustCompile(`"msg":"serving metrics","addr":"([^"]+)"`)

func (r *replica) start(bin string) error {
	r.mu.Lock()
	r.log.Reset()
	r.metrics = ""
	r.mu.Unlock()
	r.cmd = exec.Command(bin, r.args...)
	errs, err := r.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	go func() {
		sc := bufio.NewScanner(errs)
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			if m := metricsURL.FindStringSubmatch(sc.Text()); m != nil {
				r.metrics = m[1]
			}
			r.mu.Unlock()
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		up := r.metrics != ""
		r.mu.Unlock()
		if up {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica not serving after 30 s:\n%s", r.log.String())
		}
	}
}

// scrape reads whether the replica leads and when it last finished a
// tick (zero: never, or not leading).
func (r *replica) scrape() (leads bool, lastTick time.Time) {
	r.mu.Lock()
	u := r.metrics
	r.mu.Unlock()
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return false, time.Time{}
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), " ")
		switch name {
		case "ringfence_controller_leader":
			leads = val == "1"
		case "ringfence_controller_last_tick_timestamp_seconds":
			if f, err := strconv.ParseFloat(val, 64); err == nil {
				lastTick = time.Unix(0, int64(f*1e9))
			}
		}
	}
	return leads, lastTick
}

func run(rounds int, tick time.Duration, dbURL string) error {
	if dbURL == "" {
		return errors.New("no PostgreSQL: -db URL, or RINGFENCE_TEST_POSTGRES from scripts/postgres start")
	}
	dir, err := os.MkdirTemp("", "failover")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ringfence")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ringfence").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	db, drop, err := freshDatabase(dbURL)
	if err != nil {
		return err
	}
	defer drop()
	common := []string{"server", "--db", db, "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-format", "json",
		"--log-level", "info", "--controller-tick", tick.String()}
	for _, name := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			return err
		}
	}
	dataA := filepath.Join(dir, "a")
	keys := []string{"--audit-key-file", filepath.Join(dataA, "audit.key"), "--audit-signing-key-file", filepath.Join(dataA, "audit-signing.key")}
	reps := []*replica{{args: append(slices.Clone(common), "--dev", "--data", dataA)}}
	for _, name := range []string{"b", "c"} {
		reps = append(reps, &replica{args: append(append(slices.Clone(common), "--data", filepath.Join(dir, name)), keys...)})
	}
	for _, r := range reps {
		if err := r.start(bin); err != nil {
			return err
		}
		defer func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() }()
		if r == reps[0] {
			time.Sleep(time.Second) // dev mode writes the audit keys the others read
		}
	}
	var periods, failovers []time.Duration
	for round := 0; round < rounds; round++ {
		leader, err := steadyLeader(reps, tick, &periods)
		if err != nil {
			return err
		}
		killed := time.Now()
		_ = leader.cmd.Process.Kill()
		_ = leader.cmd.Wait()
		var next time.Time
		for deadline := time.Now().Add(30 * tick); next.IsZero(); time.Sleep(5 * time.Millisecond) {
			for _, r := range reps {
				if r == leader {
					continue
				}
				if leads, last := r.scrape(); leads && last.After(killed) {
					next = last
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("round %d: no replica ticked within %s of the leader's death", round+1, 30*tick)
			}
		}
		failovers = append(failovers, next.Sub(killed))
		fmt.Fprintf(os.Stderr, "round %d: the new leader's first tick %s after kill -9\n", round+1, next.Sub(killed).Round(time.Millisecond))
		if err := leader.start(bin); err != nil {
			return err
		}
	}
	period := median(periods)
	out := map[string]any{
		"rounds": rounds, "controller_tick_s": tick.Seconds(), "measured_period_s": period.Seconds(),
		"failover_median_s": median(failovers).Seconds(), "failover_max_s": slices.Max(failovers).Seconds(),
		"failover_max_per_period": slices.Max(failovers).Seconds() / period.Seconds(),
		"target_per_period":       2.0,
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return nil
}

// steadyLeader waits until exactly one replica leads and has ticked
// twice, noting the interval between those ticks.
func steadyLeader(reps []*replica, tick time.Duration, periods *[]time.Duration) (*replica, error) {
	var first time.Time
	var who *replica
	for deadline := time.Now().Add(30 * tick); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var leaders []*replica
		var last time.Time
		for _, r := range reps {
			if leads, t := r.scrape(); leads {
				leaders, last = append(leaders, r), t
			}
		}
		if len(leaders) > 1 {
			return nil, errors.New("two replicas lead at once")
		}
		if len(leaders) == 0 || last.IsZero() {
			continue
		}
		switch {
		case who != leaders[0]:
			who, first = leaders[0], last
		case last.After(first):
			*periods = append(*periods, last.Sub(first))
			return who, nil
		}
	}
	return nil, fmt.Errorf("no steady leader within %s", 30*tick)
}

// freshDatabase makes an empty database on the server at serverURL and
// returns its URL and a function that drops it.
func freshDatabase(serverURL string) (string, func(), error) {
	admin, err := sql.Open("pgx", serverURL)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("failover_%d", time.Now().UnixNano())
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
