package content

import (
	"fmt"
	"slices"
	"strings"
)

// FieldType is the type of one input field of a template type. The numbers
// are part of the compiled form: never renumber them.
type FieldType uint8

const (
	TypeString FieldType = 1
	TypeInt    FieldType = 2
	TypeUint   FieldType = 3
	TypeBool   FieldType = 4
	TypePath   FieldType = 5
	TypeIP     FieldType = 6
	TypeSHA256 FieldType = 7
	TypeEnum   FieldType = 8
)

var fieldTypeNames = map[FieldType]string{
	TypeString: "string", TypeInt: "int", TypeUint: "uint", TypeBool: "bool",
	TypePath: "path", TypeIP: "ip", TypeSHA256: "sha256", TypeEnum: "enum",
}

func (t FieldType) String() string { return nameOf(fieldTypeNames, t, "FieldType") }

func (t FieldType) valid() bool { _, ok := fieldTypeNames[t]; return ok }

// ParseFieldType parses a field type name as written in a template type.
func ParseFieldType(s string) (FieldType, error) { return parseName(fieldTypeNames, "field type", s) }

// stringLike reports whether values of the type are carried as strings in
// events.
func (t FieldType) stringLike() bool {
	switch t {
	case TypeString, TypePath, TypeIP, TypeSHA256, TypeEnum:
		return true
	}
	return false
}

// folded reports whether comparisons on the type ignore ASCII case: Windows
// paths and hex digests are case-insensitive.
func (t FieldType) folded() bool { return t == TypePath || t == TypeSHA256 }

// Op is a criterion's match operator. The numbers are part of the compiled
// form: never renumber them.
type Op uint8

const (
	OpAny      Op = 1
	OpEquals   Op = 2
	OpPrefix   Op = 3
	OpSuffix   Op = 4
	OpContains Op = 5
	OpGlob     Op = 6
	OpRegex    Op = 7
	OpRange    Op = 8
	OpCIDR     Op = 9
	OpIn       Op = 10
)

var opNames = map[Op]string{
	OpAny: "any", OpEquals: "equals", OpPrefix: "prefix", OpSuffix: "suffix",
	OpContains: "contains", OpGlob: "glob", OpRegex: "regex", OpRange: "range",
	OpCIDR: "cidr", OpIn: "in",
}

func (o Op) String() string { return nameOf(opNames, o, "Op") }

// ParseOp parses an operator name.
func ParseOp(s string) (Op, error) { return parseName(opNames, "op", s) }

// opsFor lists the operators each field type accepts.
var opsFor = map[FieldType][]Op{
	TypeString: {OpAny, OpEquals, OpPrefix, OpSuffix, OpContains, OpGlob, OpRegex, OpIn},
	TypePath:   {OpAny, OpEquals, OpPrefix, OpSuffix, OpContains, OpGlob, OpRegex, OpIn},
	TypeInt:    {OpAny, OpEquals, OpRange, OpIn},
	TypeUint:   {OpAny, OpEquals, OpRange, OpIn},
	TypeBool:   {OpAny, OpEquals},
	TypeIP:     {OpAny, OpEquals, OpCIDR, OpIn},
	TypeSHA256: {OpAny, OpEquals, OpIn},
	TypeEnum:   {OpAny, OpEquals, OpIn},
}

func opAllowed(t FieldType, o Op) bool {
	for _, x := range opsFor[t] {
		if x == o {
			return true
		}
	}
	return false
}

func opNamesFor(t FieldType) string {
	var s []string
	for _, o := range opsFor[t] {
		s = append(s, o.String())
	}
	return strings.Join(s, ", ")
}

// Action is what the sensor does when an instance matches.
type Action uint8

const (
	ActionLog   Action = 1
	ActionAlert Action = 2
	ActionBlock Action = 3
)

var actionNames = map[Action]string{ActionLog: "log", ActionAlert: "alert", ActionBlock: "block"}

func (a Action) String() string { return nameOf(actionNames, a, "Action") }

// ParseAction parses an action name.
func ParseAction(s string) (Action, error) { return parseName(actionNames, "action", s) }

// Severity ranks an instance's finding.
type Severity uint8

const (
	SeverityInfo     Severity = 1
	SeverityLow      Severity = 2
	SeverityMedium   Severity = 3
	SeverityHigh     Severity = 4
	SeverityCritical Severity = 5
)

var severityNames = map[Severity]string{
	SeverityInfo: "info", SeverityLow: "low", SeverityMedium: "medium",
	SeverityHigh: "high", SeverityCritical: "critical",
}

func (s Severity) String() string { return nameOf(severityNames, s, "Severity") }

// ParseSeverity parses a severity name.
func ParseSeverity(s string) (Severity, error) { return parseName(severityNames, "severity", s) }

// nameOf and parseName map the persisted numbers of an enumeration to
// and from the names used in sources and messages.
func nameOf[K ~uint8](names map[K]string, k K, typ string) string {
	if s, ok := names[k]; ok {
		return s
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(k))
}

func parseName[K comparable](names map[K]string, what, s string) (K, error) {
	for k, n := range names {
		if n == s {
			return k, nil
		}
	}
	var zero K
	return zero, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(sortedNames(names), ", "))
}

func sortedNames[K comparable](m map[K]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
