package cli_test

// These tests build the real ringfence binary once and run it as a process,
// checking what an operator or a pipeline sees: exit status (0 accepted,
// 1 rejected, 2 usage or I/O error), stdout, stderr and files on disk.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	binary   string // the ringfence binary built by TestMain
	examples string // examples/content in the module
	types    string
	manifs   string
	ch291    string
	ipc292   string
	events   string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli_test:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "ringfence-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli_test:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "ringfence")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	// go test puts $GOROOT/bin first on PATH, so this is the go that runs the tests.
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli_test: no go command on PATH:", err)
		return 2
	}
	build := exec.Command(goTool, "build", "-o", binary, "./cmd/ringfence")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cli_test: go build ./cmd/ringfence: %v\n%s", err, out)
		return 2
	}
	examples = filepath.Join(root, "examples", "content")
	types = filepath.Join(examples, "template-types")
	manifs = filepath.Join(examples, "manifests")
	ch291 = filepath.Join(examples, "bundles", "channel-291.yaml")
	ipc292 = filepath.Join(examples, "bundles", "ipc-292.yaml")
	events = filepath.Join(examples, "events", "ipc-sample.jsonl")
	return m.Run()
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// ringfence runs the binary and fails the test if it did not exit with one
// of the documented statuses or if it crashed.
func ringfence(t *testing.T, args ...string) result {
	t.Helper()
	return runBinary(t, nil, args...)
}

// runBinary runs the binary with env (nil: the test's own environment).
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("ringfence %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("ringfence %s: timed out\n%s", strings.Join(args, " "), r)
	}
	if r.code < 0 || r.code > 2 {
		t.Errorf("ringfence %s: got exit %d, want 0, 1 or 2\n%s", strings.Join(args, " "), r.code, r)
	}
	assertNoCrash(t, r)
	return r
}

func assertNoCrash(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{r.stdout, r.stderr} {
		low := strings.ToLower(s)
		if strings.Contains(low, "panic") || strings.Contains(low, "goroutine") {
			t.Errorf("output mentions a panic or goroutine dump\n%s", r)
		}
	}
}

func wantCode(t *testing.T, r result, want int) {
	t.Helper()
	if r.code != want {
		t.Errorf("got exit %d, want %d\n%s", r.code, want, r)
	}
}

func wantContains(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("got output\n%s\nwant it to contain %q", got, want)
	}
}

func validateArgs(extra ...string) []string {
	return append([]string{"content", "validate", "--types", types, "--manifests", manifs}, extra...)
}

func preflightArgs(extra ...string) []string {
	return append([]string{"content", "preflight", "--types", types, "--manifests", manifs}, extra...)
}

func compileArgs(bundle, out string, extra ...string) []string {
	return append([]string{"content", "compile", "--types", types, "--manifests", manifs, bundle, "-o", out}, extra...)
}

func evalArgs(bundle, events string, extra ...string) []string {
	return append([]string{"content", "eval", "--types", types, bundle, events}, extra...)
}

// compiled compiles ipc-292 into a fresh temporary directory and returns
// the path and the bytes.
func compiled(t *testing.T) (string, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ipc-292.rfcb")
	r := ringfence(t, compileArgs(ipc292, out)...)
	if r.code != 0 {
		t.Fatalf("compile ipc-292: got exit %d, want 0\n%s", r.code, r)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, b
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// report mirrors the --json output of validate, compile and preflight.
type report struct {
	Accepted bool `json:"accepted"`
	Bundles  []struct {
		File     string `json:"file"`
		Bundle   string `json:"bundle"`
		Accepted bool   `json:"accepted"`
		SHA256   string `json:"sha256"`
		Size     int    `json:"size"`
		Output   string `json:"output"`
		Findings []struct {
			Level      string   `json:"level"`
			Rule       string   `json:"rule"`
			Instance   string   `json:"instance"`
			FieldIndex int      `json:"field_index"`
			FieldName  string   `json:"field_name"`
			Agents     []string `json:"agents"`
			Message    string   `json:"message"`
			Location   string   `json:"location"`
		} `json:"findings"`
		Agents []struct {
			Agent          string `json:"agent"`
			Inputs         int    `json:"inputs"`
			Events         int    `json:"events"`
			InstanceErrors int    `json:"instance_errors"`
		} `json:"agents"`
		Errors   []string `json:"errors"`
		Targeted []string `json:"targeted_agents"`
	} `json:"bundles"`
}

func parseReport(t *testing.T, r result) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, r)
	}
	return rep
}

