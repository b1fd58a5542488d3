package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// replica is one `ringfence server` process of several on one PostgreSQL.
type replica struct {
	name         string
	cmd          *exec.Cmd
	url, metrics string
	stderr       lockedBuffer
	exited       chan struct{}
}

var servingAt = regexp.MustCompile(`msg=serving addr=(\S+)`)
var metricsAt = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// startReplica starts a server with args and waits until its log names
// its address and its metrics listener.
func startReplica(t *testing.T, name string, args ...string) *replica {
	t.Helper()
	r := &replica{name: name, exited: make(chan struct{})}
	r.cmd = exec.Command(binary, append([]string{"server", "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "info",
		"--checkin-interval", "1s", "--controller-tick", "200ms"}, args...)...)
	r.cmd.Env = cleanEnv()
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { r.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		log := r.stderr.String()
		if m, mm := servingAt.FindStringSubmatch(log), metricsAt.FindStringSubmatch(log); m != nil && mm != nil {
			r.url, r.metrics = "http://"+m[1], mm[1]
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited:\n%s", name, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not serving after 30 s:\n%s", name, log)
		}
	}
}

// kill is kill -9.
func (r *replica) kill() {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// leads reports whether the replica says it holds the controller lease
// (ringfence_controller_leader); false if it cannot be asked.
func (r *replica) leads() bool {
	resp, err := http.Get(r.metrics) // the log names the whole URL
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ringfence_controller_leader ") {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), "ringfence_controller_leader ")) == "1"
		}
	}
	return false
}

