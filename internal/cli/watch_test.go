package cli_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// watchAsync runs `release watch` in the background, as a pipeline step
// would, and hands back its result when it exits.
func (s *devServer) watchAsync(t *testing.T, token string, args ...string) <-chan result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"release", "watch"}, args...)...)
	cmd.Env = append(cleanEnv(), "RINGFENCE_SERVER="+s.url, "RINGFENCE_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code, r.stderr = -1, r.stderr+err.Error()
		}
		done <- r
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return done
}

func waitWatch(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		assertNoCrash(t, r)
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("release watch still running after 60s")
		return result{}
	}
}

// `release watch` is a pipeline's gate: it exits 0 once the release
// completes, 1 once it halts, and 2 when the watch itself cannot go on.
// `release create -q` prints the id alone, for RID=$(...).
func TestReleaseWatch(t *testing.T) {
	s := startDevServer(t, manualControl...)
	pub, appr := s.creds.Publisher, s.creds.Approver
	dir := t.TempDir()
	src, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	plan := writeFile(t, dir, "plan.json", []byte(`{"waves": [
		{"name": "canary", "share": 10, "canary": true, "min_devices": 0, "bake": "1h"},
		{"name": "broad", "share": 10000, "min_devices": 0, "bake": "1h"}]}`))
	create := func(version string) string {
		t.Helper()
		ok(t, s.as(t, pub, "publish", writeFile(t, dir, "ipc-"+version+".yaml", bytes.Replace(src, []byte("\nversion: 292\n"), []byte("\nversion: "+version+"\n"), 1))))
		r := ok(t, s.as(t, pub, "release", "create", "acme/ipc", version, "--plan", plan, "-q"))
		id := strings.TrimSuffix(r.stdout, "\n")
		if id == "" || strings.ContainsAny(id, " \n") {
			t.Fatalf("release create -q printed %q, want the id alone on a line", r.stdout)
		}
		return id
	}

	// A release halted while watched: exit 1, the halt's reason printed.
	halted := create("293")
	done := s.watchAsync(t, appr, halted, "--interval", "100ms")
	ok(t, s.as(t, appr, "release", "halt", halted, "--reason", "crash reports from canary"))
	r := waitWatch(t, done)
	wantCode(t, r, 1)
	wantContains(t, r.stdout, "): crash reports from canary\n")

	// A release watched through its waves to the end: exit 0.
	completes := create("294")
	done = s.watchAsync(t, pub, completes, "--interval", "100ms", "--json")
	// Leaving the canary waves needs the vendor's signatures too.
	ok(t, s.as(t, appr, "sign", "acme", "--key", s.creds.SigningKey, "--upload"))
	ok(t, s.as(t, appr, "release", "approve", completes, "--reason", "canary reviewed"))
	ok(t, s.as(t, pub, "release", "promote", completes, "--reason", "to broad"))
	ok(t, s.as(t, pub, "release", "promote", completes, "--reason", "done"))
	r = waitWatch(t, done)
	wantCode(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"release":{`) || !strings.Contains(last, `"state":"completed"`) {
		t.Errorf("last --json line %q, want the completed release's status as one JSON object", last)
	}

	// The watch's own failures: exit 2; a release the token may not see: 1.
	r = s.as(t, pub, "release", "watch", completes, "--interval", "1ms")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "ringfence: --interval 1ms: want at least 100ms\n")
	done = s.watchAsync(t, pub, create("295"), "--interval", "100ms", "--timeout", "300ms")
	r = waitWatch(t, done)
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--timeout passed before the release completed or halted\n")
	r = s.as(t, pub, "release", "watch", "rel-none", "--interval", "100ms")
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "ringfence: not found")
}
