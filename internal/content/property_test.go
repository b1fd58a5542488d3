package content_test

import (
	"flag"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"pgregory.net/rapid"

	"github.com/ringfence/ringfence/internal/content"
)

// TestPropertyEvaluatorMatchesReference is the interpreter's main property:
// on random valid template types, random valid bundles and random events,
// the indexed Evaluator computes exactly what the naive Reference does,
// matches and errors alike. Values come from small alphabets shared by the
// bundles and the events, so that events really match (every operator must
// produce matches during the run, or the test fails as vacuous). Run longer
// with -rapid.checks=10000.
func TestPropertyEvaluatorMatchesReference(t *testing.T) {
	// rapid runs 100 checks by default; unless told otherwise, run a few
	// thousand, which still takes well under a second.
	rounds := 30
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "rapid.checks" {
			rounds = 1
		}
	})
	if testing.Short() {
		rounds = 1
	}
	var st propStats
	for range rounds {
		rapid.Check(t, propEvaluatorMatchesReference(&st))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d bundles, %d events, %d with a match; matched instances by op: %v; errors by reason: %v",
		st.runs, st.events, st.matched, st.byOp, st.byReason)
	if st.runs < 100 {
		t.Logf("only %d checks: not asserting match coverage", st.runs)
		return
	}
	if st.matched*10 < st.events {
		t.Errorf("only %d of %d events matched anything: the generators are too far apart for the test to mean much", st.matched, st.events)
	}
	for op := content.OpAny; op <= content.OpIn; op++ {
		if st.byOp[op] == 0 {
			t.Errorf("no instance with an %q criterion ever matched", op)
		}
	}
	for r := content.ReasonMissingInput; r <= content.ReasonBadIP; r++ {
		if st.byReason[r] == 0 {
			t.Errorf("no instance error %s ever occurred", r)
		}
	}
}

func propEvaluatorMatchesReference(st *propStats) func(*rapid.T) {
	return func(t *rapid.T) {
		st.runs++
		tt := genTemplateType(t)
		b := genBundle(t, tt)
		c, fs := content.Compile(b, tt)
		if c == nil {
			t.Fatalf("a generated valid bundle does not compile: %v", fs)
		}
		enc := c.Marshal()
		dec, err := content.Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal refuses a compiled bundle: %v", err)
		}
		if !slices.Equal(dec.Marshal(), enc) {
			t.Fatalf("compiled bundle changes across Marshal/Unmarshal")
		}
		ev, err := content.NewEvaluator(dec)
		if err != nil {
			t.Fatalf("NewEvaluator: %v", err)
		}
		ref, err := content.NewReference(dec)
		if err != nil {
			t.Fatalf("NewReference: %v", err)
		}
		var got, want content.Result
		n := rapid.IntRange(1, 40).Draw(t, "events")
		for range n {
			e := genEvent(t, tt, b)
			evalBoth(t, ev, ref, e, &got, &want)
			st.record(dec, got)
		}
	}
}

type propStats struct {
	runs, events, matched int
	byOp                  map[content.Op]int
	byReason              map[content.ErrReason]int
}

func (s *propStats) record(c *content.Compiled, r content.Result) {
	if s.byOp == nil {
		s.byOp, s.byReason = map[content.Op]int{}, map[content.ErrReason]int{}
	}
	s.events++
	if len(r.Matches) > 0 {
		s.matched++
	}
	for _, m := range r.Matches {
		for _, cr := range c.Instances[m].Criteria {
			s.byOp[cr.Op]++
		}
	}
	for _, ie := range r.Errors {
		s.byReason[ie.Reason]++
	}
}

