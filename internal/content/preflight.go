package content

import (
	"context"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"net/netip"
	"regexp/syntax"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultCostBudget is the default most modelled cost one event may have
// (see costTerm for the unit). The dearest unit, a regex instruction
// stepped over one byte, measured 1.5 to 2.7 ns on the project's VM, so
// this is about the old wall-clock budget of 10 ms for regex-heavy events;
// other operators are charged their worst case, so they take less.
const DefaultCostBudget = 5_000_000

// PreflightOptions set the bar a bundle must clear.
type PreflightOptions struct {
	// Current is the channel's current published version, 0 when it has
	// none: the bundle's version must be above it.
	Current uint64
	// CostBudget is the most modelled cost one event may have on any
	// targeted agent. Default DefaultCostBudget.
	CostBudget int64
	// WorkBudget is the most modelled cost of all of one agent's generated
	// events together; preflight stops that agent there and rejects, so a
	// bundle whose every event touches most of its instances cannot make
	// preflight quadratic. Default 64 × CostBudget + 10,000 per instance.
	WorkBudget int64
	// AllocBudget is the most bytes allocated per event on average once
	// the evaluator is warm. Default 256. Negative skips the measurement:
	// Go counts allocations per process, so in a server answering other
	// requests the figure would be theirs too (the server skips it; the
	// CLI, alone in its process, measures). A race-detector build never
	// measures: there sync.Pool drops its contents at random.
	AllocBudget float64
	// Now times each agent's run for the report. No verdict depends on it:
	// a loaded machine gives the verdict an idle one does. Default time.Now.
	Now func() time.Time
}

func (o *PreflightOptions) defaults(instances int) {
	if o.CostBudget == 0 {
		o.CostBudget = DefaultCostBudget
	}
	if o.WorkBudget == 0 {
		o.WorkBudget = 64*o.CostBudget + 10_000*int64(instances)
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
	Agent          string `json:"agent"`
	Inputs         int    `json:"inputs"`
	Events         int    `json:"events"`
	Matches        int    `json:"matches"`
	InstanceErrors int    `json:"instance_errors"`
	// ReferenceChecks counts instance evaluations compared with the
	// reference evaluator.
	ReferenceChecks int `json:"reference_checks"`
	// Candidates counts the instances the interpreter tested in full,
	// summed over the events: the work the index did not spare.
	Candidates    int64   `json:"candidates"`
	MaxEventCost  int64   `json:"max_event_cost"`
	TotalCost     int64   `json:"total_cost"`
	BytesPerEvent float64 `json:"bytes_per_event"`
	// Seconds is how long the run took by PreflightOptions.Now; it is
	// reported, never judged.
	Seconds float64 `json:"seconds"`
}

// PreflightReport is the outcome of running a bundle through the
// interpreter as every targeted agent would.
type PreflightReport struct {
	Findings Findings   `json:"findings"`
	Agents   []AgentRun `json:"agents"`
	// Targeted names the agents the bundle's targets match.
	Targeted []string `json:"targeted_agents"`
}

// Preflight checks a compiled bundle (from source or from compiled bytes)
// as every targeted agent would load and run it.
//
// First the rules an agent applies when loading: the version must be above
// opts.Current; the fields embedded in the bundle must be the catalog's
// template type (names, types, enum values), since the agents' events are
// built to the catalog's; every targeted agent must support the template
// type; and every instance must be within each agent's own limits
// (criteria per instance, regex program size).
//
// Then, per supporting agent, it runs the real interpreter over generated
// events of exactly the length that agent supplies, typed as the catalog
// says: edge values for every field, for every instance the agent can
// evaluate an event satisfying each of its criteria, truncated inputs and
// hostile values. It reports instance errors on events the agent really
// produces, panics, disagreements with the reference evaluator, events over
// the cost budget (a cost model, not a clock) and allocation per event.
//
// The reference is checked per event on a bounded set of instances, so the
// run grows linearly with the bundle: the instances the event was built
// for, up to 64 of those the indexed evaluator matched and 64 of those it
// reported errors on (rotating through the rest when there are more), and a
// rotating window of 8 others. A false match or false error of the indexed
// evaluator is therefore always caught (up to that cap per event), a missed
// match or missed error on every event built for the instance, and every
// instance is compared on at least ⌊8 × events ÷ instances⌋ of each
// agent's events (at least 8 when every instance runs on the agent, as
// there is an event per instance). The indexed evaluator's own work per
// event follows its candidates, and WorkBudget bounds their total.
//
// Preflight returns early with ctx's error, wrapped, when ctx ends; the
// report then holds what ran so far and is no verdict.
func (cat *Catalog) Preflight(ctx context.Context, c *Compiled, opts PreflightOptions) (*PreflightReport, error) {
	opts.defaults(len(c.Instances))
	s := &findingSink{bundle: c.Name()}
	rep := &PreflightReport{}
	done := func(err error) (*PreflightReport, error) {
		rep.Findings = s.out
		return rep, err
	}
	if err := c.Check(); err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the compiled bundle is malformed: %v", err)
		return done(nil)
	}
	checkVersion(s, Pos{}, c.Version, opts.Current)
	tt := cat.Types[c.Type]
	if tt == nil {
		s.add(LevelError, "unknown-template-type", Pos{}, "", nil, nil,
			"unknown template type %s: the catalog does not say what agents send for it", c.Type)
		return done(nil)
	}
	targets, err := TargetsOf(c)
	if err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the compiled bundle's targets are malformed: %v", err)
		return done(nil)
	}
	var targeted []*Manifest
	for _, m := range cat.Manifests {
		if targets.Matches(m) {
			targeted = append(targeted, m)
			rep.Targeted = append(rep.Targeted, m.Agent())
		}
	}
	if len(targeted) == 0 {
		s.add(LevelError, "no-targeted-agents", Pos{}, "", nil, nil,
			"targets (platforms %s, agent versions %q) match no capability manifest, so nothing says what those agents supply",
			orAll(c.Platforms), c.AgentVersions)
		return done(nil)
	}
	supporting := supportingAgents(s, Pos{}, c.Type, targeted)
	var names []string
	for _, m := range supporting {
		names = append(names, m.Agent())
	}
	checkSchema(s, c, tt, names)
	checkAgentRules(s, c.Type, supporting, compiledRuleInstances(c), false)
	if err := ctx.Err(); err != nil {
		return done(fmt.Errorf("preflight %s: %w", c.Name(), err))
	}

	p, err := newPreflight(c, tt, opts, s)
	if err != nil {
		return done(nil) // reported as a finding
	}
	for _, m := range supporting {
		if err := ctx.Err(); err != nil {
			return done(fmt.Errorf("preflight %s: %w", c.Name(), err))
		}
		run, err := p.agent(ctx, m)
		rep.Agents = append(rep.Agents, run)
		if err != nil {
			return done(fmt.Errorf("preflight %s on agent %s: stopped after %d events: %w", c.Name(), m.Agent(), run.Events, err))
		}
	}
	return done(nil)
}

