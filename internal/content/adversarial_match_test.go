package content

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The matching classes of the adversarial corpus (issue 15): each
// testdata/adversarial/match-*.yaml bundle says in its header what it
// probes and what the right verdict is; the table below holds that
// verdict as events and the instances each must match.

const adversarialDir = "testdata/adversarial"

type advEvent struct {
	s, p string   // the inputs; "" is taken as "-"
	want []string // ids of the instances that match
}

var (
	a64k = strings.Repeat("a", MaxInputLen)
	// Just short of matching everywhere: every position starts a run.
	a64kB    = a64k[:MaxInputLen-1] + "b"
	upper64k = strings.Repeat("A", MaxInputLen)
)

var adversarialMatch = map[string][]advEvent{
	"match-regex-inline-flags.yaml": {
		{p: `C:\Windows\x.exe`, want: []string{"cs-prefix"}},
		{p: `c:\windows\x.exe`},
		{p: `C:\WINDOWS\x.exe`},
		{p: "ABCdef", want: []string{"cs-after-anchor", "ci-explicit"}},
		{p: "abcdef", want: []string{"ci-explicit", "cs-lower"}},
		{p: "XyZ", want: []string{"cs-then-ci"}},
		{p: "XYZ", want: []string{"cs-then-ci"}},
		{p: "xyz"},
		{p: "Éa", want: []string{"cs-non-ascii"}},
		{p: "éa"},
	},
	"match-regex-flag-groups.yaml": {
		{p: "ABCd", want: []string{"grp-cs", "grp-nested"}},
		{p: "ABCD", want: []string{"grp-cs", "grp-nested"}},
		{p: "abcd"},
		{s: "xABy", want: []string{"grp-ci-on-string"}},
		{s: "xaby", want: []string{"grp-ci-on-string"}},
		{s: "XABy"},
		{p: "AbC", want: []string{"grp-nested"}},
		{p: "aBC"},
		{p: "Abc"},
		{s: "aab", want: []string{"grp-ungreedy"}},
		{p: "Q1x", want: []string{"grp-after-group"}},
		{p: "Q1X", want: []string{"grp-after-group"}},
		{p: "q1x"},
	},
	"match-regex-unicode-fold.yaml": {
		{p: "kb", want: []string{"kelvin-literal", "k-letter"}},
		{p: "KB", want: []string{"kelvin-literal", "k-letter"}},
		{p: "\u212ab", want: []string{"kelvin-literal", "k-letter"}},
		{p: "s:x", want: []string{"long-s"}},
		{p: "S:x", want: []string{"long-s"}},
		{p: "\u017f:x", want: []string{"long-s"}},
		{p: "éclair", want: []string{"e-acute", "e-acute-prefix", "e-acute-cs"}},
		{p: "Éclair", want: []string{"e-acute"}},
		{s: "é", want: []string{"s-cs", "s-ci"}},
		{s: "É", want: []string{"s-ci"}},
	},
	"match-regex-newlines.yaml": {
		{s: "axb", want: []string{"dot-no-s", "dot-s", "glob-star-newline", "glob-q-newline"}},
		{s: "a\nb", want: []string{"dot-s", "multiline", "glob-star-newline", "glob-q-newline"}},
		{s: "b", want: []string{"multiline"}},
		{s: "a\nb\nc", want: []string{"multiline"}},
		{s: "ab", want: []string{"glob-star-newline"}},
		{s: "a", want: []string{"dollar-text-end"}},
		{s: "a\n"},
		{s: "a\n\nb", want: []string{"multiline", "glob-star-newline"}},
		{p: "junk\nC:\\x1", want: []string{"multiline-path"}},
		{p: `c:\x`, want: []string{"multiline-path"}},
	},
	"match-glob-many-stars.yaml": {
		{s: a64k, want: []string{"star-only"}},
		{s: a64kB, want: []string{"stars-and-a", "long-segment", "qmark-segment", "adjacent-stars", "star-only"}},
		{s: strings.Repeat("a", 20) + "b", want: []string{"stars-and-a", "adjacent-stars", "star-only"}},
		{s: strings.Repeat("ab", 16), want: []string{"stars-and-a", "adjacent-stars", "star-only"}},
		{s: strings.Repeat("a", 300) + "b", want: []string{"stars-and-a", "long-segment", "qmark-segment", "adjacent-stars", "star-only"}},
		{s: strings.Repeat("aé", 40) + "b", want: []string{"stars-and-a", "qmark-segment", "adjacent-stars", "star-only"}},
		{s: strings.Repeat("aé", 39) + "b", want: []string{"stars-and-a", "adjacent-stars", "star-only"}},
		{s: "ab", want: []string{"adjacent-stars", "star-only"}},
		{s: "axxb", want: []string{"adjacent-stars", "star-only"}},
		{s: "a", want: []string{"star-only"}},
		{p: `C:\Users\X\AppData\Local\Temp\1\x.EXE`, want: []string{"path-stars", "star-only"}},
		{p: `C:\temp.exe`, want: []string{"star-only"}},
		{p: upper64k, want: []string{"star-only"}},
	},
	"match-glob-multibyte.yaml": {
		{s: "aéb", want: []string{"q-multibyte"}},
		{s: "a€b", want: []string{"q-multibyte"}},
		{s: "a😀b", want: []string{"q-multibyte"}},
		{s: "a\xffb", want: []string{"q-multibyte", "fffd"}},
		{s: "a\ufffdb", want: []string{"q-multibyte", "fffd"}},
		{s: "ab"},
		{s: "aééb"},
		{s: "a\xe2\x82b"},
		{s: "a\xff\xffb"},
		{s: "x€", want: []string{"q-before-euro"}},
		{s: "€€", want: []string{"q-before-euro"}},
		{s: "€"},
		{s: "ab😀", want: []string{"q-at-end"}},
		{s: "ab\xf0\x9f\x98"},
		{p: `C:\é1.EXE`, want: []string{"path-non-ascii"}},
		{p: `C:\É1.exe`},
		{p: `c:\é\x`, want: []string{"contains-e"}},
		{p: `C:\É\x`},
	},
	"match-contains-long.yaml": {
		{s: a64k, want: []string{"c1", "c2", "c4"}},
		{s: "ab", want: []string{"c1", "c-ab"}},
		{p: strings.Repeat("A", 400) + "B", want: []string{"long-folded"}},
		{p: upper64k},
		{s: a64k, p: upper64k[:MaxInputLen-1] + "B", want: []string{"c1", "c2", "c4", "long-folded"}},
	},
}

