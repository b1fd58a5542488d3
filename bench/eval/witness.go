package main

import (
	"net/netip"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/ringfence/ringfence/internal/content"
)

// witnesses returns, for each instance, a copy of base changed so that it
// satisfies every criterion of that instance. About one bench event in
// two hundred matches anything, so these give the equivalence check
// matches on every kind of criterion, not only on the few the random
// events hit. Case-insensitive values are upper-cased to exercise folding.
func witnesses(c *content.Compiled, base content.Event) []content.Event {
	var out []content.Event
	for _, in := range c.Instances {
		e := content.Event{Type: base.Type, Inputs: slices.Clone(base.Inputs)}
		for _, cr := range in.Criteria {
			if cr.Op == content.OpAny || cr.Field > len(e.Inputs) {
				continue
			}
			e.Inputs[cr.Field-1] = witness(c.Fields[cr.Field-1].Type, cr)
		}
		out = append(out, e)
	}
	return out
}

func witness(t content.FieldType, cr content.CompiledCriterion) content.Value {
	switch t {
	case content.TypeUint:
		return content.Uint(cr.Nums[0])
	case content.TypeInt:
		return content.Int(int64(cr.Nums[0]))
	case content.TypeBool:
		return content.Bool(cr.Nums[0] == 1)
	case content.TypeIP:
		if cr.Op == content.OpCIDR {
			return content.Str(netip.MustParsePrefix(cr.Strs[0]).Addr().String())
		}
		return content.Str(cr.Strs[0])
	}
	v := cr.Strs[0]
	switch cr.Op {
	case content.OpPrefix:
		v += "-tail"
	case content.OpSuffix:
		v = "head-" + v
	case content.OpContains:
		v = "head-" + v + "-tail"
	case content.OpGlob:
		v = strings.NewReplacer("*", "any", "?", "x").Replace(v)
	case content.OpRegex:
		v = regexWitness(v)
	}
	if t == content.TypePath || t == content.TypeSHA256 {
		v = strings.ToUpper(v)
	}
	return content.Str(v)
}

// regexWitness builds a string the pattern matches, for the patterns the
// synthetic bundle uses (literals, classes, anchors, counted repeats); an
// unsupported construct just leaves the witness short of a match.
func regexWitness(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	var walk func(*syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		switch re.Op {
		case syntax.OpLiteral:
			b.WriteString(string(re.Rune))
		case syntax.OpCharClass:
			if len(re.Rune) > 0 {
				b.WriteRune(re.Rune[0])
			}
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('x')
		case syntax.OpCapture, syntax.OpPlus:
			walk(re.Sub[0])
		case syntax.OpRepeat:
			for range re.Min {
				walk(re.Sub[0])
			}
		case syntax.OpConcat:
			for _, s := range re.Sub {
				walk(s)
			}
		case syntax.OpAlternate:
			walk(re.Sub[0])
		}
	}
	walk(re)
	return b.String()
}
