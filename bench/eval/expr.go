package main

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/ringfence/ringfence/internal/content"
)

// exprEval is the approach a team would reach for instead of an indexed
// evaluator: each instance's criteria become one expr-lang boolean
// expression over a map of the event's inputs by field name, compiled once
// and run on every event. It is given the same head start as the reference
// evaluator (case-insensitive inputs folded and IP inputs parsed once per
// event, one map and one VM reused across events), so the comparison
// measures running every rule, not avoidable waste.
//
// It models matching only: the bench events always carry every input with
// the right kind, so the instance errors the interpreter reports for
// missing or wrong-kind inputs are not translated.
type exprEval struct {
	fields []content.CompiledField
	progs  []*vm.Program
	env    map[string]any
	vm     vm.VM
}

func newExprEval(c *content.Compiled) (*exprEval, error) {
	x := &exprEval{fields: c.Fields, env: make(map[string]any, len(c.Fields))}
	for _, f := range c.Fields {
		x.env[f.Name] = exprZero(f.Type) // tells the type checker each input's type
	}
	// CIDR prefixes are parsed once, when the expressions are translated;
	// the function looks them up by their text.
	prefixes := map[string]netip.Prefix{}
	cidr := expr.Function("cidr", func(params ...any) (any, error) {
		a, _ := params[0].(netip.Addr)
		p, ok := prefixes[params[1].(string)]
		return ok && p.Contains(a), nil
	}, new(func(netip.Addr, string) bool))
	for _, in := range c.Instances {
		src, err := exprSource(c.Fields, in, prefixes)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.ID, err)
		}
		p, err := expr.Compile(src, expr.Env(x.env), expr.AsBool(), cidr)
		if err != nil {
			return nil, fmt.Errorf("instance %s: compile %q: %w", in.ID, src, err)
		}
		x.progs = append(x.progs, p)
	}
	return x, nil
}

func exprZero(t content.FieldType) any {
	switch t {
	case content.TypeInt:
		return int64(0)
	case content.TypeUint:
		return uint64(0)
	case content.TypeBool:
		return false
	case content.TypeIP:
		return netip.Addr{}
	}
	return ""
}

// Eval runs every program on the event and records the instances whose
// program is true, in instance order like the interpreter.
func (x *exprEval) Eval(e content.Event, res *content.Result) {
	res.Matches, res.Errors = res.Matches[:0], res.Errors[:0]
	for i, f := range x.fields {
		if i >= len(e.Inputs) {
			x.env[f.Name] = nil
			continue
		}
		v := e.Inputs[i]
		switch f.Type {
		case content.TypeInt:
			x.env[f.Name] = int64(v.Num)
		case content.TypeUint:
			x.env[f.Name] = v.Num
		case content.TypeBool:
			x.env[f.Name] = v.Num == 1
		case content.TypeIP:
			a, _ := netip.ParseAddr(v.Str)
			x.env[f.Name] = a.Unmap()
		case content.TypePath, content.TypeSHA256:
			x.env[f.Name] = content.FoldASCII(v.Str)
		default:
			x.env[f.Name] = v.Str
		}
	}
	for i, p := range x.progs {
		if out, err := x.vm.Run(p, x.env); err == nil && out == true {
			res.Matches = append(res.Matches, int32(i))
		}
	}
}

// exprSource translates one instance: its criteria joined by &&.
func exprSource(fields []content.CompiledField, in content.CompiledInstance, prefixes map[string]netip.Prefix) (string, error) {
	var terms []string
	for _, cr := range in.Criteria {
		if cr.Op == content.OpAny {
			continue // reads nothing
		}
		f := fields[cr.Field-1]
		t, err := exprTerm(f, cr, prefixes)
		if err != nil {
			return "", fmt.Errorf("criterion on %s: %w", f.Name, err)
		}
		terms = append(terms, "("+t+")")
	}
	if len(terms) == 0 {
		return "true", nil
	}
	return strings.Join(terms, " && "), nil
}

func exprTerm(f content.CompiledField, cr content.CompiledCriterion, prefixes map[string]netip.Prefix) (string, error) {
	name := f.Name
	folded := f.Type == content.TypePath || f.Type == content.TypeSHA256
	if f.Type == content.TypeIP {
		// An address equals another exactly when it lies in its /32 or
		// /128, so equals, in and cidr all become the cidr function.
		var pfx []string
		switch cr.Op {
		case content.OpCIDR:
			pfx = cr.Strs
		case content.OpEquals, content.OpIn:
			for _, s := range cr.Strs {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return "", err
				}
				pfx = append(pfx, netip.PrefixFrom(a, a.BitLen()).String())
			}
		default:
			return "", fmt.Errorf("op %s on an ip field is not translated", cr.Op)
		}
		var or []string
		for _, s := range pfx {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return "", err
			}
			prefixes[s] = p
			or = append(or, fmt.Sprintf("cidr(%s, %s)", name, strconv.Quote(s)))
		}
		return strings.Join(or, " || "), nil
	}
	lits, err := exprLiterals(f.Type, cr)
	if err != nil {
		return "", err
	}
	switch cr.Op {
	case content.OpEquals:
		return name + " == " + lits[0], nil
	case content.OpIn:
		return name + " in [" + strings.Join(lits, ", ") + "]", nil
	case content.OpPrefix:
		return name + " startsWith " + lits[0], nil
	case content.OpSuffix:
		return name + " endsWith " + lits[0], nil
	case content.OpContains:
		return name + " contains " + lits[0], nil
	case content.OpGlob:
		return name + " matches " + strconv.Quote(globRegex(cr.Strs[0])), nil
	case content.OpRegex:
		pat := cr.Strs[0]
		if folded {
			pat = "(?i)" + pat
		}
		return name + " matches " + strconv.Quote(pat), nil
	case content.OpRange:
		return fmt.Sprintf("%s >= %s && %s <= %s", name, lits[0], name, lits[1]), nil
	}
	return "", fmt.Errorf("op %s is not translated", cr.Op)
}

// exprLiterals writes a criterion's values as expr literals of the
// field's type.
func exprLiterals(t content.FieldType, cr content.CompiledCriterion) ([]string, error) {
	var out []string
	for _, s := range cr.Strs {
		out = append(out, strconv.Quote(s))
	}
	for _, n := range cr.Nums {
		switch t {
		case content.TypeBool:
			out = append(out, strconv.FormatBool(n == 1))
		case content.TypeInt:
			out = append(out, strconv.FormatInt(int64(n), 10))
		default:
			if n > math.MaxInt64 {
				return nil, errors.New("an unsigned value above the largest expr integer is not translated")
			}
			out = append(out, strconv.FormatUint(n, 10))
		}
	}
	return out, nil
}

// globRegex is the whole-string regex for a glob: `*` any run, `?` one
// character, everything else literal.
func globRegex(p string) string {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return b.String()
}
