package content_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// validateCase is one validator rule exercised by one bundle. The bundle
// is testdata/validate/<name>.yaml (or built by build), checked against the
// catalog in testdata/validate/types and testdata/validate/manifests; the
// rendered findings must equal testdata/validate/<name>.golden.
type validateCase struct {
	name     string
	rule     string        // a finding with this rule must be present...
	level    content.Level // ...at this level...
	message  string        // ...and its String() must contain this
	accepted bool          // whether the bundle is accepted overall
	current  uint64        // the channel's current version
	// compileAgainst, when set, compiles the bundle against this template
	// type instead of validating it against the catalog.
	compileAgainst string
	// build, when set, generates the bundle instead of reading a fixture
	// (for bundles too large to commit).
	build func() *content.Bundle
	// fleet, when set, is the agent versions enrolled devices run, checked
	// as the server checks them at publish (Catalog.CheckFleet).
	fleet []content.AgentCount
}

var validateCases = []validateCase{
	{name: "accepted", accepted: true},
	{name: "version-not-increasing", rule: "version-not-increasing", level: content.LevelError, current: 5,
		message: "version 5 is not above the channel's current version 5"},
	{name: "unknown-template-type", rule: "unknown-template-type", level: content.LevelError,
		message: "unknown template type probe@7 (known versions: probe@1, probe@2)"},
	{name: "template-type-mismatch", rule: "template-type-mismatch", level: content.LevelError, compileAgainst: "probe@2",
		message: "bundle is for template type probe@1 but was compiled against probe@2"},
	{name: "no-instances", rule: "no-instances", level: content.LevelError, message: "bundle has no instances"},
	{name: "empty-id", rule: "empty-id", level: content.LevelError, message: "instance #1: instance has an empty id"},
	{name: "bad-id", rule: "bad-id", level: content.LevelError, message: `id "bad id!" is not valid`},
	{name: "duplicate-id", rule: "duplicate-id", level: content.LevelError,
		message: `instance probe-1: duplicate instance id: "probe-1" at testdata/validate/duplicate-id.yaml:9:5 is the same id once case is ignored`},
	{name: "no-criteria", rule: "no-criteria", level: content.LevelError, message: "instance has no criteria"},
	{name: "all-any", rule: "all-any", level: content.LevelWarning, accepted: true,
		message: `every criterion is "any": the instance matches every probe@1 event`},
	{name: "bundle-too-large-values", rule: "bundle-too-large", level: content.LevelError, build: tooManyValues,
		message: fmt.Sprintf("more than the limit of %d", content.MaxTotalValues)},
	{name: "bundle-too-large-bytes", rule: "bundle-too-large", level: content.LevelError, build: tooManyBytes,
		message: fmt.Sprintf("bytes, more than the limit of %d", content.MaxCompiledSize)},
	{name: "unknown-field-name", rule: "unknown-field", level: content.LevelError,
		message: `criterion on unknown field "nmae": probe@1 has no such field`},
	{name: "unknown-field-index", rule: "unknown-field", level: content.LevelError,
		message: "criterion on input 10: probe@1 has only 9 input fields"},
	{name: "op-not-allowed", rule: "op-not-allowed", level: content.LevelError,
		message: `criterion on input 5 "remote" (bool): op "regex" does not apply to bool fields (allowed: any, equals)`},
	{name: "missing-value", rule: "missing-value", level: content.LevelError, message: `op "equals" needs a value`},
	{name: "missing-value-in", rule: "missing-value", level: content.LevelError, message: `op "in" needs a non-empty list of values`},
	{name: "missing-value-range", rule: "missing-value", level: content.LevelError, message: `op "range" needs min, max or both`},
	{name: "unexpected-value", rule: "unexpected-value", level: content.LevelError, message: `op "any" takes no "value"`},
	{name: "unexpected-value-values", rule: "unexpected-value", level: content.LevelError, message: `only op "in" takes "values"`},
	{name: "unexpected-value-min", rule: "unexpected-value", level: content.LevelError, message: `only op "range" takes "min" and "max"`},
	{name: "bad-value-int", rule: "bad-value", level: content.LevelError, message: `value "ten" is not an int`},
	{name: "bad-value-uint", rule: "bad-value", level: content.LevelError, message: `value "-1" is not a uint`},
	{name: "bad-value-bool", rule: "bad-value", level: content.LevelError, message: `value "yes" is not a bool`},
	{name: "bad-value-ip", rule: "bad-value", level: content.LevelError, message: `value "10.0.0.999" is not an IP address`},
	{name: "bad-value-cidr-host-bits", rule: "bad-value", level: content.LevelError,
		message: `CIDR "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
	{name: "bad-value-sha256", rule: "bad-value", level: content.LevelError, message: "is not a SHA-256 digest (64 hex digits)"},
	{name: "bad-value-enum", rule: "bad-value", level: content.LevelError,
		message: `value "medium" is not one of the enum values (low, high)`},
	{name: "bad-value-range-min-above-max", rule: "bad-value", level: content.LevelError, message: "range min is above max"},
	{name: "range-without-manifest", rule: "range-without-manifest", level: content.LevelError,
		message: `targets.agent_versions ">1.0.0" takes agent 1.0.1 (linux), which manifest 1.0.0 describes, but excludes 1.0.0 itself`},
	// 1.0.7 is described by 1.0.0, 3.1.0 by nothing; the bundle is for
	// linux, so windows devices do not matter, nor do unparseable versions.
	{name: "agent-without-manifest", rule: "agent-without-manifest", level: content.LevelWarning, accepted: true,
		fleet: []content.AgentCount{{Platform: "linux", AgentVersion: "1.0.7", Devices: 40}, {Platform: "linux", AgentVersion: "3.1.0", Devices: 12},
			{Platform: "windows", AgentVersion: "9.0.0", Devices: 5}, {Platform: "linux", AgentVersion: "garbage", Devices: 1}},
		message: `targets.agent_versions ">=1.0.0" takes agent 3.1.0 (linux), which 12 enrolled devices run, but no manifest describes it`},
	// The same, run by enough devices (at least 100, and 1% of the
	// platform's) that it is an error: a catalog to fix before shipping.
	{name: "agent-without-manifest-widespread", rule: "agent-without-manifest", level: content.LevelError,
		fleet: []content.AgentCount{{Platform: "linux", AgentVersion: "1.0.7", Devices: 9000}, {Platform: "linux", AgentVersion: "3.1.0", Devices: 100},
			{Platform: "windows", AgentVersion: "9.0.0", Devices: 5000}},
		message: `targets.agent_versions ">=1.0.0" takes agent 3.1.0 (linux), which 100 enrolled devices run (1.1% of the platform's devices: too many to ship without), but no manifest describes it`},
	{name: "broad-criterion", rule: "broad-criterion", level: content.LevelError,
		message: `criterion on input 2 "image": glob "**" matches every value, so the instance matches every probe@1 event; with action block`},
	{name: "bad-value-empty-prefix", rule: "empty-value", level: content.LevelError,
		message: `an empty prefix matches every value; say op "any" if that is meant`},
	{name: "bad-regex-syntax", rule: "bad-regex", level: content.LevelError, message: `regex "a(b" does not compile`},
	{name: "bad-regex-too-large", rule: "bad-regex", level: content.LevelError,
		message: fmt.Sprintf("instructions, more than the limit of %d", content.MaxRegexProgram)},
	{name: "no-targeted-agents", rule: "no-targeted-agents", level: content.LevelError,
		message: `targets (platforms all, agent versions ">=9.0.0") match no capability manifest`},
	{name: "template-type-unsupported", rule: "template-type-unsupported", level: content.LevelError,
		message: "agents 1.0.0 (linux), 1.0.0 (windows) do not support template type probe@2"},
	{name: "too-many-criteria", rule: "too-many-criteria", level: content.LevelError,
		message: "instance probe-1: 5 criteria, but agent 1.0.0 (linux) accepts at most 4"},
	{name: "input-not-supplied", rule: "input-not-supplied", level: content.LevelError,
		message: `instance probe-1: criterion on input 9 "owner" but agent 1.0.0 (linux) supplies 8 inputs for probe@1`},
	{name: "input-not-supplied-by-index", rule: "input-not-supplied", level: content.LevelError,
		message: `criterion on input 9 "owner" but agents 1.0.0 (linux), 1.0.0 (windows) supply 8 inputs for probe@1`},
	{name: "wildcard-on-unsupplied-input", rule: "wildcard-on-unsupplied-input", level: content.LevelWarning, accepted: true,
		message: `wildcard criterion on input 9 "owner" but agent 1.0.0 (linux) supplies 8 inputs for probe@1`},
	{name: "regex-too-large", rule: "regex-too-large", level: content.LevelError,
		message: `but agent 1.0.0 (linux) accepts at most 100`},
}

func loadValidateCatalog(t *testing.T) *content.Catalog {
	t.Helper()
	cat, err := content.LoadCatalog(filepath.Join("testdata", "validate", "types"), filepath.Join("testdata", "validate", "manifests"))
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	if got, want := len(cat.Types), 2; got != want {
		t.Fatalf("catalog has %d template types, want %d", got, want)
	}
	if got, want := len(cat.Manifests), 3; got != want {
		t.Fatalf("catalog has %d manifests, want %d", got, want)
	}
	return cat
}

func TestValidateRules(t *testing.T) {
	cat := loadValidateCatalog(t)
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			var b *content.Bundle
			if tc.build != nil {
				b = tc.build()
			} else {
				var err error
				if b, err = content.LoadBundle(filepath.Join("testdata", "validate", tc.name+".yaml")); err != nil {
					t.Fatalf("LoadBundle: %v", err)
				}
			}

			var fs content.Findings
			var accepted bool
			if tc.compileAgainst != "" {
				ref, err := content.ParseTypeRef(tc.compileAgainst)
				if err != nil || cat.Types[ref] == nil {
					t.Fatalf("compileAgainst %q: not in the catalog (%v)", tc.compileAgainst, err)
				}
				var c *content.Compiled
				c, fs = content.Compile(b, cat.Types[ref])
				accepted = c != nil && fs.Errors() == 0
				if c != nil && fs.Errors() > 0 {
					t.Errorf("Compile returned a compiled bundle along with %d errors", fs.Errors())
				}
			} else {
				v := cat.Validate(b, tc.current)
				if tc.fleet != nil {
					cat.CheckFleet(b, v, tc.fleet)
				}
				fs, accepted = v.Findings, v.Accepted()
				if fs.Errors() > 0 && accepted {
					t.Errorf("Accepted() = true with %d error findings", fs.Errors())
				}
			}

			if accepted != tc.accepted {
				t.Errorf("accepted = %v, want %v; findings:\n%s", accepted, tc.accepted, renderFindings(fs))
			}
			for _, f := range fs {
				checkFinding(t, b, f)
			}
			if tc.rule == "" {
				if len(fs) != 0 {
					t.Errorf("got findings, want none:\n%s", renderFindings(fs))
				}
			} else if !hasFinding(fs, tc.rule, tc.level, tc.message) {
				t.Errorf("no %s finding [%s] containing %q; findings:\n%s", tc.level, tc.rule, tc.message, renderFindings(fs))
			}
			checkGolden(t, filepath.Join("testdata", "validate", tc.name+".golden"), renderFindings(fs))
		})
	}
}

