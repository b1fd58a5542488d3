package content_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

// The preflight tests run on compiled bytes: every bundle is compiled,
// marshalled and decoded again before preflight sees it, because a
// compiled bundle never passed the validator and preflight is the only
// gate it meets.

const preflightTypes = `
kind: TemplateType
name: probe
version: 1
fields:
  - {index: 1, name: name, type: string}
  - {index: 2, name: image, type: path}
  - {index: 3, name: size, type: uint}
  - {index: 4, name: level, type: enum, values: [low, high]}
  - {index: 5, name: owner, type: string}
---
kind: TemplateType
name: probe
version: 2
fields:
  - {index: 1, name: name, type: string}
`

// Agents: 1.0.0 (linux) has strict limits; 2.0.0 (linux) the defaults;
// 3.0.0 (linux) supports only probe@2; 1.0.0 (windows) does not supply
// input 5.
var preflightManifests = []string{`
kind: CapabilityManifest
agent_version: 1.0.0
platform: linux
template_types: {probe@1: 5}
limits: {max_regex_program: 50, max_criteria: 3}
`, `
kind: CapabilityManifest
agent_version: 2.0.0
platform: linux
template_types: {probe@1: 5}
`, `
kind: CapabilityManifest
agent_version: 3.0.0
platform: linux
template_types: {probe@2: 1}
`, `
kind: CapabilityManifest
agent_version: 1.0.0
platform: windows
template_types: {probe@1: 4}
`}