const inputNotSupplied = `criterion on input 21 "pipe_owner_sid" but agent 7.11.0 (windows) supplies 20 inputs for ipc@3`

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"channel-291-rejected", validateArgs(ch291), 1, []string{
			"REJECTED " + ch291, "error [input-not-supplied]", "instance c2-pipe-7", inputNotSupplied, ch291 + ":25:9"}},
		{"ipc-292-accepted", validateArgs(ipc292), 0, []string{"ACCEPTED " + ipc292 + " (acme/ipc@292)"}},
		{"one-rejected-rejects-all", validateArgs(ipc292, ch291), 1, []string{
			"ACCEPTED " + ipc292, "REJECTED " + ch291, inputNotSupplied}},
		{"current-equal-rejected", validateArgs("--current", "acme/ipc=292", ipc292), 1, []string{
			"[version-not-increasing]", "version 292 is not above the channel's current version 292"}},
		{"current-above-rejected", validateArgs("--current", "acme/ipc=1000", ipc292), 1, []string{"[version-not-increasing]"}},
		{"current-below-accepted", validateArgs("--current", "acme/ipc=291", ipc292), 0, []string{"ACCEPTED"}},
		{"current-other-channel-ignored", validateArgs("--current", "acme/other=999", ipc292), 0, []string{"ACCEPTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ringfence(t, tt.args...)
			wantCode(t, r, tt.wantCode)
			for _, w := range tt.want {
				wantContains(t, r.stdout, w)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	t.Run("channel-291", func(t *testing.T) {
		r := ringfence(t, validateArgs("--json", ch291)...)
		wantCode(t, r, 1)
		rep := parseReport(t, r)
		if rep.Accepted {
			t.Errorf("got accepted=true, want false")
		}
		if len(rep.Bundles) != 1 {
			t.Fatalf("got %d bundles, want 1\n%s", len(rep.Bundles), r)
		}
		b := rep.Bundles[0]
		if b.Accepted || b.Bundle != "acme/ipc@291" || b.File != ch291 {
			t.Errorf("got bundle %q file %q accepted=%v, want acme/ipc@291 %s false", b.Bundle, b.File, b.Accepted, ch291)
		}
		found := false
		for _, f := range b.Findings {
			if f.Rule != "input-not-supplied" {
				continue
			}
			found = true
			if f.Level != "error" || f.FieldIndex != 21 || f.FieldName != "pipe_owner_sid" || f.Instance != "c2-pipe-7" ||
				!slices.Equal(f.Agents, []string{"7.11.0 (windows)"}) || f.Location != ch291+":25:9" {
				t.Errorf("got finding %+v, want error on c2-pipe-7 field 21 pipe_owner_sid for [7.11.0 (windows)] at %s:25:9", f, ch291)
			}
		}
		if !found {
			t.Errorf("got no input-not-supplied finding\n%s", r)
		}
		if want := []string{"7.11.0 (windows)", "7.12.0 (windows)"}; !slices.Equal(b.Targeted, want) {
			t.Errorf("got targeted agents %q, want %q", b.Targeted, want)
		}
	})
	t.Run("ipc-292", func(t *testing.T) {
		r := ringfence(t, validateArgs("--json", ipc292)...)
		wantCode(t, r, 0)
		rep := parseReport(t, r)
		if !rep.Accepted || len(rep.Bundles) != 1 || !rep.Bundles[0].Accepted {
			t.Fatalf("got %+v, want one accepted bundle", rep)
		}
		if len(rep.Bundles[0].SHA256) != 64 || rep.Bundles[0].Size == 0 {
			t.Errorf("got sha256 %q size %d, want a content hash and size", rep.Bundles[0].SHA256, rep.Bundles[0].Size)
		}
		if rep.Bundles[0].Findings == nil {
			t.Errorf("got findings null, want []")
		}
	})
	t.Run("current-not-increasing", func(t *testing.T) {
		r := ringfence(t, validateArgs("--json", "--current", "acme/ipc=292", ipc292)...)
		wantCode(t, r, 1)
		rep := parseReport(t, r)
		if rep.Accepted || len(rep.Bundles) != 1 || len(rep.Bundles[0].Findings) == 0 ||
			rep.Bundles[0].Findings[0].Rule != "version-not-increasing" {
			t.Errorf("got %+v, want a rejection by version-not-increasing", rep)
		}
	})
}

var shaLine = regexp.MustCompile(`wrote (.+): (\d+) bytes, sha256 ([0-9a-f]{64})`)

func TestCompile(t *testing.T) {
	t.Run("writes-output-and-hash", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "ipc-292.rfcb")
		r := ringfence(t, compileArgs(ipc292, out)...)
		wantCode(t, r, 0)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("read output: %v\n%s", err, r)
		}
		m := shaLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("got stdout\n%s\nwant a line %q", r.stdout, shaLine)
		}
		if m[1] != out || m[2] != fmt.Sprint(len(b)) || m[3] != sha(b) {
			t.Errorf("got wrote %s: %s bytes, sha256 %s; want %s: %d bytes, sha256 %s", m[1], m[2], m[3], out, len(b), sha(b))
		}
		if !bytes.HasPrefix(b, []byte("RFCB")) {
			t.Errorf("got output starting %q, want the RFCB magic", b[:min(len(b), 8)])
		}
		if runtime.GOOS != "windows" {
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o444 != 0o444 {
				t.Errorf("got mode %v, want an artifact readable by all (like 0644)", perm)
			}
		}
		assertDirHolds(t, dir, "ipc-292.rfcb")

		// validate reports the same content hash without writing anything.
		v := parseReport(t, ringfence(t, validateArgs("--json", ipc292)...))
		if got := v.Bundles[0].SHA256; got != sha(b) {
			t.Errorf("got validate sha256 %s, want the compiled file's %s", got, sha(b))
		}
	})
	t.Run("json", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "ipc.rfcb")
		r := ringfence(t, compileArgs(ipc292, out, "--json")...)
		wantCode(t, r, 0)
		rep := parseReport(t, r)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Bundles) != 1 || rep.Bundles[0].Output != out || rep.Bundles[0].SHA256 != sha(b) || rep.Bundles[0].Size != len(b) {
			t.Errorf("got %+v, want output %s sha256 %s size %d", rep, out, sha(b), len(b))
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		wantCode(t, ringfence(t, compileArgs(ipc292, a)...), 0)
		wantCode(t, ringfence(t, compileArgs(ipc292, b)...), 0)
		// Overwriting an existing output gives the same bytes again.
		wantCode(t, ringfence(t, compileArgs(ipc292, a)...), 0)
		ab, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ab, bb) {
			t.Errorf("got different bytes from two compiles (sha256 %s, %s), want identical", sha(ab), sha(bb))
		}
		assertDirHolds(t, dir, "a", "b")
	})
	t.Run("rejected-writes-nothing", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "channel-291.rfcb")
		r := ringfence(t, compileArgs(ch291, out)...)
		wantCode(t, r, 1)
		wantContains(t, r.stdout, inputNotSupplied)
		if strings.Contains(r.stdout, "wrote") {
			t.Errorf("got stdout\n%s\nwant no 'wrote' line for a rejected bundle", r.stdout)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got stat %s: %v, want the file not to exist", out, err)
		}
		assertDirHolds(t, dir)
	})
	t.Run("rejected-keeps-existing-output", func(t *testing.T) {
		dir := t.TempDir()
		old := []byte("last good compiled bundle\n")
		out := writeFile(t, dir, "ipc.rfcb", old)
		r := ringfence(t, compileArgs(ch291, out)...)
		wantCode(t, r, 1)
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, old) {
			t.Errorf("got %s changed to %q, want it untouched (%q)", out, got, old)
		}
		assertDirHolds(t, dir, "ipc.rfcb")
	})
	t.Run("unreadable-bundle-keeps-existing-output", func(t *testing.T) {
		dir := t.TempDir()
		old := []byte("last good compiled bundle\n")
		out := writeFile(t, dir, "ipc.rfcb", old)
		bad := writeFile(t, dir, "bad.yaml", []byte("kind: Bundle\nvendor: [acme\n"))
		r := ringfence(t, compileArgs(bad, out)...)
		wantCode(t, r, 1)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
			t.Errorf("got %s changed to %q, want it untouched", out, got)
		}
		assertDirHolds(t, dir, "bad.yaml", "ipc.rfcb")
	})
	t.Run("nonexistent-output-dir", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "missing", "ipc.rfcb")
		r := ringfence(t, compileArgs(ipc292, out)...)
		wantCode(t, r, 2)
		wantContains(t, r.stderr, out)
		assertDirHolds(t, dir)
	})
	t.Run("output-is-a-directory", func(t *testing.T) {
		// The rename fails after the temporary file is written: it must not stay behind.
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		r := ringfence(t, compileArgs(ipc292, out)...)
		wantCode(t, r, 2)
		assertDirHolds(t, dir, "out")
		assertDirHolds(t, out)
	})
}