// loadAdversarial compiles one bundle of the corpus against the match type.
func loadAdversarial(t *testing.T, name string) *Compiled {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(adversarialDir, "types", "match.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tt, err := ParseTemplateType("match.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	src, err = os.ReadFile(filepath.Join(adversarialDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "# Probes:") || !strings.Contains(string(src), "# Right verdict") {
		t.Errorf("%s: the header must say what it probes (# Probes:) and the right verdict (# Right verdict)", name)
	}
	b, err := ParseBundle(name, src)
	if err != nil {
		t.Fatal(err)
	}
	c, fs := Compile(b, tt)
	if c == nil {
		t.Fatalf("%s does not compile: %v", name, fs)
	}
	return c
}

// TestAdversarialMatch runs each match-*.yaml bundle's events through the
// indexed evaluator and the reference: they must agree with each other
// and with the verdict the bundle's header states.
func TestAdversarialMatch(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(adversarialDir, "match-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := adversarialMatch[filepath.Base(f)]; !ok {
			t.Errorf("%s has no events in the table", f)
		}
	}
	for name, events := range adversarialMatch {
		t.Run(name, func(t *testing.T) {
			c := loadAdversarial(t, name)
			ev, err := NewEvaluator(c)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := NewReference(c)
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]int32{}
			for i, in := range c.Instances {
				ids[in.ID] = int32(i)
			}
			var got, want Result
			for _, e := range events {
				in := Event{Type: c.Type, Inputs: []Value{Str(orDash(e.s)), Str(orDash(e.p))}}
				var verdict []int32
				for _, id := range e.want {
					i, ok := ids[id]
					if !ok {
						t.Fatalf("no instance %q in %s", id, name)
					}
					verdict = append(verdict, i)
				}
				slices.Sort(verdict)
				ev.Eval(in, &got)
				ref.Eval(in, &want)
				label := func(r Result) []string {
					var out []string
					for _, m := range r.Matches {
						out = append(out, c.Instances[m].ID)
					}
					return out
				}
				switch {
				case len(got.Errors) > 0 || len(want.Errors) > 0:
					t.Errorf("s=%.40q p=%.40q: errors: indexed %v, reference %v", e.s, e.p, got.Errors, want.Errors)
				case !slices.Equal(got.Matches, want.Matches):
					t.Errorf("s=%.40q p=%.40q: indexed matches %v, reference %v", e.s, e.p, label(got), label(want))
				case !slices.Equal(got.Matches, verdict):
					t.Errorf("s=%.40q p=%.40q: both match %v, the stated verdict is %v", e.s, e.p, label(got), e.want)
				}
			}
		})
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestAdversarialGlobSteps bounds the work of every glob and contains
// pattern in the corpus on the longest inputs: a constant number of steps
// per input byte (three for the text searches, one per 64 pattern
// characters for a wildcard segment) plus the pattern's length once,
// never len(pattern) per byte as the backtracking matcher took.
func TestAdversarialGlobSteps(t *testing.T) {
	inputs := []string{a64k, a64kB, upper64k, strings.Repeat("aé", MaxInputLen/3), strings.Repeat("\xff", MaxInputLen)}
	checked := 0
	for name := range adversarialMatch {
		c := loadAdversarial(t, name)
		for _, in := range c.Instances {
			for _, cr := range in.Criteria {
				fold := c.Fields[cr.Field-1].Type.folded()
				for _, s := range inputs {
					var steps, perByte int
					switch cr.Op {
					case OpGlob:
						g := compileGlob(cr.Strs[0], fold)
						perByte = 3
						for _, seg := range g.segs {
							if seg.sa != nil {
								perByte = max(perByte, seg.sa.words)
							}
						}
						_, steps = g.run(s)
					case OpContains:
						perByte = 3
						_, steps = newLitSearch(cr.Strs[0], fold).index(s, 0)
					default:
						continue
					}
					checked++
					if limit := perByte*len(s) + len(cr.Strs[0]); steps > limit {
						t.Errorf("%s: %s on %.20q... (%d bytes): %d steps, over the bound of %d", name, in.ID, s, len(s), steps, limit)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d pattern and input pairs checked", checked)
	}
}