// checkFinding asserts what every finding must say: the bundle, a rule, a
// level, a reason and where in the source it comes from.
func checkFinding(t *testing.T, b *content.Bundle, f content.Finding) {
	t.Helper()
	if f.Bundle != b.Name() {
		t.Errorf("finding %q: Bundle = %q, want %q", f, f.Bundle, b.Name())
	}
	if f.Rule == "" || f.Message == "" {
		t.Errorf("finding %q: empty rule or message", f)
	}
	if f.Level != content.LevelError && f.Level != content.LevelWarning {
		t.Errorf("finding %q: level %q", f, f.Level)
	}
	if f.Location == "" || f.Pos.File != b.Pos.File || f.Pos.Line < 1 {
		t.Errorf("finding %q: location %q (pos %+v) does not point into %s", f, f.Location, f.Pos, b.Pos.File)
	}
	if f.FieldIndex != 0 && f.FieldName == "" {
		t.Errorf("finding %q: field index %d without a name", f, f.FieldIndex)
	}
}

func hasFinding(fs content.Findings, rule string, level content.Level, msg string) bool {
	return slices.ContainsFunc(fs, func(f content.Finding) bool {
		return f.Rule == rule && f.Level == level && strings.Contains(f.String(), msg)
	})
}

// renderFindings gives one line per finding:
// "<location>: <level> [<rule>]: <Finding.String()>".
func renderFindings(fs content.Findings) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s: %s [%s]: %s\n", f.Location, f.Level, f.Rule, f)
	}
	return b.String()
}

