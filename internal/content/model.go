package content

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TypeRef names one version of a template type, written "ipc@3".
type TypeRef struct {
	Name    string
	Version uint32
}

func (r TypeRef) String() string { return fmt.Sprintf("%s@%d", r.Name, r.Version) }

// ParseTypeRef parses "name@version".
func ParseTypeRef(s string) (TypeRef, error) {
	name, ver, ok := strings.Cut(s, "@")
	if !ok || !namePattern.MatchString(name) {
		return TypeRef{}, fmt.Errorf("template type %q: want NAME@VERSION, for example ipc@3", s)
	}
	v, err := strconv.ParseUint(ver, 10, 32)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != ver {
		return TypeRef{}, fmt.Errorf("template type %q: version %q is not a whole number from 1", s, ver)
	}
	return TypeRef{name, uint32(v)}, nil
}

// namePattern is the shape of vendor, channel, template type, field and
// platform names: they appear in paths and messages, so keep them plain.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// idPattern is the shape of an instance id.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// TemplateType is the schema of one kind of sensor event: ordered, typed
// input fields numbered from 1.
type TemplateType struct {
	Name        string
	Version     uint32
	Description string
	Fields      []Field // ordered by Index, Index == position+1
	Pos         Pos
}

// Field is one input of a template type.
type Field struct {
	Index  int
	Name   string
	Type   FieldType
	Values []string // enum values
	Pos    Pos
}

// Ref returns the type's name@version.
func (t *TemplateType) Ref() TypeRef { return TypeRef{t.Name, t.Version} }

// FieldByName returns the field with that name, or nil.
func (t *TemplateType) FieldByName(name string) *Field {
	for i := range t.Fields {
		if t.Fields[i].Name == name {
			return &t.Fields[i]
		}
	}
	return nil
}

