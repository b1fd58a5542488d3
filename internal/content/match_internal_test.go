package content

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestGlobMatchesRegexSpec checks the linear glob matcher against the
// reference's definition of a glob (globToRegex on the folded input) on
// random patterns and inputs built from the same small alphabet, with
// segments long enough to take several state words and texts repetitive
// enough to exercise every Knuth-Morris-Pratt fallback.
func TestGlobMatchesRegexSpec(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 1))
	patTokens := []string{"a", "b", "A", "é", "É", "\u212a", "\ufffd", "\n", "?", "*", "ab", "aab", "€"}
	inTokens := []string{"a", "b", "A", "B", "é", "É", "\u212a", "\ufffd", "\n", "\xff", "\xe2\x82", "\xc3", "ab", "€", "\x00"}
	draw := func(tokens []string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(tokens[r.IntN(len(tokens))])
		}
		return b.String()
	}
	checks, matched := 0, 0
	for range 2500 {
		fold := r.IntN(2) == 0
		var p string
		switch r.IntN(4) {
		case 0: // a long segment: several words of Shift-And state
			p = "*" + draw(patTokens[:9], 60+r.IntN(140)) + "*" + draw(patTokens, 2)
		case 1: // periodic: borders of every length
			p = "*" + strings.Repeat(draw(patTokens[:3], 1+r.IntN(3)), 1+r.IntN(20)) + draw(patTokens, r.IntN(3))
		default:
			p = draw(patTokens, 1+r.IntN(8))
		}
		if fold {
			p = FoldASCII(p)
		}
		g := compileGlob(p, fold)
		spec := regexp.MustCompile(globToRegex(p))
		for range 20 {
			var s string
			if r.IntN(2) == 0 {
				// Text shaped like the pattern, so that it often matches.
				s = strings.NewReplacer("*", draw(inTokens, r.IntN(4)), "?", draw(inTokens, 1)).Replace(p)
				if r.IntN(3) == 0 {
					s = strings.ToUpper(s)
				}
			} else {
				s = draw(inTokens, r.IntN(40))
			}
			want := s
			if fold {
				want = FoldASCII(s)
			}
			checks++
			ok := spec.MatchString(want)
			if ok {
				matched++
			}
			if got := g.match(s); got != ok {
				t.Fatalf("glob %q (fold %v) on %q: matcher %v, reference %v", p, fold, s, got, ok)
			}
		}
	}
	if matched*20 < checks {
		t.Fatalf("only %d of %d checks matched: the test says little", matched, checks)
	}
}

// TestLitSearchFindsFirst checks the Knuth-Morris-Pratt search against
// strings.Index on the folded text.
func TestLitSearchFindsFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 2))
	alpha := []string{"a", "b", "A", "\xc3", "\xa9"}
	draw := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alpha[r.IntN(len(alpha))])
		}
		return b.String()
	}
	for range 20000 {
		fold := r.IntN(2) == 0
		p, s := draw(1+r.IntN(6)), draw(r.IntN(30))
		if fold {
			p = FoldASCII(p)
		}
		from := r.IntN(len(s) + 1)
		text := s
		if fold {
			text = FoldASCII(s)
		}
		want := strings.Index(text[from:], p)
		if want >= 0 {
			want += from
		}
		if got, _ := newLitSearch(p, fold).index(s, from); got != want {
			t.Fatalf("search %q in %q from %d (fold %v): got %d, want %d", p, s, from, fold, got, want)
		}
	}
}

// TestGlobStepsLinear bounds the work of the worst-case globs: a constant
// number of steps per input byte, plus the pattern's length once. A
// literal or short wildcard segment costs a few steps a byte however long
// the pattern; the old backtracking matcher took len(pattern) a byte.
func TestGlobStepsLinear(t *testing.T) {
	long := MaxValueLen - 3
	cases := []struct {
		name, pattern string
		perByte       int // bound on steps per input byte
	}{
		{"literal segment", "*" + strings.Repeat("a", long) + "b*", 3},
		{"many stars", strings.Repeat("*a", long/2) + "b*", 3},
		{"short wildcard segment", "*" + strings.Repeat("a?", 20) + "b*", 1},
		{"wildcard tail", "*" + strings.Repeat("a?", 20) + "b", 1},
		{"FFFD segment", "*a\ufffda\ufffda\ufffdb*", 1},
		// One step per 64 segment characters: the bound the design states.
		{"long wildcard segment", "*" + strings.Repeat("a?", long/2) + "b*", (long + 63) / 64},
	}
	for _, c := range cases {
		g := compileGlob(c.pattern, false)
		for _, n := range []int{1 << 10, 8 << 10, 64 << 10} {
			s := strings.Repeat("a", n)
			ok, steps := g.run(s)
			if ok {
				t.Fatalf("%s: matched %d 'a's", c.name, n)
			}
			// The pattern's length is paid once, not once a byte.
			if limit := c.perByte*n + len(c.pattern); steps > limit {
				t.Errorf("%s: %d steps on %d bytes, over the bound of %d (%d a byte)", c.name, steps, n, limit, c.perByte)
			}
		}
	}
}

