package content

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// defective wraps the real evaluator and corrupts its answers as a
// defect in the index would.
type defective struct {
	*Evaluator
	corrupt func(Event, *Result)
}

func (d defective) Eval(e Event, r *Result) {
	d.Evaluator.Eval(e, r)
	d.corrupt(e, r)
}

func withIndexed(t *testing.T, wrap func(*Evaluator) indexedEvaluator) {
	t.Helper()
	orig := newIndexed
	newIndexed = func(c *Compiled) (indexedEvaluator, error) {
		ev, err := NewEvaluator(c)
		if err != nil {
			return nil, err
		}
		return wrap(ev), nil
	}
	t.Cleanup(func() { newIndexed = orig })
}

const defectSrc = `kind: Bundle
vendor: acme
channel: probe
version: 5
template_type: probe@1
targets: {agent_versions: ">=1.0"}
instances:
  - {id: quiet, criteria: [{field: size, op: range, min: 10, max: 20}]}
  - id: piped
    criteria:
      - {field: name, op: prefix, value: 'pipe-'}
      - {field: level, op: equals, value: high}
`

func defectCatalog(t *testing.T) (*Catalog, *Compiled) {
	t.Helper()
	tt := &TemplateType{Name: "probe", Version: 1, Fields: []Field{
		{Index: 1, Name: "name", Type: TypeString},
		{Index: 2, Name: "size", Type: TypeUint},
		{Index: 3, Name: "level", Type: TypeEnum, Values: []string{"low", "high"}},
	}}
	m := &Manifest{AgentVersion: AgentVersion{Major: 1}, Platform: "linux", Supplies: map[TypeRef]int{tt.Ref(): 3}, Limits: DefaultLimits}
	b, err := ParseBundle("defect.yaml", []byte(defectSrc))
	if err != nil {
		t.Fatal(err)
	}
	c, fs := Compile(b, tt)
	if c == nil {
		t.Fatal(fs)
	}
	return &Catalog{Types: map[TypeRef]*TemplateType{tt.Ref(): tt}, Manifests: []*Manifest{m}}, c
}

