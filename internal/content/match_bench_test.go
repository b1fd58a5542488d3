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
	{"literal", "*" + strings.Repeat("a", content.MaxValueLen-3) + "b*"},
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