// checkSchema compares the fields embedded in a compiled bundle with the
// catalog's template type. Agents build events to the catalog's type and
// evaluate with the embedded one, so a bundle compiled against another
// definition (schema drift) errors or silently never matches on real
// events, while events generated from its own fields would pass.
func checkSchema(s *findingSink, c *Compiled, tt *TemplateType, agents []string) {
	readers := make([][]string, max(len(c.Fields), len(tt.Fields)))
	count := make([]int, len(readers))
	last := make([]int, len(readers)) // the last instance counted, plus one
	for i, in := range c.Instances {
		for _, cr := range in.Criteria {
			f := cr.Field - 1
			if cr.Op == OpAny || last[f] == i+1 {
				continue
			}
			last[f] = i + 1
			count[f]++
			if len(readers[f]) < 3 {
				readers[f] = append(readers[f], in.ID)
			}
		}
	}
	for i := range readers {
		var diffs []string
		fld := &Field{Index: i + 1}
		switch {
		case i >= len(tt.Fields):
			fld.Name = c.Fields[i].Name
			diffs = append(diffs, fmt.Sprintf("the bundle embeds input %d %q (%s) but %s has only %d fields", i+1, c.Fields[i].Name, c.Fields[i].Type, tt.Ref(), len(tt.Fields)))
		case i >= len(c.Fields):
			fld.Name = tt.Fields[i].Name
			diffs = append(diffs, fmt.Sprintf("%s has input %d %q (%s) but the bundle embeds only %d fields", tt.Ref(), i+1, tt.Fields[i].Name, tt.Fields[i].Type, len(c.Fields)))
		default:
			cf, tf := c.Fields[i], tt.Fields[i]
			fld.Name = tf.Name
			if cf.Name != tf.Name {
				diffs = append(diffs, fmt.Sprintf("the bundle names it %q", cf.Name))
			}
			if cf.Type != tf.Type {
				diffs = append(diffs, fmt.Sprintf("the bundle types it %s, the catalog %s, so on real events its readers see a %s where they expect a %s", cf.Type, tf.Type, tf.Type, cf.Type))
			}
			if missing, extra := setDiff(tf.Values, cf.Values), setDiff(cf.Values, tf.Values); len(missing)+len(extra) > 0 {
				d := "its enum values differ:"
				if len(missing) > 0 {
					d += fmt.Sprintf(" the bundle lacks %s", strings.Join(missing, ", "))
				}
				if len(extra) > 0 {
					if len(missing) > 0 {
						d += ";"
					}
					d += fmt.Sprintf(" the bundle adds %s, which agents never send", strings.Join(extra, ", "))
				}
				diffs = append(diffs, d)
			}
		}
		if len(diffs) == 0 {
			continue
		}
		inst, who := "", "no instance reads it, but agents type-check events with the embedded fields"
		if count[i] > 0 {
			inst = readers[i][0]
			who = "read by instance"
			if count[i] > 1 {
				who += "s"
			}
			who += " " + strings.Join(readers[i], ", ")
			if more := count[i] - len(readers[i]); more > 0 {
				who += fmt.Sprintf(" and %d more", more)
			}
		}
		s.add(LevelError, "schema-drift", Pos{}, inst, fld, agents,
			"input %d %q: the bundle was compiled against another %s than the catalog's: %s; %s",
			i+1, fld.Name, tt.Ref(), strings.Join(diffs, "; "), who)
	}
}