func preflightCatalog(t testing.TB) *content.Catalog {
	t.Helper()
	cat := &content.Catalog{Types: map[content.TypeRef]*content.TemplateType{}}
	for i, doc := range strings.Split(preflightTypes, "---") {
		tt, err := content.ParseTemplateType(fmt.Sprintf("type-%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		cat.Types[tt.Ref()] = tt
	}
	for i, doc := range preflightManifests {
		m, err := content.ParseManifest(fmt.Sprintf("manifest-%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		cat.Manifests = append(cat.Manifests, m)
	}
	return cat
}

// probeBundle writes a probe bundle's source.
func probeBundle(version int, typ, agents, instances string) string {
	return fmt.Sprintf(`kind: Bundle
vendor: acme
channel: probe
version: %d
template_type: %s
targets: {platforms: [linux], agent_versions: %q}
instances:
%s`, version, typ, agents, instances)
}

// compiledBytes compiles the source against tt and decodes the bytes
// again, as a .bundle file would reach preflight.
func compiledBytes(t testing.TB, src string, tt *content.TemplateType) *content.Compiled {
	t.Helper()
	b, err := content.ParseBundle("bundle.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	c, fs := content.Compile(b, tt)
	if c == nil {
		t.Fatalf("Compile: %v", fs)
	}
	back, err := content.Unmarshal(c.Marshal())
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	return back
}

// retyped returns a copy of tt with edit applied to its fields: the
// template type a drifted bundle was compiled against.
func retyped(tt *content.TemplateType, edit func(fs []content.Field) []content.Field) *content.TemplateType {
	cp := *tt
	cp.Fields = edit(slices.Clone(tt.Fields))
	return &cp
}

const (
	agent1 = "1.0.0 (linux)"
	agent2 = "2.0.0 (linux)"
	agent3 = "3.0.0 (linux)"
)

// bigRegex compiles to more than 50 instructions but far fewer than 1000.
const bigRegex = `^(alpha|bravo|charlie|delta|echo|foxtrot)-[0-9]{2,4}$`

var preflightCases = []struct {
	name      string
	src       string
	current   uint64
	drift     func([]content.Field) []content.Field // compile against the catalog's type edited so
	accepted  bool
	rule      string   // a finding with this rule, at error level unless accepted...
	agents    []string // ...naming exactly these agents (nil: any)...
	instance  string   // ...this instance...
	field     string   // ...and this field
	message   string   // ...whose message contains this
	alsoRules []string // further rules that must be present
}{
	{name: "accepted", accepted: true,
		src: probeBundle(5, "probe@1", ">=1.0 <3.0", `
  - id: named
    criteria: [{field: name, op: equals, value: evil}, {field: level, op: in, values: [high]}]
`)},
	{name: "version-backwards", current: 7, rule: "version-not-increasing",
		message: "version 5 is not above the channel's current version 7",
		src:     probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n")},
	{name: "version-equal", current: 5, rule: "version-not-increasing",
		message: "version 5 is not above the channel's current version 5",
		src:     probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n")},
	{name: "version-forwards", current: 4, accepted: true,
		src: probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n")},
	{name: "template-type-unsupported", rule: "template-type-unsupported", agents: []string{agent3},
		message: "agent 3.0.0 (linux) does not support template type probe@1",
		src:     probeBundle(5, "probe@1", ">=2.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n")},
	{name: "too-many-criteria", rule: "too-many-criteria", agents: []string{agent1}, instance: "wide",
		message: "4 criteria, but agent 1.0.0 (linux) accepts at most 3",
		src: probeBundle(5, "probe@1", ">=1.0 <3.0", `
  - id: wide
    criteria:
      - {field: name, op: equals, value: x}
      - {field: image, op: suffix, value: '\x.exe'}
      - {field: size, op: range, min: 1, max: 9}
      - {field: level, op: equals, value: high}
`)},
	{name: "regex-too-large", rule: "regex-too-large", agents: []string{agent1}, instance: "big", field: "name",
		message: "but agent 1.0.0 (linux) accepts at most 50",
		src:     probeBundle(5, "probe@1", ">=1.0 <3.0", fmt.Sprintf("  - {id: big, criteria: [{field: name, op: regex, value: %q}]}\n", bigRegex))},
	{name: "schema-drift-type", rule: "schema-drift", agents: []string{agent2}, instance: "sized", field: "size",
		message:   "the bundle types it string, the catalog uint",
		alsoRules: []string{"preflight-instance-error"}, // and on the agent's events the instance errors
		drift: func(fs []content.Field) []content.Field {
			fs[2].Type = content.TypeString
			return fs
		},
		src: probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: sized, criteria: [{field: size, op: equals, value: '4096'}]}\n")},
	{name: "schema-drift-enum", rule: "schema-drift", agents: []string{agent2}, instance: "crit", field: "level",
		message: "the bundle adds critical, which agents never send",
		drift: func(fs []content.Field) []content.Field {
			fs[3].Values = []string{"low", "high", "critical"}
			return fs
		},
		src: probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: crit, criteria: [{field: level, op: equals, value: critical}]}\n")},
	{name: "schema-drift-name", rule: "schema-drift", agents: []string{agent2}, instance: "img", field: "image",
		message: `the bundle names it "path"`,
		drift: func(fs []content.Field) []content.Field {
			fs[1].Name = "path"
			return fs
		},
		src: probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: img, criteria: [{field: path, op: suffix, value: '\\x.exe'}]}\n")},
	{name: "schema-drift-extra-field", rule: "schema-drift", agents: []string{agent2}, instance: "extra", field: "session",
		message:   "the bundle embeds input 6 \"session\" (uint) but probe@1 has only 5 fields",
		alsoRules: []string{"preflight-instance-error"},
		drift: func(fs []content.Field) []content.Field {
			return append(fs, content.Field{Index: 6, Name: "session", Type: content.TypeUint})
		},
		src: probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: extra, criteria: [{field: session, op: equals, value: 3}]}\n")},
	{name: "input-not-supplied-on-agent-events", rule: "preflight-instance-error", agents: []string{"1.0.0 (windows)"}, instance: "owned", field: "owner",
		message: "reads past the 4 inputs that agent 1.0.0 (windows) supplies",
		src: strings.Replace(probeBundle(5, "probe@1", ">=1.0 <2.0", "  - {id: owned, criteria: [{field: owner, op: equals, value: root}]}\n"),
			"platforms: [linux]", "platforms: [windows]", 1)},
}

func TestPreflightChecks(t *testing.T) {
	cat := preflightCatalog(t)
	for _, tc := range preflightCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := content.ParseBundle("bundle.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			tt := cat.Types[b.TemplateType]
			if tc.drift != nil {
				tt = retyped(tt, tc.drift)
			}
			c := compiledBytes(t, tc.src, tt)
			rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{Current: tc.current})
			if err != nil {
				t.Fatalf("Preflight: %v", err)
			}
			fs := rep.Findings
			if got := fs.Errors() == 0; got != tc.accepted {
				t.Errorf("accepted = %v, want %v; findings:\n%s", got, tc.accepted, renderFindings(fs))
			}
			if tc.accepted && len(fs) > 0 {
				t.Errorf("got findings on an accepted bundle:\n%s", renderFindings(fs))
			}
			for _, f := range fs {
				if f.Bundle != c.Name() || f.Rule == "" || f.Message == "" || (f.FieldIndex != 0 && f.FieldName == "") {
					t.Errorf("malformed finding %+v", f)
				}
			}
			if tc.rule != "" {
				i := slices.IndexFunc(fs, func(f content.Finding) bool {
					return f.Rule == tc.rule && f.Level == content.LevelError && strings.Contains(f.String(), tc.message)
				})
				if i < 0 {
					t.Fatalf("no error [%s] containing %q; findings:\n%s", tc.rule, tc.message, renderFindings(fs))
				}
				f := fs[i]
				if tc.agents != nil && !slices.Equal(f.Agents, tc.agents) {
					t.Errorf("finding %q names agents %q, want %q", f, f.Agents, tc.agents)
				}
				if f.Instance != tc.instance {
					t.Errorf("finding %q names instance %q, want %q", f, f.Instance, tc.instance)
				}
				if f.FieldName != tc.field {
					t.Errorf("finding %q names field %q, want %q", f, f.FieldName, tc.field)
				}
			}
			for _, r := range tc.alsoRules {
				if !slices.ContainsFunc(fs, func(f content.Finding) bool { return f.Rule == r }) {
					t.Errorf("no [%s] finding; findings:\n%s", r, renderFindings(fs))
				}
			}
		})
	}
}

// TestPreflightUnknownType: a compiled bundle whose template type the
// catalog lacks is rejected before any run, as nothing says what agents
// send for it.
func TestPreflightUnknownType(t *testing.T) {
	cat := preflightCatalog(t)
	other := &content.TemplateType{Name: "other", Version: 1, Fields: []content.Field{{Index: 1, Name: "name", Type: content.TypeString}}}
	c := compiledBytes(t, probeBundle(5, "other@1", ">=2.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n"), other)
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasFinding(rep.Findings, "unknown-template-type", content.LevelError, "unknown template type other@1") || len(rep.Agents) != 0 {
		t.Errorf("got %d agent runs and findings:\n%s\nwant unknown-template-type and no run", len(rep.Agents), renderFindings(rep.Findings))
	}
}

func TestPreflightNoTargetedAgents(t *testing.T) {
	cat := preflightCatalog(t)
	c := compiledBytes(t, probeBundle(5, "probe@1", ">=9.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n"), cat.Types[content.TypeRef{Name: "probe", Version: 1}])
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasFinding(rep.Findings, "no-targeted-agents", content.LevelError, "match no capability manifest") {
		t.Errorf("findings:\n%s\nwant no-targeted-agents", renderFindings(rep.Findings))
	}
}

// unanchored has instances whose regexes no index can anchor, so every
// event tests them in full: the shape of content that is slow on every
// event, whatever the index does.
func unanchored(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - {id: rx-%d, criteria: [{field: name, op: regex, value: '(foo|bar|baz)[0-9]{3,8}x%d'}]}\n", i, i)
	}
	return probeBundle(5, "probe@1", ">=2.0 <3.0", b.String())
}

// TestPreflightCostBudget: an event over the cost budget is reported with
// the instances and fields that cost most, and the verdict and findings
// are the same whatever the clock does.
func TestPreflightCostBudget(t *testing.T) {
	cat := preflightCatalog(t)
	tt := cat.Types[content.TypeRef{Name: "probe", Version: 1}]
	c := compiledBytes(t, unanchored(5), tt)

	steady := content.PreflightOptions{}
	var now time.Time
	jumpy := content.PreflightOptions{Now: func() time.Time {
		now = now.Add(time.Hour) // a machine so loaded each reading is an hour on
		return now
	}}
	r1, err := cat.Preflight(context.Background(), c, steady)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := cat.Preflight(context.Background(), c, jumpy)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r1.Findings, r2.Findings) {
		t.Errorf("findings depend on the clock:\nsteady:\n%s\njumpy:\n%s", renderFindings(r1.Findings), renderFindings(r2.Findings))
	}
	if r2.Agents[0].Seconds < 3600 {
		t.Errorf("the jumpy clock was not used for the report (%v s)", r2.Agents[0].Seconds)
	}
	i := slices.IndexFunc(r1.Findings, func(f content.Finding) bool { return f.Rule == "cost-budget" })
	if i < 0 {
		t.Fatalf("five unanchored regexes over 64 KiB inputs: no cost-budget finding:\n%s", renderFindings(r1.Findings))
	}
	f := r1.Findings[i]
	if !strings.HasPrefix(f.Instance, "rx-") || f.FieldName != "name" || !slices.Equal(f.Agents, []string{agent2}) {
		t.Errorf("cost-budget finding names instance %q field %q agents %q, want an rx- instance, field name, agent %s", f.Instance, f.FieldName, f.Agents, agent2)
	}
	if !strings.Contains(f.Message, `instance rx-0 input 1 "name" (regex on 65536 bytes`) {
		t.Errorf("cost-budget finding does not list the top contributors: %s", f.Message)
	}

	// Two such regexes stay within the budget, whatever the clock.
	small := compiledBytes(t, unanchored(2), tt)
	for _, opts := range []content.PreflightOptions{steady, jumpy} {
		rep, err := cat.Preflight(context.Background(), small, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Findings.Errors() != 0 {
			t.Errorf("two unanchored regexes rejected:\n%s", renderFindings(rep.Findings))
		}
	}
}

// TestPreflightWorkBudget: past the work budget an agent's run stops, and
// the finding names the instances that cost most and a field.
func TestPreflightWorkBudget(t *testing.T) {
	cat := preflightCatalog(t)
	c := compiledBytes(t, unanchored(3), cat.Types[content.TypeRef{Name: "probe", Version: 1}])
	full, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{WorkBudget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rep.Findings, func(f content.Finding) bool { return f.Rule == "preflight-work-limit" })
	if i < 0 {
		t.Fatalf("no preflight-work-limit finding:\n%s", renderFindings(rep.Findings))
	}
	if f := rep.Findings[i]; !strings.HasPrefix(f.Instance, "rx-") || f.FieldName != "name" {
		t.Errorf("work-limit finding names instance %q field %q", f.Instance, f.FieldName)
	}
	if rep.Agents[0].Events >= full.Agents[0].Events {
		t.Errorf("stopped run had %d events, the full run %d", rep.Agents[0].Events, full.Agents[0].Events)
	}
}

// countdownCtx reports cancellation from its n-th Err call on: a
// deterministic stand-in for Ctrl-C part-way through.
type countdownCtx struct {
	context.Context
	calls, n int
}

func (c *countdownCtx) Err() error {
	c.calls++
	if c.calls >= c.n {
		return context.Canceled
	}
	return nil
}

func TestPreflightCancel(t *testing.T) {
	cat := preflightCatalog(t)
	c := compiledBytes(t, synthProbe(), cat.Types[content.TypeRef{Name: "probe", Version: 1}])
	full, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, a := range full.Agents {
		total += a.Events
	}
	ctx := &countdownCtx{Context: context.Background(), n: 50}
	rep, err := cat.Preflight(ctx, c, content.PreflightOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	ran := 0
	for _, a := range rep.Agents {
		ran += a.Events
	}
	if ran >= total || ran > ctx.n {
		t.Errorf("ran %d events after cancellation at the %d-th check, of %d", ran, ctx.n, total)
	}
	// Cancelled before it starts: no event runs.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err = cat.Preflight(done, c, content.PreflightOptions{})
	if !errors.Is(err, context.Canceled) || len(rep.Agents) != 0 {
		t.Errorf("cancelled context: got %v and %d agent runs, want context.Canceled and none", err, len(rep.Agents))
	}
}

// synthProbe writes a probe bundle of a few hundred instances.
func synthProbe() string {
	var b strings.Builder
	for i := range 300 {
		fmt.Fprintf(&b, "  - {id: p-%d, criteria: [{field: name, op: equals, value: 'pipe-%d'}, {field: size, op: range, min: %d, max: %d}]}\n", i, i, i, i+10)
	}
	return probeBundle(5, "probe@1", ">=1.0 <3.0", b.String())
}

// TestPreflightLinearWork counts what preflight does per instance: the
// events per agent and the reference checks per event are bounded, so the
// work grows with the bundle, not its square.
func TestPreflightLinearWork(t *testing.T) {
	tt := synth.TemplateType()
	ref := tt.Ref()
	m := &content.Manifest{AgentVersion: content.AgentVersion{Major: 7, Minor: 12}, Platform: "windows",
		Supplies: map[content.TypeRef]int{ref: 21}, Limits: content.DefaultLimits}
	cat := &content.Catalog{Types: map[content.TypeRef]*content.TemplateType{ref: tt}, Manifests: []*content.Manifest{m}}
	var perInst []float64
	for _, n := range []int{500, 4000} {
		rep, err := cat.Preflight(context.Background(), synth.Compiled(n, 1), content.PreflightOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Findings.Errors() != 0 {
			t.Fatalf("synthetic bundle rejected:\n%s", renderFindings(rep.Findings))
		}
		a := rep.Agents[0]
		if a.ReferenceChecks > a.Events*(1+2*64+8) {
			t.Errorf("%d instances: %d reference checks over %d events, more than the per-event bound", n, a.ReferenceChecks, a.Events)
		}
		if a.ReferenceChecks < a.Events*8 {
			t.Errorf("%d instances: %d reference checks over %d events, fewer than the sample of 8 per event", n, a.ReferenceChecks, a.Events)
		}
		perInst = append(perInst, float64(a.Events)/float64(n))
	}
	if perInst[1] > perInst[0]*1.2 {
		t.Errorf("events per instance grew from %.2f to %.2f", perInst[0], perInst[1])
	}
}

// TestReferenceEvalOnly: the per-instance reference is Eval restricted to
// the instances asked for.
func TestReferenceEvalOnly(t *testing.T) {
	c := synth.Compiled(300, 3)
	ref, err := content.NewReference(c)
	if err != nil {
		t.Fatal(err)
	}
	var all, only, want content.Result
	subset := []int32{0, 7, 42, 99, 150, 299}
	for _, e := range synth.Events(500, 300, 4) {
		ref.Eval(e, &all)
		ref.EvalOnly(e, subset, &only)
		want.Matches, want.Errors = nil, nil
		for _, i := range all.Matches {
			if slices.Contains(subset, i) {
				want.Matches = append(want.Matches, i)
			}
		}
		for _, ie := range all.Errors {
			if slices.Contains(subset, ie.Instance) {
				want.Errors = append(want.Errors, ie)
			}
		}
		if !slices.Equal(only.Matches, want.Matches) || !slices.Equal(only.Errors, want.Errors) {
			t.Fatalf("EvalOnly %v %v, Eval restricted %v %v", only.Matches, only.Errors, want.Matches, want.Errors)
		}
	}
}

// TestPreflightCoversEveryRule fails when a rule preflight.go emits has no
// test that provokes it.
func TestPreflightCoversEveryRule(t *testing.T) {
	covered := map[string]bool{
		"interpreter-mismatch": true, // preflight_internal_test.go
		"interpreter-panic":    true, // preflight_internal_test.go
		"alloc-budget":         true, // preflight_internal_test.go
		"preflight-partial":    true, // TestPreflightManyErrors
		"preflight-load":       true, // TestPreflightMalformed
		// The reference evaluator is the plain definition; a panic in it
		// is reported like the interpreter's but no test bundle causes one.
		"reference-panic": true,
	}
	for _, tc := range preflightCases {
		covered[tc.rule] = true
		for _, r := range tc.alsoRules {
			covered[r] = true
		}
	}
	for _, r := range []string{"unknown-template-type", "no-targeted-agents", "cost-budget", "preflight-work-limit"} {
		covered[r] = true // tests above
	}
	src, err := os.ReadFile("preflight.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.add\(\s*Level\w+,\s*"([a-z0-9-]+)"`)
	ms := re.FindAllSubmatch(src, -1)
	if len(ms) < 8 {
		t.Fatalf("found only %d rules in preflight.go; has the way they are emitted changed?", len(ms))
	}
	for _, m := range ms {
		if !covered[string(m[1])] {
			t.Errorf("rule %q is emitted by preflight.go but no test provokes it", m[1])
		}
	}
}

// TestPreflightManyErrors: when most instances cannot run on an agent's
// typical event, preflight says so and skips the per-instance events,
// which would only repeat the errors.
func TestPreflightManyErrors(t *testing.T) {
	cat := preflightCatalog(t)
	var b strings.Builder
	for i := range 150 {
		fmt.Fprintf(&b, "  - {id: o-%d, criteria: [{field: owner, op: equals, value: 'u%d'}]}\n", i, i)
	}
	src := strings.Replace(probeBundle(5, "probe@1", ">=1.0 <2.0", b.String()), "platforms: [linux]", "platforms: [windows]", 1)
	c := compiledBytes(t, src, cat.Types[content.TypeRef{Name: "probe", Version: 1}])
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasFinding(rep.Findings, "preflight-partial", content.LevelWarning, "150 instances cannot be evaluated") ||
		!hasFinding(rep.Findings, "preflight-instance-error", content.LevelError, "instance o-149: criterion on input 5") {
		t.Errorf("findings:\n%s", renderFindings(rep.Findings))
	}
}

// TestPreflightMalformed: a hand-built compiled bundle that breaks the
// compiled form's invariants is refused, not run.
func TestPreflightMalformed(t *testing.T) {
	cat := preflightCatalog(t)
	c := compiledBytes(t, probeBundle(5, "probe@1", ">=2.0 <3.0", "  - {id: a, criteria: [{field: name, op: equals, value: x}]}\n"),
		cat.Types[content.TypeRef{Name: "probe", Version: 1}])
	c.Instances[0].Criteria[0].Field = 99
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasFinding(rep.Findings, "preflight-load", content.LevelError, "malformed") || len(rep.Agents) != 0 {
		t.Errorf("findings:\n%s", renderFindings(rep.Findings))
	}
}