// The alphabets. Criteria and events draw from the same tokens, so that
// equality, prefixes, globs and regexes hit. The tokens include upper and
// lower case (path fields fold ASCII case), non-ASCII letters whose case is
// not folded, the Kelvin sign and the long s (which (?i) folds to k and s),
// newlines (for (?s) and (?m)) and U+FFFD; events also get invalid UTF-8
// and NUL.
var (
	strTokens   = []string{"a", "b", "A", "B", "ab", "k", "\u212a", "é", "É", `\`, "/", ".", "x", "\ufffd", "S", "\u017f", "\n"}
	eventTokens = append(slices.Clone(strTokens), "\xff", "\x00", "\xe2\x82")
	// runeTokens are single characters as the decoder sees them, for '?'.
	runeTokens = []string{"a", "B", "é", "€", "\u212a", "\ufffd", "\xff", "\n"}
	regexAtoms = []string{".", ".*", "[a-b]", "(a|B)", "x?", "b+", `\\`, `\.`, "[^a]", `\x{212a}`, `\pL`,
		`(?s:.)`, `(?m:^)`, `(?m:$)`, `\n`, "a+?", "[[:upper:]]"}
	// regexFlags start a pattern or switch flags in the middle of one: the
	// evaluators must apply each in its scope, and the index must not key
	// a pattern on text whose case the flags in force make inexact.
	regexFlags  = []string{"(?i)", "(?-i)", "(?s)", "(?m)", "(?U)", "(?is)", "(?i-s)", "(?-i)(?m)"}
	regexGroups = []string{"(?i:", "(?-i:", "(?s:", "(?U:"}
	digests     = []string{strings.Repeat("a", 64), strings.Repeat("0", 64),
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	ints  = []int64{-3, -2, -1, 0, 1, 2, 3, math.MinInt64, math.MaxInt64}
	uints = []uint64{0, 1, 2, 3, 4, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}
	ips   = []string{"10.0.0.1", "10.0.0.2", "10.1.2.3", "192.168.1.1", "0.0.0.0", "::", "::1",
		"::ffff:10.0.0.1", "2001:db8::1", "2001:db8::2"}
	eventIPs = append(slices.Clone(ips), "::ffff:192.168.1.1", "fe80::1%eth0", "10.0.0.256", "", "x", "10.0.0.1 ")
	cidrs    = []string{"10.0.0.0/8", "10.0.0.0/24", "10.0.0.1/32", "0.0.0.0/0", "192.168.0.0/16", "::/0",
		"::1/128", "2001:db8::/32", "::ffff:10.0.0.0/104", "::ffff:0.0.0.0/96"}
	enumWords = []string{"red", "green", "blue", "Red"}
	allTypes  = []content.FieldType{content.TypeString, content.TypeInt, content.TypeUint, content.TypeBool,
		content.TypePath, content.TypeIP, content.TypeSHA256, content.TypeEnum}
	// opsByType is the operator table of the design, written out here so
	// the test checks the compiler against it rather than against itself.
	opsByType = map[content.FieldType][]content.Op{
		content.TypeString: {content.OpAny, content.OpEquals, content.OpPrefix, content.OpSuffix, content.OpContains, content.OpGlob, content.OpRegex, content.OpIn},
		content.TypePath:   {content.OpAny, content.OpEquals, content.OpPrefix, content.OpSuffix, content.OpContains, content.OpGlob, content.OpRegex, content.OpIn},
		content.TypeInt:    {content.OpAny, content.OpEquals, content.OpRange, content.OpIn},
		content.TypeUint:   {content.OpAny, content.OpEquals, content.OpRange, content.OpIn},
		content.TypeBool:   {content.OpAny, content.OpEquals},
		content.TypeIP:     {content.OpAny, content.OpEquals, content.OpCIDR, content.OpIn},
		content.TypeSHA256: {content.OpAny, content.OpEquals, content.OpIn},
		content.TypeEnum:   {content.OpAny, content.OpEquals, content.OpIn},
	}
)

func genTemplateType(t *rapid.T) *content.TemplateType {
	tt := &content.TemplateType{Name: "prop", Version: 1}
	n := rapid.IntRange(1, 6).Draw(t, "fields")
	for i := range n {
		f := content.Field{Index: i + 1, Name: fmt.Sprintf("f%d", i+1), Type: rapid.SampledFrom(allTypes).Draw(t, "type")}
		if f.Type == content.TypeEnum {
			words := rapid.Permutation(enumWords).Draw(t, "enum")
			f.Values = words[:rapid.IntRange(1, len(words)).Draw(t, "enum values")]
		}
		tt.Fields = append(tt.Fields, f)
	}
	return tt
}

func genBundle(t *rapid.T, tt *content.TemplateType) *content.Bundle {
	b := &content.Bundle{Vendor: "acme", Channel: "prop", Version: 1, TemplateType: tt.Ref()}
	n := rapid.IntRange(1, 12).Draw(t, "instances")
	for i := range n {
		in := content.Instance{ID: fmt.Sprintf("i%d", i), Severity: content.SeverityMedium, Action: content.ActionAlert}
		for range rapid.IntRange(1, 4).Draw(t, "criteria") {
			in.Criteria = append(in.Criteria, genCriterion(t, tt))
		}
		b.Instances = append(b.Instances, in)
	}
	return b
}

func genCriterion(t *rapid.T, tt *content.TemplateType) content.Criterion {
	f := &tt.Fields[rapid.IntRange(0, len(tt.Fields)-1).Draw(t, "field")]
	cr := content.Criterion{Op: rapid.SampledFrom(opsByType[f.Type]).Draw(t, "op")}
	if rapid.Bool().Draw(t, "by index") {
		cr.FieldIndex = f.Index
	} else {
		cr.FieldName = f.Name
	}
	switch cr.Op {
	case content.OpAny:
	case content.OpIn:
		for range rapid.IntRange(1, 4).Draw(t, "in values") {
			cr.Values = append(cr.Values, genScalar(t, f))
		}
	case content.OpRange:
		lo, hi := genScalar(t, f), genScalar(t, f)
		if less(f.Type, hi.Text, lo.Text) {
			lo, hi = hi, lo
		}
		switch rapid.IntRange(0, 3).Draw(t, "range bounds") {
		case 0:
			cr.Min = &lo
		case 1:
			cr.Max = &hi
		default:
			cr.Min, cr.Max = &lo, &hi
		}
	case content.OpCIDR:
		cr.Value = &content.Scalar{Text: rapid.SampledFrom(cidrs).Draw(t, "cidr"), Tag: "!!str"}
	case content.OpPrefix, content.OpSuffix, content.OpContains:
		cr.Value = &content.Scalar{Text: caseMix(t, genText(t, strTokens, 1, 3), f.Type), Tag: "!!str"}
	case content.OpGlob:
		cr.Value = &content.Scalar{Text: caseMix(t, genText(t, append(slices.Clone(strTokens), "*", "?", "*"), 1, 4), f.Type), Tag: "!!str"}
	case content.OpRegex:
		cr.Value = &content.Scalar{Text: genRegex(t, f.Type), Tag: "!!str"}
	default:
		v := genScalar(t, f)
		cr.Value = &v
	}
	return cr
}

// less compares two numeric scalar texts of a field type.
func less(ft content.FieldType, a, b string) bool {
	if ft == content.TypeInt {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return x < y
	}
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}

// genScalar draws a valid value for an equals or in criterion on f.
func genScalar(t *rapid.T, f *content.Field) content.Scalar {
	switch f.Type {
	case content.TypeInt:
		return content.Scalar{Text: strconv.FormatInt(rapid.SampledFrom(ints).Draw(t, "int"), 10), Tag: "!!int"}
	case content.TypeUint:
		return content.Scalar{Text: strconv.FormatUint(rapid.SampledFrom(uints).Draw(t, "uint"), 10), Tag: "!!int"}
	case content.TypeBool:
		return content.Scalar{Text: strconv.FormatBool(rapid.Bool().Draw(t, "bool")), Tag: "!!bool"}
	case content.TypeIP:
		return content.Scalar{Text: rapid.SampledFrom(ips).Draw(t, "ip"), Tag: "!!str"}
	case content.TypeSHA256:
		return content.Scalar{Text: caseMix(t, rapid.SampledFrom(digests).Draw(t, "digest"), f.Type), Tag: "!!str"}
	case content.TypeEnum:
		return content.Scalar{Text: rapid.SampledFrom(f.Values).Draw(t, "enum value"), Tag: "!!str"}
	}
	return content.Scalar{Text: caseMix(t, genText(t, strTokens, 0, 3), f.Type), Tag: "!!str"}
}

func genText(t *rapid.T, tokens []string, minN, maxN int) string {
	var b strings.Builder
	for range rapid.IntRange(minN, maxN).Draw(t, "tokens") {
		b.WriteString(rapid.SampledFrom(tokens).Draw(t, "token"))
	}
	return b.String()
}

// caseMix flips the case of ASCII letters at random for the field types
// that fold case, where the interpreter must ignore it.
func caseMix(t *rapid.T, s string, ft content.FieldType) string {
	if ft != content.TypePath && ft != content.TypeSHA256 {
		return s
	}
	switch rapid.IntRange(0, 3).Draw(t, "case") {
	case 0:
		return strings.ToUpper(s) // also changes non-ASCII case: é to É
	case 1:
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && rapid.Bool().Draw(t, "flip") {
			b[i] ^= 0x20
		}
	}
	return string(b)
}

// genRegex draws a pattern from literal tokens (case-mixed on folded
// fields, where only the flags decide whether case matters), atoms, inline
// flags and flag groups.
func genRegex(t *rapid.T, ft content.FieldType) string {
	var b strings.Builder
	if rapid.IntRange(0, 2).Draw(t, "leading flags") == 0 {
		b.WriteString(rapid.SampledFrom(regexFlags).Draw(t, "flags"))
	}
	if rapid.Bool().Draw(t, "anchor start") {
		b.WriteString("^")
	}
	open := 0
	for range rapid.IntRange(0, 4).Draw(t, "atoms") {
		switch rapid.IntRange(0, 6).Draw(t, "atom kind") {
		case 0, 1, 2:
			tok := caseMix(t, rapid.SampledFrom(strTokens).Draw(t, "literal token"), ft)
			b.WriteString(regexp.QuoteMeta(tok))
		case 3:
			b.WriteString(rapid.SampledFrom(regexAtoms).Draw(t, "atom"))
		case 4:
			b.WriteString(rapid.SampledFrom(regexFlags).Draw(t, "inline flags"))
		case 5:
			b.WriteString(rapid.SampledFrom(regexGroups).Draw(t, "group"))
			open++
		case 6:
			if open > 0 {
				b.WriteString(")")
				open--
			}
		}
	}
	b.WriteString(strings.Repeat(")", open))
	if rapid.IntRange(0, 2).Draw(t, "anchor end") == 0 {
		b.WriteString("$")
	}
	if b.Len() == 0 {
		b.WriteString("x") // an empty regex is refused: it matches everything
	}
	return b.String()
}

// regexChooser makes the choices regexText leaves open at each node.
type regexChooser interface {
	foldSteps() int              // how far along its fold orbit a caseless rune moves
	classRune(lo, hi rune) rune  // one rune of a class's range
	classRange(n int) int        // which of a class's n ranges
	anyChar(newline bool) string // a character for . ((?s): newline allowed)
	lineBreak() bool             // whether ^ or $ writes a newline
	repeat(lo, hi int) int       // how many times a repeat's body is written
	alternative(n int) int       // which of n alternatives
}

// regexText builds a text the pattern is meant to match by walking its
// syntax tree, taking every open choice from ch.
func regexText(pattern string, folded bool, maxDepth int, ch regexChooser) string {
	flags := syntax.Perl
	if folded {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pattern, flags)
	if err != nil {
		return pattern
	}
	var b strings.Builder
	var walk func(r *syntax.Regexp, depth int)
	walk = func(r *syntax.Regexp, depth int) {
		if depth > maxDepth {
			return
		}
		switch r.Op {
		case syntax.OpLiteral:
			for _, c := range r.Rune {
				if r.Flags&syntax.FoldCase != 0 {
					for range ch.foldSteps() {
						c = unicode.SimpleFold(c)
					}
				}
				b.WriteRune(c)
			}
		case syntax.OpCharClass:
			if len(r.Rune) < 2 {
				return
			}
			k := ch.classRange(len(r.Rune) / 2)
			b.WriteRune(ch.classRune(r.Rune[2*k], r.Rune[2*k+1]))
		case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
			b.WriteString(ch.anyChar(r.Op == syntax.OpAnyChar))
		case syntax.OpBeginLine, syntax.OpEndLine:
			if ch.lineBreak() {
				b.WriteString("\n")
			}
		case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
			lo, hi := 0, 2
			switch r.Op {
			case syntax.OpPlus:
				lo = 1
			case syntax.OpQuest:
				hi = 1
			case syntax.OpRepeat:
				lo, hi = r.Min, r.Max
				if hi < 0 || hi > lo+2 {
					hi = lo + 2
				}
			}
			for range ch.repeat(lo, hi) {
				walk(r.Sub[0], depth+1)
			}
		case syntax.OpCapture:
			walk(r.Sub[0], depth+1)
		case syntax.OpConcat:
			for _, sub := range r.Sub {
				walk(sub, depth+1)
			}
		case syntax.OpAlternate:
			walk(r.Sub[ch.alternative(len(r.Sub))], depth+1)
		}
	}
	walk(re, 0)
	return b.String()
}

// rapidChoices draws every choice: caseless literals in any case of their
// fold orbit (Kelvin sign included), classes by one of their runes,
// repeats a few times.
type rapidChoices struct{ t *rapid.T }

func (c rapidChoices) foldSteps() int { return rapid.IntRange(0, 2).Draw(c.t, "fold step") }
func (c rapidChoices) classRange(n int) int {
	return rapid.IntRange(0, n-1).Draw(c.t, "class range")
}
func (c rapidChoices) classRune(lo, hi rune) rune {
	return lo + rune(rapid.IntRange(0, int(min(hi-lo, 40))).Draw(c.t, "class rune"))
}
func (c rapidChoices) anyChar(newline bool) string {
	if s := rapid.SampledFrom(runeTokens).Draw(c.t, "any char"); s != "\n" || newline {
		return s
	}
	return "a"
}
func (c rapidChoices) lineBreak() bool       { return rapid.Bool().Draw(c.t, "newline") }
func (c rapidChoices) repeat(lo, hi int) int { return rapid.IntRange(lo, hi).Draw(c.t, "repeat") }
func (c rapidChoices) alternative(n int) int {
	return rapid.IntRange(0, n-1).Draw(c.t, "alternative")
}

// regexSample draws a text the pattern is likely to match.
func regexSample(t *rapid.T, pattern string, folded bool) string {
	return regexText(pattern, folded, 20, rapidChoices{t})
}

// genEvent draws an event for tt: usually of its type, with 0 to n+2
// inputs, mostly valid values (often taken from the bundle's own criteria
// and decorated), sometimes empty, of the wrong kind or malformed.
func genEvent(t *rapid.T, tt *content.TemplateType, b *content.Bundle) content.Event {
	e := content.Event{Type: tt.Ref()}
	if rapid.IntRange(0, 30).Draw(t, "other type") == 0 {
		e.Type.Version++
	}
	n := len(tt.Fields)
	if rapid.IntRange(0, 3).Draw(t, "short") == 0 {
		n = rapid.IntRange(0, len(tt.Fields)+2).Draw(t, "inputs")
	}
	for i := range n {
		if i >= len(tt.Fields) {
			e.Inputs = append(e.Inputs, content.Str(genText(t, eventTokens, 0, 2)))
			continue
		}
		f := &tt.Fields[i]
		switch k := rapid.IntRange(0, 19).Draw(t, "input kind"); {
		case k < 8:
			e.Inputs = append(e.Inputs, fromCriteria(t, f, b))
		case k < 18:
			e.Inputs = append(e.Inputs, genValue(t, f))
		default:
			e.Inputs = append(e.Inputs, badValue(t, f))
		}
	}
	return e
}

// fromCriteria takes a value that some criterion on f compares with and
// dresses it the way events vary: other case, text around it.
func fromCriteria(t *rapid.T, f *content.Field, b *content.Bundle) content.Value {
	var pool []content.Scalar
	var regexes []string
	for _, in := range b.Instances {
		for _, cr := range in.Criteria {
			if cr.FieldName != f.Name && cr.FieldIndex != f.Index {
				continue
			}
			if cr.Op == content.OpRegex {
				regexes = append(regexes, cr.Value.Text)
			}
			for _, p := range []*content.Scalar{cr.Value, cr.Min, cr.Max} {
				if p != nil {
					pool = append(pool, *p)
				}
			}
			pool = append(pool, cr.Values...)
		}
	}
	if len(pool) == 0 {
		return genValue(t, f)
	}
	if len(regexes) > 0 && rapid.Bool().Draw(t, "regex sample") {
		v := regexSample(t, rapid.SampledFrom(regexes).Draw(t, "regex"), f.Type == content.TypePath)
		if rapid.Bool().Draw(t, "decorate") {
			v = genText(t, eventTokens, 0, 1) + v + genText(t, eventTokens, 0, 1)
		}
		return content.Str(caseMix(t, v, f.Type))
	}
	s := rapid.SampledFrom(pool).Draw(t, "criterion value")
	switch f.Type {
	case content.TypeInt:
		n, _ := strconv.ParseInt(s.Text, 10, 64)
		return content.Int(n + int64(rapid.IntRange(-1, 1).Draw(t, "delta")))
	case content.TypeUint:
		n, _ := strconv.ParseUint(s.Text, 10, 64)
		n += uint64(rapid.IntRange(-1, 1).Draw(t, "delta"))
		if n <= math.MaxInt64 && rapid.Bool().Draw(t, "as int") {
			return content.Int(int64(n))
		}
		return content.Uint(n)
	case content.TypeBool:
		return content.Bool(s.Text == "true")
	case content.TypeIP:
		if i := strings.IndexByte(s.Text, '/'); i >= 0 {
			return content.Str(s.Text[:i]) // the network address of a cidr
		}
		return content.Str(s.Text)
	case content.TypeString, content.TypePath:
		// Globs and regexes are not values; their text still shares tokens.
		v := strings.NewReplacer("*", genText(t, eventTokens, 0, 2), "?", rapid.SampledFrom(runeTokens).Draw(t, "one char")).Replace(s.Text)
		v = genText(t, eventTokens, 0, 1) + v + genText(t, eventTokens, 0, 1)
		return content.Str(caseMix(t, v, f.Type))
	}
	return content.Str(caseMix(t, s.Text, f.Type))
}

// genValue draws a well-formed value of f's type.
func genValue(t *rapid.T, f *content.Field) content.Value {
	switch f.Type {
	case content.TypeInt:
		n := rapid.SampledFrom(ints).Draw(t, "int")
		if n >= 0 && rapid.Bool().Draw(t, "as uint") {
			return content.Uint(uint64(n))
		}
		return content.Int(n)
	case content.TypeUint:
		return content.Uint(rapid.SampledFrom(uints).Draw(t, "uint"))
	case content.TypeBool:
		return content.Bool(rapid.Bool().Draw(t, "bool"))
	case content.TypeIP:
		return content.Str(rapid.SampledFrom(eventIPs).Draw(t, "ip"))
	case content.TypeSHA256:
		return content.Str(caseMix(t, rapid.SampledFrom(digests).Draw(t, "digest"), f.Type))
	case content.TypeEnum:
		return content.Str(rapid.SampledFrom(append(slices.Clone(f.Values), "RED", "")).Draw(t, "enum value"))
	}
	return content.Str(caseMix(t, genText(t, eventTokens, 0, 4), f.Type))
}

// badValue draws a value the field cannot be read as.
func badValue(t *rapid.T, f *content.Field) content.Value {
	vs := []content.Value{{}, {Kind: content.Kind(9), Str: "a", Num: 1}, {Kind: content.KindBool, Num: 2}}
	switch f.Type {
	case content.TypeInt:
		vs = append(vs, content.Uint(math.MaxInt64+1), content.Str("1"), content.Bool(true))
	case content.TypeUint:
		vs = append(vs, content.Int(-1), content.Int(math.MinInt64), content.Str("1"))
	case content.TypeBool:
		vs = append(vs, content.Uint(1), content.Str("true"))
	default:
		vs = append(vs, content.Uint(1), content.Int(-1), content.Bool(false), content.Str(tooLongStr))
	}
	return rapid.SampledFrom(vs).Draw(t, "bad value")
}
