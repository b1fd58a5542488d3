package content

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"slices"
	"unicode/utf8"
)

// The compiled form is a fixed header followed by a flat, length-prefixed
// body. It is canonical: Unmarshal accepts only the exact bytes Marshal
// would produce for the decoded value, so one bundle has exactly one
// content hash.
//
// Header (format 2), 13 bytes, integers big-endian:
//
//	offset 0   4 bytes  magic "RFCB"
//	offset 4   1 byte   format version, 2
//	offset 5   4 bytes  body length in bytes
//	offset 9   4 bytes  CRC-32C (Castagnoli) of bytes 0-8 and of the body
//	offset 13  body
//
// The checksum catches accidental damage (a disk, a copy, a cache) before
// any decoding, which the body's own structure cannot: in format 1, which
// had no checksum, 43-54% of the single-bit flips of the example bundles
// decoded as another valid bundle. A CRC rather than a truncated hash
// because a CRC guarantees what a hash only makes likely: every single-bit
// flip and every burst of up to 32 bits changes it. The length makes every truncation and every appended byte a
// certain refusal too, independent of the CRC. Deliberate tampering is not
// its concern: published bundles are signed, and their content hash is the
// SHA-256 of all these bytes, header included.
//
// Format versions are control bytes, so source reading can tell compiled
// bytes from YAML. Format 1 (no header beyond "RFCB\x01") is refused: no
// agent ever shipped with it, and recompiling the source gives format 2.
const (
	formatVersion = 2
	headerLen     = 13
	offLength     = 5
	offChecksum   = 9
)

var (
	magic      = []byte("RFCB")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// checksum covers the header up to the checksum field and the body, so a
// flip anywhere but in the checksum field itself changes it, and a flip
// there no longer matches.
func checksum(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[:offChecksum], castagnoli), castagnoli, b[headerLen:])
}

// Marshal encodes the compiled bundle canonically.
func (c *Compiled) Marshal() []byte {
	var w writer
	w.b = append(w.b, magic...)
	w.b = append(w.b, formatVersion)
	w.b = append(w.b, make([]byte, headerLen-len(w.b))...) // length and checksum, filled in below
	w.str(c.Vendor)
	w.str(c.Channel)
	w.uvarint(c.Version)
	w.str(c.Type.Name)
	w.uvarint(uint64(c.Type.Version))
	w.uvarint(uint64(len(c.Fields)))
	for _, f := range c.Fields {
		w.str(f.Name)
		w.b = append(w.b, byte(f.Type))
		w.strs(f.Values)
	}
	w.strs(c.Platforms)
	w.str(c.AgentVersions)
	w.uvarint(uint64(len(c.Instances)))
	for _, in := range c.Instances {
		w.str(in.ID)
		w.b = append(w.b, byte(in.Severity), byte(in.Action))
		w.uvarint(uint64(len(in.Criteria)))
		for _, cr := range in.Criteria {
			w.uvarint(uint64(cr.Field))
			w.b = append(w.b, byte(cr.Op))
			w.strs(cr.Strs)
			w.uvarint(uint64(len(cr.Nums)))
			for _, n := range cr.Nums {
				w.uvarint(n)
			}
		}
	}
	seal(w.b)
	return w.b
}

// seal fills in the header's body length and checksum. A body too long
// for the length field is far over MaxCompiledSize, which Compile and
// Unmarshal both refuse.
func seal(b []byte) {
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-headerLen))
	binary.BigEndian.PutUint32(b[offChecksum:], checksum(b))
}

type writer struct{ b []byte }

