package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// Hard limits of the compiled form. They bound what any agent will ever
// load, whatever a manifest says; manifests may only be stricter.
const (
	MaxFields       = 256
	MaxInstances    = 100_000
	MaxCriteria     = 64
	MaxValues       = 10_000
	MaxValueLen     = 4096
	MaxRegexProgram = 20_000
	MaxCompiledSize = 16 << 20
	MaxTotalValues  = 1_000_000
	// MaxBundleVersion is the largest bundle version, 2^53-1: the largest
	// whole number every JSON reader (a browser among them) holds exactly.
	// A channel whose version reached it could never publish again, so
	// versions are meant to count up in steps, not to jump.
	MaxBundleVersion   = 1<<53 - 1
	maxPlatforms       = 64
	maxEnumValues      = 1024
	maxDescriptiveText = 1024
)

// Compiled is the canonical form of a bundle: what ships to agents and what
// the interpreter runs. It embeds the template type's fields so that an
// agent can type-check events without the source files.
type Compiled struct {
	Vendor        string
	Channel       string
	Version       uint64
	Type          TypeRef
	Fields        []CompiledField
	Platforms     []string
	AgentVersions string
	Instances     []CompiledInstance
}

// CompiledField is a template type field in the compiled form.
type CompiledField struct {
	Name   string
	Type   FieldType
	Values []string // enum values
}

// CompiledInstance is an instance with its criteria resolved to input
// indexes and typed, normalised values.
type CompiledInstance struct {
	ID       string
	Severity Severity
	Action   Action
	Criteria []CompiledCriterion
}

// CompiledCriterion tests input Field (1-based). String-like values are in
// Strs (folded to lower case for path and sha256 fields, canonical text for
// ip and cidr); numbers in Nums (int64 bits for int, 0/1 for bool); a range
// has Nums = [min, max], inclusive. Values of "in" are sorted and unique.
type CompiledCriterion struct {
	Field int
	Op    Op
	Strs  []string
	Nums  []uint64
}

// Name is "vendor/channel@version".
func (c *Compiled) Name() string { return fmt.Sprintf("%s/%s@%d", c.Vendor, c.Channel, c.Version) }

// Hash returns the content hash: hex SHA-256 of the canonical bytes.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Compile type-checks a bundle against its template type and returns the
// compiled form. Findings hold every error and warning; c is nil when any
// finding is an error. Checks against agent manifests are the validator's.
func Compile(b *Bundle, tt *TemplateType) (c *Compiled, findings Findings) {
	c, _, findings = compile(b, tt)
	return c, findings
}

