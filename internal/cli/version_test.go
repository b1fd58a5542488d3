package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestVersionCommand(t *testing.T) {
	r := ringfence(t, "version")
	if r.code != 0 || !regexp.MustCompile(`^ringfence \S+ \(.*go1\.[0-9.]+.*, [a-z0-9]+/[a-z0-9]+\)\n$`).MatchString(r.stdout) {
		t.Fatalf("ringfence version: want one line naming the version, the toolchain and the platform\n%s", r)
	}
	r = ringfence(t, "version", "--json")
	var in struct {
		Version, Go, Platform string
	}
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil || r.code != 0 || in.Version == "" || in.Go == "" || in.Platform == "" {
		t.Fatalf("ringfence version --json: %v\n%s", err, r)
	}
	if !strings.Contains(r.stdout, `"version": "`+in.Version+`"`) || !strings.HasPrefix(ringfence(t, "version").stdout, "ringfence "+in.Version+" (") {
		t.Errorf("the line and the JSON name different versions\n%s", r)
	}
	if r := ringfence(t, "version", "extra"); r.code != 2 {
		t.Errorf("ringfence version extra: want exit 2\n%s", r)
	}
}

// TestVersionFromLinker builds the binary as a release is built, with its
// version given to the linker, and finds that version in `ringfence
// version`, in /healthz and in the metrics of `ringfence server --dev
// --metrics-addr`.
func TestVersionFromLinker(t *testing.T) {
	const want = "v9.8.7-test"
	bin := filepath.Join(t.TempDir(), "ringfence")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/ringfence/ringfence/internal/version.version="+want, "-o", bin, "./cmd/ringfence")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "ringfence "+want+" (") {
		t.Fatalf("ringfence version: %v\n%s", err, out)
	}

	s := startDevServerOf(t, bin, "--metrics-addr", "127.0.0.1:0")
	var health map[string]string
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || health["status"] != "ok" || health["version"] != want {
		t.Fatalf("/healthz: %v %v, want status ok and version %s", health, err, want)
	}

	// The banner names the metrics listener; it serves the build's version.
	var metricsURL string
	for deadline := time.Now().Add(10 * time.Second); metricsURL == ""; time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`metrics: (http://\S+/metrics)`).FindStringSubmatch(s.stdout.String()); m != nil {
			metricsURL = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the dev banner names no metrics URL:\n%s", s.stdout.String())
		}
	}
	if !strings.Contains(s.stdout.String(), "Ringfence "+want+" is running in development mode") {
		t.Errorf("the dev banner does not name the version:\n%s", s.stdout.String())
	}
	resp, err = http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `version="`+want+`"`) || !strings.Contains(string(body), "ringfence_release_state{") {
		t.Fatalf("GET %s: %d\n%s", metricsURL, resp.StatusCode, body)
	}
	resp, err = http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d, want 404 (metrics have a listener of their own)", resp.StatusCode)
	}
}

func TestServerMetricsOffByDefault(t *testing.T) {
	s := startDevServer(t)
	if !strings.Contains(s.stdout.String(), "metrics: off") {
		t.Errorf("the dev banner should say metrics are off without --metrics-addr:\n%s", s.stdout.String())
	}
}
