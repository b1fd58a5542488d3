package cli_test

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `ringfence demo --scenario july19-bypass` is the quick start's bad day:
// a real server and real agents on loopback, the 19 July channel file
// halted by a gate, and every crashed host healed by itself. It prints
// the console's address and a token per role, and with --exit ends with
// the release.
func TestDemoJuly19HaltsAndHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and 60 agents")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--exit", "--listen", "127.0.0.1:0", "--devices", "60", "--speed", "120", "--scenario", "july19-bypass", "--dir", t.TempDir())
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("demo still running after 5 minutes\n%s", r)
	}
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, r)
	}
	assertNoCrash(t, r)
	if !regexp.MustCompile(`(?m)^console: http://127\.0\.0\.1:\d+/console/ `).MatchString(r.stdout) {
		t.Errorf("no console address\n%s", r)
	}
	for _, role := range []string{"operator (admin)", "acme publisher", "acme approver", " admin (one organisation)", " viewer"} {
		if !regexp.MustCompile(regexp.QuoteMeta(role) + ` +rft_[0-9a-f]{32}\n`).MatchString(r.stdout) {
			t.Errorf("no token for %q\n%s", role, r)
		}
	}
	last := strings.TrimSpace(r.stdout[strings.LastIndex(strings.TrimSpace(r.stdout), "\n")+1:])
	if !strings.HasPrefix(last, "halted: ") || !strings.HasSuffix(last, " 0 need hands") {
		t.Errorf("last line %q, want the halt with every crashed host healed", last)
	}
}

func TestDemoUsage(t *testing.T) {
	r := ringfence(t, "demo", "--scenario", "nope")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, `ringfence: --scenario "nope": want one of good, july19-bypass`)
	r = ringfence(t, "demo", "--devices", "0")
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--devices 0: want 1 to 5000")
}