// setDiff returns the values of a not in b, in a's order.
func setDiff(a, b []string) []string {
	var out []string
	for _, v := range a {
		if !slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

// indexedEvaluator is the interpreter as preflight drives it; a test
// substitutes a defective one to see the cross-check catch it.
type indexedEvaluator interface {
	Eval(Event, *Result)
	// candidates are the instances the last Eval tested in full.
	candidates() []int32
}

var newIndexed = func(c *Compiled) (indexedEvaluator, error) {
	ev, err := NewEvaluator(c)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// costTerm is one criterion's modelled cost on an event:
// fixed + perByte × min(input length, maxBytes). The unit is one regex
// instruction stepped over one input byte (at most about 3 ns on the
// project's VM); the other operators are charged their worst case in the
// same unit, because an attacker chooses the inputs: glob and case-folded
// contains backtrack up to pattern × input, a regex steps its whole
// program per byte, a string equality compares up to the value's length
// per binary-search probe, and numeric, CIDR and range tests are constant.
type costTerm struct {
	field    int // 0-based
	op       Op
	fixed    int64
	perByte  int64
	maxBytes int64 // 0: no cap
}

func (t costTerm) cost(inputs []Value) int64 {
	if t.field >= len(inputs) {
		return t.fixed // not a candidate the evaluator would test; be safe
	}
	n := inputLen(inputs[t.field])
	if t.maxBytes > 0 {
		n = min(n, t.maxBytes)
	}
	return t.fixed + t.perByte*n
}

// inputLen is the length an evaluator reads of a value: strings longer
// than MaxInputLen are refused unread.
func inputLen(v Value) int64 {
	if v.Kind != KindString || len(v.Str) > MaxInputLen {
		return 0
	}
	return int64(len(v.Str))
}

func costTermOf(f CompiledField, cr CompiledCriterion) costTerm {
	t := costTerm{field: cr.Field - 1, op: cr.Op}
	probes := int64(1 + bits.Len(uint(max(len(cr.Strs), len(cr.Nums)))))
	switch cr.Op {
	case OpEquals, OpIn:
		t.fixed = probes
		if f.Type.stringLike() && f.Type != TypeIP {
			longest := 0
			for _, v := range cr.Strs {
				longest = max(longest, len(v))
			}
			t.perByte, t.maxBytes = probes, int64(longest)+1
		}
	case OpPrefix, OpSuffix:
		t.fixed = 1 + int64(len(cr.Strs[0]))
	case OpContains:
		t.fixed = 1 + int64(len(cr.Strs[0]))
		t.perByte = 1
		if f.Type.folded() {
			t.perByte = int64(len(cr.Strs[0]))
		}
	case OpGlob:
		t.fixed, t.perByte = 1+int64(len(cr.Strs[0])), int64(len(cr.Strs[0]))
	case OpRegex:
		n, err := regexProgramSize(cr.Strs[0], f.Type.folded())
		if err != nil {
			n = MaxRegexProgram // the evaluator refuses it first
		}
		t.fixed, t.perByte = int64(n), int64(n)
	case OpCIDR, OpRange:
		t.fixed = 1
	}
	return t
}

// preflight holds what the per-agent runs share.
type preflight struct {
	c           *Compiled
	agentFields []CompiledField // the catalog's fields: what agents send
	ev          indexedEvaluator
	ref         *Reference
	opts        PreflightOptions
	s           *findingSink

	terms      [][]costTerm // per instance, its non-any criteria
	readFields []int        // 0-based inputs some non-any criterion reads
	maxInput   []int        // per instance, highest input read (1-based)

	// per agent
	skipSatisfying bool
	mark           []uint32
	epoch          uint32
	check          []int32
	instCost       []int64 // modelled cost per instance over the run
}

const (
	// refSample and refResultCap bound the reference cross-check per
	// event (see Preflight).
	refSample    = 8
	refResultCap = 64
	// maxBaseErrors: past this many instance errors on an agent's typical
	// event, the events built per instance are skipped (see agent).
	maxBaseErrors = 100
	// maxDefects caps the interpreter-mismatch findings per agent; one
	// more finding counts the rest.
	maxDefects = 10
)

func newPreflight(c *Compiled, tt *TemplateType, opts PreflightOptions, s *findingSink) (*preflight, error) {
	p := &preflight{c: c, opts: opts, s: s,
		terms:    make([][]costTerm, len(c.Instances)),
		maxInput: make([]int, len(c.Instances)),
		mark:     make([]uint32, len(c.Instances)),
		instCost: make([]int64, len(c.Instances)),
	}
	for _, f := range tt.Fields {
		p.agentFields = append(p.agentFields, CompiledField{Name: f.Name, Type: f.Type, Values: f.Values})
	}
	read := make([]bool, len(c.Fields))
	for i, in := range c.Instances {
		for _, cr := range in.Criteria {
			if cr.Op == OpAny {
				continue
			}
			read[cr.Field-1] = true
			p.maxInput[i] = max(p.maxInput[i], cr.Field)
			p.terms[i] = append(p.terms[i], costTermOf(c.Fields[cr.Field-1], cr))
		}
	}
	for f, r := range read {
		if r {
			p.readFields = append(p.readFields, f)
		}
	}
	var err error
	if p.ev, err = newIndexed(c); err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the interpreter refuses the compiled bundle: %v", err)
		return nil, err
	}
	if p.ref, err = NewReference(c); err != nil {
		s.add(LevelError, "preflight-load", Pos{}, "", nil, nil, "the reference evaluator refuses the compiled bundle: %v", err)
		return nil, err
	}
	return p, nil
}

// genEvent is one generated event. Its inputs are scratch space, valid
// until the next event.
type genEvent struct {
	ev     Event
	target int32 // the instance the event was built to satisfy, or -1
	real   bool  // an event the agent could really send, not a probe
}

// instErr counts one instance's errors on real events by input and reason.
type instErr struct {
	field  int
	reason ErrReason
	n      int
}

// costly is one contributor to an event's cost.
type costly struct {
	inst  int32
	field int // 1-based
	op    Op
	bytes int64
	cost  int64
}

// agent runs the bundle as agent m would.
func (p *preflight) agent(ctx context.Context, m *Manifest) (run AgentRun, err error) {
	start := p.opts.Now()
	c := p.c
	n := min(m.Supplies[c.Type], len(p.agentFields))
	run = AgentRun{Agent: m.Agent(), Inputs: n}
	agents := []string{m.Agent()}
	defer func() { run.Seconds = p.opts.Now().Sub(start).Seconds() }()
	p.skipSatisfying = false
	clear(p.instCost)

	errs := make([]instErr, len(c.Instances)) // first (field, reason) seen per instance
	type key struct {
		inst   int32
		field  int
		reason ErrReason
	}
	moreErrs := map[key]int{} // any further (field, reason) of an instance
	var (
		got, want, sub Result
		realEvents     int
		over           int   // events over the cost budget
		worst          int64 // cost of the costliest event over budget
		worstTop       []costly
		worstInputs    string
		panics, refPan int
		defects        int
		sample         []Event // for the allocation measure
		stopped        bool
	)
	k := -1 // the event's number in this run
	for g := range p.events(n) {
		k++
		if err := ctx.Err(); err != nil {
			return run, err
		}
		e := g.ev
		if pv := safeEval(p.ev, e, &got); pv != nil {
			if panics++; panics == 1 {
				p.s.add(LevelError, "interpreter-panic", Pos{}, "", nil, agents,
					"interpreter defect: panic on a generated event (%s): %v", p.describe(e, nil), pv)
			}
			continue
		}
		run.Events++
		run.Matches += len(got.Matches)
		if k < 64 || (k%64 == 0 && len(sample) < 1024) {
			sample = append(sample, Event{Type: e.Type, Inputs: slices.Clone(e.Inputs)})
		}

		if e.Type == c.Type {
			run.Candidates += int64(len(p.ev.candidates()))
		}
		cost := p.eventCost(e, &got)
		run.TotalCost += cost
		run.MaxEventCost = max(run.MaxEventCost, cost)
		if cost > p.opts.CostBudget {
			over++
			if cost > worst {
				worst = cost
				worstTop = p.contributors(e.Inputs, 3)
				worstInputs = p.describeTop(e, worstTop)
			}
		}

		// Cross-check with the reference on the instances that matter.
		check := p.checkSet(g.target, &got, k)
		if pv := safeEvalOnly(p.ref, e, check, &want); pv != nil {
			if refPan++; refPan == 1 {
				p.s.add(LevelError, "reference-panic", Pos{}, "", nil, agents,
					"reference evaluator defect: panic on a generated event (%s): %v", p.describe(e, nil), pv)
			}
		} else {
			run.ReferenceChecks += len(check)
			p.restrict(&got, &sub)
			if !slices.Equal(sub.Matches, want.Matches) || !slices.Equal(sub.Errors, want.Errors) {
				defects += p.reportMismatch(e, check, &sub, &want, agents, maxDefects-defects)
			}
		}

		if g.real {
			realEvents++
			run.InstanceErrors += len(got.Errors)
			for _, ie := range got.Errors {
				x := &errs[ie.Instance]
				switch {
				case x.n == 0:
					*x = instErr{ie.Field, ie.Reason, 1}
				case x.field == ie.Field && x.reason == ie.Reason:
					x.n++
				default:
					moreErrs[key{ie.Instance, ie.Field, ie.Reason}]++
				}
			}
			if k == 0 && len(got.Errors) > maxBaseErrors {
				// Every satisfying event would repeat these errors: the
				// bundle is rejected for them already, and handling them
				// on an event per instance would make preflight quadratic.
				p.skipSatisfying = true
				p.s.add(LevelWarning, "preflight-partial", Pos{}, "", nil, agents,
					"%d instances cannot be evaluated on this agent's typical event, so preflight skipped the events built to satisfy each instance", len(got.Errors))
			}
		}
		if run.TotalCost > p.opts.WorkBudget {
			stopped = true
			break
		}
	}
	if defects > maxDefects {
		p.s.add(LevelError, "interpreter-mismatch", Pos{}, "", nil, agents,
			"interpreter defect: %d more disagreements with the reference evaluator on this agent's events", defects-maxDefects)
	}
	if panics > 1 {
		p.s.add(LevelError, "interpreter-panic", Pos{}, "", nil, agents, "interpreter defect: %d more panics on this agent's events", panics-1)
	}
	if over > 0 {
		p.budgetFinding(agents, over, run.Events, worst, worstTop, worstInputs)
	}
	if stopped {
		p.workFinding(agents, &run)
	}
	if err := ctx.Err(); err != nil {
		return run, err
	}
	measure := p.opts.AllocBudget >= 0 && !raceEnabled
	if measure {
		run.BytesPerEvent = allocPerEvent(ctx, p.ev, sample, &got)
	}
	if measure && run.BytesPerEvent > p.opts.AllocBudget {
		p.s.add(LevelError, "alloc-budget", Pos{}, "", nil, agents,
			"evaluation allocates %.0f bytes per event, over the budget of %.0f", run.BytesPerEvent, p.opts.AllocBudget)
	}

	var keys []key
	for i, x := range errs {
		if x.n > 0 {
			keys = append(keys, key{int32(i), x.field, x.reason})
		}
	}
	for k := range moreErrs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.inst != b.inst {
			return int(a.inst - b.inst)
		}
		if a.field != b.field {
			return a.field - b.field
		}
		return int(a.reason) - int(b.reason)
	})
	for _, k := range keys {
		cnt := moreErrs[k]
		if x := errs[k.inst]; x.field == k.field && x.reason == k.reason {
			cnt = x.n
		}
		in := c.Instances[k.inst]
		fld := &Field{Index: k.field, Name: c.Fields[k.field-1].Name}
		var why string
		if k.reason == ReasonMissingInput {
			why = fmt.Sprintf("criterion on input %d %q reads past the %d inputs that agent %s supplies for %s", k.field, fld.Name, n, m.Agent(), c.Type)
		} else {
			why = fmt.Sprintf("criterion on input %d %q cannot be evaluated on agent %s events (%s)", k.field, fld.Name, m.Agent(), k.reason)
		}
		p.s.add(LevelError, "preflight-instance-error", Pos{}, in.ID, fld, agents,
			"%s: instance error on %d of %d generated events", why, cnt, realEvents)
	}
	return run, nil
}

