package content

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp/syntax"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// PreflightOptions bound the interpreter's cost per event.
type PreflightOptions struct {
	// TimeBudget is the most one event may take (after retries that rule
	// out a noisy machine). Default 10ms.
	TimeBudget time.Duration
	// AllocBudget is the most bytes allocated per event on average once
	// the evaluator is warm. Default 256.
	AllocBudget float64
	// Now is the clock used to time events; default time.Now.
	Now func() time.Time
}

func (o *PreflightOptions) defaults() {
	if o.TimeBudget == 0 {
		o.TimeBudget = 10 * time.Millisecond
	}
	if o.AllocBudget == 0 {
		o.AllocBudget = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// AgentRun is what preflight saw for one targeted agent.
type AgentRun struct {
	Agent          string  `json:"agent"`
	Inputs         int     `json:"inputs"`
	Events         int     `json:"events"`
	Matches        int     `json:"matches"`
	InstanceErrors int     `json:"instance_errors"`
	MaxEventNanos  int64   `json:"max_event_ns"`
	BytesPerEvent  float64 `json:"bytes_per_event"`
}

// PreflightReport is the outcome of running a bundle through the
// interpreter as every targeted agent would.
type PreflightReport struct {
	Findings Findings   `json:"findings"`
	Agents   []AgentRun `json:"agents"`
}

// Preflight runs the compiled bundle through the real interpreter for each
// targeted agent, over generated events: edge values for every field,
// truncated input vectors, hostile values, and for every criterion an
// event that holds a non-wildcard value on the field it reads. It reports
// instance errors on events an agent really produces, any panic or any
// disagreement with the reference evaluator (both interpreter defects), and
// budget overruns.
func Preflight(c *Compiled, targeted []*Manifest, opts PreflightOptions) *PreflightReport {
	opts.defaults()
	s := &findingSink{bundle: c.Name()}
	rep := &PreflightReport{}
	ev, err := NewEvaluator(c)
	if err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the interpreter refuses the compiled bundle: %v", err)
		rep.Findings = s.out
		return rep
	}
	ref, err := NewReference(c)
	if err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the reference evaluator refuses the compiled bundle: %v", err)
		rep.Findings = s.out
		return rep
	}
	for _, m := range targeted {
		n, ok := m.Supplies[c.Type]
		if !ok {
			continue // the agent never produces these events; the validator says so
		}
		n = min(n, len(c.Fields))
		run := AgentRun{Agent: m.Agent(), Inputs: n}
		real, probes := generateEvents(c, n)
		type key struct {
			inst   int32
			field  int
			reason ErrReason
		}
		seen := map[key]int{}
		var got, want Result
		runOne := func(e Event, isReal bool) {
			start := opts.Now()
			if p := safeEval(ev, e, &got); p != nil {
				s.add(LevelError, "interpreter-panic", Pos{}, "", nil, []string{m.Agent()},
					"interpreter defect: panic on a generated event with %d inputs: %v", len(e.Inputs), p)
				return
			}
			d := opts.Now().Sub(start)
			if d > opts.TimeBudget {
				// Retry before blaming the content: this machine may be busy.
				best := d
				for range 3 {
					t0 := opts.Now()
					ev.Eval(e, &got)
					best = min(best, opts.Now().Sub(t0))
				}
				if best > opts.TimeBudget {
					s.add(LevelError, "time-budget", Pos{}, "", nil, []string{m.Agent()},
						"one event took %v to evaluate, over the budget of %v", best, opts.TimeBudget)
				}
				d = best
			}
			run.MaxEventNanos = max(run.MaxEventNanos, d.Nanoseconds())
			if p := safeEval(ref, e, &want); p != nil {
				s.add(LevelError, "reference-panic", Pos{}, "", nil, []string{m.Agent()},
					"reference evaluator defect: panic on a generated event with %d inputs: %v", len(e.Inputs), p)
				return
			}
			if !slices.Equal(got.Matches, want.Matches) || !slices.Equal(got.Errors, want.Errors) {
				s.add(LevelError, "interpreter-mismatch", Pos{}, "", nil, []string{m.Agent()},
					"interpreter defect: indexed evaluator gives matches %v errors %v, reference gives %v %v",
					got.Matches, got.Errors, want.Matches, want.Errors)
			}
			run.Events++
			run.Matches += len(got.Matches)
			if isReal {
				run.InstanceErrors += len(got.Errors)
				for _, ie := range got.Errors {
					seen[key{ie.Instance, ie.Field, ie.Reason}]++
				}
			}
		}
		for _, e := range real {
			runOne(e, true)
		}
		for _, e := range probes {
			runOne(e, false)
		}
		run.BytesPerEvent = allocPerEvent(ev, append(real, probes...), &got)
		if run.BytesPerEvent > opts.AllocBudget {
			s.add(LevelError, "alloc-budget", Pos{}, "", nil, []string{m.Agent()},
				"evaluation allocates %.0f bytes per event, over the budget of %.0f", run.BytesPerEvent, opts.AllocBudget)
		}
		keys := slices.SortedFunc(maps.Keys(seen), func(a, b key) int {
			return cmp.Or(cmp.Compare(a.inst, b.inst), cmp.Compare(a.field, b.field), cmp.Compare(a.reason, b.reason))
		})
		for _, k := range keys {
			in := c.Instances[k.inst]
			f := c.Fields[k.field-1]
			fld := &Field{Index: k.field, Name: f.Name}
			var why string
			if k.reason == ReasonMissingInput {
				why = fmt.Sprintf("criterion on input %d %q reads past the %d inputs that agent %s supplies for %s", k.field, f.Name, n, m.Agent(), c.Type)
			} else {
				why = fmt.Sprintf("criterion on input %d %q cannot be evaluated on agent %s events (%s)", k.field, f.Name, m.Agent(), k.reason)
			}
			s.add(LevelError, "preflight-instance-error", Pos{}, in.ID, fld, []string{m.Agent()},
				"%s: instance error on %d of %d generated events", why, seen[k], len(real))
		}
		rep.Agents = append(rep.Agents, run)
	}
	rep.Findings = s.out
	return rep
}

