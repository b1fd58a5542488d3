package agentcli_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/agent"
	"github.com/ringfence/ringfence/internal/testcert"
)

// An agent talks to a server that serves TLS with a private CA's
// certificate only when given that CA (--ca at enrolment, kept for run):
// the system's roots refuse it. Given it, the agent enrols, checks in,
// and installs and confirms the seed release over HTTPS.
func TestAgentVerifiesTheServerOverTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	certDir, data := t.TempDir(), t.TempDir()
	certFile, keyFile := ca.Issue(t, certDir, 7)
	caFile := ca.WriteCA(t, certDir)
	srv := start(t, cleanEnv(), serverBin, "server", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--checkin-interval", "1s", "--controller-tick", "1s", "--tls-cert", certFile, "--tls-key", keyFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var creds struct {
		Server string `json:"server"`
		Enroll string `json:"enroll_token"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(data, "dev-credentials.json"))
		if err == nil && json.Unmarshal(b, &creds) == nil && creds.Server != "" {
			if resp, err := client.Get(creds.Server + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready over HTTPS:\n%s", srv.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	enrol := func(dir string, extra ...string) ([]byte, error) {
		args := append([]string{"enroll", "--server", creds.Server, "--token", creds.Enroll, "--data", dir,
			"--platform", "windows", "--os-build", "22631", "--agent-version", "7.12.0"}, extra...)
		return exec.Command(agentBin, args...).CombinedOutput()
	}
	if out, err := enrol(t.TempDir()); err == nil || !strings.Contains(string(out), "certificate signed by unknown authority") {
		t.Fatalf("enrolment with the system's roots: %v\n%s\nwant it refused: the server's certificate is from a private CA", err, out)
	}
	d := &device{data: t.TempDir()}
	if out, err := enrol(d.data, "--ca", caFile); err != nil {
		t.Fatalf("enrolment with --ca: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(d.data, agent.CAFile)); err != nil || string(b) != string(ca.PEM) {
		t.Fatalf("the CA kept for run: %q, %v", b, err)
	}
	d.start(t, "")
	d.waitFor(t, "confirmed on 292 over HTTPS", confirmedOn(292))
}