// eventCost is the modelled cost of the last event: reading every input
// some criterion reads (hashing, index scans, folding), one unit per
// result entry, and every candidate instance's criteria in full (an upper
// bound: the evaluator stops at the first criterion that fails).
func (p *preflight) eventCost(e Event, got *Result) int64 {
	if e.Type != p.c.Type {
		return 0 // refused before any work, and the candidates are stale
	}
	inputs := e.Inputs
	var cost int64
	for _, f := range p.readFields {
		if f < len(inputs) {
			cost += 1 + inputLen(inputs[f])
		}
	}
	cost += int64(len(got.Matches) + len(got.Errors))
	for _, i := range p.ev.candidates() {
		ic := int64(1)
		for _, t := range p.terms[i] {
			ic += t.cost(inputs)
		}
		p.instCost[i] += ic
		cost += ic
	}
	return cost
}

// contributors are the costliest criteria of the last event's candidates.
func (p *preflight) contributors(inputs []Value, top int) []costly {
	var cs []costly
	for _, i := range p.ev.candidates() {
		for _, t := range p.terms[i] {
			cs = append(cs, costly{inst: i, field: t.field + 1, op: t.op, bytes: inputLen(inputs[t.field]), cost: t.cost(inputs)})
		}
	}
	slices.SortStableFunc(cs, func(a, b costly) int {
		if a.cost != b.cost {
			return int(b.cost - a.cost)
		}
		return int(a.inst - b.inst)
	})
	return cs[:min(top, len(cs))]
}

