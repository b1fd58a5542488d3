package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// privatePostgres starts a PostgreSQL cluster of the test's own, which it
// may stop and start without disturbing other tests, and returns its URL
// and functions to stop and start it again.
func privatePostgres(t *testing.T) (url string, stop, start func()) {
	t.Helper()
	if os.Getenv(storetest.PostgresEnv) == "" && os.Getenv("CI") != "true" {
		t.Skip("no PostgreSQL for tests; run scripts/test")
	}
	root, err := filepath.Abs("../../scripts/postgres")
	if err != nil {
		t.Fatal(err)
	}
	// Its own directory, and only a Unix socket in it: no TCP port that
	// another process could take between choosing it and starting.
	dir, err := os.MkdirTemp("", "rf-pg")
	if err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) string {
		c := exec.Command("bash", root, cmd)
		c.Env = append(os.Environ(), "PGPORT=5432", "PGSOCKETONLY=1", "PGDIR="+dir)
		out, err := c.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("scripts/postgres %s: %v\n%s", cmd, err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	url = run("start")
	t.Cleanup(func() { run("stop"); os.RemoveAll(dir) })
	return url, func() { run("stop") }, func() { run("start") }
}

// A store outage: /readyz fails, check-ins answer 503 with Retry-After,
// nothing acknowledged is lost, and service resumes when the store returns.
func TestStoreOutagePostgres(t *testing.T) {
	url, stopPG, startPG := privatePostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlstore.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Catalog: cat}, st, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	creds, err := srv.SeedDev(ctx, t.TempDir(), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	var enr struct{ Credential string }
	if code := outagePost(t, hs.URL+"/v1/enroll", "", fmt.Sprintf(`{"token":%q,"platform":"windows","os_build":"22631","agent_version":"7.12.0"}`, creds.EnrollToken), &enr); code != 201 {
		t.Fatalf("enrol: %d", code)
	}
	checkin := func(seq int) (int, http.Header, uint64) {
		body := fmt.Sprintf(`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":292,"state":"active"}],"events":[{"seq":%d,"type":"actions","channel":"acme/ipc","version":292,"counts":{"block":1}}]}`, seq)
		req, _ := http.NewRequest("POST", hs.URL+"/v1/checkin", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+enr.Credential)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			AckSeq uint64 `json:"ack_seq"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header, out.AckSeq
	}
	if code, _, ack := checkin(1); code != 200 || ack != 1 {
		t.Fatalf("before the outage: status %d, ack %d; want 200, 1", code, ack)
	}

	stopPG()
	code, h, _ := checkin(2)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("during the outage: status %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	if code := outageGet(t, hs.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d, want 503", code)
	}
	if code := outageGet(t, hs.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200 (the process is up)", code)
	}

	startPG()
	deadline := time.Now().Add(60 * time.Second)
	for outageGet(t, hs.URL+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after the store returned")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The device retries its queued event: it is stored once, with the first.
	var ack uint64
	for time.Now().Before(deadline) {
		if code, _, ack = checkin(2); code == 200 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ack != 2 {
		t.Fatalf("after the outage: ack %d, want 2", ack)
	}
	var n int
	if err := st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d events stored, want 2: one acknowledged before the outage, one retried after", n)
	}
}

func outagePost(t *testing.T, url, token, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

func outageGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