// ParseTemplateType decodes a template type from YAML or JSON.
func ParseTemplateType(file string, b []byte) (*TemplateType, error) {
	root, err := parseYAML(file, b)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file}
	t := &TemplateType{Pos: nodePos(file, root)}
	var fieldsNode *yaml.Node
	d.fields(root, "template type", []string{"name", "version", "fields"}, map[string]func(*yaml.Node){
		"kind":        func(n *yaml.Node) { d.kind(n, "TemplateType") },
		"name":        func(n *yaml.Node) { t.Name = d.name(n, "name") },
		"version":     func(n *yaml.Node) { t.Version = uint32(d.uint(n, "version", 1, math.MaxUint32)) },
		"description": func(n *yaml.Node) { t.Description = d.str(n, "description") },
		"fields":      func(n *yaml.Node) { fieldsNode = n },
	})
	if fieldsNode != nil {
		nodes := d.seq(fieldsNode, "fields")
		if len(nodes) == 0 && fieldsNode.Kind == yaml.SequenceNode {
			d.errorf(fieldsNode, "fields: a template type needs at least one field")
		}
		if len(nodes) > MaxFields {
			d.errorf(fieldsNode, "fields: %d fields, more than the limit of %d", len(nodes), MaxFields)
			nodes = nil
		}
		names := map[string]bool{}
		for i, fn := range nodes {
			f := Field{Pos: nodePos(file, fn)}
			what := fmt.Sprintf("fields[%d]", i)
			var typeNode, valuesNode *yaml.Node
			d.fields(fn, what, []string{"index", "name", "type"}, map[string]func(*yaml.Node){
				"index":       func(n *yaml.Node) { f.Index = int(d.uint(n, what+".index", 1, MaxFields)) },
				"name":        func(n *yaml.Node) { f.Name = d.name(n, what+".name") },
				"type":        func(n *yaml.Node) { typeNode = n },
				"values":      func(n *yaml.Node) { valuesNode = n },
				"description": func(n *yaml.Node) { d.str(n, what+".description") },
			})
			if typeNode != nil {
				ft, err := ParseFieldType(d.str(typeNode, what+".type"))
				if err != nil && typeNode.Kind == yaml.ScalarNode {
					d.errorf(typeNode, "%s.type: %v", what, err)
				}
				f.Type = ft
			}
			if f.Index != 0 && f.Index != i+1 {
				d.errorf(fn, "%s: index %d out of order: fields are listed in input order, so this one must have index %d", what, f.Index, i+1)
			}
			if f.Name != "" && names[f.Name] {
				d.errorf(fn, "%s: duplicate field name %q", what, f.Name)
			}
			names[f.Name] = true
			switch {
			case f.Type == TypeEnum && valuesNode == nil:
				d.errorf(fn, "%s: enum field %q needs values", what, f.Name)
			case f.Type != TypeEnum && valuesNode != nil && f.Type != 0:
				d.errorf(valuesNode, "%s: values are only for enum fields, %q is %s", what, f.Name, f.Type)
			case valuesNode != nil:
				f.Values = d.strs(valuesNode, what+".values")
				seen := map[string]bool{}
				for _, v := range f.Values {
					if v == "" || seen[v] {
						d.errorf(valuesNode, "%s.values: empty or duplicate enum value %q", what, v)
					}
					seen[v] = true
				}
				if len(f.Values) == 0 {
					d.errorf(valuesNode, "%s.values: an enum needs at least one value", what)
				}
			}
			t.Fields = append(t.Fields, f)
		}
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Limits are the interpreter limits of one agent version.
type Limits struct {
	// MaxRegexProgram is the largest compiled regex program (instructions)
	// the agent accepts.
	MaxRegexProgram int
	// MaxCriteria is the most criteria one instance may have.
	MaxCriteria int
}

// DefaultLimits apply where a manifest sets none.
var DefaultLimits = Limits{MaxRegexProgram: 1000, MaxCriteria: 32}

// Manifest is what one agent version on one platform supplies: for each
// template type it supports, the number of inputs it fills in.
type Manifest struct {
	AgentVersion AgentVersion
	Platform     string
	Supplies     map[TypeRef]int
	Limits       Limits
	Pos          Pos
}

// Agent names the agent for messages: "7.11.0 (windows)".
func (m *Manifest) Agent() string { return fmt.Sprintf("%s (%s)", m.AgentVersion, m.Platform) }

// ParseManifest decodes a capability manifest from YAML or JSON.
func ParseManifest(file string, b []byte) (*Manifest, error) {
	root, err := parseYAML(file, b)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file}
	m := &Manifest{Pos: nodePos(file, root), Supplies: map[TypeRef]int{}, Limits: DefaultLimits}
	d.fields(root, "manifest", []string{"agent_version", "platform", "template_types"}, map[string]func(*yaml.Node){
		"kind": func(n *yaml.Node) { d.kind(n, "CapabilityManifest") },
		"agent_version": func(n *yaml.Node) {
			v, err := ParseAgentVersion(d.str(n, "agent_version"))
			if err != nil && n.Kind == yaml.ScalarNode {
				d.errorf(n, "agent_version: %v", err)
			}
			m.AgentVersion = v
		},
		"platform": func(n *yaml.Node) { m.Platform = d.name(n, "platform") },
		"template_types": func(n *yaml.Node) {
			if n.Kind != yaml.MappingNode {
				d.errorf(n, "template_types: want a mapping of NAME@VERSION to input count, got %s", kindName(n))
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				ref, err := ParseTypeRef(k.Value)
				if err != nil {
					d.errorf(k, "template_types: %v", err)
					continue
				}
				if _, dup := m.Supplies[ref]; dup {
					d.errorf(k, "template_types: duplicate %s", ref)
				}
				m.Supplies[ref] = int(d.uint(v, "template_types."+k.Value, 0, MaxFields))
			}
		},
		"limits": func(n *yaml.Node) {
			d.fields(n, "limits", nil, map[string]func(*yaml.Node){
				"max_regex_program": func(n *yaml.Node) {
					m.Limits.MaxRegexProgram = int(d.uint(n, "limits.max_regex_program", 1, MaxRegexProgram))
				},
				"max_criteria": func(n *yaml.Node) { m.Limits.MaxCriteria = int(d.uint(n, "limits.max_criteria", 1, MaxCriteria)) },
			})
		},
	})
	if err := d.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// Bundle is a channel's versioned detection content as authored.
type Bundle struct {
	Vendor       string
	Channel      string
	Version      uint64
	TemplateType TypeRef
	Targets      Targets
	Instances    []Instance
	Pos          Pos
}

// Name is "vendor/channel@version", the bundle's name in every message.
func (b *Bundle) Name() string { return fmt.Sprintf("%s/%s@%d", b.Vendor, b.Channel, b.Version) }

// Targets are the agents a bundle is meant for.
type Targets struct {
	Platforms     []string
	AgentVersions VersionRange
	Pos           Pos // of agent_versions, for findings about the range
}

// Matches reports whether the bundle targets that agent.
func (t Targets) Matches(m *Manifest) bool {
	ok := len(t.Platforms) == 0
	for _, p := range t.Platforms {
		ok = ok || p == m.Platform
	}
	return ok && t.AgentVersions.Contains(m.AgentVersion)
}

// Instance is one detection: it matches an event when every criterion does.
type Instance struct {
	ID       string
	Severity Severity
	Action   Action
	Criteria []Criterion
	// Broad is the author's reason for an instance that matches every
	// event of its type; without one, such an instance may not block.
	Broad string
	Pos   Pos
}

// Criterion tests one input field. Exactly one of FieldName and FieldIndex
// is set, as written in the source.
type Criterion struct {
	FieldName  string
	FieldIndex int
	Op         Op
	Value      *Scalar  // equals, prefix, suffix, contains, glob, regex, cidr
	Values     []Scalar // in
	Min, Max   *Scalar  // range
	Pos        Pos
}

// ParseBundle decodes a bundle from YAML or JSON.
func ParseBundle(file string, b []byte) (*Bundle, error) {
	root, err := parseYAML(file, b)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file}
	bu := &Bundle{Pos: nodePos(file, root)}
	d.fields(root, "bundle", []string{"vendor", "channel", "version", "template_type", "targets", "instances"}, map[string]func(*yaml.Node){
		"kind":        func(n *yaml.Node) { d.kind(n, "Bundle") },
		"vendor":      func(n *yaml.Node) { bu.Vendor = d.name(n, "vendor") },
		"channel":     func(n *yaml.Node) { bu.Channel = d.name(n, "channel") },
		"version":     func(n *yaml.Node) { bu.Version = d.uint(n, "version", 1, MaxBundleVersion) },
		"description": func(n *yaml.Node) { d.str(n, "description") },
		"template_type": func(n *yaml.Node) {
			s := d.str(n, "template_type")
			if s == "" {
				return
			}
			ref, err := ParseTypeRef(s)
			if err != nil {
				d.errorf(n, "template_type: %v", err)
			}
			bu.TemplateType = ref
		},
		"targets": func(n *yaml.Node) {
			d.fields(n, "targets", []string{"agent_versions"}, map[string]func(*yaml.Node){
				"platforms": func(n *yaml.Node) {
					for i, p := range d.seq(n, "targets.platforms") {
						bu.Targets.Platforms = append(bu.Targets.Platforms, d.name(p, fmt.Sprintf("targets.platforms[%d]", i)))
					}
				},
				"agent_versions": func(n *yaml.Node) {
					r, err := ParseVersionRange(d.str(n, "targets.agent_versions"))
					if err != nil && n.Kind == yaml.ScalarNode {
						d.errorf(n, "targets.agent_versions: %v", err)
					}
					bu.Targets.AgentVersions, bu.Targets.Pos = r, nodePos(d.file, n)
				},
			})
		},
		"instances": func(n *yaml.Node) {
			nodes := d.seq(n, "instances")
			if len(nodes) > MaxInstances {
				d.errorf(n, "instances: %d instances, more than the limit of %d", len(nodes), MaxInstances)
				return
			}
			for i, in := range nodes {
				bu.Instances = append(bu.Instances, d.instance(in, fmt.Sprintf("instances[%d]", i)))
			}
		},
	})
	if err := d.err(); err != nil {
		return nil, err
	}
	return bu, nil
}