func (p *preflight) costlyWords(cs []costly) string {
	var parts []string
	for _, x := range cs {
		f := p.c.Fields[x.field-1]
		parts = append(parts, fmt.Sprintf("instance %s input %d %q (%s on %d bytes: %s units)",
			p.c.Instances[x.inst].ID, x.field, f.Name, x.op, x.bytes, thousands(x.cost)))
	}
	return strings.Join(parts, ", ")
}

func (p *preflight) describeTop(e Event, top []costly) string {
	if len(top) == 0 {
		return p.describe(e, nil)
	}
	return p.describe(e, []int{top[0].field})
}

func (p *preflight) budgetFinding(agents []string, over, events int, worst int64, top []costly, inputs string) {
	inst, fld := "", (*Field)(nil)
	chiefly := "most of it from reading the inputs and reporting instance errors"
	if len(top) > 0 {
		inst = p.c.Instances[top[0].inst].ID
		fld = &Field{Index: top[0].field, Name: p.c.Fields[top[0].field-1].Name}
		chiefly = "chiefly " + p.costlyWords(top)
	}
	p.s.add(LevelError, "cost-budget", Pos{}, inst, fld, agents,
		"%d of %d events over the cost budget of %s units; the costliest (%s) costs %s units, %s",
		over, events, thousands(p.opts.CostBudget), inputs, thousands(worst), chiefly)
}

