package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestAgentModules keeps the agent's dependencies a decision: the modules
// linked into the agent and its worker, on every platform they ship on,
// are the checked-in list. A new module (say, a plotting library pulled in
// through a shared package) fails here instead of reaching every endpoint
// unnoticed.
func TestAgentModules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// go test runs with the toolchain that built the test on its PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	seen := map[string]bool{}
	for _, goos := range []string{"linux", "windows", "darwin"} {
		cmd := exec.Command(goTool, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".", "../ringfence-agent-worker")
		cmd.Env = append(os.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list for %s: %v", goos, err)
		}
		for _, m := range strings.Fields(string(out)) {
			seen[m] = true
		}
	}
	var got []string
	for m := range seen {
		got = append(got, m)
	}
	slices.Sort(got)
	b, err := os.ReadFile("testdata/modules.txt")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	for _, m := range got {
		if !slices.Contains(want, m) {
			t.Errorf("the agent now links module %s, which testdata/modules.txt does not list: every endpoint would run it; drop the import or add it to the list in review", m)
		}
	}
	for _, m := range want {
		if !slices.Contains(got, m) {
			t.Errorf("the agent no longer links module %s: remove it from testdata/modules.txt", m)
		}
	}
}