// checkGolden compares got with the golden file, or rewrites it with
// -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("findings differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// generatedBundle is a probe@1 bundle for agent 2.0.0 (linux) only, so
// that no per-agent limit adds findings to the one under test.
func generatedBundle(name string, instances []content.Instance) *content.Bundle {
	pos := content.Pos{File: "testdata/validate/" + name + " (generated)", Line: 1, Col: 1}
	r, err := content.ParseVersionRange(">=2.0")
	if err != nil {
		panic(err)
	}
	for i := range instances {
		instances[i].Pos = content.Pos{File: pos.File, Line: 2 + i, Col: 3}
		instances[i].Severity, instances[i].Action = content.SeverityLow, content.ActionLog
		for j := range instances[i].Criteria {
			instances[i].Criteria[j].Pos = content.Pos{File: pos.File, Line: 2 + i, Col: 5 + j}
		}
	}
	return &content.Bundle{
		Vendor: "acme", Channel: "probe", Version: 5, Pos: pos,
		TemplateType: content.TypeRef{Name: "probe", Version: 1},
		Targets:      content.Targets{Platforms: []string{"linux"}, AgentVersions: r},
		Instances:    instances,
	}
}

// tooManyValues builds a bundle with just over MaxTotalValues criterion
// values: MaxValues distinct values in each of enough "in" criteria.
func tooManyValues() *content.Bundle {
	values := make([]content.Scalar, content.MaxValues)
	for i := range values {
		values[i] = content.Scalar{Text: strconv.Itoa(i), Tag: "!!int"}
	}
	var instances []content.Instance
	for n := 0; n <= content.MaxTotalValues; {
		in := content.Instance{ID: fmt.Sprintf("sizes-%d", len(instances)+1)}
		for len(in.Criteria) < 20 && n <= content.MaxTotalValues {
			in.Criteria = append(in.Criteria, content.Criterion{FieldName: "size", Op: content.OpIn, Values: values})
			n += len(values)
		}
		instances = append(instances, in)
	}
	return generatedBundle("bundle-too-large-values", instances)
}