func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *writer) strs(ss []string) {
	w.uvarint(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

// DecodeError says where in untrusted compiled bytes decoding failed.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("compiled bundle: byte offset %d: %s", e.Offset, e.Msg)
}

// Unmarshal decodes compiled bytes from an untrusted source. It enforces
// the size and count limits before allocating, checks every invariant the
// interpreter relies on, and rejects non-canonical encodings.
func Unmarshal(b []byte) (*Compiled, error) {
	if len(b) > MaxCompiledSize {
		return nil, &DecodeError{0, fmt.Sprintf("%d bytes, more than the limit of %d: %v", len(b), MaxCompiledSize, ErrTooLarge)}
	}
	if err := checkHeader(b); err != nil {
		return nil, err
	}
	r := &reader{b: b, off: headerLen}
	c := &Compiled{}
	c.Vendor = r.str("vendor")
	c.Channel = r.str("channel")
	c.Version = r.uvarint("version")
	c.Type.Name = r.str("template type name")
	c.Type.Version = uint32(r.bounded("template type version", math.MaxUint32))
	nf := r.count("fields", MaxFields)
	for i := 0; i < nf && r.err == nil; i++ {
		f := CompiledField{Name: r.str("field name"), Type: FieldType(r.byte("field type"))}
		f.Values = r.strs("enum values", maxEnumValues)
		c.Fields = append(c.Fields, f)
	}
	c.Platforms = r.strs("platforms", maxPlatforms)
	c.AgentVersions = r.str("agent versions")
	ni := r.count("instances", MaxInstances)
	total := 0
	for i := 0; i < ni && r.err == nil; i++ {
		in := CompiledInstance{ID: r.str("instance id"), Severity: Severity(r.byte("severity")), Action: Action(r.byte("action"))}
		nc := r.count("criteria", MaxCriteria)
		for j := 0; j < nc && r.err == nil; j++ {
			cr := CompiledCriterion{Field: int(r.bounded("criterion field", MaxFields)), Op: Op(r.byte("op"))}
			cr.Strs = r.strs("criterion values", MaxValues)
			nn := r.count("criterion numbers", MaxValues)
			for k := 0; k < nn && r.err == nil; k++ {
				cr.Nums = append(cr.Nums, r.uvarint("criterion number"))
			}
			total += len(cr.Strs) + len(cr.Nums)
			if total > MaxTotalValues {
				r.fail("more than %d criterion values in all", MaxTotalValues)
			}
			in.Criteria = append(in.Criteria, cr)
		}
		c.Instances = append(c.Instances, in)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, &DecodeError{r.off, fmt.Sprintf("%d trailing bytes after the encoded bundle", len(b)-r.off)}
	}
	if err := c.Check(); err != nil {
		return nil, &DecodeError{0, err.Error()}
	}
	if !bytes.Equal(c.Marshal(), b) {
		return nil, &DecodeError{0, "non-canonical encoding"}
	}
	return c, nil
}

// checkHeader verifies the magic, the format version, the body length and
// the checksum, so that no byte of a damaged body is ever decoded.
func checkHeader(b []byte) error {
	if !bytes.HasPrefix(b, magic) {
		return &DecodeError{0, "not a Ringfence compiled bundle (bad magic)"}
	}
	if len(b) == len(magic) {
		return &DecodeError{len(b), "truncated header: no format version"}
	}
	switch v := b[len(magic)]; v {
	case formatVersion:
	case 1:
		return &DecodeError{len(magic), "RFCB format 1 is no longer read (it has no checksum); recompile the bundle source with `ringfence content compile` to get format 2"}
	default:
		return &DecodeError{len(magic), fmt.Sprintf("unknown RFCB format %d (this build reads format %d)", v, formatVersion)}
	}
	if len(b) < headerLen {
		return &DecodeError{len(b), fmt.Sprintf("truncated header: %d bytes, want %d", len(b), headerLen)}
	}
	body := uint64(binary.BigEndian.Uint32(b[offLength:]))
	switch have := uint64(len(b) - headerLen); {
	case have < body:
		return &DecodeError{len(b), fmt.Sprintf("truncated: the header declares a %d-byte body, only %d bytes are present; the bytes are corrupt", body, have)}
	case have > body:
		return &DecodeError{headerLen + int(body), fmt.Sprintf("%d trailing bytes after the %d-byte body the header declares; the bytes are corrupt", have-body, body)}
	}
	if want, got := binary.BigEndian.Uint32(b[offChecksum:]), checksum(b); got != want {
		return &DecodeError{offChecksum, fmt.Sprintf("checksum mismatch: the header says CRC-32C %08x, the bytes give %08x; the bytes are corrupt (damaged after they were compiled)", want, got)}
	}
	return nil
}

type reader struct {
	b   []byte
	off int
	err *DecodeError
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &DecodeError{r.off, fmt.Sprintf(format, args...)}
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("%s: truncated or overlong number", what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) bounded(what string, limit uint64) uint64 {
	v := r.uvarint(what)
	if v > limit {
		r.fail("%s: %d is more than the limit of %d", what, v, limit)
		return 0
	}
	return v
}

// count reads an element count; every element takes at least one byte, so
// a count beyond the remaining bytes is refused before any allocation.
func (r *reader) count(what string, limit int) int {
	v := r.bounded(what+" count", uint64(limit))
	if r.err == nil && v > uint64(len(r.b)-r.off) {
		r.fail("%s count %d exceeds the remaining %d bytes", what, v, len(r.b)-r.off)
		return 0
	}
	return int(v)
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("%s: unexpected end of data", what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) str(what string) string {
	n := r.count(what+" length", MaxValueLen)
	if r.err != nil {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	if !utf8.ValidString(s) {
		r.fail("%s: invalid UTF-8", what)
		return ""
	}
	r.off += n
	return s
}

func (r *reader) strs(what string, limit int) []string {
	n := r.count(what, limit)
	var out []string
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.str(what))
	}
	return out
}

// Check verifies the invariants that the interpreter relies on. Compile
// output always passes; Unmarshal runs it on untrusted bytes.
func (c *Compiled) Check() error {
	if !namePattern.MatchString(c.Vendor) || !namePattern.MatchString(c.Channel) || !namePattern.MatchString(c.Type.Name) {
		return errors.New("vendor, channel or template type name is not a valid name")
	}
	if c.Version == 0 || c.Version > math.MaxInt64 || c.Type.Version == 0 {
		return errors.New("bundle or template type version is zero or too large")
	}
	if len(c.Fields) == 0 {
		return errors.New("template type has no fields")
	}
	names := map[string]bool{}
	for i, f := range c.Fields {
		if !namePattern.MatchString(f.Name) || names[f.Name] || !f.Type.valid() {
			return fmt.Errorf("field %d: bad or duplicate name, or unknown type", i+1)
		}
		names[f.Name] = true
		if (f.Type == TypeEnum) != (len(f.Values) > 0) {
			return fmt.Errorf("field %d: enum values on a non-enum field or an enum without values", i+1)
		}
		seen := map[string]bool{}
		for _, v := range f.Values {
			if v == "" || seen[v] {
				return fmt.Errorf("field %d: empty or duplicate enum value", i+1)
			}
			seen[v] = true
		}
	}
	if !slices.IsSorted(c.Platforms) || len(slices.Compact(slices.Clone(c.Platforms))) != len(c.Platforms) {
		return errors.New("platforms are not sorted and unique")
	}
	if r, err := ParseVersionRange(c.AgentVersions); err != nil || r.String() != c.AgentVersions {
		return fmt.Errorf("agent version range %q is not canonical", c.AgentVersions)
	}
	if len(c.Instances) == 0 {
		return errors.New("no instances")
	}
	ids := map[string]bool{}
	for i := range c.Instances {
		in := &c.Instances[i]
		if !idPattern.MatchString(in.ID) || ids[in.ID] {
			return fmt.Errorf("instance %d: bad or duplicate id", i+1)
		}
		ids[in.ID] = true
		if _, ok := severityNames[in.Severity]; !ok {
			return fmt.Errorf("instance %s: unknown severity %d", in.ID, in.Severity)
		}
		if _, ok := actionNames[in.Action]; !ok {
			return fmt.Errorf("instance %s: unknown action %d", in.ID, in.Action)
		}
		if len(in.Criteria) == 0 {
			return fmt.Errorf("instance %s: no criteria", in.ID)
		}
		for j, cr := range in.Criteria {
			if err := c.checkCriterion(cr); err != nil {
				return fmt.Errorf("instance %s: criterion %d: %w", in.ID, j+1, err)
			}
		}
	}
	return nil
}

func (c *Compiled) checkCriterion(cr CompiledCriterion) error {
	if cr.Field < 1 || cr.Field > len(c.Fields) {
		return fmt.Errorf("input %d does not exist (%d fields)", cr.Field, len(c.Fields))
	}
	f := c.Fields[cr.Field-1]
	if !opAllowed(f.Type, cr.Op) {
		return fmt.Errorf("op %s not allowed on %s field", cr.Op, f.Type)
	}
	ns, nn := len(cr.Strs), len(cr.Nums)
	numeric := !f.Type.stringLike()
	switch cr.Op {
	case OpAny:
		if ns+nn != 0 {
			return errors.New("op any with values")
		}
		return nil
	case OpRange:
		if ns != 0 || nn != 2 {
			return errors.New("range needs exactly min and max")
		}
		if (f.Type == TypeInt && int64(cr.Nums[0]) > int64(cr.Nums[1])) || (f.Type == TypeUint && cr.Nums[0] > cr.Nums[1]) {
			return errors.New("range min above max")
		}
		return nil
	case OpIn:
		if (numeric && (nn == 0 || ns != 0)) || (!numeric && (ns == 0 || nn != 0)) {
			return errors.New("in needs values of the field's kind")
		}
		if !slices.IsSorted(cr.Strs) || !slices.IsSorted(cr.Nums) ||
			len(slices.Compact(slices.Clone(cr.Strs))) != ns || len(slices.Compact(slices.Clone(cr.Nums))) != nn {
			return errors.New("in values are not sorted and unique")
		}
	default:
		if (numeric && (nn != 1 || ns != 0)) || (!numeric && (ns != 1 || nn != 0)) {
			return errors.New("op needs exactly one value of the field's kind")
		}
	}
	if f.Type == TypeBool {
		for _, n := range cr.Nums {
			if n > 1 {
				return errors.New("bool value other than 0 or 1")
			}
		}
	}
	for _, s := range cr.Strs {
		if err := checkNormalised(f, cr.Op, s); err != nil {
			return err
		}
	}
	return nil
}

// checkNormalised verifies that a string value is in the form the compiler
// produces, so the interpreter's folded and canonical comparisons hold.
func checkNormalised(f CompiledField, op Op, s string) error {
	switch {
	case op == OpRegex:
		return checkRegex(s, f.Type.folded(), MaxRegexProgram)
	case op == OpCIDR:
		p, err := netip.ParsePrefix(s)
		if err != nil || p.String() != s || p.Masked() != p || p.Addr().Is4In6() {
			return fmt.Errorf("cidr %q is not canonical", s)
		}
	case op != OpEquals && op != OpIn && s == "":
		return fmt.Errorf("empty value for op %s", op)
	case f.Type == TypeIP:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Unmap().String() != s {
			return fmt.Errorf("ip %q is not canonical", s)
		}
	case f.Type == TypeSHA256:
		if !isSHA256(s) || FoldASCII(s) != s {
			return fmt.Errorf("sha256 %q is not canonical", s)
		}
	case f.Type == TypeEnum:
		if !slices.Contains(f.Values, s) {
			return fmt.Errorf("enum value %q unknown", s)
		}
	case f.Type.folded():
		if FoldASCII(s) != s {
			return fmt.Errorf("path value %q is not folded", s)
		}
	}
	return nil
}

// IsCompiled reports whether b starts like a compiled bundle, of any
// format version: the magic, then nothing or a byte that cannot continue
// YAML text (a control byte, or a damaged one that is not UTF-8).
// "RFCB: x" is YAML text, not a compiled bundle.
func IsCompiled(b []byte) bool {
	if !bytes.HasPrefix(b, magic) {
		return false
	}
	if len(b) == len(magic) {
		return true
	}
	r, n := utf8.DecodeRune(b[len(magic):])
	return r == utf8.RuneError && n <= 1 || notYAMLText(r)
}

// compiledSourceError is what source reading says about compiled bytes,
// which would otherwise be refused for their first control character.
func compiledSourceError(file string, b []byte) *SourceError {
	if !IsCompiled(b) || len(b) == len(magic) {
		return nil
	}
	return &SourceError{Pos: Pos{File: file}, Offset: -1, Msg: fmt.Sprintf(
		"this is a compiled bundle (RFCB format %d), not a bundle source; validate and compile read the YAML or JSON source, "+
			"`ringfence content preflight` and `ringfence content eval` read compiled bundles", b[len(magic)])}
}

// TargetsOf recovers a compiled bundle's targets.
func TargetsOf(c *Compiled) (Targets, error) {
	r, err := ParseVersionRange(c.AgentVersions)
	if err != nil {
		return Targets{}, err
	}
	return Targets{Platforms: c.Platforms, AgentVersions: r}, nil
}