// compile also returns the encoding, which the size check needs anyway.
func compile(b *Bundle, tt *TemplateType) (c *Compiled, encoded []byte, findings Findings) {
	s := &findingSink{bundle: b.Name()}
	if tt.Ref() != b.TemplateType {
		s.add(LevelError, "template-type-mismatch", b.Pos, "", nil, nil,
			"bundle is for template type %s but was compiled against %s", b.TemplateType, tt.Ref())
		return nil, nil, s.out
	}
	c = &Compiled{
		Vendor: b.Vendor, Channel: b.Channel, Version: b.Version, Type: tt.Ref(),
		Platforms:     slices.Compact(slices.Sorted(slices.Values(b.Targets.Platforms))),
		AgentVersions: b.Targets.AgentVersions.String(),
	}
	for _, f := range tt.Fields {
		c.Fields = append(c.Fields, CompiledField{Name: f.Name, Type: f.Type, Values: f.Values})
	}
	if len(b.Instances) == 0 {
		s.add(LevelError, "no-instances", b.Pos, "", nil, nil, "bundle has no instances")
	}
	type idAt struct {
		id  string
		pos Pos
	}
	ids := map[string]idAt{}
	total := 0
	for i := range b.Instances {
		in := &b.Instances[i]
		ci := CompiledInstance{ID: in.ID, Severity: in.Severity, Action: in.Action}
		label := in.ID
		switch {
		case in.ID == "":
			label = fmt.Sprintf("#%d", i+1)
			s.add(LevelError, "empty-id", in.Pos, label, nil, nil, "instance has an empty id")
		case !idPattern.MatchString(in.ID):
			s.add(LevelError, "bad-id", in.Pos, label, nil, nil,
				"id %q is not valid (letters, digits, '.', '_', ':', '-', at most 128, starting with a letter or digit)", in.ID)
		default:
			// Ids are compared without case: alerts, allow-lists and people
			// treat Rule-1 and rule-1 as one detection. (They are ASCII,
			// which Unicode normalisation leaves as it is.)
			key := strings.ToLower(in.ID)
			if prev, dup := ids[key]; dup {
				s.add(LevelError, "duplicate-id", in.Pos, label, nil, nil, "duplicate instance id: %q at %s is the same id once case is ignored", prev.id, prev.pos)
			}
			ids[key] = idAt{in.ID, in.Pos}
		}
		if len(in.Criteria) == 0 {
			s.add(LevelError, "no-criteria", in.Pos, label, nil, nil, "instance has no criteria")
		}
		allAny, allBroad := len(in.Criteria) > 0, len(in.Criteria) > 0
		type broadAt struct {
			cr  *Criterion
			f   *Field
			why string
		}
		var broad []broadAt
		for j := range in.Criteria {
			cr := &in.Criteria[j]
			cc, ok := compileCriterion(s, tt, label, cr)
			if !ok {
				allAny, allBroad = false, false
				continue
			}
			total += len(cc.Strs) + len(cc.Nums)
			f := resolveField(tt, cr)
			why := broadness(f, cc)
			if why != "" {
				broad = append(broad, broadAt{cr, f, why})
			}
			allAny = allAny && cc.Op == OpAny
			allBroad = allBroad && (cc.Op == OpAny || why != "")
			ci.Criteria = append(ci.Criteria, cc)
		}
		// An instance that matches every event is a warning; with action
		// block it would block every such event on every host, so it is an
		// error unless the author says why (broad: REASON).
		level, unless := LevelWarning, ""
		if in.Action == ActionBlock && in.Broad == "" {
			level, unless = LevelError, `; with action block that blocks every one on every host, so say why with broad: REASON if it is meant`
		}
		switch {
		case allAny:
			s.add(level, "all-any", in.Pos, label, nil, nil,
				"every criterion is \"any\": the instance matches every %s event%s", tt.Ref(), unless)
		case allBroad:
			others := ""
			if len(in.Criteria) > 1 {
				others = ", as every other criterion does (or it is \"any\")"
			}
			for _, b := range broad {
				s.add(level, "broad-criterion", b.cr.Pos, label, b.f, nil,
					"criterion on input %d %q: %s%s, so the instance matches every %s event%s",
					b.f.Index, b.f.Name, b.why, others, tt.Ref(), unless)
			}
		default:
			for _, b := range broad {
				s.add(LevelWarning, "broad-criterion", b.cr.Pos, label, b.f, nil,
					"criterion on input %d %q: %s, so it narrows nothing; say op \"any\" if that is meant", b.f.Index, b.f.Name, b.why)
			}
		}
		c.Instances = append(c.Instances, ci)
	}
	if total > MaxTotalValues {
		s.add(LevelError, "bundle-too-large", b.Pos, "", nil, nil,
			"bundle has %d criterion values, more than the limit of %d", total, MaxTotalValues)
	}
	if s.out.Errors() > 0 {
		return nil, nil, s.out
	}
	encoded = c.Marshal()
	if n := len(encoded); n > MaxCompiledSize {
		s.add(LevelError, "bundle-too-large", b.Pos, "", nil, nil,
			"compiled bundle is %d bytes, more than the limit of %d", n, MaxCompiledSize)
		return nil, nil, s.out
	}
	return c, encoded, s.out
}

