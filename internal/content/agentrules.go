package content

import "fmt"

// The rules in this file decide whether a targeted agent can load a bundle
// at all: the version order, the template type's support and the agent's
// own load limits. They read a neutral view of the bundle so that the
// validator (source) and preflight (source or compiled bytes) apply one
// rule each: a compiled bundle never passed through the validator, so
// preflight is the only place these rules can run on it.

// ruleInstance is what the per-agent rules read of one instance.
type ruleInstance struct {
	label    string
	pos      Pos
	criteria int // as written, including criteria whose field did not resolve
	crits    []ruleCriterion
}

// ruleCriterion is one criterion whose field resolved.
type ruleCriterion struct {
	field *Field
	op    Op
	// regexSize is a regex criterion's compiled program size, as the agent
	// would compile it; -1 when the criterion is no regex or its pattern
	// does not compile (the compiler reports that).
	regexSize int
	pos       Pos
}

// checkVersion rejects a version that does not move the channel forward:
// agents keep the highest version they have seen, so a lower one would be
// published and never loaded, or, worse, roll agents back.
func checkVersion(s *findingSink, pos Pos, version, current uint64) {
	if version <= current {
		s.add(LevelError, "version-not-increasing", pos, "", nil, nil,
			"version %d is not above the channel's current version %d", version, current)
	}
}

// supportingAgents reports the targeted agents that do not support the
// template type and returns those that do.
func supportingAgents(s *findingSink, pos Pos, ref TypeRef, targeted []*Manifest) []*Manifest {
	for _, g := range group(targeted, func(m *Manifest) (int, bool) { _, ok := m.Supplies[ref]; return 0, !ok }) {
		s.add(LevelError, "template-type-unsupported", pos, "", nil, g.agents, "%s",
			agentWords(g.agents, "does not support template type "+ref.String(), "do not support template type "+ref.String()))
	}
	var supporting []*Manifest
	for _, m := range targeted {
		if _, ok := m.Supplies[ref]; ok {
			supporting = append(supporting, m)
		}
	}
	return supporting
}

// checkAgentRules applies every supporting agent's own limits to each
// instance and, when inputs is set, the rule that a criterion reads only
// inputs the agent supplies. Preflight leaves that rule to its generated
// events, which also say on how many of the agent's events it fails.
func checkAgentRules(s *findingSink, ref TypeRef, supporting []*Manifest, ins []ruleInstance, inputs bool) {
	for i := range ins {
		in := &ins[i]
		for _, g := range group(supporting, func(m *Manifest) (int, bool) { return m.Limits.MaxCriteria, in.criteria > m.Limits.MaxCriteria }) {
			s.add(LevelError, "too-many-criteria", in.pos, in.label, nil, g.agents,
				"%d criteria, but %s", in.criteria, agentWords(g.agents, fmt.Sprintf("accepts at most %d", g.value), fmt.Sprintf("accept at most %d", g.value)))
		}
		for j := range in.crits {
			cr := &in.crits[j]
			f := cr.field
			if inputs {
				for _, g := range group(supporting, func(m *Manifest) (int, bool) { n := m.Supplies[ref]; return n, f.Index > n }) {
					words := agentWords(g.agents, fmt.Sprintf("supplies %d inputs for %s", g.value, ref), fmt.Sprintf("supply %d inputs for %s", g.value, ref))
					if cr.op == OpAny {
						s.add(LevelWarning, "wildcard-on-unsupplied-input", cr.pos, in.label, f, g.agents,
							"wildcard criterion on input %d %q but %s; harmless while the op is \"any\", an error with any other op", f.Index, f.Name, words)
						continue
					}
					s.add(LevelError, "input-not-supplied", cr.pos, in.label, f, g.agents,
						"criterion on input %d %q but %s", f.Index, f.Name, words)
				}
			}
			if cr.regexSize < 0 {
				continue
			}
			for _, g := range group(supporting, func(m *Manifest) (int, bool) {
				return m.Limits.MaxRegexProgram, cr.regexSize > m.Limits.MaxRegexProgram
			}) {
				s.add(LevelError, "regex-too-large", cr.pos, in.label, f, g.agents,
					"regex on input %d %q compiles to %d instructions, but %s", f.Index, f.Name, cr.regexSize,
					agentWords(g.agents, fmt.Sprintf("accepts at most %d", g.value), fmt.Sprintf("accept at most %d", g.value)))
			}
		}
	}
}

// sourceRuleInstances views a source bundle for the per-agent rules.
func sourceRuleInstances(b *Bundle, tt *TemplateType) []ruleInstance {
	ins := make([]ruleInstance, len(b.Instances))
	for i := range b.Instances {
		in := &b.Instances[i]
		ri := ruleInstance{label: in.ID, pos: in.Pos, criteria: len(in.Criteria)}
		if ri.label == "" {
			ri.label = fmt.Sprintf("#%d", i+1)
		}
		for j := range in.Criteria {
			cr := &in.Criteria[j]
			f := resolveField(tt, cr)
			if f == nil {
				continue // reported by Compile
			}
			rc := ruleCriterion{field: f, op: cr.Op, regexSize: -1, pos: cr.Pos}
			if cr.Op == OpRegex && cr.Value != nil {
				if n, err := regexProgramSize(cr.Value.Text, f.Type.folded()); err == nil {
					rc.regexSize = n
				}
			}
			ri.crits = append(ri.crits, rc)
		}
		ins[i] = ri
	}
	return ins
}

// compiledRuleInstances views a compiled bundle for the per-agent rules,
// with the fields as embedded in it: those are what an agent loads.
func compiledRuleInstances(c *Compiled) []ruleInstance {
	fields := make([]Field, len(c.Fields))
	for i, f := range c.Fields {
		fields[i] = Field{Index: i + 1, Name: f.Name, Type: f.Type, Values: f.Values}
	}
	ins := make([]ruleInstance, len(c.Instances))
	for i := range c.Instances {
		in := &c.Instances[i]
		ri := ruleInstance{label: in.ID, criteria: len(in.Criteria), crits: make([]ruleCriterion, 0, len(in.Criteria))}
		for _, cr := range in.Criteria {
			if cr.Field < 1 || cr.Field > len(fields) {
				continue // Compiled.Check refuses it
			}
			f := &fields[cr.Field-1]
			rc := ruleCriterion{field: f, op: cr.Op, regexSize: -1}
			if cr.Op == OpRegex && len(cr.Strs) == 1 {
				if n, err := regexProgramSize(cr.Strs[0], f.Type.folded()); err == nil {
					rc.regexSize = n
				}
			}
			ri.crits = append(ri.crits, rc)
		}
		ins[i] = ri
	}
	return ins
}
