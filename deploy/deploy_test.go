package deploy_test

// The deployment files are checked here, without a container engine: the
// Dockerfile by BuildKit's own parser and linter (the rules `docker build
// --check` applies while parsing) and by what the image must be; its
// build command is run, and the binary must be static; the compose file
// by the Compose specification's loader; HAProxy's configuration by
// HAProxy; the systemd units by systemd-analyze.

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// need returns a tool's path; without it the test skips, or fails under
// CI=true, where scripts/test has installed it.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/test installs it)", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
	return p
}

func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("parser: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("lint %s at line %v: %s", rule, loc, msg)
	}})
	stages, _, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a small final one", len(stages))
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static or scratch", final.BaseName)
	}
	var user string
	var entry *instructions.EntrypointCommand
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entry = c
		case *instructions.RunCommand:
			t.Errorf("the final stage runs %q: it has no shell", c.String())
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) {
		t.Errorf("final stage USER %q, want a numeric non-root user", user)
	}
	if entry == nil || !entry.PrependShell && len(entry.CmdLine) == 0 || entry.PrependShell {
		t.Errorf("ENTRYPOINT %+v, want the exec form", entry)
	}

	// The build stage's Go is the one go.mod names, and its build command
	// makes a static binary here too.
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil || !strings.HasPrefix(stages[0].BaseName, "golang:"+string(goLine[1])) {
		t.Errorf("build stage FROM %s, want golang:%s like go.mod", stages[0].BaseName, goLine[1])
	}
	var build string
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			build = strings.Join(r.CmdLine, " ")
		}
	}
	if build == "" {
		t.Fatal("no go build in the build stage")
	}
	out := t.TempDir()
	script := strings.NewReplacer("${VERSION}", "v0.0.0-test", "/out/", out+"/").Replace(build)
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	bin, err := elf.Open(filepath.Join(out, "ringfence"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the image's binary needs a dynamic loader: distroless static has none")
		}
	}
	if libs, _ := bin.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the image's binary links %v", libs)
	}
	v, err := exec.Command(filepath.Join(out, "ringfence"), "version").Output()
	if err != nil || !strings.Contains(string(v), "v0.0.0-test") {
		t.Errorf("ringfence version in the image says %q (%v), want the build's VERSION", v, err)
	}
}

func TestComposeFile(t *testing.T) {
	t.Setenv("RINGFENCE_DB_PASSWORD", "test")
	abs, err := filepath.Abs("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.NewMapping(os.Environ()),
	}, func(o *loader.Options) { o.SetProjectName("ringfence", true) })
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var replicas []string
	for name, s := range p.Services {
		if !strings.HasPrefix(name, "ringfence-") {
			continue
		}
		replicas = append(replicas, name)
		if s.Build == nil || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s is not built from the repository's Dockerfile: %+v", name, s.Build)
		}
		if db := s.Environment["RINGFENCE_DB"]; db == nil || !strings.HasPrefix(*db, "postgres://ringfence:test@postgres:5432/") {
			t.Errorf("%s: RINGFENCE_DB %v, want PostgreSQL with the password from the environment", name, db)
		}
		if dep, ok := s.DependsOn["postgres"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for a healthy PostgreSQL: %+v", name, s.DependsOn)
		}
	}
	slices.Sort(replicas)
	if strings.Join(replicas, " ") != "ringfence-1 ringfence-2 ringfence-3" {
		t.Errorf("replicas %v, want three", replicas)
	}
	// HAProxy's configuration names exactly these replicas.
	cfg, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server (\S+) (\S+):8080`).FindAllSubmatch(cfg, -1) {
		servers = append(servers, string(m[2]))
	}
	if !slices.Equal(servers, replicas) {
		t.Errorf("haproxy.cfg balances %v, compose.yaml runs %v", servers, replicas)
	}
	if _, ok := p.Services["haproxy"]; !ok {
		t.Error("no haproxy service")
	}
}

func TestHAProxyConfig(t *testing.T) {
	haproxy := need(t, "haproxy")
	out, err := exec.Command(haproxy, "-c", "-f", "haproxy.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	// Outside Docker the replicas' names do not resolve; that is the only
	// warning allowed.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "[WARNING]") && !strings.Contains(line, "could not resolve address 'ringfence-") {
			t.Errorf("haproxy -c: %s", line)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	dir := t.TempDir()
	for unit, exe := range map[string]string{"ringfence-server.service": "/usr/local/bin/ringfence", "ringfence-agent.service": "/usr/local/bin/ringfence-agent"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		// The binaries are not installed here: verify points at one that is.
		path := filepath.Join(dir, unit)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), exe+" ", "/bin/true ")), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
	// The server needs no privilege: systemd's own score of the unit's
	// exposure, 0 (locked down) to 10, stays "OK" (2 or below; --threshold counts tenths).
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", filepath.Join(dir, "ringfence-server.service")).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
}