// assertDirHolds checks that dir holds exactly the named entries: no
// temporary or partial files.
func assertDirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("got %s holding %q, want %q", dir, got, names)
	}
}

func TestPreflight(t *testing.T) {
	compiledIPC, _ := compiled(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"channel-291-rejected", preflightArgs(ch291), 1, []string{
			"REJECTED " + ch291, "error [preflight-instance-error]", "instance c2-pipe-7",
			`criterion on input 21 "pipe_owner_sid" reads past the 20 inputs that agent 7.11.0 (windows) supplies`,
			"agent 7.11.0 (windows): 20 inputs", "agent 7.12.0 (windows): 21 inputs"}},
		{"ipc-292-accepted", preflightArgs(ipc292), 0, []string{
			"ACCEPTED " + ipc292, "agent 7.11.0 (windows): 20 inputs", "agent 7.12.0 (windows): 21 inputs", "0 instance errors"}},
		{"compiled-ipc-292-accepted", preflightArgs(compiledIPC), 0, []string{
			"ACCEPTED " + compiledIPC + " (acme/ipc@292)", "agent 7.11.0 (windows): 20 inputs"}},
		{"source-and-compiled", preflightArgs(ipc292, compiledIPC), 0, []string{"ACCEPTED " + ipc292, "ACCEPTED " + compiledIPC}},
		{"one-rejected-rejects-all", preflightArgs(compiledIPC, ch291), 1, []string{"ACCEPTED " + compiledIPC, "REJECTED " + ch291}},
		// --current holds for compiled bytes too: 292 is not above 292.
		{"compiled-not-above-current", preflightArgs("--current", "acme/ipc=292", compiledIPC), 1, []string{
			"REJECTED " + compiledIPC, "error [version-not-increasing]", "version 292 is not above the channel's current version 292"}},
		{"compiled-above-current", preflightArgs("--current", "acme/ipc=291", compiledIPC), 0, []string{
			"ACCEPTED " + compiledIPC, "reference checks", "costliest event"}},
		{"source-not-above-current", preflightArgs("--current", "acme/ipc=300", ipc292), 1, []string{"error [version-not-increasing]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ringfence(t, tt.args...)
			wantCode(t, r, tt.wantCode)
			for _, w := range tt.want {
				wantContains(t, r.stdout, w)
			}
		})
	}

	t.Run("json-channel-291", func(t *testing.T) {
		r := ringfence(t, preflightArgs("--json", ch291)...)
		wantCode(t, r, 1)
		rep := parseReport(t, r)
		if rep.Accepted || len(rep.Bundles) != 1 {
			t.Fatalf("got %+v, want one rejected bundle", rep)
		}
		found := false
		for _, f := range rep.Bundles[0].Findings {
			if f.Rule == "preflight-instance-error" && f.FieldIndex == 21 && slices.Contains(f.Agents, "7.11.0 (windows)") {
				found = true
				if slices.Contains(f.Agents, "7.12.0 (windows)") {
					t.Errorf("got agents %q, want only 7.11.0 (windows): 7.12 supplies input 21", f.Agents)
				}
			}
		}
		if !found {
			t.Errorf("got no preflight-instance-error on input 21 for 7.11.0 (windows)\n%s", r)
		}
		for _, a := range rep.Bundles[0].Agents {
			if a.Events == 0 {
				t.Errorf("got agent %s with 0 events, want generated events", a.Agent)
			}
			if a.Agent == "7.12.0 (windows)" && a.InstanceErrors != 0 {
				t.Errorf("got %d instance errors on 7.12.0, want 0", a.InstanceErrors)
			}
		}
	})
	t.Run("json-compiled-ipc-292", func(t *testing.T) {
		r := ringfence(t, preflightArgs("--json", compiledIPC)...)
		wantCode(t, r, 0)
		rep := parseReport(t, r)
		if !rep.Accepted || len(rep.Bundles) != 1 || len(rep.Bundles[0].Agents) != 2 {
			t.Errorf("got %+v, want one accepted bundle run against two agents", rep)
		}
	})
}