// TestPreflightMismatchNamesInstance: a disagreement with the reference
// names the instance, the criterion's field and the event's inputs.
func TestPreflightMismatchNamesInstance(t *testing.T) {
	cat, c := defectCatalog(t)
	// The defect: "piped" never matches when its name input is upper case
	// (a folding bug in the index).
	withIndexed(t, func(ev *Evaluator) indexedEvaluator {
		return defective{ev, func(e Event, r *Result) {
			if len(e.Inputs) == 0 || !strings.HasPrefix(e.Inputs[0].Str, "pipe-") {
				return
			}
			r.Matches = slices.DeleteFunc(r.Matches, func(i int32) bool {
				in := ev.c.Instances[i]
				return in.ID == "piped" && slices.ContainsFunc(in.Criteria, func(cr CompiledCriterion) bool { return cr.Op == OpPrefix })
			})
		}}
	})
	rep, err := cat.Preflight(context.Background(), c, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found *Finding
	for i, f := range rep.Findings {
		if f.Rule == "interpreter-mismatch" {
			found = &rep.Findings[i]
			break
		}
	}
	if found == nil {
		t.Fatalf("no interpreter-mismatch: %v", rep.Findings)
	}
	if found.Instance != "piped" || found.FieldName != "name" || found.FieldIndex != 1 {
		t.Errorf("mismatch names instance %q field %d %q, want piped, 1 name: %s", found.Instance, found.FieldIndex, found.FieldName, found)
	}
	for _, want := range []string{"the indexed evaluator says no match, the reference evaluator match",
		`the criterion on input 1 "name", op prefix, alone: indexed no match, reference match`,
		`input 1 "name" = "pipe-`, `input 3 "level" = "high"`} {
		if !strings.Contains(found.Message, want) {
			t.Errorf("mismatch message lacks %q: %s", want, found.Message)
		}
	}
}

// TestPreflightFalseMatch: a match the reference does not make is caught
// on every event, not only when the rotating sample reaches the instance:
// matched instances are always cross-checked.
func TestPreflightFalseMatch(t *testing.T) {
	tt := &TemplateType{Name: "probe", Version: 1, Fields: []Field{
		{Index: 1, Name: "name", Type: TypeString},
		{Index: 2, Name: "size", Type: TypeUint},
	}}
	m := &Manifest{AgentVersion: AgentVersion{Major: 1}, Platform: "linux", Supplies: map[TypeRef]int{tt.Ref(): 2}, Limits: DefaultLimits}
	cat := &Catalog{Types: map[TypeRef]*TemplateType{tt.Ref(): tt}, Manifests: []*Manifest{m}}
	var src strings.Builder
	src.WriteString("kind: Bundle\nvendor: acme\nchannel: probe\nversion: 5\ntemplate_type: probe@1\ntargets: {agent_versions: \">=1.0\"}\ninstances:\n")
	for i := range 300 {
		fmt.Fprintf(&src, "  - {id: p-%d, criteria: [{field: name, op: equals, value: 'pipe-%d'}, {field: size, op: range, min: %d, max: %d}]}\n", i, i, 1000+i, 1010+i)
	}
	b, err := ParseBundle("many.yaml", []byte(src.String()))
	if err != nil {
		t.Fatal(err)
	}
	c, fs := Compile(b, tt)
	if c == nil {
		t.Fatal(fs)
	}
	// The defect: instance p-150 matches every event.
	withIndexed(t, func(ev *Evaluator) indexedEvaluator {
		return defective{ev, func(e Event, r *Result) {
			if e.Type != c.Type || len(ev.c.Instances) < 300 {
				return
			}
			if i, ok := slices.BinarySearch(r.Matches, 150); !ok {
				r.Matches = slices.Insert(r.Matches, i, 150)
			}
		}}
	})
	rep, err := cat.Preflight(context.Background(), c, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, f := range rep.Findings {
		if f.Rule != "interpreter-mismatch" {
			continue
		}
		if f.Instance == "" {
			var more int
			if _, err := fmt.Sscanf(f.Message, "interpreter defect: %d more", &more); err != nil {
				t.Fatalf("summary %q: %v", f.Message, err)
			}
			total += more
			continue
		}
		total++
		if f.Instance != "p-150" {
			t.Errorf("mismatch names instance %q, want p-150: %s", f.Instance, f)
		}
	}
	// Every event but the few built to satisfy p-150 (and the probe of
	// another type) disagrees; the sample alone would reach p-150 on
	// about 8 × events ÷ 300 of them.
	if events := rep.Agents[0].Events; total < events-10 {
		t.Errorf("caught %d disagreements over %d events, want one on nearly every event", total, events)
	}
}

type panicky struct{ *Evaluator }

func (panicky) Eval(Event, *Result) { panic("boom") }

func TestPreflightPanic(t *testing.T) {
	cat, c := defectCatalog(t)
	withIndexed(t, func(ev *Evaluator) indexedEvaluator { return panicky{ev} })
	rep, err := cat.Preflight(context.Background(), c, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var first, more bool
	for _, f := range rep.Findings {
		first = first || (f.Rule == "interpreter-panic" && strings.Contains(f.Message, "boom"))
		more = more || (f.Rule == "interpreter-panic" && strings.Contains(f.Message, "more panics"))
	}
	if !first || !more {
		t.Errorf("findings: %v", rep.Findings)
	}
}

type leaky struct {
	*Evaluator
	keep [][]byte
}

func (l *leaky) Eval(e Event, r *Result) {
	l.Evaluator.Eval(e, r)
	l.keep = append(l.keep[:0], make([]byte, 1024))
}

func TestPreflightAllocBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool makes every evaluation allocate; preflight does not measure under it")
	}
	cat, c := defectCatalog(t)
	withIndexed(t, func(ev *Evaluator) indexedEvaluator { return &leaky{Evaluator: ev} })
	rep, err := cat.Preflight(context.Background(), c, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Findings {
		found = found || f.Rule == "alloc-budget"
	}
	if !found {
		t.Errorf("an evaluator allocating 1 KiB per event: no alloc-budget finding: %v", rep.Findings)
	}
}