func compileCriterion(s *findingSink, tt *TemplateType, inst string, cr *Criterion) (CompiledCriterion, bool) {
	var f *Field
	switch {
	case cr.FieldName != "":
		if f = tt.FieldByName(cr.FieldName); f == nil {
			s.add(LevelError, "unknown-field", cr.Pos, inst, nil, nil,
				"criterion on unknown field %q: %s has no such field", cr.FieldName, tt.Ref())
			return CompiledCriterion{}, false
		}
	case cr.FieldIndex > len(tt.Fields) || cr.FieldIndex < 1:
		s.add(LevelError, "unknown-field", cr.Pos, inst, nil, nil,
			"criterion on input %d: %s has only %d input fields", cr.FieldIndex, tt.Ref(), len(tt.Fields))
		return CompiledCriterion{}, false
	default:
		f = &tt.Fields[cr.FieldIndex-1]
	}
	where := fmt.Sprintf("criterion on input %d %q (%s)", f.Index, f.Name, f.Type)
	bad := func(rule, format string, args ...any) (CompiledCriterion, bool) {
		s.add(LevelError, rule, cr.Pos, inst, f, nil, where+": "+format, args...)
		return CompiledCriterion{}, false
	}
	if !opAllowed(f.Type, cr.Op) {
		return bad("op-not-allowed", "op %q does not apply to %s fields (allowed: %s)", cr.Op, f.Type, opNamesFor(f.Type))
	}
	cc := CompiledCriterion{Field: f.Index, Op: cr.Op}
	if rule, err := opValues(cr); err != nil {
		return bad(rule, "%v", err)
	}
	switch cr.Op {
	case OpAny:
	case OpRange:
		lo, hi := uint64(0), uint64(math.MaxUint64)
		if f.Type == TypeInt {
			lo, hi = uint64(1)<<63, math.MaxInt64 // MinInt64 and MaxInt64 as bits
		}
		for _, p := range []struct {
			v   *Scalar
			dst *uint64
		}{{cr.Min, &lo}, {cr.Max, &hi}} {
			if p.v == nil {
				continue
			}
			n, err := typedNumber(f.Type, *p.v)
			if err != nil {
				return bad("bad-value", "%v", err)
			}
			*p.dst = n
		}
		if (f.Type == TypeInt && int64(lo) > int64(hi)) || (f.Type == TypeUint && lo > hi) {
			return bad("bad-value", "range min is above max")
		}
		cc.Nums = []uint64{lo, hi}
	case OpIn:
		for _, v := range cr.Values {
			if err := addValue(&cc, f, v); err != nil {
				return bad("bad-value", "%v", err)
			}
		}
		slices.Sort(cc.Strs)
		cc.Strs = slices.Compact(cc.Strs)
		slices.Sort(cc.Nums)
		cc.Nums = slices.Compact(cc.Nums)
	case OpCIDR:
		p, err := netip.ParsePrefix(cr.Value.Text)
		if err != nil {
			return bad("bad-value", "value %q is not a CIDR prefix such as 10.0.0.0/8", cr.Value.Text)
		}
		if p.Addr().Zone() != "" {
			return bad("bad-value", "CIDR %q has a zone", cr.Value.Text)
		}
		if p.Addr().Is4In6() && p.Bits() < 96 {
			return bad("bad-value", "CIDR %q is IPv4-mapped but shorter than /96, so it also spans addresses that are not IPv4: write the IPv4 prefix (%s/%d) or a mapped prefix of /96 or longer",
				cr.Value.Text, p.Addr().Unmap(), max(0, p.Bits()-96))
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr()))
		if p.Masked() != p {
			return bad("bad-value", "CIDR %q has host bits set; did you mean %s?", cr.Value.Text, p.Masked())
		}
		cc.Strs = []string{p.String()}
	case OpRegex:
		if err := checkRegex(cr.Value.Text, f.Type.folded(), MaxRegexProgram); err != nil {
			return bad("bad-regex", "%v", err)
		}
		cc.Strs = []string{cr.Value.Text}
	default: // equals, prefix, suffix, contains, glob
		if err := addValue(&cc, f, *cr.Value); err != nil {
			return bad("bad-value", "%v", err)
		}
	}
	return cc, true
}

// opValues is the one place that decides which value keys an op takes
// and which written values it refuses before typing them: a null where a
// value is needed, and an empty pattern, which would match every event (or,
// for glob, only an empty one) without saying so. It returns the rule
// broken and why.
func opValues(cr *Criterion) (rule string, err error) {
	null := func(v *Scalar) bool { return v != nil && v.Tag == "!!null" }
	wantValue := cr.Op != OpAny && cr.Op != OpIn && cr.Op != OpRange
	switch {
	case wantValue && cr.Value == nil:
		return "missing-value", fmt.Errorf("op %q needs a value", cr.Op)
	case wantValue && null(cr.Value):
		return "missing-value", fmt.Errorf("op %q needs a value, and \"value\" is empty (null)", cr.Op)
	case !wantValue && cr.Value != nil:
		return "unexpected-value", fmt.Errorf("op %q takes no \"value\"%s", cr.Op, opHint(cr.Op))
	case cr.Op != OpIn && cr.Values != nil:
		return "unexpected-value", errors.New("only op \"in\" takes \"values\"")
	case cr.Op == OpIn && len(cr.Values) == 0:
		return "missing-value", errors.New("op \"in\" needs a non-empty list of values")
	case cr.Op != OpRange && (cr.Min != nil || cr.Max != nil):
		return "unexpected-value", errors.New("only op \"range\" takes \"min\" and \"max\"")
	case cr.Op == OpRange && cr.Min == nil && cr.Max == nil:
		return "missing-value", errors.New("op \"range\" needs min, max or both")
	case null(cr.Min) || null(cr.Max):
		return "missing-value", errors.New("range min and max are numbers; leave out the one that has no bound rather than writing null")
	}
	for i, v := range cr.Values {
		if null(&v) {
			return "missing-value", fmt.Errorf("values[%d] is empty (null)", i)
		}
	}
	if wantValue && cr.Value.Text == "" {
		switch cr.Op {
		case OpPrefix, OpSuffix, OpContains, OpRegex:
			return "empty-value", fmt.Errorf("an empty %s matches every value; say op \"any\" if that is meant", cr.Op)
		case OpGlob:
			return "empty-value", errors.New("an empty glob matches only an empty value; say op \"equals\" with \"\" if that is meant")
		}
	}
	return "", nil
}