func (d *decoder) instance(n *yaml.Node, what string) Instance {
	in := Instance{Pos: nodePos(d.file, n), Severity: SeverityMedium, Action: ActionAlert}
	d.fields(n, what, []string{"id", "criteria"}, map[string]func(*yaml.Node){
		"id":          func(n *yaml.Node) { in.ID = d.str(n, what+".id") },
		"description": func(n *yaml.Node) { d.str(n, what+".description") },
		"broad": func(n *yaml.Node) {
			if in.Broad = d.str(n, what+".broad"); in.Broad == "" && n.Tag != "!!null" {
				d.errorf(n, "%s.broad: say why the instance matches every event", what)
			}
		},
		"severity": func(n *yaml.Node) {
			s, err := ParseSeverity(d.str(n, what+".severity"))
			if err != nil && n.Kind == yaml.ScalarNode {
				d.errorf(n, "%s.severity: %v", what, err)
			}
			in.Severity = s
		},
		"action": func(n *yaml.Node) {
			a, err := ParseAction(d.str(n, what+".action"))
			if err != nil && n.Kind == yaml.ScalarNode {
				d.errorf(n, "%s.action: %v", what, err)
			}
			in.Action = a
		},
		"criteria": func(n *yaml.Node) {
			nodes := d.seq(n, what+".criteria")
			if len(nodes) > MaxCriteria {
				d.errorf(n, "%s.criteria: %d criteria, more than the limit of %d", what, len(nodes), MaxCriteria)
				return
			}
			for i, cn := range nodes {
				in.Criteria = append(in.Criteria, d.criterion(cn, fmt.Sprintf("%s.criteria[%d]", what, i)))
			}
		},
	})
	return in
}