// tooManyBytes builds a bundle under the value count limit whose compiled
// form is over MaxCompiledSize: distinct values of MaxValueLen bytes.
func tooManyBytes() *content.Bundle {
	n := content.MaxCompiledSize/content.MaxValueLen + 64
	values := make([]content.Scalar, n)
	for i := range values {
		s := fmt.Sprintf("%08d", i)
		values[i] = content.Scalar{Text: s + strings.Repeat("x", content.MaxValueLen-len(s)), Tag: "!!str"}
	}
	in := content.Instance{ID: "names", Criteria: []content.Criterion{{FieldName: "name", Op: content.OpIn, Values: values}}}
	return generatedBundle("bundle-too-large-bytes", []content.Instance{in})
}

// ruleRe finds the rule codes the compiler and validator emit: as the
// second argument of findingSink.add, or through compileCriterion's bad.
var ruleRe = regexp.MustCompile(`(?:\.add\(\s*Level\w+,\s*|\bbad\(\s*)"([a-z0-9-]+)"`)

// TestValidateCoversEveryRule fails when a rule emitted by compile.go,
// validate.go or agentrules.go has no case in validateCases.
func TestValidateCoversEveryRule(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range validateCases {
		covered[tc.rule] = true
	}
	var emitted []string
	for _, file := range []string{"compile.go", "validate.go", "agentrules.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ruleRe.FindAllSubmatch(src, -1) {
			emitted = append(emitted, string(m[1]))
		}
	}
	if len(emitted) < 20 {
		t.Fatalf("found only %d rule codes in compile.go and validate.go; has the way they are emitted changed? %v", len(emitted), emitted)
	}
	for _, r := range slices.Compact(slices.Sorted(slices.Values(emitted))) {
		if !covered[r] {
			t.Errorf("rule %q is emitted but has no case in validateCases", r)
		}
	}
}

