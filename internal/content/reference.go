package content

import (
	"net/netip"
	"regexp"
	"strings"
)

// Reference is the naive evaluator: it tests every instance, criterion by
// criterion, with the plainest implementation of each operator. It defines
// what the indexed Evaluator must compute (property tests compare the two,
// and preflight cross-checks them) and is the baseline of BenchmarkEval.
// Its patterns are compiled once, so the comparison measures the index,
// not repeated parsing.
type Reference struct {
	c    *Compiled
	res  [][]*regexp.Regexp // per instance, per criterion: regex and glob
	pfx  [][]netip.Prefix
	typs []FieldType
	fold []string // per event: folded path and sha256 inputs
}

// NewReference prepares a compiled bundle for naive evaluation.
func NewReference(c *Compiled) (*Reference, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	r := &Reference{c: c}
	for _, f := range c.Fields {
		r.typs = append(r.typs, f.Type)
	}
	for _, in := range c.Instances {
		res := make([]*regexp.Regexp, len(in.Criteria))
		pfx := make([]netip.Prefix, len(in.Criteria))
		for j, cr := range in.Criteria {
			fold := r.typs[cr.Field-1].folded()
			var err error
			switch cr.Op {
			case OpRegex:
				var p regexPlan
				p, err = planRegex(cr.Strs[0], fold)
				res[j] = p.re
			case OpGlob:
				res[j], err = regexp.Compile(globToRegex(cr.Strs[0]))
			case OpCIDR:
				pfx[j], err = netip.ParsePrefix(cr.Strs[0])
			}
			if err != nil {
				return nil, err
			}
		}
		r.res = append(r.res, res)
		r.pfx = append(r.pfx, pfx)
	}
	return r, nil
}

func globToRegex(p string) string {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, c := range p {
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	return b.String()
}

// Eval evaluates every instance on the event.
func (r *Reference) Eval(ev Event, res *Result) {
	res.reset()
	inputs, ok := r.begin(ev)
	if !ok {
		return
	}
	for i := range r.c.Instances {
		r.evalInstance(i, inputs, res)
	}
}

// EvalOnly evaluates only the listed instances (ascending, each once) on
// the event: Eval restricted to them, at a cost that grows with the list,
// not the bundle. Preflight uses it to check the indexed evaluator on the
// instances that matter for each event without an O(bundle) pass.
func (r *Reference) EvalOnly(ev Event, insts []int32, res *Result) {
	res.reset()
	inputs, ok := r.begin(ev)
	if !ok {
		return
	}
	for _, i := range insts {
		r.evalInstance(int(i), inputs, res)
	}
}

// begin prepares one event and returns the inputs the bundle can read.
func (r *Reference) begin(ev Event) ([]Value, bool) {
	if ev.Type != r.c.Type {
		return nil, false
	}
	n := min(len(ev.Inputs), len(r.c.Fields))
	// Fold each case-insensitive input once per event, not per criterion.
	r.fold = r.fold[:0]
	for f := range n {
		s := ev.Inputs[f].Str
		if r.typs[f].folded() {
			s = FoldASCII(s)
		}
		r.fold = append(r.fold, s)
	}
	return ev.Inputs[:n], true
}

func (r *Reference) evalInstance(i int, inputs []Value, res *Result) {
	in := r.c.Instances[i]
	if f, reason := r.instanceError(in, inputs); reason != 0 {
		res.Errors = append(res.Errors, InstanceError{Instance: int32(i), Field: f, Reason: reason})
		return
	}
	for j, cr := range in.Criteria {
		if cr.Op == OpAny {
			continue // reads nothing, so an absent input is fine
		}
		if !r.match(i, j, cr, inputs[cr.Field-1], r.fold[cr.Field-1]) {
			return
		}
	}
	res.Matches = append(res.Matches, int32(i))
}

// instanceError: reading past the inputs wins over a bad value; otherwise
// the lowest-numbered bad input read is reported.
func (r *Reference) instanceError(in CompiledInstance, inputs []Value) (int, ErrReason) {
	missing := 0
	for _, cr := range in.Criteria {
		if cr.Op != OpAny && cr.Field > len(inputs) && (missing == 0 || cr.Field < missing) {
			missing = cr.Field
		}
	}
	if missing > 0 {
		return missing, ReasonMissingInput
	}
	field, reason := 0, ErrReason(0)
	for _, cr := range in.Criteria {
		if cr.Op == OpAny || (field != 0 && cr.Field >= field) {
			continue
		}
		t := r.typs[cr.Field-1]
		v := inputs[cr.Field-1]
		why := checkInput(t, v)
		if why == 0 && t == TypeIP {
			if _, err := netip.ParseAddr(v.Str); err != nil {
				why = ReasonBadIP
			}
		}
		if why != 0 {
			field, reason = cr.Field, why
		}
	}
	return field, reason
}

func (r *Reference) match(i, j int, cr CompiledCriterion, v Value, s string) bool {
	t := r.typs[cr.Field-1]
	switch cr.Op {
	case OpAny:
		return true
	case OpEquals, OpIn:
		if t == TypeIP {
			a, _ := netip.ParseAddr(s)
			s = a.Unmap().String()
		}
		if t.stringLike() {
			for _, x := range cr.Strs {
				if x == s {
					return true
				}
			}
			return false
		}
		for _, x := range cr.Nums {
			if x == v.Num {
				return true
			}
		}
		return false
	case OpPrefix:
		return strings.HasPrefix(s, cr.Strs[0])
	case OpSuffix:
		return strings.HasSuffix(s, cr.Strs[0])
	case OpContains:
		return strings.Contains(s, cr.Strs[0])
	case OpGlob:
		return r.res[i][j].MatchString(s)
	case OpRegex:
		return r.res[i][j].MatchString(v.Str)
	case OpCIDR:
		a, _ := netip.ParseAddr(s)
		return r.pfx[i][j].Contains(a.Unmap())
	case OpRange:
		if t == TypeInt {
			return int64(cr.Nums[0]) <= int64(v.Num) && int64(v.Num) <= int64(cr.Nums[1])
		}
		return cr.Nums[0] <= v.Num && v.Num <= cr.Nums[1]
	}
	return false
}
