package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/memstore"
)

// devServer is a development server (vendor acme, bundle 292 released and
// signed) on a loopback port, and a device enrolled with it.
func devServer(t *testing.T) (data string) {
	t.Helper()
	data, _ = devServerWith(t, server.Config{})
	return data
}

// devServerWith is devServer with cfg, and the device's identity.
func devServerWith(t *testing.T, cfg server.Config) (data string, id *agent.Identity) {
	t.Helper()
	dir := t.TempDir()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Catalog, cfg.TUFDir = cat, filepath.Join(dir, "tuf")
	srv := server.New(cfg, memstore.New(), time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Before the directory goes: the server's loops write its TUF files.
	t.Cleanup(func() { cancel(); srv.Wait() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	creds, err := srv.SeedDev(ctx, dir, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	data = filepath.Join(dir, "device")
	id, _, err = agent.Enroll(ctx, agent.EnrollOptions{Server: ts.URL, Token: creds.EnrollToken, Data: data,
		Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0"})
	if err != nil {
		t.Fatal(err)
	}
	return data, id
}

// fakeWorker runs nothing; load decides what loading a version does.
type fakeWorker struct {
	load    func(version uint64) error
	mu      sync.Mutex
	loaded  map[string]uint64
	unloads chan string
}

func (w *fakeWorker) Start(context.Context) error { return nil }
func (w *fakeWorker) Stop() error                 { return nil }
func (w *fakeWorker) Load(_ context.Context, ch string, v uint64, _ string) error {
	if err := w.load(v); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.loaded[ch] = v
	return nil
}
func (w *fakeWorker) Unload(_ context.Context, ch string) error {
	w.mu.Lock()
	delete(w.loaded, ch)
	w.mu.Unlock()
	w.unloads <- ch
	return nil
}
func (w *fakeWorker) Loaded(ch string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded[ch]
}
func (w *fakeWorker) LoadedSlot(string) string { return "" }
func (w *fakeWorker) Counts(context.Context) (agent.ActionCounts, error) {
	return agent.ActionCounts{}, nil
}
func (w *fakeWorker) LoadShadow(context.Context, string, uint64, string) error { return nil }
func (w *fakeWorker) UnloadShadow(context.Context, string) error               { return nil }
func (w *fakeWorker) LoadedShadow(string) uint64                               { return 0 }
func (w *fakeWorker) Feed([]byte)                                              {}

// runAgent runs an agent on data until stop, which returns only once the
// agent has ended: an agent still writing its queue when the test ends
// makes removing the test's directory fail. The test's cleanup stops it
// too.
func runAgent(t *testing.T, data string, w *fakeWorker) (stop func(), done <-chan struct{}) {
	t.Helper()
	w.loaded, w.unloads = map[string]uint64{}, make(chan string, 8)
	a, err := agent.New(agent.Config{Data: data, NewWorker: func(func(map[string]uint64, error)) agent.Worker { return w }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		_ = a.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-ch
	}
	t.Cleanup(stop)
	return stop, ch
}

func pending(t *testing.T, data string) []string {
	t.Helper()
	q, err := agent.OpenQueue(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range q.Pending(100) {
		out = append(out, string(e.Type))
	}
	return out
}

// A host that dies loading new content has already queued, durably, that
// it applied it: the server counts the device among those the release
// reached, so the boot loop's revert that follows is a share of them.
func TestAppliedIsQueuedBeforeTheContentLoads(t *testing.T) {
	data := devServer(t)
	w := &fakeWorker{load: func(v uint64) error {
		if v == 292 {
			runtime.Goexit() // the host dies here: nothing after it runs
		}
		return nil
	}}
	stop, done := runAgent(t, data, w)
	defer stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent never loaded 292")
	}
	if got := pending(t, data); len(got) != 1 || got[0] != string(agent.EventApplied) {
		t.Fatalf("queued before the crash: %v, want [applied]", got)
	}
}

// Content the worker refuses to load is reverted, and reported as a
// revert of what the server heard was applied, not as an apply failure
// (those are of devices that never activated it).
func TestRefusedContentIsReportedAsReverted(t *testing.T) {
	data := devServer(t)
	w := &fakeWorker{load: func(v uint64) error {
		if v == 292 {
			return errors.New("ipc@3: unknown template type")
		}
		return nil
	}}
	stop, _ := runAgent(t, data, w)
	select {
	case <-w.unloads:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent never reverted 292")
	}
	stop()
	got := pending(t, data)
	if len(got) != 2 || got[0] != string(agent.EventApplied) || got[1] != string(agent.EventReverted) {
		t.Fatalf("queued: %v, want [applied reverted]", got)
	}
}

// A device over the server's event quota still hears what to run: the
// agent checks in again at once with its state only, loads the version it
// is told, and keeps its events queued for later.
func TestEventQuotaDoesNotHoldBackWhatToRun(t *testing.T) {
	data, id := devServerWith(t, server.Config{EventsPerHour: 60})
	q, err := agent.OpenQueue(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	var evs []protocol.EventReport
	for range 1001 {
		e, err := q.Append(agent.Event{Time: time.Now(), Type: agent.EventWorkerCrash, Channel: "acme/ipc", Version: 1, Reason: "exit 3"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) < 1000 {
			evs = append(evs, protocol.EventReport{Seq: e.Seq, Time: e.Time, Type: string(e.Type), Channel: e.Channel, Version: e.Version, Reason: e.Reason})
		}
	}
	// The first 1,000 were sent and stored: the hour's allowance is spent.
	body, _ := json.Marshal(protocol.CheckinRequest{Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0", Events: evs})
	req, _ := http.NewRequest(http.MethodPost, id.Server+"/v1/checkin", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+id.Credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("spending the allowance: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := q.Ack(1000); err != nil {
		t.Fatal(err)
	}

	loaded := make(chan uint64, 4)
	w := &fakeWorker{load: func(v uint64) error { loaded <- v; return nil }}
	stop, _ := runAgent(t, data, w)
	defer stop()
	select {
	case v := <-loaded:
		if v != 292 {
			t.Fatalf("loaded %d, want 292", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("over its event quota, the agent never heard it should run 292")
	}
	stop()
	if got := pending(t, data); len(got) == 0 || got[0] != string(agent.EventWorkerCrash) {
		t.Errorf("queued after the quota: %v, want the held worker-crash first", got)
	}
}

// TestBuildOnProbationNeedsACheckIn: an agent build becomes last-known-good
// only after a probation in which it reached the server. A build that
// runs but cannot check in stays on probation (the launcher's trial
// timeout then takes it back); the same build able to check in is
// confirmed.
func TestBuildOnProbationNeedsACheckIn(t *testing.T) {
	data, id := devServerWith(t, server.Config{})
	j := agent.NewJournal()
	ch := j.Channel("acme/sensor-linux")
	ch.Kind, ch.State = agent.KindBuild, agent.StateProbation
	ch.ActiveVersion, ch.ActiveSlot = 2, agent.SlotA
	ch.Pending = &agent.Pending{Version: 2, Slot: agent.SlotA, ActivatedAt: time.Now()}
	if err := j.Save(data); err != nil {
		t.Fatal(err)
	}
	t.Setenv(agent.LaunchedEnv, "2")
	real := id.Server
	run := func(server string, confirm bool) *agent.ChannelState {
		t.Helper()
		id.Server = server
		b, _ := json.Marshal(id)
		if err := os.WriteFile(filepath.Join(data, agent.IdentityFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		w := &fakeWorker{load: func(uint64) error { return nil }, loaded: map[string]uint64{}, unloads: make(chan string, 8)}
		a, err := agent.New(agent.Config{Data: data, Policy: agent.Policy{Probation: 50 * time.Millisecond}, MaxBackoff: 100 * time.Millisecond,
			NewWorker: func(func(map[string]uint64, error)) agent.Worker { return w }})
		if err != nil {
			t.Fatal(err)
		}
		// It runs for a second, or until the build is confirmed: how
		// fast this machine is decides nothing.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if confirm {
			ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		}
		defer cancel()
		go func() {
			for ctx.Err() == nil {
				if j, err := agent.LoadJournal(data); err == nil && j.Channels["acme/sensor-linux"].LKGVersion == 2 {
					cancel()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		if err := a.Run(ctx); err != nil {
			t.Fatalf("run: %v", err)
		}
		j, err := agent.LoadJournal(data)
		if err != nil {
			t.Fatal(err)
		}
		return j.Channels["acme/sensor-linux"]
	}
	// Port 1 is never listening: every check-in is refused.
	if c := run("http://127.0.0.1:1", false); c.Pending == nil || c.LKGVersion != 0 {
		t.Fatalf("a build that never checked in was confirmed: %+v", c)
	}
	if c := run(real, true); c.Pending != nil || c.LKGVersion != 2 || c.State != agent.StateActive {
		t.Fatalf("a build that checked in was not confirmed: %+v", c)
	}
}