// TestValidateFixturesUsed fails on a fixture or golden file in
// testdata/validate that no case reads, so none goes stale unnoticed.
func TestValidateFixturesUsed(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range validateCases {
		names[tc.name] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "validate", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if name := strings.TrimSuffix(base, filepath.Ext(base)); !names[name] {
			t.Errorf("%s belongs to no case in validateCases", f)
		}
	}
}

// TestValidateExamples checks the examples: the 19 July shape is rejected
// naming input 21 and agent 7.11, and the fixed release passes.
func TestValidateExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "content")
	cat, err := content.LoadCatalog(filepath.Join(dir, "template-types"), filepath.Join(dir, "manifests"))
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}

	t.Run("channel-291-rejected", func(t *testing.T) {
		b, err := content.LoadBundle(filepath.Join(dir, "bundles", "channel-291.yaml"))
		if err != nil {
			t.Fatalf("LoadBundle: %v", err)
		}
		v := cat.Validate(b, 290)
		if v.Accepted() {
			t.Fatalf("channel-291 accepted, want rejected; findings:\n%s", renderFindings(v.Findings))
		}
		const want = `bundle acme/ipc@291: instance c2-pipe-7: criterion on input 21 "pipe_owner_sid" but agent 7.11.0 (windows) supplies 20 inputs for ipc@3`
		var found *content.Finding
		for i, f := range v.Findings {
			if f.String() == want {
				found = &v.Findings[i]
			}
		}
		if found == nil {
			t.Fatalf("no finding\n  %s\nfindings:\n%s", want, renderFindings(v.Findings))
		}
		if found.Level != content.LevelError || found.Rule != "input-not-supplied" || found.FieldIndex != 21 ||
			found.FieldName != "pipe_owner_sid" || !slices.Equal(found.Agents, []string{"7.11.0 (windows)"}) {
			t.Errorf("finding = %+v, want an input-not-supplied error on input 21 pipe_owner_sid for agent 7.11.0 (windows)", *found)
		}
		// Agent 7.12 supplies all 21 inputs: it must not be blamed.
		for _, f := range v.Findings {
			if f.Level == content.LevelError && slices.Contains(f.Agents, "7.12.0 (windows)") {
				t.Errorf("error finding names agent 7.12.0, which supplies input 21: %s", f)
			}
		}
	})

	t.Run("ipc-292-accepted", func(t *testing.T) {
		b, err := content.LoadBundle(filepath.Join(dir, "bundles", "ipc-292.yaml"))
		if err != nil {
			t.Fatalf("LoadBundle: %v", err)
		}
		v := cat.Validate(b, 291)
		if !v.Accepted() || v.Findings.Errors() != 0 {
			t.Fatalf("ipc-292 rejected, want accepted; findings:\n%s", renderFindings(v.Findings))
		}
		if got := len(v.Targeted); got != 2 {
			t.Errorf("ipc-292 targets %d agents, want 2 (7.11.0 and 7.12.0 on windows)", got)
		}
	})
}
