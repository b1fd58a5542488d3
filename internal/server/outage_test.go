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
// nothing acknowledged is lost, and service resumes when the store
// returns; on one server, and on three replicas behind HAProxy, where
// every replica answers so (round robin) and, once its health checks
// find them all unready, HAProxy's own 503 carries a Retry-After too.
func TestStoreOutagePostgres(t *testing.T) {
	t.Run("one-server", func(t *testing.T) { storeOutage(t, 1) })
	t.Run("three-replicas-behind-haproxy", func(t *testing.T) { storeOutage(t, 3) })
}

func storeOutage(t *testing.T, replicas int) {
	url, stopPG, startPG := privatePostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cat, err := server.ExampleCatalog()
	if err != nil {
		t.Fatal(err)
	}
	var st *sqlstore.Store
	var creds *server.DevCredentials
	var urls []string
	for i := range replicas {
		s, err := sqlstore.Open(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srv := server.New(server.Config{Catalog: cat}, s, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		defer hs.Close()
		urls = append(urls, hs.URL)
		if i == 0 {
			st = s
			if creds, err = srv.SeedDev(ctx, t.TempDir(), hs.URL); err != nil {
				t.Fatal(err)
			}
		}
	}
	oc := outageClient{t: t, c: http.DefaultClient, base: urls[0]}
	if replicas > 1 {
		oc = outageClient{t: t, c: haproxy(t, urls...), base: "http://ringfence"}
	}
	var enr struct{ Credential string }
	if code, _ := oc.post("/v1/enroll", "", fmt.Sprintf(`{"token":%q,"platform":"windows","os_build":"22631","agent_version":"7.12.0"}`, creds.EnrollToken), &enr); code != 201 {
		t.Fatalf("enrol: %d", code)
	}
	checkin := func(seq int) (int, http.Header, uint64) {
		body := fmt.Sprintf(`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":292,"state":"active"}],"events":[{"seq":%d,"type":"actions","channel":"acme/ipc","version":292,"counts":{"block":1}}]}`, seq)
		var out struct {
			AckSeq uint64 `json:"ack_seq"`
		}
		code, h := oc.post("/v1/checkin", enr.Credential, body, &out)
		return code, h, out.AckSeq
	}
	for i := range replicas { // one on each replica
		if code, _, ack := checkin(1); code != 200 || ack != 1 {
			t.Fatalf("before the outage, check-in %d: status %d, ack %d; want 200, 1", i+1, code, ack)
		}
	}

	stopPG()
	for i := range replicas {
		code, h, _ := checkin(2)
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Fatalf("during the outage, check-in %d: status %d, Retry-After %q; want 503 with Retry-After", i+1, code, h.Get("Retry-After"))
		}
	}
	for _, u := range urls {
		if code := outageGet(t, u+"/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("%s/readyz during the outage: %d, want 503", u, code)
		}
		if code := outageGet(t, u+"/healthz"); code != http.StatusOK {
			t.Errorf("%s/healthz during the outage: %d, want 200 (the process is up)", u, code)
		}
	}
	if replicas > 1 {
		// Once the load balancer's checks find every replica unready it
		// answers itself, and devices must still hear when to come back.
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, h, _ := checkin(2)
			if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
				t.Fatalf("during the outage: status %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
			}
			if h.Get("Content-Type") != "application/json" {
				break // HAProxy's own answer: the replicas answer JSON
			}
			if time.Now().After(deadline) {
				t.Fatal("HAProxy still forwards to replicas 30 s into the outage")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	startPG()
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range urls {
		for outageGet(t, u+"/readyz") != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz did not recover after the store returned", u)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The device retries its queued event: it is stored once, with the
	// first, whichever replica answers.
	var ack uint64
	for time.Now().Before(deadline) {
		var code int
		if code, _, ack = checkin(2); code == 200 && ack == 2 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ack != 2 {
		t.Fatalf("after the outage: ack %d, want 2", ack)
	}
	// Retried again until every replica has answered it (a replica's
	// pool may still hold a connection the restart broke), each with the
	// same acknowledgement and nothing stored twice.
	for answered := 0; answered < replicas; {
		code, _, ack := checkin(2)
		switch {
		case code == 200 && ack == 2:
			answered++
		case code == 200:
			t.Fatalf("a retry after the outage: ack %d, want 2", ack)
		case time.Now().After(deadline):
			t.Fatalf("a retry after the outage: status %d 60 s after the store returned", code)
		default:
			time.Sleep(200 * time.Millisecond)
		}
	}
	var n int
	if err := st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d events stored, want 2: one acknowledged before the outage, one retried after", n)
	}
}

// outageClient talks to a server, or to HAProxy in front of several.
type outageClient struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (o outageClient) post(path, token, body string, v any) (int, http.Header) {
	o.t.Helper()
	req, _ := http.NewRequest("POST", o.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := o.c.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode, resp.Header
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