// evalReport mirrors eval --json.
type evalReport struct {
	Bundle  string         `json:"bundle"`
	Summary map[string]int `json:"summary"`
	Results []struct {
		Line    int    `json:"line"`
		Error   string `json:"error"`
		Matches []struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"matches"`
		Errors []struct {
			ID     string `json:"id"`
			Field  int    `json:"field"`
			Name   string `json:"field_name"`
			Reason string `json:"reason"`
		} `json:"instance_errors"`
	} `json:"results"`
}

func parseEval(t *testing.T, r result) evalReport {
	t.Helper()
	var rep evalReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not an eval JSON report: %v\n%s", err, r)
	}
	return rep
}

const wantIPCEval = `line 1: match c2-pipe-1 (action alert, severity high)
line 1: match cobalt-default-pipe (action block, severity high)
line 2: match lsass-dump-pipe (action block, severity critical)
line 3: match smb-large-transfer (action log, severity low)
line 4: no match
acme/ipc@292: 4 events, 3 matched (block 2, alert 1, log 1), 0 instance errors, 0 bad lines
`

func TestEval(t *testing.T) {
	compiledIPC, _ := compiled(t)
	t.Run("ipc-292", func(t *testing.T) {
		r := ringfence(t, evalArgs(ipc292, events)...)
		wantCode(t, r, 0)
		if r.stdout != wantIPCEval {
			t.Errorf("got stdout\n%s\nwant\n%s", r.stdout, wantIPCEval)
		}
	})
	t.Run("compiled-ipc-292", func(t *testing.T) {
		r := ringfence(t, evalArgs(compiledIPC, events)...)
		wantCode(t, r, 0)
		if r.stdout != wantIPCEval {
			t.Errorf("got stdout\n%s\nwant the same as from source\n%s", r.stdout, wantIPCEval)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := ringfence(t, evalArgs(ipc292, events, "--json")...)
		wantCode(t, r, 0)
		rep := parseEval(t, r)
		wantIDs := map[int][]string{1: {"c2-pipe-1", "cobalt-default-pipe"}, 2: {"lsass-dump-pipe"}, 3: {"smb-large-transfer"}, 4: nil}
		if len(rep.Results) != 4 {
			t.Fatalf("got %d results, want 4\n%s", len(rep.Results), r)
		}
		for _, res := range rep.Results {
			var ids []string
			for _, m := range res.Matches {
				ids = append(ids, m.ID)
			}
			if !slices.Equal(ids, wantIDs[res.Line]) {
				t.Errorf("line %d: got matches %q, want %q", res.Line, ids, wantIDs[res.Line])
			}
			if res.Matches == nil {
				t.Errorf("line %d: got matches null, want []", res.Line)
			}
		}
		if rep.Bundle != "acme/ipc@292" || rep.Summary["events"] != 4 || rep.Summary["matched_events"] != 3 ||
			rep.Summary["instance_errors"] != 0 || rep.Summary["bad_lines"] != 0 {
			t.Errorf("got bundle %s summary %v, want acme/ipc@292 with 4 events, 3 matched, no errors", rep.Bundle, rep.Summary)
		}
	})
	t.Run("channel-291-instance-errors", func(t *testing.T) {
		r := ringfence(t, evalArgs(ch291, events)...)
		wantCode(t, r, 1)
		for line := 1; line <= 4; line++ {
			wantContains(t, r.stdout, fmt.Sprintf(`line %d: instance c2-pipe-7 not evaluated: missing-input on input 21 "pipe_owner_sid"`, line))
		}
		wantContains(t, r.stdout, "4 instance errors")
	})
	t.Run("channel-291-json", func(t *testing.T) {
		r := ringfence(t, evalArgs(ch291, events, "--json")...)
		wantCode(t, r, 1)
		rep := parseEval(t, r)
		for _, res := range rep.Results {
			if len(res.Errors) != 1 || res.Errors[0].ID != "c2-pipe-7" || res.Errors[0].Field != 21 || res.Errors[0].Reason != "missing-input" {
				t.Errorf("line %d: got instance errors %+v, want c2-pipe-7 missing-input on field 21", res.Line, res.Errors)
			}
		}
	})
	t.Run("malformed-line", func(t *testing.T) {
		sample, err := os.ReadFile(events)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(sample), "\n")
		bad := lines[0] + lines[1] + `{"template_type":"ipc@3","inputs":[1,` + "\n" + lines[3]
		path := writeFile(t, t.TempDir(), "events.jsonl", []byte(bad))
		r := ringfence(t, evalArgs(ipc292, path)...)
		wantCode(t, r, 1)
		wantContains(t, r.stdout, "line 3: rejected: "+path+":3: malformed event JSON")
		wantContains(t, r.stdout, "line 4: no match")
		wantContains(t, r.stdout, "1 bad lines")
	})
	t.Run("bad-events", func(t *testing.T) {
		dir := t.TempDir()
		for _, tt := range []struct{ name, text, want string }{
			{"bad-type-ref", `{"template_type":"ipc","inputs":[]}`, ":1: "},
			{"bad-input", `{"template_type":"ipc@3","inputs":[{"a":1}]}`, ":1: "},
			{"unknown-key", `{"template_type":"ipc@3","inputs":[],"extra":1}`, ":1: malformed event JSON"},
			{"not-an-object", `[1,2,3]`, ":1: malformed event JSON"},
			{"trailing-data", `{"template_type":"ipc@3","inputs":[]} {}`, ":1: malformed event JSON"},
			{"invalid-utf8", "{\"template_type\":\"ipc@3\",\"inputs\":[\"\xff\"]}", ":1: "},
			{"deep-nesting", `{"template_type":"ipc@3","inputs":[` + strings.Repeat("[", 100000) + `]}`, ":1: "},
		} {
			t.Run(tt.name, func(t *testing.T) {
				path := writeFile(t, dir, tt.name+".jsonl", []byte(tt.text+"\n"))
				r := ringfence(t, evalArgs(ipc292, path)...)
				wantCode(t, r, 1)
				wantContains(t, r.stdout, path+tt.want)
			})
		}
	})
	t.Run("line-too-long", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "long.jsonl", append(bytes.Repeat([]byte(" "), 5<<20), '\n'))
		r := ringfence(t, evalArgs(ipc292, path)...)
		wantCode(t, r, 1)
		wantContains(t, r.stderr, path+":1:")
	})
	t.Run("missing-events-file", func(t *testing.T) {
		r := ringfence(t, evalArgs(ipc292, filepath.Join(t.TempDir(), "nope.jsonl"))...)
		wantCode(t, r, 2)
		wantContains(t, r.stderr, "nope.jsonl")
	})
}

// loc matches a location: file:line:col or a byte offset.
var loc = regexp.MustCompile(`:\d+:\d+|byte offset \d+`)

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	ipcSrc, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	_, good := compiled(t)

	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mid := filepath.Join(dir, "mid.yaml") // over the source limit, under the compiled one
	f, err = os.Create(mid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("kind: Bundle\n# " + strings.Repeat("x", 12<<20) + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	bigCompiled := filepath.Join(dir, "big.rfcb")
	f, err = os.Create(bigCompiled)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(good[:5]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	flip := func(off int) []byte {
		b := slices.Clone(good)
		b[off] ^= 0xff
		return b
	}
	tests := []struct {
		name string
		path string
		text []byte
		// source: validate, compile and preflight read it; otherwise
		// (compiled bytes) preflight and eval.
		source bool
		want   string
		noLoc  bool // an empty file has nowhere to point
	}{
		{name: "malformed-yaml", source: true, text: []byte("kind: Bundle\nvendor: acme\nchannel: ipc\nversion: 1\ntargets: {platforms: [windows]\ninstances: []\n"), want: "malformed YAML/JSON"},
		{name: "malformed-yaml-indent", source: true, text: []byte("kind: Bundle\nvendor: acme\n  channel: ipc\n"), want: "malformed YAML/JSON"},
		{name: "malformed-json", source: true, text: []byte("{\"kind\": \"Bundle\",\n \"vendor\": \"acme\",\n \"channel\": \"ipc\" \"x\"\n}\n"), want: "malformed"},
		{name: "malformed-json-one-line", source: true, text: []byte(`{"kind": "Bundle", "vendor": "acme" "channel": "ipc"}`), want: "malformed"},
		{name: "truncated-json", source: true, text: []byte(`{"kind": "Bundle", "vendor": `), want: "malformed"},
		{name: "json-wrong-type", source: true, text: []byte(`{"kind": "Bundle", "vendor": "acme", "channel": "ipc", "version": "x", "template_type": "ipc@3", "targets": {"agent_versions": ">=7"}, "instances": []}`), want: "version"},
		{name: "unknown-key", source: true, text: bytes.Replace(ipcSrc, []byte("channel: ipc\n"), []byte("channel: ipc\nbogus: 1\n"), 1), want: `unknown key "bogus"`},
		{name: "unknown-template-type", source: true, text: bytes.Replace(ipcSrc, []byte("template_type: ipc@3"), []byte("template_type: dns@1"), 1), want: "dns@1"},
		{name: "empty", source: true, text: []byte{}, want: "empty", noLoc: true},
		{name: "only-comments", source: true, text: []byte("# nothing here\n"), want: "empty", noLoc: true},
		{name: "two-documents", source: true, text: append(slices.Clone(ipcSrc), "---\nkind: Bundle\n"...), want: "more than one"},
		{name: "deep-nesting", source: true, text: bytes.Repeat([]byte("["), 100000), want: "nesting"},
		{name: "deep-nesting-in-value", source: true, text: append([]byte("kind: Bundle\nvendor: "), bytes.Repeat([]byte("{a: "), 100000)...), want: "nesting"},
		{name: "nul-byte", source: true, text: bytes.Replace(ipcSrc, []byte("vendor: acme"), []byte("vendor: ac\x00me"), 1), want: "NUL"},
		{name: "invalid-utf8", source: true, text: bytes.Replace(ipcSrc, []byte("vendor: acme"), []byte("vendor: ac\xffme"), 1), want: "UTF-8"},
		{name: "too-large", source: true, path: big, want: "larger than the 8 MiB limit"},
		{name: "over-source-limit", source: true, path: mid, want: "larger than the 8 MiB limit"},
		{name: "compiled-too-large", path: bigCompiled, want: "larger than the 16 MiB limit"},
		{name: "compiled-flipped-string", text: flip(len(good) / 2), want: "compiled bundle"},
		{name: "compiled-flipped-count", text: flip(5), want: "compiled bundle"},
		{name: "compiled-flipped-last", text: flip(len(good) - 1), want: "compiled bundle"},
		{name: "compiled-bad-version", text: flip(4), want: "compiled bundle"},
		{name: "compiled-magic-only", text: good[:5], want: "compiled bundle"},
		{name: "compiled-truncated-half", text: good[:len(good)/2], want: "compiled bundle"},
		{name: "compiled-truncated-one", text: good[:len(good)-1], want: "compiled bundle"},
		{name: "compiled-trailing-garbage", text: append(slices.Clone(good), "garbage"...), want: "trailing bytes"},
		{name: "compiled-trailing-zero", text: append(slices.Clone(good), 0), want: "trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				ext := ".yaml"
				if !tt.source {
					ext = ".rfcb"
				}
				path = writeFile(t, dir, tt.name+ext, tt.text)
			}
			runs := map[string][]string{
				"preflight":      preflightArgs(path),
				"preflight-json": preflightArgs("--json", path),
				"eval":           evalArgs(path, events),
			}
			if tt.source {
				runs["validate"] = validateArgs(path)
				runs["validate-json"] = validateArgs("--json", path)
				runs["compile"] = compileArgs(path, filepath.Join(t.TempDir(), "out"))
			}
			for name, args := range runs {
				t.Run(name, func(t *testing.T) {
					r := ringfence(t, args...)
					wantCode(t, r, 1)
					out := r.stdout + r.stderr
					if strings.HasSuffix(name, "-json") {
						rep := parseReport(t, r)
						if rep.Accepted || len(rep.Bundles) != 1 || rep.Bundles[0].Accepted {
							t.Fatalf("got %+v, want one rejected bundle", rep)
						}
						out = strings.Join(rep.Bundles[0].Errors, "\n")
						for _, f := range rep.Bundles[0].Findings {
							out += "\n" + f.Location + ": " + f.Message
						}
					}
					wantContains(t, out, path)
					wantContains(t, out, tt.want)
					if !tt.noLoc && !loc.MatchString(out) {
						t.Errorf("got output\n%s\nwant a location (line:col or byte offset)", out)
					}
				})
			}
		})
	}
}

// TestCompiledEveryByte flips a sample of the bytes of a compiled bundle,
// one at a time. The compiled form's header carries a checksum, so every
// flip must be refused (exit 1) with a byte offset, never evaluated,
// crashed on or called an I/O error. (internal/content flips every bit.)
func TestCompiledEveryByte(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary once per sampled byte")
	}
	_, good := compiled(t)
	dir := t.TempDir()
	step := max(1, len(good)/40)
	for off := 0; off < len(good); off += step {
		b := slices.Clone(good)
		b[off] ^= 0x55
		path := writeFile(t, dir, fmt.Sprintf("flip-%d.rfcb", off), b)
		r := ringfence(t, evalArgs(path, events)...)
		// A damaged magic is no longer recognised as compiled and is
		// refused as a source instead.
		if r.code != 1 || !loc.MatchString(r.stdout) {
			t.Errorf("byte %d flipped: got exit %d, want 1 and a refusal with a location\n%s", off, r.code, r)
		}
		if off >= 5 && !strings.Contains(r.stdout, "the bytes are corrupt") {
			t.Errorf("byte %d flipped: want the refusal to say the bytes are corrupt\n%s", off, r)
		}
	}
}

// TestCompiledGivenAsSource: compiled bytes, of this or any other format,
// given to a command that reads sources are named for what they are, with
// the commands that read them, not refused for their first control byte;
// format 1 given to a command that reads compiled bytes says to recompile.
func TestCompiledGivenAsSource(t *testing.T) {
	_, good := compiled(t)
	dir := t.TempDir()
	files := map[int]string{
		2: writeFile(t, dir, "ipc-292.rfcb", good),
		1: writeFile(t, dir, "ipc-292-v1.rfcb", append([]byte("RFCB\x01"), good[13:]...)),
		7: writeFile(t, dir, "future.rfcb", append([]byte("RFCB\x07"), good[5:]...)),
	}
	for format, path := range files {
		t.Run(fmt.Sprintf("format-%d", format), func(t *testing.T) {
			want := fmt.Sprintf("%s: this is a compiled bundle (RFCB format %d), not a bundle source", path, format)
			for name, args := range map[string][]string{
				"validate":      validateArgs(path),
				"validate-json": validateArgs("--json", path),
				"compile":       compileArgs(path, filepath.Join(t.TempDir(), "out")),
			} {
				t.Run(name, func(t *testing.T) {
					r := ringfence(t, args...)
					wantCode(t, r, 1)
					wantContains(t, r.stdout, want)
					wantContains(t, r.stdout, "ringfence content preflight")
					if strings.Contains(r.stdout, "control character") {
						t.Errorf("got output\n%s\nwant no control-character complaint", r.stdout)
					}
				})
			}
		})
	}
	t.Run("format-1-preflight", func(t *testing.T) {
		r := ringfence(t, preflightArgs(files[1])...)
		wantCode(t, r, 1)
		wantContains(t, r.stdout, "byte offset 4: RFCB format 1 is no longer read")
		wantContains(t, r.stdout, "recompile the bundle source")
	})
}

func TestCatalogErrors(t *testing.T) {
	badTypes := t.TempDir()
	writeFile(t, badTypes, "ipc.yaml", []byte("kind: TemplateType\nname: ipc\nversion: 3\nfields: [\n"))
	dupTypes := t.TempDir()
	src, err := os.ReadFile(filepath.Join(types, "ipc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dupTypes, "a.yaml", src)
	writeFile(t, dupTypes, "b.yaml", src)
	badManifests := t.TempDir()
	writeFile(t, badManifests, "m.yaml", []byte("kind: CapabilityManifest\nagent_version: 7.11.0\nplatform: windows\ntemplate_types: {ipc@3: 20}\nbogus: true\n"))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed-template-type", []string{"content", "validate", "--types", badTypes, "--manifests", manifs, ipc292}, filepath.Join(badTypes, "ipc.yaml")},
		{"duplicate-template-type", []string{"content", "validate", "--types", dupTypes, "--manifests", manifs, ipc292}, "also defined"},
		{"unknown-key-in-manifest", []string{"content", "validate", "--types", types, "--manifests", badManifests, ipc292}, `unknown key "bogus"`},
		{"eval-malformed-template-type", []string{"content", "eval", "--types", badTypes, ipc292, events}, filepath.Join(badTypes, "ipc.yaml")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ringfence(t, tt.args...)
			wantCode(t, r, 1)
			wantContains(t, r.stderr, tt.want)
		})
	}
}

func TestUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown-flag", validateArgs("--bogus", ipc292), "unknown flag: --bogus"},
		{"missing-types", []string{"content", "validate", "--manifests", manifs, ipc292}, "--types"},
		{"missing-manifests", []string{"content", "validate", "--types", types, ipc292}, "--manifests"},
		{"eval-missing-types", []string{"content", "eval", ipc292, events}, "--types"},
		{"preflight-missing-types", []string{"content", "preflight", "--manifests", manifs, ipc292}, "--types"},
		{"missing-output", []string{"content", "compile", "--types", types, "--manifests", manifs, ipc292}, "-o OUT"},
		{"missing-bundle-file", validateArgs(missing), missing},
		{"preflight-missing-bundle-file", preflightArgs(missing), missing},
		{"compile-missing-bundle-file", compileArgs(missing, filepath.Join(t.TempDir(), "out")), missing},
		{"eval-missing-bundle-file", evalArgs(missing, events), missing},
		{"nonexistent-types-dir", []string{"content", "validate", "--types", filepath.Join(t.TempDir(), "nope"), "--manifests", manifs, ipc292}, "nope"},
		{"nonexistent-manifests-dir", []string{"content", "validate", "--types", types, "--manifests", filepath.Join(t.TempDir(), "nope"), ipc292}, "nope"},
		{"no-bundle", validateArgs(), "arg"},
		{"compile-two-bundles", compileArgs(ipc292, filepath.Join(t.TempDir(), "out"), ch291), "arg"},
		{"eval-no-events", []string{"content", "eval", "--types", types, ipc292}, "content eval: give EVENTS.jsonl"},
		{"bad-current", validateArgs("--current", "acme/ipc=abc", ipc292), "acme/ipc=abc"},
		{"unknown-command", []string{"nope"}, `unknown command "nope"`},
		{"unknown-content-command", []string{"content", "nope"}, `unknown command "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ringfence(t, tt.args...)
			wantCode(t, r, 2)
			wantContains(t, r.stderr, tt.want)
			if r.stdout != "" {
				t.Errorf("got stdout %q, want nothing on stdout for a usage error", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"content", "--help"}, {"content", "validate", "--help"}} {
		t.Run(strings.Join(args, "-"), func(t *testing.T) {
			r := ringfence(t, args...)
			wantCode(t, r, 0)
			wantContains(t, r.stdout, "Usage:")
		})
	}
}

// Live mode's bad arguments are usage errors that name the flag, before
// anything starts.
func TestSimLiveUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--live", "--seeds", "2"}, "--live runs one seed at a time"},
		{[]string{"--live", "--devices", "30000"}, "--devices: --live runs at most 20000 devices"},
		{[]string{"--live", "--speed", "0.5"}, "speed 0.5"},
		{[]string{"--live", "--scenario", "nonesuch"}, "nonesuch"},
	} {
		r := ringfence(t, append([]string{"sim", "--quiet"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sim %v: want exit 2 and %q\n%s", tc.args, tc.want, r)
		}
	}
}