type evaluator interface{ Eval(Event, *Result) }

func safeEval(ev evaluator, e Event, res *Result) (p any) {
	defer func() { p = recover() }()
	ev.Eval(e, res)
	return nil
}

// allocPerEvent measures heap bytes per event on a warm evaluator.
func allocPerEvent(ev *Evaluator, events []Event, res *Result) float64 {
	if len(events) == 0 {
		return 0
	}
	for _, e := range events {
		ev.Eval(e, res)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const rounds = 4
	for range rounds {
		for _, e := range events {
			ev.Eval(e, res)
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(rounds*len(events))
}

// generateEvents builds the events an agent supplying n inputs could
// really send (real) and robustness probes the interpreter must survive
// without judging the content by them (probes).
func generateEvents(c *Compiled, n int) (real, probes []Event) {
	base := make([]Value, n)
	for i := range n {
		base[i] = typicalValue(c.Fields[i])
	}
	with := func(field int, v Value) Event {
		in := slices.Clone(base)
		in[field] = v
		return Event{Type: c.Type, Inputs: in}
	}
	real = append(real, Event{Type: c.Type, Inputs: slices.Clone(base)})
	for i := range n {
		for _, v := range edgeValues(c.Fields[i]) {
			real = append(real, with(i, v))
		}
		for _, v := range hostileValues(c.Fields[i]) {
			probes = append(probes, with(i, v))
		}
	}
	// For every criterion, a value on the field it reads that satisfies it:
	// the event the 2024 test suite never sent. Fields the agent does not
	// supply stay absent, as they would on that agent.
	for _, in := range c.Instances {
		all := slices.Clone(base)
		for _, cr := range in.Criteria {
			if cr.Op == OpAny || cr.Field > n {
				continue
			}
			for _, v := range satisfying(c.Fields[cr.Field-1], cr) {
				real = append(real, with(cr.Field-1, v))
				all[cr.Field-1] = v
			}
		}
		real = append(real, Event{Type: c.Type, Inputs: all})
	}
	for k := range n {
		probes = append(probes, Event{Type: c.Type, Inputs: slices.Clone(base[:k])})
	}
	probes = append(probes,
		Event{Type: c.Type, Inputs: append(slices.Clone(base), Str("extra"), Int(-1))},
		Event{Type: TypeRef{Name: c.Type.Name, Version: c.Type.Version + 1}, Inputs: base},
	)
	return real, probes
}

func typicalValue(f CompiledField) Value {
	switch f.Type {
	case TypeInt:
		return Int(1)
	case TypeUint:
		return Uint(1)
	case TypeBool:
		return Bool(false)
	case TypePath:
		return Str(`C:\Windows\System32\svchost.exe`)
	case TypeIP:
		return Str("192.0.2.1")
	case TypeSHA256:
		return Str(strings.Repeat("0", 64))
	case TypeEnum:
		return Str(f.Values[0])
	}
	return Str("x")
}

func edgeValues(f CompiledField) []Value {
	switch f.Type {
	case TypeInt:
		return []Value{Int(math.MinInt64), Int(-1), Int(0), Int(math.MaxInt64), Uint(math.MaxInt64)}
	case TypeUint:
		return []Value{Uint(0), Uint(math.MaxUint64), Uint(math.MaxInt64 + 1), Int(0)}
	case TypeBool:
		return []Value{Bool(true), Bool(false)}
	case TypeIP:
		return []Value{Str("0.0.0.0"), Str("255.255.255.255"), Str("::"), Str("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
			Str("::ffff:10.1.2.3"), Str("fe80::1%eth0")}
	case TypeSHA256:
		return []Value{Str(strings.Repeat("F", 64)), Str(strings.Repeat("a", 64)), Str("")}
	case TypeEnum:
		var vs []Value
		for _, v := range f.Values {
			vs = append(vs, Str(v), Str(strings.ToUpper(v)))
		}
		return append(vs, Str(""), Str("not-an-enum-value"))
	}
	return []Value{Str(""), Str(strings.Repeat("A", MaxInputLen)), Str("Ünïcödé ✓ 𝄞 日本語"),
		Str(`\\.\pipe\` + strings.Repeat("é", 300)), Str("a\x00b")}
}

func hostileValues(f CompiledField) []Value {
	vs := []Value{{}, {Kind: Kind(200)}, Str(strings.Repeat("B", MaxInputLen+1)), Str("\xff\xfe\xfd"), Int(-5), Uint(math.MaxUint64), {Kind: KindBool, Num: 7}}
	if f.Type == TypeIP {
		vs = append(vs, Str("999.1.1.1"), Str("not an ip"))
	}
	return vs
}

// satisfying returns values of the field's type that satisfy the
// criterion, written the way a sensor might (upper case where the
// comparison folds case), or none if it cannot build one.
func satisfying(f CompiledField, cr CompiledCriterion) []Value {
	num := func(n uint64) Value {
		switch f.Type {
		case TypeInt:
			return Int(int64(n))
		case TypeBool:
			return Bool(n == 1)
		}
		return Uint(n)
	}
	up := func(s string) string {
		if f.Type.folded() {
			return strings.ToUpper(s)
		}
		return s
	}
	switch cr.Op {
	case OpEquals, OpIn:
		if len(cr.Nums) > 0 {
			return []Value{num(cr.Nums[0])}
		}
		return []Value{Str(up(cr.Strs[0]))}
	case OpRange:
		return []Value{num(cr.Nums[0]), num(cr.Nums[1])}
	case OpPrefix:
		return []Value{Str(up(cr.Strs[0]) + "x")}
	case OpSuffix:
		return []Value{Str("x" + up(cr.Strs[0]))}
	case OpContains:
		return []Value{Str("a" + up(cr.Strs[0]) + "b")}
	case OpGlob:
		r := strings.NewReplacer("*", "zz", "?", "q")
		return []Value{Str(up(r.Replace(cr.Strs[0])))}
	case OpCIDR:
		p, err := netip.ParsePrefix(cr.Strs[0])
		if err != nil {
			return nil
		}
		return []Value{Str(p.Addr().String())}
	case OpRegex:
		if s, ok := regexExample(cr.Strs[0]); ok {
			return []Value{Str(s)}
		}
	}
	return nil
}

// regexExample builds a string the pattern matches, trying the simplest
// choice at each node; ok is false when the pattern is beyond it.
func regexExample(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	var walk func(*syntax.Regexp, int) bool
	walk = func(r *syntax.Regexp, depth int) bool {
		if depth > 100 || b.Len() > MaxInputLen {
			return false
		}
		switch r.Op {
		case syntax.OpLiteral:
			for _, c := range r.Rune {
				b.WriteRune(c)
			}
		case syntax.OpCharClass:
			if len(r.Rune) == 0 || !utf8.ValidRune(r.Rune[0]) {
				return false
			}
			b.WriteRune(r.Rune[0])
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('a')
		case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		case syntax.OpStar, syntax.OpQuest:
		case syntax.OpPlus:
			return walk(r.Sub[0], depth+1)
		case syntax.OpRepeat:
			for range r.Min {
				if !walk(r.Sub[0], depth+1) {
					return false
				}
			}
		case syntax.OpCapture:
			return walk(r.Sub[0], depth+1)
		case syntax.OpConcat:
			for _, s := range r.Sub {
				if !walk(s, depth+1) {
					return false
				}
			}
		case syntax.OpAlternate:
			return walk(r.Sub[0], depth+1)
		default:
			return false
		}
		return true
	}
	if !walk(re, 0) {
		return "", false
	}
	return b.String(), true
}