func (r *replica) call(method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, r.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

func (r *replica) must(t *testing.T, method, path, token string, body, out any) {
	t.Helper()
	if _, err := r.call(method, path, token, body, out); err != nil {
		t.Fatal(err)
	}
}

// TestControllerFailoverUnderLoad: three replicas on one PostgreSQL, a
// release rolling through three waves while devices check in on all of
// them; the replica leading the controller is killed with SIGKILL in the
// middle of a wave. Another replica takes the lease, the release goes on
// to completion, and the audit log holds each of its transitions once:
// none lost, none applied twice.
func TestControllerFailoverUnderLoad(t *testing.T) {
	db := storetest.PostgresURL(t)
	dataA := t.TempDir()
	a := startReplica(t, "a", "--dev", "--data", dataA, "--db", db)
	var creds server.DevCredentials
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dataA, "dev-credentials.json")); err == nil && json.Unmarshal(b, &creds) == nil && creds.Server != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dev credentials:\n%s", a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every replica chains the audit log with the same key.
	shared := []string{"--db", db, "--audit-key-file", filepath.Join(dataA, "audit.key"), "--audit-signing-key-file", filepath.Join(dataA, "audit-signing.key")}
	b := startReplica(t, "b", append([]string{"--data", t.TempDir()}, shared...)...)
	c := startReplica(t, "c", append([]string{"--data", t.TempDir()}, shared...)...)
	replicas := []*replica{a, b, c}

	admin := creds.AdminToken
	a.must(t, "POST", "/v1/tenants", admin, map[string]string{"id": "fleet", "kind": "org", "name": "Fleet"}, nil)
	a.must(t, "PUT", "/v1/orgs/fleet/policies/acme/ipc", admin, map[string]any{"track": "early"}, nil)
	var enr struct{ Token string }
	a.must(t, "POST", "/v1/orgs/fleet/enroll-tokens", admin, map[string]any{}, &enr)
	type dev struct {
		cred   string
		active uint64
		seq    uint64
	}
	var devs []*dev
	for range 40 {
		var out struct {
			Credential string `json:"credential"`
		}
		a.must(t, "POST", "/v1/enroll", "", map[string]string{"token": enr.Token, "platform": "windows", "os_build": "22631", "agent_version": "7.12.0"}, &out)
		devs = append(devs, &dev{cred: out.Credential, active: 292})
	}
	src, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", a.url+"/v1/channels/acme/ipc/publish", strings.NewReader(strings.Replace(string(src), "version: 292\n", "version: 293\n", 1)))
	req.Header.Set("Authorization", "Bearer "+creds.PublisherToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("publish 293: %v %v", resp, err)
	}
	// The vendor's second signature, so the release may leave its canary.
	sigs := filepath.Join(t.TempDir(), "sigs.json")
	for _, args := range [][]string{{"sign", "acme", "--key", creds.ApproverSigningKey, "--out", sigs}, {"publish", "--signatures", sigs}} {
		ok(t, rfEnv(t, []string{"RINGFENCE_SERVER=" + a.url, "RINGFENCE_TOKEN=" + creds.ApproverToken}, args...))
	}
	// Gates that decide on a few device-minutes: the waves pass on their
	// bake, so each transition is the controller's, tick by tick.
	gates := []map[string]any{{"metric": "worker-crash", "limit": 1, "ratio": 2, "alpha": 0.05, "min_exposure": 0}}
	wave := func(name string, canary bool, bake string) map[string]any {
		return map[string]any{"name": name, "share": 10000, "canary": canary, "min_devices": 10, "bake": bake, "gates": gates}
	}
	// "half" bakes long enough for the kill to land in it.
	plan := map[string]any{"waves": []map[string]any{wave("canary", true, "3s"), wave("half", false, "10s"), wave("all", false, "3s")}}
	var rel server.ReleaseReport
	a.must(t, "POST", "/v1/releases", creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293, "plan": plan}, &rel)
	a.must(t, "POST", "/v1/releases/"+rel.ID+"/approve", creds.ApproverToken, map[string]string{"reason": "approved up front for the test"}, nil)

	// Devices check in continuously, each on the replicas in turn, and
	// on the next one when one does not answer.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var events []server.EventReport
				if d.active == 293 && d.seq < 2 {
					events = append(events, server.EventReport{Seq: d.seq + 1, Type: []string{"applied", "healthy"}[d.seq], Channel: "acme/ipc", Version: 293})
				}
				creq := server.CheckinRequest{Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0", Events: events,
					Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: d.active, LKGVersion: 292, State: "active"}}}
				var resp server.CheckinResponse
				if _, err := replicas[k%len(replicas)].call("POST", "/v1/checkin", d.cred, creq, &resp); err != nil {
					continue
				}
				d.seq = max(d.seq, resp.AckSeq)
				for _, ch := range resp.Channels {
					if ch.Channel == "acme/ipc" && ch.DesiredVersion == 293 {
						d.active = 293
					}
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	status := func(via *replica) server.ReleaseStatus {
		var st server.ReleaseStatus
		via.must(t, "GET", "/v1/releases/"+rel.ID+"/status", creds.PublisherToken, nil, &st)
		return st
	}
	// Mid-wave: the release left its canary and bakes in "half".
	for deadline := time.Now().Add(60 * time.Second); status(b).Release.WaveName != "half"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the release never reached wave half: %s", status(b).Summary)
		}
	}
	var leader *replica
	for _, r := range replicas {
		if r.leads() {
			if leader != nil {
				t.Fatalf("replicas %s and %s both say they lead", leader.name, r.name)
			}
			leader = r
		}
	}
	if leader == nil {
		t.Fatal("no replica says it leads the controller")
	}
	leader.kill()
	killedAt := time.Now()
	var rest []*replica
	for _, r := range replicas {
		if r != leader {
			rest = append(rest, r)
		}
	}
	// Another replica takes the lease (how soon is bench's business: a
	// test does not time it), and only one does.
	var next *replica
	for deadline := time.Now().Add(60 * time.Second); next == nil; time.Sleep(50 * time.Millisecond) {
		for _, r := range rest {
			if r.leads() {
				next = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica took the controller lease within 60 s of %s's death", leader.name)
		}
	}
	t.Logf("replica %s leads %s after %s was killed", next.name, time.Since(killedAt).Round(time.Millisecond), leader.name)
	for deadline := time.Now().Add(60 * time.Second); status(next).Release.State != "completed"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the release did not complete after the failover: %s", status(next).Summary)
		}
	}
	for _, r := range rest {
		if r != next && r.leads() {
			t.Errorf("replicas %s and %s both say they lead", next.name, r.name)
		}
	}
	// Each transition once, in order.
	var audit []struct {
		Action, Target, Reason, Actor string
	}
	next.must(t, "GET", "/v1/audit?limit=10000", admin, nil, &audit)
	var got []string
	for _, e := range audit {
		if e.Target == rel.ID && e.Actor == "controller" {
			got = append(got, e.Action+": "+e.Reason)
		}
	}
	want := []string{
		"release.promote: wave canary passed: every gate passed; now in wave half",
		"release.promote: wave half passed: every gate passed; now in wave all",
		"release.complete: wave all passed: every gate passed; release completed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the controller's audit entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var v struct {
		Verified bool `json:"verified"`
	}
	next.must(t, "GET", "/v1/audit/verify", admin, nil, &v)
	if !v.Verified {
		t.Error("the audit log does not verify after the failover")
	}
}