func (d *decoder) criterion(n *yaml.Node, what string) Criterion {
	c := Criterion{Pos: nodePos(d.file, n)}
	d.fields(n, what, []string{"field", "op"}, map[string]func(*yaml.Node){
		"field": func(n *yaml.Node) {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
				// The same words as Compile's, which knows the type's count.
				neg, v, err := parseWhole(n.Value)
				switch {
				case err != nil:
					d.errorf(n, "%s.field: %v", what, err)
				case neg || v < 1 || v > MaxFields:
					d.errorf(n, "%s.field: input %s is out of range: input indexes run from 1 to the template type's field count (at most %d)", what, n.Value, MaxFields)
				default:
					c.FieldIndex = int(v)
				}
				return
			}
			c.FieldName = d.str(n, what+".field")
		},
		"op": func(n *yaml.Node) {
			o, err := ParseOp(d.str(n, what+".op"))
			if err != nil && n.Kind == yaml.ScalarNode {
				d.errorf(n, "%s.op: %v", what, err)
			}
			c.Op = o
		},
		"value": func(n *yaml.Node) { s := d.scalar(n, what+".value"); c.Value = &s },
		"values": func(n *yaml.Node) {
			nodes := d.seq(n, what+".values")
			if len(nodes) > MaxValues {
				d.errorf(n, "%s.values: %d values, more than the limit of %d", what, len(nodes), MaxValues)
				return
			}
			c.Values = make([]Scalar, 0, len(nodes))
			for i, v := range nodes {
				c.Values = append(c.Values, d.scalar(v, fmt.Sprintf("%s.values[%d]", what, i)))
			}
		},
		"min": func(n *yaml.Node) { s := d.scalar(n, what+".min"); c.Min = &s },
		"max": func(n *yaml.Node) { s := d.scalar(n, what+".max"); c.Max = &s },
	})
	return c
}

func (d *decoder) name(n *yaml.Node, what string) string {
	s := d.str(n, what)
	if s == "" && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		d.errorf(n, "%s: must not be empty", what)
	} else if s != "" && !namePattern.MatchString(s) {
		d.errorf(n, "%s: %q is not a valid name (lowercase letters, digits, '-' and '_', starting with a letter, at most 63)", what, s)
	}
	return s
}

func (d *decoder) kind(n *yaml.Node, want string) {
	if s := d.str(n, "kind"); s != "" && s != want {
		d.errorf(n, "kind: this file is read as a %s, but it says %q", want, s)
	}
}
