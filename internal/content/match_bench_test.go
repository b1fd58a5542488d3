package content_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
)

// globWorstCases are glob patterns of at most MaxValueLen bytes that the
// old backtracking matcher took time len(pattern)*len(input) on, against
// an input of 'a's: each one almost matches at every position. None has a
// literal prefix or suffix, so the index cannot keep the event away and
// every event runs the matcher.
var globWorstCases = []struct{ name, pattern string }{
	// One long literal segment between stars: every restart re-reads it.
	// (At 1 KiB the input is shorter than the pattern and is refused at
	// once; the old matcher also gave up early there.)
	{"literal", "*" + strings.Repeat("a", content.MaxValueLen-3) + "b*"},
	// A segment that fits in every input size.
	{"literal-mid", "*" + strings.Repeat("a", 511) + "b*"},
	// The same with '?' inside the segment, which a plain substring search
	// cannot take.
	{"qmark", "*" + strings.Repeat("a?", (content.MaxValueLen-3)/2) + "b*"},
	// Many short segments.
	{"stars", strings.Repeat("*a", (content.MaxValueLen-2)/2) + "b*"},
	// A short wildcard segment, the common shape of real content.
	{"short", "*" + strings.Repeat("a?", 20) + "b*"},
}

// BenchmarkGlobWorstCase runs each worst-case glob through the indexed
// evaluator on inputs of 1, 8 and 64 KiB. A linear matcher shows ns/op
// growing eight times per step; a quadratic one, far more.
func BenchmarkGlobWorstCase(b *testing.B) {
	for _, wc := range globWorstCases {
		ev := globEvaluator(b, wc.pattern)
		for _, n := range []int{1 << 10, 8 << 10, 64 << 10} {
			in := content.Event{Type: ev.Compiled().Type, Inputs: []content.Value{content.Str(strings.Repeat("a", n))}}
			b.Run(fmt.Sprintf("%s/%dKiB", wc.name, n>>10), func(b *testing.B) {
				var res content.Result
				b.SetBytes(int64(n))
				for b.Loop() {
					ev.Eval(in, &res)
				}
				if len(res.Matches) != 0 {
					b.Fatalf("pattern %.20q... matched %d bytes of 'a'", wc.pattern, n)
				}
			})
		}
	}
}

// globEvaluator compiles a one-instance bundle whose only criterion is
// the glob on a string field.
func globEvaluator(tb testing.TB, pattern string) *content.Evaluator {
	tb.Helper()
	tt := &content.TemplateType{Name: "g", Version: 1, Fields: []content.Field{{Index: 1, Name: "s", Type: content.TypeString}}}
	b := &content.Bundle{Vendor: "acme", Channel: "g", Version: 1, TemplateType: tt.Ref(), Instances: []content.Instance{{
		ID: "g", Severity: content.SeverityMedium, Action: content.ActionAlert,
		Criteria: []content.Criterion{{FieldName: "s", Op: content.OpGlob, Value: &content.Scalar{Text: pattern, Tag: "!!str"}}},
	}}}
	c, fs := content.Compile(b, tt)
	if c == nil {
		tb.Fatalf("glob %.20q... does not compile: %v", pattern, fs)
	}
	ev, err := content.NewEvaluator(c)
	if err != nil {
		tb.Fatalf("NewEvaluator: %v", err)
	}
	return ev
}

// BenchmarkContainsWorstCase runs "contains" where the old code was
// superlinear, on inputs of 1, 8 and 64 KiB of 'a' (or 'A'):
//   - folded: a path criterion of MaxValueLen-1 a's then b, checked on
//     an instance anchored on another field, so the search itself runs
//     (the old folded search re-read the pattern at every position);
//   - index: 1,000 instances containing "a", which the substring index
//     used to push once per input byte instead of once per event.
func BenchmarkContainsWorstCase(b *testing.B) {
	tt := &content.TemplateType{Name: "c", Version: 1, Fields: []content.Field{
		{Index: 1, Name: "s", Type: content.TypeString}, {Index: 2, Name: "p", Type: content.TypePath}}}
	str := func(s string) *content.Scalar { return &content.Scalar{Text: s, Tag: "!!str"} }
	folded := []content.Instance{{ID: "folded", Severity: content.SeverityMedium, Action: content.ActionAlert,
		Criteria: []content.Criterion{
			{FieldName: "s", Op: content.OpEquals, Value: str("x")}, // the anchor
			{FieldName: "p", Op: content.OpContains, Value: str(strings.Repeat("a", content.MaxValueLen-1) + "b")},
		}}}
	var index []content.Instance
	for i := range 1000 {
		index = append(index, content.Instance{ID: fmt.Sprintf("i%d", i), Severity: content.SeverityMedium, Action: content.ActionAlert,
			Criteria: []content.Criterion{{FieldName: "s", Op: content.OpContains, Value: str("a")}}})
	}
	for _, bc := range []struct {
		name      string
		instances []content.Instance
		s, p      string // the inputs, repeated to about n bytes
		matches   int
	}{{"folded", folded, "", "A", 0}, {"index", index, "a", "", 1000}} {
		bundle := &content.Bundle{Vendor: "acme", Channel: "c", Version: 1, TemplateType: tt.Ref(), Instances: bc.instances}
		c, fs := content.Compile(bundle, tt)
		if c == nil {
			b.Fatalf("%s does not compile: %v", bc.name, fs)
		}
		ev, err := content.NewEvaluator(c)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1 << 10, 8 << 10, 64 << 10} {
			in := content.Event{Type: c.Type, Inputs: []content.Value{
				content.Str("x" + strings.Repeat(bc.s, n-1)), content.Str(strings.Repeat(bc.p, n))}}
			b.Run(fmt.Sprintf("%s/%dKiB", bc.name, n>>10), func(b *testing.B) {
				var res content.Result
				b.SetBytes(int64(n))
				for b.Loop() {
					ev.Eval(in, &res)
				}
				if len(res.Matches) != bc.matches {
					b.Fatalf("%d matches, want %d", len(res.Matches), bc.matches)
				}
			})
		}
	}
}
