package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// crashServer is a `ringfence server --dev` process that the test kills
// with SIGKILL and starts again on the same data.
type crashServer struct {
	data, db, listen string
	extra            []string // more server flags
	cmd              *exec.Cmd
	stderr           lockedBuffer
	url              string
	creds            server.DevCredentials
}

func (s *crashServer) start(t *testing.T) {
	t.Helper()
	args := []string{"server", "--dev", "--data", s.data, "--listen", s.listen, "--log-level", "warn",
		"--checkin-interval", "1s", "--controller-tick", "100ms"}
	if s.db != "" {
		args = append(args, "--db", s.db)
	}
	args = append(args, s.extra...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := s.cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 20s\n%s", s.stderr.String())
		}
		if b, err := os.ReadFile(filepath.Join(s.data, "dev-credentials.json")); err == nil && json.Unmarshal(b, &s.creds) == nil && s.creds.Server != "" {
			s.url = s.creds.Server
			if resp, err := http.Get(s.url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					s.listen = strings.TrimPrefix(s.url, "http://")
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9: no shutdown, no flush.
func (s *crashServer) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
}

func (s *crashServer) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		if str, ok := body.(string); ok {
			r = strings.NewReader(str)
		} else {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (s *crashServer) must(t *testing.T, want int, method, path, token string, body, out any) {
	t.Helper()
	if code := s.call(t, method, path, token, body, out); code != want {
		t.Fatalf("%s %s: got %d, want %d", method, path, code, want)
	}
}

// TestKill9MidWaveKeepsRolloutState: a release is in its canary wave with
// devices reporting; the server is killed with SIGKILL under load and
// started again. The release's state and every acknowledged event are
// there; at most the last flush interval of heartbeats is lost.
func TestKill9MidWaveKeepsRolloutState(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			// Any free port at first; the restart keeps the one it got.
			s := &crashServer{data: t.TempDir(), listen: "127.0.0.1:0"}
			if dialect == "postgres" {
				s.db = storetest.PostgresURL(t)
			}
			s.start(t)
			admin := s.creds.AdminToken
			s.must(t, 201, "POST", "/v1/tenants", admin, map[string]string{"id": "fleet", "kind": "org", "name": "Fleet"}, nil)
			s.must(t, 200, "PUT", "/v1/orgs/fleet/policies/acme/ipc", admin, map[string]any{"track": "early"}, nil)
			var enr struct{ Token string }
			s.must(t, 201, "POST", "/v1/orgs/fleet/enroll-tokens", admin, map[string]any{}, &enr)
			type dev struct {
				id, cred      string
				active, seq   uint64
				acked         uint64
				lastAckedSeen time.Time
			}
			var devs []*dev
			for range 30 {
				var out struct {
					DeviceID   string `json:"device_id"`
					Credential string `json:"credential"`
				}
				s.must(t, 201, "POST", "/v1/enroll", "", map[string]string{"token": enr.Token, "platform": "windows", "os_build": "22631", "agent_version": "7.12.0"}, &out)
				devs = append(devs, &dev{id: out.DeviceID, cred: out.Credential, active: 292})
			}
			src, err := os.ReadFile(ipc292)
			if err != nil {
				t.Fatal(err)
			}
			s.must(t, 201, "POST", "/v1/channels/acme/ipc/publish", s.creds.PublisherToken, strings.Replace(string(src), "version: 292\n", "version: 293\n", 1), nil)
			var rel server.ReleaseReport
			s.must(t, 201, "POST", "/v1/releases", s.creds.PublisherToken, map[string]any{"channel": "acme/ipc", "version": 293}, &rel)

			// Devices check in continuously: apply what they are told,
			// report applied, then healthy.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, d := range devs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						mu.Lock()
						var events []server.EventReport
						if d.active == 293 && d.seq < 2 {
							typ := map[uint64]string{0: "applied", 1: "healthy"}[d.seq]
							events = append(events, server.EventReport{Seq: d.seq + 1, Type: typ, Channel: "acme/ipc", Version: 293})
						}
						req := server.CheckinRequest{Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0", Events: events,
							Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: d.active, LKGVersion: 292, State: "active"}}}
						mu.Unlock()
						var resp server.CheckinResponse
						sent := time.Now()
						if s.call(t, "POST", "/v1/checkin", d.cred, req, &resp) == 200 {
							mu.Lock()
							d.acked, d.lastAckedSeen = resp.AckSeq, sent
							if len(events) > 0 && resp.AckSeq >= events[0].Seq {
								d.seq = resp.AckSeq
							}
							for _, c := range resp.Channels {
								if c.Channel == "acme/ipc" && c.DesiredVersion == 293 {
									d.active = 293
								}
							}
							mu.Unlock()
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			// Wait until the canary's devices confirmed healthy.
			var before server.ReleaseStatus
			deadline := time.Now().Add(30 * time.Second)
			for {
				s.must(t, 200, "GET", "/v1/releases/"+rel.ID+"/status", s.creds.PublisherToken, nil, &before)
				if before.Release.WaveName == "canary" && len(before.Waves) > 1 && before.Waves[1].Confirmed >= 20 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("canary not confirmed within 30s: %s %+v", before.Summary, before.Waves)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// A person's action just before the crash must survive it.
			s.must(t, 200, "POST", "/v1/releases/"+rel.ID+"/approve", s.creds.ApproverToken, map[string]string{"reason": "before the crash"}, nil)
			var figuresBefore server.ReleaseReport
			s.must(t, 200, "GET", "/v1/releases/"+rel.ID, admin, nil, &figuresBefore)
			time.Sleep(300 * time.Millisecond) // more check-ins in flight
			s.kill(t)
			close(stop)
			wg.Wait()

			s.start(t)
			var after server.ReleaseStatus
			s.must(t, 200, "GET", "/v1/releases/"+rel.ID+"/status", s.creds.PublisherToken, nil, &after)
			if after.Release.Wave < before.Release.Wave || after.Release.State != before.Release.State && after.Release.State != "awaiting-approval" {
				t.Fatalf("after the crash: %s in wave %s; before: %s in wave %s", after.Release.State, after.Release.WaveName, before.Release.State, before.Release.WaveName)
			}
			if len(after.Release.Approvals) != 1 {
				t.Fatalf("the approval acknowledged before the crash is gone: %+v", after.Release.Approvals)
			}
			var figuresAfter server.ReleaseReport
			s.must(t, 200, "GET", "/v1/releases/"+rel.ID, admin, nil, &figuresAfter)
			sum := func(r server.ReleaseReport, metric string) int64 {
				var n int64
				for _, f := range r.Figures {
					if f.Metric == metric {
						n += f.Value
					}
				}
				return n
			}
			var acked [3]int64
			for _, d := range devs {
				for i := uint64(1); i <= d.acked && i <= 2; i++ {
					acked[i]++
				}
			}
			if got := sum(figuresAfter, "applied"); got < acked[1] {
				t.Errorf("applied: %d stored, but %d acknowledged", got, acked[1])
			}
			if got := sum(figuresAfter, "healthy"); got < acked[2] {
				t.Errorf("healthy: %d stored, but %d acknowledged", got, acked[2])
			}
			for _, m := range []string{"heartbeat", "control-heartbeat", "applied", "healthy"} {
				if b, a := sum(figuresBefore, m), sum(figuresAfter, m); a < b {
					t.Errorf("%s: %d before the crash, %d after: stored counters went back", m, b, a)
				}
			}
			// Heartbeats are flushed once a second: a device's stored
			// last-seen is at most that (and the crash) behind its last
			// acknowledged check-in.
			for _, d := range devs {
				var info server.DeviceInfo
				s.must(t, 200, "GET", "/v1/devices/"+d.id, admin, nil, &info)
				if lag := d.lastAckedSeen.Sub(info.LastSeen); lag > 2*time.Second {
					t.Errorf("device %s: last seen %s stored, last acknowledged check-in at %s: %s of heartbeats lost", d.id, info.LastSeen, d.lastAckedSeen, lag)
				}
			}
		})
	}
}
