package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/testcert"
)

// `ringfence server --tls-cert --tls-key` serves HTTPS only, with the
// certificate it was given, and a SIGHUP after the files were renewed
// serves the new one; a renewal that cannot be read keeps the old one.
func TestServerServesTLSAndReloadsItOnHangup(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGHUP")
	}
	ca := testcert.NewCA(t)
	dir, data := t.TempDir(), t.TempDir()
	certFile, keyFile := ca.Issue(t, dir, 100)
	cmd := exec.Command(binary, "server", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--tls-cert", certFile, "--tls-key", keyFile)
	cmd.Env = cleanEnv()
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var creds server.DevCredentials
	waitFor(t, &stderr, "the server ready over HTTPS", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "dev-credentials.json"))
		if err != nil || json.Unmarshal(b, &creds) != nil || creds.Server == "" {
			return false
		}
		resp, err := client.Get(creds.Server + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	addr, ok := strings.CutPrefix(creds.Server, "https://")
	if !ok {
		t.Fatalf("dev credentials name %s, want an https:// URL", creds.Server)
	}
	serial := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serving certificate %d, want 100", got)
	}
	// Not trusted without the CA; no plain HTTP on the port.
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(creds.Server + "/readyz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		if resp != nil {
			resp.Body.Close()
		}
		t.Errorf("a client without the CA: %v, want a certificate error", err)
	}
	if resp, err := http.Get("http://" + addr + "/v1/releases"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP answered %d, want 400", resp.StatusCode)
		}
	}

	// The CLI verifies the server with --ca (or $RINGFENCE_CA).
	caFile := ca.WriteCA(t, dir)
	r := rfEnv(t, nil, "release", "list", "--server", creds.Server, "--token", creds.AdminToken, "--ca", caFile)
	wantCode(t, r, 0)
	r = rfEnv(t, []string{"RINGFENCE_CA=" + caFile}, "release", "list", "--server", creds.Server, "--token", creds.AdminToken)
	wantCode(t, r, 0)
	r = rfEnv(t, nil, "release", "list", "--server", creds.Server, "--token", creds.AdminToken)
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "certificate signed by unknown authority (a private CA? give its certificate with --ca or RINGFENCE_CA)")

	ca.Issue(t, dir, 101) // renewed in place
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, "the renewed certificate served", func() bool { return serial() == 101 })

	if err := os.WriteFile(certFile, []byte("half a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, "the failed reload logged", func() bool {
		return strings.Contains(stderr.String(), "TLS certificate not reloaded; serving the previous one")
	})
	if got := serial(); got != 101 {
		t.Errorf("after a failed reload: serving %d, want 101 still", got)
	}
}

// Plain HTTP on an address other than loopback needs --insecure-http; the
// refusal comes before the data directory is made.
func TestServerRefusesPlainHTTPBeyondLoopback(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := rfEnv(t, nil, "server", "--data", data, "--listen", "0.0.0.0:0")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--listen 0.0.0.0:0 is not a loopback address: serve HTTPS there with --tls-cert and --tls-key, or say --insecure-http")
	if _, err := os.Stat(data); err == nil {
		t.Errorf("the data directory was made")
	}
	r = rfEnv(t, nil, "server", "--data", data, "--listen", "127.0.0.1:0", "--tls-cert", "cert.pem")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--tls-cert and --tls-key: give both, or neither")
	r = rfEnv(t, nil, "server", "--data", data, "--listen", "127.0.0.1:0", "--tls-cert", "missing.pem", "--tls-key", "missing-key.pem")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "TLS certificate missing.pem and key missing-key.pem: open missing.pem: no such file or directory")
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, log *lockedBuffer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute\n%s", what, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