func opHint(o Op) string {
	switch o {
	case OpIn:
		return "; use \"values\""
	case OpRange:
		return "; use \"min\" and \"max\""
	}
	return ""
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 address loses when
// unmapped (::ffff:10.0.0.0/104 is 10.0.0.0/8).
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// addValue types one scalar against the field and appends it.
func addValue(cc *CompiledCriterion, f *Field, v Scalar) error {
	if v.Tag == "!!null" {
		return fmt.Errorf("value is null (at %s)", v.Pos)
	}
	if len(v.Text) > MaxValueLen {
		return fmt.Errorf("value is %d bytes, more than the limit of %d", len(v.Text), MaxValueLen)
	}
	switch f.Type {
	case TypeInt, TypeUint, TypeBool:
		n, err := typedNumber(f.Type, v)
		if err != nil {
			return err
		}
		cc.Nums = append(cc.Nums, n)
		return nil
	case TypeIP:
		a, err := netip.ParseAddr(v.Text)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("value %q is not an IP address", v.Text)
		}
		cc.Strs = append(cc.Strs, a.Unmap().String())
	case TypeSHA256:
		if !isSHA256(v.Text) {
			return fmt.Errorf("value %q is not a SHA-256 digest (64 hex digits)", v.Text)
		}
		cc.Strs = append(cc.Strs, FoldASCII(v.Text))
	case TypeEnum:
		if !slices.Contains(f.Values, v.Text) {
			return fmt.Errorf("value %q is not one of the enum values (%s)", v.Text, strings.Join(f.Values, ", "))
		}
		cc.Strs = append(cc.Strs, v.Text)
	case TypePath:
		cc.Strs = append(cc.Strs, FoldASCII(v.Text))
	default:
		cc.Strs = append(cc.Strs, v.Text)
	}
	return nil
}

func typedNumber(t FieldType, v Scalar) (uint64, error) {
	switch t {
	case TypeBool:
		if v.Tag != "!!bool" {
			return 0, fmt.Errorf("value %q is not a bool (true or false)", v.Text)
		}
		if strings.EqualFold(v.Text, "true") {
			return 1, nil
		}
		return 0, nil
	case TypeInt, TypeUint:
		if v.Tag != "!!int" {
			return 0, fmt.Errorf("value %q is not %s", v.Text, numberWords(t))
		}
		neg, mag, err := parseWhole(v.Text)
		switch {
		case err != nil:
			return 0, err
		case t == TypeUint && neg && mag != 0:
			return 0, fmt.Errorf("value %q is not %s", v.Text, numberWords(t))
		case t == TypeUint:
			return mag, nil
		case neg && mag <= 1<<63:
			return -mag, nil // two's complement: int64 bits, as Nums holds them
		case !neg && mag <= math.MaxInt64:
			return mag, nil
		}
		return 0, fmt.Errorf("value %q is not %s", v.Text, numberWords(t))
	}
	return 0, fmt.Errorf("%s fields have no numeric values", t)
}

func numberWords(t FieldType) string {
	if t == TypeInt {
		return fmt.Sprintf("an int (a whole number from %d to %d)", int64(math.MinInt64), int64(math.MaxInt64))
	}
	return fmt.Sprintf("a uint (a whole number from 0 to %d)", uint64(math.MaxUint64))
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkRegex compiles a pattern the way the interpreter will and checks its
// program size against limit.
func checkRegex(pattern string, fold bool, limit int) error {
	n, err := regexProgramSize(pattern, fold)
	if err != nil {
		return err
	}
	if n > limit {
		return fmt.Errorf("regex program has %d instructions, more than the limit of %d", n, limit)
	}
	return nil
}

func regexProgramSize(pattern string, fold bool) (int, error) {
	if len(pattern) > MaxValueLen {
		return 0, fmt.Errorf("regex is %d bytes, more than the limit of %d", len(pattern), MaxValueLen)
	}
	flags := syntax.Perl
	if fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pattern, flags)
	if err != nil {
		return 0, fmt.Errorf("regex %q does not compile: %v", pattern, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, fmt.Errorf("regex %q does not compile: %v", pattern, err)
	}
	return len(prog.Inst), nil
}

func compileRegex(pattern string, fold bool) (*regexp.Regexp, error) {
	if fold {
		pattern = "(?i)" + pattern
	}
	return regexp.Compile(pattern)
}

// FoldASCII is how path and digest values are folded for comparison:
// ASCII letters lower-cased, nothing else touched. Windows path comparison
// is case-insensitive, and ASCII folding cannot change a string's length.
// Exported for tools that must compare as the interpreter does (bench/eval).
func FoldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