// TestRegexKey lists what may key a regex in the index, flag by flag.
func TestRegexKey(t *testing.T) {
	cases := []struct {
		pattern string
		fold    bool // the field folds case: the pattern runs under (?i)
		key     string
	}{
		{`^abc`, false, "abc"},
		{`^ABC`, false, "ABC"},
		{`^ABC`, true, "abc"}, // each folds to its other ASCII case only
		{`^(?-i)ABC`, true, "abc"},
		{`(?-i)^C:\\Win`, true, `c:\win`},
		{`^(?-i:AB)cd`, true, "abcd"},
		{`^(?i)ab`, false, ""},
		{`^x(?i:ab)`, false, "x"},
		{`^ks`, true, ""},      // k and s fold to U+212A and U+017F
		{`^é`, true, ""},       // a non-ASCII orbit
		{`^(?-i)é`, true, "é"}, // exact, and ASCII folding leaves it be
		{`^\x{212a}`, false, "\u212a"},
		{`^a\x{fffd}b`, false, "a"},
		{`(?m)^abc`, false, ""},
		{`abc`, false, ""},
		{`^(abc)`, false, ""},
		{`(?s)^a.b`, false, "a"},
		{`(?U)^ab+`, false, "a"},
		{`^/12:`, true, "/12:"},
	}
	for _, c := range cases {
		p, err := planRegex(c.pattern, c.fold)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if p.key != c.key {
			t.Errorf("regex %q (fold %v): key %q, want %q", c.pattern, c.fold, p.key, c.key)
		}
	}
}

// TestRegexKeySound checks the key's one promise on random patterns and
// texts: whatever the program matches begins with the key, once folded
// the way the index folds its input.
func TestRegexKeySound(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 3))
	flags := []string{"", "(?i)", "(?-i)", "(?s)", "(?m)", "(?U)", "(?i:", "(?-i:"}
	atoms := []string{"a", "A", "k", "K", "\u212a", "é", "É", "s", "\u017f", `\.`, ".", "b?", "\ufffd", "\n", ":"}
	texts := []string{"a", "A", "k", "K", "\u212a", "é", "É", "s", "S", "\u017f", ".", "b", "\ufffd", "\xff", "\n", ":"}
	keyed := 0
	for range 20000 {
		fold := r.IntN(2) == 0
		var b strings.Builder
		open := 0
		if r.IntN(4) != 0 {
			b.WriteString("^")
		}
		for range 1 + r.IntN(6) {
			if f := flags[r.IntN(len(flags))]; f != "" && r.IntN(3) == 0 {
				b.WriteString(f)
				if strings.HasSuffix(f, ":") {
					open++
				}
			}
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
		b.WriteString(strings.Repeat(")", open))
		p, err := planRegex(b.String(), fold)
		if err != nil {
			t.Fatalf("%q: %v", b.String(), err)
		}
		if p.key != "" {
			keyed++
		}
		for range 20 {
			var s strings.Builder
			for range r.IntN(8) {
				s.WriteString(texts[r.IntN(len(texts))])
			}
			in := s.String()
			if !p.re.MatchString(in) {
				continue
			}
			if fold {
				in = FoldASCII(in)
			}
			if !strings.HasPrefix(in, p.key) || !utf8.ValidString(p.key) {
				t.Fatalf("regex %q (fold %v) matches %q but its key is %q", b.String(), fold, s.String(), p.key)
			}
		}
	}
	if keyed < 1000 {
		t.Fatalf("only %d patterns had a key: the test says little", keyed)
	}
}