// workFinding reports a run stopped at the work budget, naming the
// instances that cost most over the whole run and each one's costliest
// criterion.
func (p *preflight) workFinding(agents []string, run *AgentRun) {
	idx := make([]int32, 0, len(p.instCost))
	for i, c := range p.instCost {
		if c > 0 {
			idx = append(idx, int32(i))
		}
	}
	slices.SortStableFunc(idx, func(a, b int32) int {
		if p.instCost[a] != p.instCost[b] {
			if p.instCost[a] > p.instCost[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	idx = idx[:min(3, len(idx))]
	var parts []string
	inst, fld := "", (*Field)(nil)
	for j, i := range idx {
		f := 0
		var fc int64 = -1
		for _, t := range p.terms[i] {
			if w := t.fixed + t.perByte*MaxInputLen; w > fc {
				f, fc = t.field+1, w
			}
		}
		name := ""
		if f > 0 {
			name = p.c.Fields[f-1].Name
		}
		if j == 0 {
			inst = p.c.Instances[i].ID
			if f > 0 {
				fld = &Field{Index: f, Name: name}
			}
		}
		parts = append(parts, fmt.Sprintf("instance %s (%s units in all; input %d %q)", p.c.Instances[i].ID, thousands(p.instCost[i]), f, name))
	}
	mean, cands := int64(0), int64(0)
	if run.Events > 0 {
		mean, cands = run.TotalCost/int64(run.Events), run.Candidates/int64(run.Events)
	}
	p.s.add(LevelError, "preflight-work-limit", Pos{}, inst, fld, agents,
		"preflight stopped after %d events: together they cost %s units, over the limit of %s (%s units and %s instances tested in full per event on average); costliest instances: %s",
		run.Events, thousands(run.TotalCost), thousands(p.opts.WorkBudget), thousands(mean), thousands(cands), strings.Join(parts, ", "))
}

// checkSet picks the instances to compare with the reference on event k.
func (p *preflight) checkSet(target int32, got *Result, k int) []int32 {
	p.epoch++
	if p.epoch == 0 {
		clear(p.mark)
		p.epoch = 1
	}
	check := p.check[:0]
	add := func(i int32) {
		if p.mark[i] != p.epoch {
			p.mark[i] = p.epoch
			check = append(check, i)
		}
	}
	if target >= 0 {
		add(target)
	}
	if m := got.Matches; len(m) <= refResultCap {
		for _, i := range m {
			add(i)
		}
	} else {
		for j := range refResultCap {
			add(m[(k*refResultCap+j)%len(m)])
		}
	}
	if es := got.Errors; len(es) <= refResultCap {
		for _, ie := range es {
			add(ie.Instance)
		}
	} else {
		for j := range refResultCap {
			add(es[(k*refResultCap+j)%len(es)].Instance)
		}
	}
	n := len(p.c.Instances)
	for j := range refSample {
		add(int32((k*refSample + j) % n))
	}
	slices.Sort(check)
	p.check = check
	return check
}

// restrict keeps of got only the instances in the current check set.
func (p *preflight) restrict(got, sub *Result) {
	sub.reset()
	for _, i := range got.Matches {
		if p.mark[i] == p.epoch {
			sub.Matches = append(sub.Matches, i)
		}
	}
	for _, ie := range got.Errors {
		if p.mark[ie.Instance] == p.epoch {
			sub.Errors = append(sub.Errors, ie)
		}
	}
}

// outcome is one instance's result on one event, in words.
func outcome(r *Result, i int32) (string, int) {
	if _, ok := slices.BinarySearch(r.Matches, i); ok {
		return "match", 0
	}
	if j, ok := slices.BinarySearchFunc(r.Errors, i, func(e InstanceError, i int32) int { return int(e.Instance - i) }); ok {
		e := r.Errors[j]
		return fmt.Sprintf("instance error (%s on input %d)", e.Reason, e.Field), e.Field
	}
	return "no match", 0
}

// reportMismatch reports, up to room findings, each checked instance on
// which the evaluators disagree, and returns how many disagreed.
func (p *preflight) reportMismatch(e Event, check []int32, got, want *Result, agents []string, room int) int {
	n := 0
	for _, i := range check {
		g, gf := outcome(got, i)
		w, wf := outcome(want, i)
		if g == w {
			continue
		}
		n++
		if n > room {
			continue
		}
		field, detail := p.diagnose(i, e)
		if f := max(gf, wf); f > 0 {
			field = f
		}
		var fld *Field
		if field > 0 {
			fld = &Field{Index: field, Name: p.c.Fields[field-1].Name}
		}
		p.s.add(LevelError, "interpreter-mismatch", Pos{}, p.c.Instances[i].ID, fld, agents,
			"interpreter defect: the indexed evaluator says %s, the reference evaluator %s%s; event: %s",
			g, w, detail, p.describe(e, p.fieldsOf(i)))
	}
	return n
}

func (p *preflight) fieldsOf(i int32) []int {
	var fs []int
	for _, cr := range p.c.Instances[i].Criteria {
		if cr.Op != OpAny && !slices.Contains(fs, cr.Field) {
			fs = append(fs, cr.Field)
		}
	}
	return fs
}

// diagnose finds the criterion of instance i on which the evaluators
// disagree, by evaluating each alone in a one-instance bundle. It runs
// only on a disagreement, so its cost does not matter.
func (p *preflight) diagnose(i int32, e Event) (int, string) {
	in := p.c.Instances[i]
	first := 0
	for _, cr := range in.Criteria {
		if cr.Op == OpAny {
			continue
		}
		if first == 0 {
			first = cr.Field
		}
		one := *p.c
		one.Instances = []CompiledInstance{{ID: in.ID, Severity: in.Severity, Action: in.Action, Criteria: []CompiledCriterion{cr}}}
		ev, err := newIndexed(&one)
		if err != nil {
			continue
		}
		ref, err := NewReference(&one)
		if err != nil {
			continue
		}
		var a, b Result
		if safeEval(ev, e, &a) != nil || safeEval(ref, e, &b) != nil {
			continue
		}
		if !slices.Equal(a.Matches, b.Matches) || !slices.Equal(a.Errors, b.Errors) {
			return cr.Field, fmt.Sprintf(" (the criterion on input %d %q, op %s, alone: indexed %s, reference %s)",
				cr.Field, p.c.Fields[cr.Field-1].Name, cr.Op, matchWord(&a), matchWord(&b))
		}
	}
	return first, " (each criterion alone agrees: they disagree on the instance as a whole)"
}

func matchWord(r *Result) string {
	switch {
	case len(r.Errors) > 0:
		return "error"
	case len(r.Matches) > 0:
		return "match"
	}
	return "no match"
}

// describe renders an event briefly: its length and the listed inputs
// (1-based), or the longest input when none are listed.
func (p *preflight) describe(e Event, fields []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s event of %d inputs", e.Type, len(e.Inputs))
	if len(fields) == 0 {
		longest, at := -1, 0
		for f, v := range e.Inputs {
			if len(v.Str) > longest {
				longest, at = len(v.Str), f+1
			}
		}
		if longest < 0 {
			return b.String()
		}
		fields = []int{at}
	}
	for _, f := range fields {
		if f > len(e.Inputs) {
			fmt.Fprintf(&b, "; input %d absent", f)
			continue
		}
		name := ""
		if f <= len(p.c.Fields) {
			name = p.c.Fields[f-1].Name
		}
		fmt.Fprintf(&b, "; input %d %q = %s", f, name, brief(e.Inputs[f-1]))
	}
	return b.String()
}

// brief renders a value in at most about 40 bytes.
func brief(v Value) string {
	switch v.Kind {
	case KindString:
		if len(v.Str) <= 32 {
			return strconv.Quote(v.Str)
		}
		cut := 32
		for cut > 0 && !utf8.RuneStart(v.Str[cut]) {
			cut--
		}
		return strconv.Quote(v.Str[:cut]) + fmt.Sprintf("… (%d bytes)", len(v.Str))
	case KindInt:
		return strconv.FormatInt(int64(v.Num), 10)
	case KindUint:
		return strconv.FormatUint(v.Num, 10)
	case KindBool:
		if v.Num > 1 {
			return fmt.Sprintf("bool(%d)", v.Num)
		}
		return strconv.FormatBool(v.Num == 1)
	case KindNone:
		return "null"
	}
	return fmt.Sprintf("kind %d", v.Kind)
}

// thousands renders n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

type evaluator interface{ Eval(Event, *Result) }

func safeEval(ev evaluator, e Event, res *Result) (p any) {
	defer func() { p = recover() }()
	ev.Eval(e, res)
	return nil
}

func safeEvalOnly(ref *Reference, e Event, insts []int32, res *Result) (p any) {
	defer func() { p = recover() }()
	ref.EvalOnly(e, insts, res)
	return nil
}

// allocPerEvent measures heap bytes per event on a warm evaluator. It
// gives up (0) when ctx ends: the caller then reports no verdict.
func allocPerEvent(ctx context.Context, ev evaluator, events []Event, res *Result) float64 {
	if len(events) == 0 {
		return 0
	}
	for _, e := range events {
		ev.Eval(e, res)
	}
	// The least of four rounds: anything else allocating meanwhile (a
	// collection making regexp rebuild its pooled state, another
	// goroutine) only adds to a round, never takes away.
	var before, after runtime.MemStats
	best := math.Inf(1)
	for range 4 {
		runtime.ReadMemStats(&before)
		for _, e := range events {
			if ctx.Err() != nil {
				return 0
			}
			ev.Eval(e, res)
		}
		runtime.ReadMemStats(&after)
		best = min(best, float64(after.TotalAlloc-before.TotalAlloc)/float64(len(events)))
	}
	return best
}

// events generates, lazily, the events an agent supplying n inputs could
// really send and then robustness probes the interpreter must survive
// without judging the content by them. Values are typed by the catalog's
// fields, as the agent builds them.
func (p *preflight) events(n int) iter.Seq[genEvent] {
	c := p.c
	return func(yield func(genEvent) bool) {
		base := make([]Value, n)
		for i := range n {
			base[i] = typicalValue(p.agentFields[i])
		}
		buf := slices.Clone(base)
		emit := func(in []Value, target int32, real bool) bool {
			return yield(genEvent{ev: Event{Type: c.Type, Inputs: in}, target: target, real: real})
		}
		with := func(f int, v Value, target int32, real bool) bool {
			buf[f] = v
			ok := emit(buf, target, real)
			buf[f] = base[f]
			return ok
		}
		if !emit(buf, -1, true) {
			return
		}
		for i := range n {
			for _, v := range edgeValues(p.agentFields[i]) {
				if !with(i, v, -1, true) {
					return
				}
			}
		}
		// For every criterion, a value on the field it reads that satisfies
		// it: the event the 2024 test suite never sent. An instance that
		// reads an input this agent does not supply errors on every event,
		// so events built for it would only repeat that error.
		type fv struct {
			f int
			v Value
		}
		var all []fv
		for i, in := range c.Instances {
			if p.skipSatisfying {
				break
			}
			if p.maxInput[i] > n {
				continue
			}
			all = all[:0]
			for _, cr := range in.Criteria {
				f := cr.Field - 1
				if cr.Op == OpAny || c.Fields[f].Type != p.agentFields[f].Type {
					continue // the agent cannot send a value of the bundle's type
				}
				for _, v := range satisfying(c.Fields[f], cr) {
					if !with(f, v, int32(i), true) {
						return
					}
					all = append(all, fv{f, v})
				}
			}
			// And one event satisfying all of them at once.
			if len(all) > 0 {
				for _, x := range all {
					buf[x.f] = x.v
				}
				ok := emit(buf, int32(i), true)
				for _, x := range all {
					buf[x.f] = base[x.f]
				}
				if !ok {
					return
				}
			}
		}
		for i := range n {
			for _, v := range hostileValues(p.agentFields[i]) {
				if !with(i, v, -1, false) {
					return
				}
			}
		}
		for k := range n {
			if !emit(base[:k], -1, false) {
				return
			}
		}
		if !emit(append(slices.Clone(base), Str("extra"), Int(-1)), -1, false) {
			return
		}
		yield(genEvent{ev: Event{Type: TypeRef{Name: c.Type.Name, Version: c.Type.Version + 1}, Inputs: base}, target: -1})
	}
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
