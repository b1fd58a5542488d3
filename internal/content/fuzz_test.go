package content_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ringfence/ringfence/internal/content"
)

// The fuzz targets below cover every decoder of untrusted bytes in the
// package (compiled bundles, bundle sources, event lines) and the
// interpreter itself. Their seed corpora run with plain `go test`; fuzz one
// with, for example,
//
//	go test -run='^$' -fuzz='^FuzzEval$' -fuzztime=30s ./internal/content/

const examplesDir = "../../examples/content"

// sinkTypeYAML has one field of every type, so that seeds and the fixed
// bundles of FuzzEval reach every operator.
const sinkTypeYAML = `kind: TemplateType
name: sink
version: 1
fields:
  - {index: 1, name: s, type: string}
  - {index: 2, name: p, type: path}
  - {index: 3, name: h, type: sha256}
  - {index: 4, name: i, type: int}
  - {index: 5, name: u, type: uint}
  - {index: 6, name: b, type: bool}
  - {index: 7, name: ip, type: ip}
  - {index: 8, name: e, type: enum, values: [red, green, blue]}
`

// sinkBundleYAML uses every operator on every field type that takes it.
const sinkBundleYAML = `kind: Bundle
vendor: acme
channel: sink
version: 1
template_type: sink@1
targets:
  platforms: [windows, linux]
  agent_versions: ">=7.11 <8.0"
instances:
  - id: s-equals-empty
    criteria: [{field: s, op: equals, value: ""}]
  - id: s-ops
    severity: low
    action: log
    criteria:
      - {field: s, op: prefix, value: ab}
      - {field: s, op: suffix, value: yz}
      - {field: s, op: contains, value: mm}
  - id: s-glob
    criteria: [{field: 1, op: glob, value: "a*b?c"}]
  - id: s-regex
    criteria: [{field: s, op: regex, value: "^ab+c"}]
  - id: s-regex-unanchored
    criteria: [{field: s, op: regex, value: "x|y"}]
  - id: s-glob-fffd
    criteria: [{field: s, op: glob, value: "\uFFFD*z"}]
  - id: s-regex-fffd
    criteria: [{field: s, op: regex, value: "^\uFFFDz"}]
  - id: s-in
    criteria: [{field: s, op: in, values: [b, a, "", b]}]
  - id: p-equals
    criteria: [{field: p, op: equals, value: 'C:\Windows\X.exe'}]
  - id: p-ops
    criteria:
      - {field: p, op: prefix, value: 'C:\Users\'}
      - {field: p, op: suffix, value: '.EXE'}
      - {field: p, op: contains, value: '\Temp\'}
  - id: p-glob
    criteria: [{field: p, op: glob, value: '*\TEMP\*.exe'}]
  - id: p-regex
    criteria: [{field: p, op: regex, value: '^c:\\users\\[a-z]+$'}]
  - id: p-in
    criteria: [{field: p, op: in, values: ['C:\A', 'c:\b']}]
  - id: h-equals
    criteria: [{field: h, op: equals, value: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08}]
  - id: h-in
    criteria:
      - field: h
        op: in
        values:
          - "0000000000000000000000000000000000000000000000000000000000000000"
          - ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
  - id: i-ops
    criteria:
      - {field: i, op: range, min: -10, max: 10}
      - {field: i, op: in, values: [-5, 0, 5]}
  - id: i-equals
    criteria: [{field: i, op: equals, value: -9223372036854775808}]
  - id: i-range-open
    criteria: [{field: i, op: range, min: 100}]
  - id: u-ops
    criteria:
      - {field: u, op: range, max: 1000}
      - {field: u, op: in, values: [0, 7, 0x10]}
  - id: u-equals
    criteria: [{field: u, op: equals, value: 18446744073709551615}]
  - id: b-equals
    criteria: [{field: b, op: equals, value: true}, {field: e, op: any}]
  - id: ip-equals
    criteria: [{field: ip, op: equals, value: "::ffff:10.0.0.1"}]
  - id: ip-cidr4
    criteria: [{field: ip, op: cidr, value: 10.0.0.0/8}]
  - id: ip-cidr6
    criteria: [{field: ip, op: cidr, value: "2001:db8::/32"}]
  - id: ip-cidr-mapped
    criteria: [{field: ip, op: cidr, value: "::ffff:192.168.0.0/112"}]
  - id: ip-in
    criteria: [{field: ip, op: in, values: [192.0.2.1, "2001:db8::1", "::1"]}]
  - id: e-equals
    criteria: [{field: e, op: equals, value: red}]
  - id: e-in
    criteria: [{field: 8, op: in, values: [green, blue]}]
  - id: all-any
    criteria: [{field: s, op: any}, {field: ip, op: any}]
  - id: mixed
    severity: critical
    action: block
    criteria:
      - {field: e, op: in, values: [red, blue]}
      - {field: p, op: suffix, value: '\svchost.exe'}
      - {field: u, op: range, min: 1, max: 65535}
      - {field: ip, op: cidr, value: 192.0.2.0/24}
  # Inline flags, flag groups and non-ASCII case (issue 15). On a path
  # field a regex runs as (?i) plus the pattern: (?-i) turns folding off in
  # its scope, and (?i) folds Unicode (the Kelvin sign is a k).
  - id: p-regex-case-sensitive
    criteria: [{field: p, op: regex, value: '(?-i)^C:\\Win'}]
  - id: p-regex-flag-group
    criteria: [{field: p, op: regex, value: '^(?-i:ABC)d'}]
  - id: p-regex-flags-switch
    criteria: [{field: p, op: regex, value: '^(?-i)X(?i)y'}]
  - id: p-regex-unicode-fold
    criteria: [{field: p, op: regex, value: '^\x{212a}é'}]
  - id: s-regex-inline-i
    criteria: [{field: s, op: regex, value: '^(?i)AB'}]
  - id: s-regex-dotall
    criteria: [{field: s, op: regex, value: '(?s)^a.b$'}]
  - id: s-regex-multiline
    criteria: [{field: s, op: regex, value: '(?m)^b$'}]
  - id: s-regex-ungreedy
    criteria: [{field: s, op: regex, value: '(?U)^a+b'}]
  - id: p-glob-multibyte
    criteria: [{field: p, op: glob, value: '*\é?*.EXE'}]
  - id: s-glob-stars
    criteria: [{field: s, op: glob, value: '*a?a*a?b*'}]
`

// fixture is what the fuzz targets share: the examples catalog (plus the
// sink type) and compiled bundles to run events through.
type fixture struct {
	cat      *content.Catalog
	sources  map[string][]byte   // bundle sources by name
	compiled []*content.Compiled // ipc-292, channel-291, sink
	bytes    [][]byte            // their canonical encodings
	dicts    map[*content.Compiled]*dict
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

// loadFixture loads the examples once per process: fuzz workers call the
// fuzz function many times, and the seed run calls every target.
func loadFixture(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() { fixtureVal, fixtureErr = buildFixture() })
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return fixtureVal
}

func buildFixture() (*fixture, error) {
	cat, err := content.LoadCatalog(filepath.Join(examplesDir, "template-types"), filepath.Join(examplesDir, "manifests"))
	if err != nil {
		return nil, err
	}
	sink, err := content.ParseTemplateType("sink.yaml", []byte(sinkTypeYAML))
	if err != nil {
		return nil, err
	}
	cat.Types[sink.Ref()] = sink
	fx := &fixture{cat: cat, sources: map[string][]byte{"sink.yaml": []byte(sinkBundleYAML)}, dicts: map[*content.Compiled]*dict{}}
	for _, name := range []string{"ipc-292.yaml", "channel-291.yaml"} {
		b, err := os.ReadFile(filepath.Join(examplesDir, "bundles", name))
		if err != nil {
			return nil, err
		}
		fx.sources[name] = b
	}
	for _, name := range []string{"ipc-292.yaml", "channel-291.yaml", "sink.yaml"} {
		b, err := content.ParseBundle(name, fx.sources[name])
		if err != nil {
			return nil, err
		}
		c, fs := content.Compile(b, cat.Types[b.TemplateType])
		if c == nil {
			return nil, fmt.Errorf("%s does not compile: %v", name, fs)
		}
		fx.compiled = append(fx.compiled, c)
		fx.bytes = append(fx.bytes, c.Marshal())
		fx.dicts[c] = newDict(c)
	}
	return fx, nil
}

func (fx *fixture) dict(c *content.Compiled) *dict {
	if d, ok := fx.dicts[c]; ok {
		return d
	}
	return newDict(c)
}

// fataler is what the checks need from *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

// evalBoth runs e through the indexed evaluator and the reference and
// fails on any difference, or on a result that breaks Result's contract.
// It returns the number of matches.
func evalBoth(t fataler, ev *content.Evaluator, ref *content.Reference, e content.Event, got, want *content.Result) int {
	ev.Eval(e, got)
	ref.Eval(e, want)
	if !slices.Equal(got.Matches, want.Matches) || !slices.Equal(got.Errors, want.Errors) {
		t.Fatalf("bundle %s: event %s:\nindexed:   matches %v errors %v\nreference: matches %v errors %v",
			ev.Compiled().Name(), fmtEvent(e), got.Matches, got.Errors, want.Matches, want.Errors)
	}
	if err := checkResult(ev.Compiled(), e, *got); err != nil {
		t.Fatalf("bundle %s: event %s: %v", ev.Compiled().Name(), fmtEvent(e), err)
	}
	return len(got.Matches)
}

// checkResult checks the invariants of a Result: matches ascending and
// unique, errors ascending and one per instance, no instance both matched
// and in error, fields and reasons in range, and nothing at all for an
// event of another template type.
func checkResult(c *content.Compiled, e content.Event, r content.Result) error {
	if e.Type != c.Type && (len(r.Matches) > 0 || len(r.Errors) > 0) {
		return fmt.Errorf("event of type %s against a %s bundle gave a result", e.Type, c.Type)
	}
	for k, m := range r.Matches {
		if m < 0 || int(m) >= len(c.Instances) || (k > 0 && m <= r.Matches[k-1]) {
			return fmt.Errorf("matches %v: out of range or not strictly ascending", r.Matches)
		}
	}
	for k, ie := range r.Errors {
		if ie.Instance < 0 || int(ie.Instance) >= len(c.Instances) || (k > 0 && ie.Instance <= r.Errors[k-1].Instance) {
			return fmt.Errorf("errors %v: out of range or not strictly ascending", r.Errors)
		}
		if ie.Field < 1 || ie.Field > len(c.Fields) {
			return fmt.Errorf("error %v: field out of range", ie)
		}
		if ie.Reason < content.ReasonMissingInput || ie.Reason > content.ReasonBadIP {
			return fmt.Errorf("error %v: unknown reason", ie)
		}
		if _, both := slices.BinarySearch(r.Matches, ie.Instance); both {
			return fmt.Errorf("instance %d both matched and failed", ie.Instance)
		}
		if ie.Reason == content.ReasonMissingInput && ie.Field <= len(e.Inputs) && e.Inputs[ie.Field-1].Kind != content.KindNone {
			return fmt.Errorf("error %v: input %d is present", ie, ie.Field)
		}
	}
	return nil
}

func fmtEvent(e content.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [", e.Type)
	for i, v := range e.Inputs {
		if i > 0 {
			b.WriteString(", ")
		}
		switch v.Kind {
		case content.KindString:
			if len(v.Str) > 200 {
				fmt.Fprintf(&b, "%q...(%d bytes)", v.Str[:200], len(v.Str))
			} else {
				fmt.Fprintf(&b, "%q", v.Str)
			}
		case content.KindInt:
			fmt.Fprintf(&b, "int %d", int64(v.Num))
		case content.KindUint:
			fmt.Fprintf(&b, "uint %d", v.Num)
		default:
			fmt.Fprintf(&b, "%s(%d) %q %d", v.Kind, uint8(v.Kind), v.Str, v.Num)
		}
	}
	b.WriteString("]")
	return b.String()
}

// dict holds the values a compiled bundle compares inputs with, so that
// generated events hit its criteria instead of missing everything.
type dict struct {
	strs []string
	nums []uint64
}

func newDict(c *content.Compiled) *dict {
	d := &dict{strs: []string{"", "x", `C:\Windows\System32\svchost.exe`, "192.0.2.1", "::ffff:10.1.2.3", "fe80::1%eth0"}}
	d.nums = []uint64{0, 1, 2, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}
	for _, f := range c.Fields {
		d.strs = append(d.strs, f.Values...)
	}
	// Texts the patterns match come last, so the indexes the seed corpus
	// uses for the values themselves stay put.
	var witnesses []string
	for _, in := range c.Instances {
		for _, cr := range in.Criteria {
			for _, s := range cr.Strs {
				if p, err := netip.ParsePrefix(s); err == nil {
					s = p.Addr().String()
				}
				d.strs = append(d.strs, s)
			}
			d.nums = append(d.nums, cr.Nums...)
			switch folded := c.Fields[cr.Field-1].Type == content.TypePath; cr.Op {
			case content.OpRegex:
				// Caseless letters in each case of their fold orbit, so
				// that events reach inline flags and Unicode folding.
				for steps := range 3 {
					witnesses = append(witnesses, regexWitness(cr.Strs[0], folded, steps))
				}
			case content.OpGlob:
				for _, one := range []string{"é", "\xff"} {
					witnesses = append(witnesses, strings.NewReplacer("*", "", "?", one).Replace(cr.Strs[0]))
				}
			}
		}
	}
	d.strs = append(d.strs, witnesses...)
	return d
}

// regexWitness builds a text the pattern matches by the simplest choice
// at each node, with each caseless literal rune moved foldSteps along its
// fold orbit (so "k" becomes "\u212a", then "K").
func regexWitness(pattern string, folded bool, foldSteps int) string {
	return regexText(pattern, folded, 50, simplest{foldSteps})
}

// simplest takes the first choice everywhere; '.' is a newline under
// (?s) and a non-ASCII letter otherwise, which folding must not break.
type simplest struct{ fold int }

func (c simplest) foldSteps() int          { return c.fold }
func (simplest) classRange(int) int        { return 0 }
func (simplest) classRune(lo, _ rune) rune { return lo }
func (simplest) lineBreak() bool           { return false }
func (simplest) repeat(lo, _ int) int      { return lo }
func (simplest) alternative(int) int       { return 0 }
func (simplest) anyChar(newline bool) string {
	if newline {
		return "\n"
	}
	return "é"
}

// typical returns a plausible value of the field's type.
func typical(f content.CompiledField) content.Value {
	switch f.Type {
	case content.TypeInt:
		return content.Int(-1)
	case content.TypeUint:
		return content.Uint(445)
	case content.TypeBool:
		return content.Bool(true)
	case content.TypePath:
		return content.Str(`C:\Users\Bob\AppData\Local\Temp\x.EXE`)
	case content.TypeIP:
		return content.Str("10.1.2.3")
	case content.TypeSHA256:
		return content.Str(strings.Repeat("F", 64))
	case content.TypeEnum:
		return content.Str(f.Values[len(f.Values)-1])
	}
	return content.Str("abmmyz")
}

// probeEvents builds events for a compiled bundle: typical inputs, every
// prefix of them, and for every criterion events that carry one of its own
// values (as written and in upper case) on the field it reads.
func probeEvents(c *content.Compiled, limit int) []content.Event {
	base := make([]content.Value, len(c.Fields))
	for i, f := range c.Fields {
		base[i] = typical(f)
	}
	evs := []content.Event{{Type: c.Type, Inputs: base}, {Type: content.TypeRef{Name: c.Type.Name, Version: c.Type.Version + 1}, Inputs: base}}
	for k := 0; k < len(base); k += 1 + len(base)/4 {
		evs = append(evs, content.Event{Type: c.Type, Inputs: base[:k]})
	}
	for _, in := range c.Instances {
		all := slices.Clone(base)
		for _, cr := range in.Criteria {
			var vs []content.Value
			for _, s := range cr.Strs {
				if p, err := netip.ParsePrefix(s); err == nil {
					s = p.Addr().String()
				}
				vs = append(vs, content.Str(s), content.Str(strings.ToUpper(s)))
			}
			for _, n := range cr.Nums {
				vs = append(vs, content.Uint(n), content.Int(int64(n)), content.Bool(n == 1))
			}
			for _, v := range vs {
				one := slices.Clone(base)
				one[cr.Field-1] = v
				all[cr.Field-1] = v
				evs = append(evs, content.Event{Type: c.Type, Inputs: one})
			}
		}
		evs = append(evs, content.Event{Type: c.Type, Inputs: all})
		if len(evs) >= limit {
			break
		}
	}
	return evs[:min(len(evs), limit)]
}

// runProbes evaluates the probe events with both evaluators.
func runProbes(t *testing.T, c *content.Compiled, limit int) {
	t.Helper()
	ev, err := content.NewEvaluator(c)
	if err != nil {
		t.Fatalf("NewEvaluator refuses a bundle that decoded: %v", err)
	}
	ref, err := content.NewReference(c)
	if err != nil {
		t.Fatalf("NewReference refuses a bundle that decoded: %v", err)
	}
	var got, want content.Result
	for _, e := range probeEvents(c, limit) {
		evalBoth(t, ev, ref, e, &got, &want)
	}
}

// FuzzUnmarshal feeds arbitrary bytes to the compiled-form decoder. It
// must never panic; a refusal must be a *DecodeError with an offset inside
// the input; anything accepted must re-encode to exactly the same bytes
// (one bundle, one content hash), pass Check, load into the interpreter and
// the reference evaluator, and evaluate probe events the same in both.
//
// A mutated body almost never carries a matching checksum, so each input
// is also tried resealed (length and checksum recomputed): the fuzzer then
// explores the body decoder behind the checksum as well as the header.
func FuzzUnmarshal(f *testing.F) {
	fx := loadFixture(f)
	for _, b := range fx.bytes {
		f.Add(b)
		for _, v := range mutations(b) {
			f.Add(v)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("RFCB"))
	f.Add([]byte("RFCB\x01"))
	f.Add([]byte("RFCB\x02"))
	f.Add([]byte("RFCB\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkUnmarshal(t, data)
		if sealed := content.Reseal(data); !bytes.Equal(sealed, data) {
			checkUnmarshal(t, sealed)
		}
	})
}

func checkUnmarshal(t *testing.T, data []byte) {
	t.Helper()
	c, err := content.Unmarshal(data)
	if err != nil {
		var de *content.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
		}
		if de.Offset < 0 || de.Offset > len(data) {
			t.Fatalf("error %v: offset outside the %d input bytes", err, len(data))
		}
		return
	}
	if out := c.Marshal(); !bytes.Equal(out, data) {
		t.Fatalf("accepted bytes re-encode differently:\n in  %x\n out %x", data, out)
	}
	if err := c.Check(); err != nil {
		t.Fatalf("accepted bundle fails Check: %v", err)
	}
	if _, err := content.TargetsOf(c); err != nil {
		t.Fatalf("accepted bundle has unreadable targets: %v", err)
	}
	runProbes(t, c, 64)
}

// mutations returns truncated and corrupted variants of a compiled
// bundle: the decoder must refuse all of them without panicking. The
// resealed ones carry a valid header, so they reach the body decoder.
func mutations(b []byte) [][]byte {
	const body = 13 // the header's length: the vendor's length is the first body byte
	var out [][]byte
	for _, n := range []int{0, 3, 4, 5, 6, 9, 12, 13, 14, len(b) / 3, len(b) / 2, len(b) - 1} {
		if n >= 0 && n < len(b) {
			out = append(out, b[:n], content.Reseal(b[:n]))
		}
	}
	// Flipped bytes across the header and the instances.
	for _, off := range []int{4, 5, 8, 9, 12, body, body + 1, body + 5, body + 7, body + 15, len(b) / 4, len(b) / 2, len(b) * 3 / 4, len(b) - 2} {
		if off > 0 && off < len(b) {
			m := slices.Clone(b)
			m[off] ^= 0xff
			out = append(out, m)
			if off >= body {
				out = append(out, content.Reseal(m))
			}
		}
	}
	// Trailing garbage.
	out = append(out, append(slices.Clone(b), 0), content.Reseal(append(slices.Clone(b), 0)))
	// Vendor length as an overlong varint: same value, non-canonical bytes.
	over := append(slices.Clone(b[:body]), b[body]|0x80, 0)
	out = append(out, content.Reseal(append(over, b[body+1:]...)))
	// Vendor length beyond the data, and beyond every limit.
	out = append(out, content.Reseal(append(slices.Clone(b[:body]), binary.AppendUvarint(nil, 1<<40)...)))
	out = append(out, content.Reseal(append(append(slices.Clone(b[:body]), 0x7f), b[body+1:]...)))
	return out
}

// FuzzParseAndValidate feeds arbitrary bytes to the bundle loader and the
// validator, against the examples catalog plus the sink type. Neither may
// panic; source errors must name the file; findings must name the bundle
// and carry a rule and a message; and a bundle that compiles must compile
// deterministically to bytes that Unmarshal accepts with the same content
// hash, and that the interpreter and the reference evaluate alike.
func FuzzParseAndValidate(f *testing.F) {
	fx := loadFixture(f)
	for _, name := range []string{"ipc-292.yaml", "channel-291.yaml", "sink.yaml"} {
		src := fx.sources[name]
		f.Add(src)
		if j, err := yamlToJSON(src); err == nil {
			f.Add(j)
		} else {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add(src[:len(src)/2])
		f.Add(bytes.Replace(src, []byte("  "), []byte("\t"), 1))
		f.Add(bytes.Replace(src, []byte("version: "), []byte("version: 0"), 1))
	}
	for _, s := range brokenBundles {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := content.ParseBundle("fuzz.yaml", data)
		if err != nil {
			var one *content.SourceError
			var all content.SourceErrors
			if !errors.As(err, &one) && !errors.As(err, &all) {
				t.Fatalf("parse error %v (%T) is not a source error", err, err)
			}
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("parse error does not name the file: %v", err)
			}
			return
		}
		v := fx.cat.Validate(b, 0)
		for _, fd := range v.Findings {
			if fd.Level != content.LevelError && fd.Level != content.LevelWarning {
				t.Fatalf("finding %+v: bad level", fd)
			}
			if fd.Rule == "" || fd.Message == "" || fd.Bundle != b.Name() {
				t.Fatalf("finding %+v: missing rule or message, or bundle is not %s", fd, b.Name())
			}
		}
		if v.Accepted() && len(v.Targeted) == 0 {
			t.Fatalf("accepted a bundle that targets no agent")
		}
		if v.Compiled == nil {
			if v.Findings.Errors() == 0 {
				t.Fatalf("no compiled form but no error finding either: %v", v.Findings)
			}
			return
		}
		enc := v.Compiled.Marshal()
		c2, fs := content.Compile(b, fx.cat.Types[b.TemplateType])
		if c2 == nil {
			t.Fatalf("second compile fails: %v", fs)
		}
		if again := c2.Marshal(); !bytes.Equal(again, enc) {
			t.Fatalf("compiling twice gives two encodings")
		}
		dec, err := content.Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal refuses the compiler's output: %v", err)
		}
		if h1, h2 := content.Hash(enc), content.Hash(dec.Marshal()); h1 != h2 {
			t.Fatalf("content hash changes across Marshal/Unmarshal: %s then %s", h1, h2)
		}
		runProbes(t, dec, 32)
	})
}

// yamlToJSON renders a YAML bundle as the equivalent JSON document.
func yamlToJSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	return json.MarshalIndent(v, "", "  ")
}

// brokenBundles are sources the loader must refuse (or, for a few, accept
// and the validator refuse) with a message rather than a panic.
var brokenBundles = []string{
	"",
	"\x00",
	"\xff\xfe",
	"[]",
	"null",
	"---\nvendor: a\n---\nvendor: b\n",
	"vendor: acme\nvendor: acme\n",
	"vendor: &a acme\nchannel: *a\n",
	"<<: {vendor: acme}\n",
	"{" + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}",
	"vendor: acme\nchannel: ipc\nversion: 1\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7\"}\ninstances: []\n",
	"vendor: acme\nchannel: ipc\nversion: 18446744073709551616\ntemplate_type: ipc@3\ntargets: {agent_versions: \"\"}\ninstances: [{id: a, criteria: [{field: 21, op: any}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@03\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: 0, op: equals, value: 1}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: remote_host, op: cidr, value: \"10.0.0.1/8\"}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: pipe_name, op: regex, value: \"(a{1000}){1000}\"}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: tid, op: range, min: 5, max: -5}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: is_remote, op: equals, value: yes}, {field: pipe_mode, op: in, values: [byte, null]}]}]\n",
	"vendor: acme\nchannel: ipc\nversion: 3\ntemplate_type: ipc@3\ntargets: {agent_versions: \">=7.11\"}\ninstances: [{id: a, criteria: [{field: pipe_name, op: prefix, value: [x]}, {field: 22, op: any}]}, {id: a, criteria: [{field: pipe_name, op: any}]}]\n",
	`{"vendor":"acme","channel":"ipc","version":5,"template_type":"ipc@3","targets":{"platforms":["windows"],"agent_versions":">=7.12"},"instances":[{"id":"x","criteria":[{"field":21,"op":"equals","value":"S-1-5-18"}]}]}`,
}

// FuzzEval evaluates events decoded from fuzz bytes, with inputs of every
// kind (including kinds that do not exist, invalid UTF-8, over-long strings
// and extreme numbers) and of any count, on a compiled bundle: the fuzzed
// bundle bytes when they decode, otherwise one of the fixed bundles. The
// interpreter must not panic and must agree exactly with the reference.
func FuzzEval(f *testing.F) {
	fx := loadFixture(f)
	for i := range fx.compiled {
		sel := []byte{byte(i)}
		f.Add(sel, []byte{})
		f.Add(sel, []byte{0, 0xff})
		f.Add(sel, []byte{3, 20, 1, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 1, 8, 1, 9, 1, 10, 1, 11, 1, 12, 1, 13, 1, 14, 1, 15, 1, 16, 1, 17, 1, 18, 1, 19})
		f.Add(sel, []byte{1, 30, 2, 7, 3, 4, 0xff, 0xfe, 'a', 'b', 4, 0, 0, 0, 0, 0, 0, 0, 0x80, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 6, 2, 8, 200, 9, 7, 3})
	}
	f.Add(fx.bytes[0], []byte{0, 21, 1, 1, 2, 2, 7, 0, 7, 1})
	f.Fuzz(func(t *testing.T, bundle, data []byte) {
		var c *content.Compiled
		if len(bundle) > 1 {
			c, _ = content.Unmarshal(content.Reseal(bundle)) // a mutated body rarely keeps its checksum
		}
		if c == nil {
			sel := 0
			if len(bundle) > 0 {
				sel = int(bundle[0]) % len(fx.compiled)
			}
			c = fx.compiled[sel]
		}
		ev, err := content.NewEvaluator(c)
		if err != nil {
			t.Fatalf("NewEvaluator: %v", err)
		}
		ref, err := content.NewReference(c)
		if err != nil {
			t.Fatalf("NewReference: %v", err)
		}
		var got, want content.Result
		// One evaluator for all the events, so scratch state carried from
		// one event to the next is exercised too.
		for _, e := range decodeEvents(c, fx.dict(c), data) {
			evalBoth(t, ev, ref, e, &got, &want)
		}
	})
}

// longStr and tooLongStr sit at and just past MaxInputLen.
var (
	longStr    = strings.Repeat("a", content.MaxInputLen-1) + "c"
	tooLongStr = strings.Repeat("a", content.MaxInputLen) + "c"
)

type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) take(n int) []byte {
	n = min(n, len(s.b))
	out := s.b[:n]
	s.b = s.b[n:]
	return out
}

func (s *byteSource) u64() uint64 {
	var buf [8]byte
	copy(buf[:], s.take(8))
	return binary.LittleEndian.Uint64(buf[:])
}

// decodeEvents turns fuzz bytes into up to four events for c. Per event:
// a type byte (mostly c's type), an input count byte (0xff: past
// MaxFields), then per input an opcode byte and its operands.
func decodeEvents(c *content.Compiled, d *dict, data []byte) []content.Event {
	src := &byteSource{b: data}
	var evs []content.Event
	for k := 0; k < 4 && (k == 0 || len(src.b) > 0); k++ {
		e := content.Event{Type: c.Type}
		switch sel := src.next(); sel % 16 {
		case 14:
			e.Type.Version++
		case 15:
			e.Type.Name += "x"
		}
		n := int(src.next()) % (len(c.Fields) + 3)
		if len(data) > 0 && data[len(data)-1] == 0xff {
			n = content.MaxFields + 2
		}
		for range n {
			e.Inputs = append(e.Inputs, decodeValue(src, d))
		}
		evs = append(evs, e)
	}
	return evs
}

func decodeValue(src *byteSource, d *dict) content.Value {
	switch op := src.next(); op % 12 {
	case 0:
		return content.Value{}
	case 1:
		return content.Str(d.strs[int(src.next())%len(d.strs)])
	case 2: // a dictionary string changed the way sensors and attackers do
		s := d.strs[int(src.next())%len(d.strs)]
		switch m := src.next(); m % 6 {
		case 0:
			s = strings.ToUpper(s)
		case 1:
			s += string(src.take(int(m / 6 % 8)))
		case 2:
			s = string(src.take(int(m/6%8))) + s
		case 3:
			s = string(src.take(int(m/6%8))) + strings.ToUpper(s) + string(src.take(2))
		case 4:
			if len(s) > 0 {
				s = s[:int(m/6)%len(s)]
			}
		case 5:
			s = strings.ToLower(s)
		}
		return content.Str(s)
	case 3:
		return content.Str(string(src.take(int(src.next()))))
	case 4:
		return content.Int(int64(src.u64()))
	case 5:
		return content.Uint(src.u64())
	case 6:
		return content.Value{Kind: content.KindBool, Num: uint64(src.next() % 3)}
	case 7: // a dictionary number, off by at most one, as int or uint
		n := d.nums[int(src.next())%len(d.nums)]
		m := src.next()
		n += uint64(m%3) - 1
		if m&4 != 0 {
			return content.Int(int64(n))
		}
		return content.Uint(n)
	case 8:
		return content.Value{Kind: content.Kind(src.next()), Str: string(src.take(int(src.next() % 8))), Num: src.u64()}
	case 9:
		if src.next()%2 == 0 {
			return content.Str(longStr)
		}
		return content.Str(tooLongStr)
	case 10:
		return content.Int(-int64(src.next()))
	default:
		return content.Value{Kind: content.KindString, Str: d.strs[int(src.next())%len(d.strs)], Num: src.u64()}
	}
}

// FuzzParseEvent feeds arbitrary lines to the event decoder. It must never
// panic; an accepted event must have a well-formed type and at most
// MaxFields inputs of known kinds, must survive a JSON round trip
// unchanged, and must evaluate alike in the interpreter and the reference.
func FuzzParseEvent(f *testing.F) {
	fx := loadFixture(f)
	sample, err := os.ReadFile(filepath.Join(examplesDir, "events", "ipc-sample.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	for line := range bytes.Lines(sample) {
		f.Add(bytes.TrimSpace(line))
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"template_type":"ipc@3"}`, `{"template_type":"ipc@3","inputs":null}`,
		`{"template_type":"ipc@3","inputs":[]} {}`, `{"template_type":"ipc@3","inputs":[1.5]}`,
		`{"template_type":"ipc@3","inputs":[1e3, -0, 18446744073709551616, -9223372036854775809]}`,
		`{"template_type":"ipc@3","inputs":["\ud800", "\u0000", [1], {"a":1}]}`,
		`{"template_type":"ipc@3","inputs":[true,false,null,"x",-1,18446744073709551615]}`,
		`{"template_type":"IPC@3","inputs":[]}`, `{"template_type":"ipc@0","inputs":[]}`,
		`{"template_type":"ipc@3","inputs":[],"extra":1}`, "{\"template_type\":\"ipc@3\",\"inputs\":[\"\xff\"]}",
		`{"template_type":"ipc@3","inputs":[` + strings.Repeat(`0,`, 300) + `0]}`,
	} {
		f.Add([]byte(s))
	}
	ipc := fx.compiled[0]
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := content.ParseEvent(line)
		if err != nil {
			return
		}
		if _, err := content.ParseTypeRef(e.Type.String()); err != nil {
			t.Fatalf("accepted event has a bad type %v: %v", e.Type, err)
		}
		if len(e.Inputs) > content.MaxFields {
			t.Fatalf("accepted %d inputs, more than MaxFields", len(e.Inputs))
		}
		for i, v := range e.Inputs {
			if v.Kind > content.KindBool || (v.Kind == content.KindBool && v.Num > 1) || (v.Kind == content.KindInt && int64(v.Num) >= 0) {
				t.Fatalf("input %d: impossible value %+v", i+1, v)
			}
		}
		again, err := content.ParseEvent(encodeEvent(e))
		if err != nil {
			t.Fatalf("re-encoded event %s does not parse: %v", encodeEvent(e), err)
		}
		if again.Type != e.Type || !slices.Equal(again.Inputs, e.Inputs) {
			t.Fatalf("event changes across a JSON round trip:\n%s\n%s", fmtEvent(e), fmtEvent(again))
		}
		if e.Type == ipc.Type {
			ev, err := content.NewEvaluator(ipc)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := content.NewReference(ipc)
			if err != nil {
				t.Fatal(err)
			}
			var got, want content.Result
			evalBoth(t, ev, ref, e, &got, &want)
		}
	})
}

// encodeEvent writes an event as one JSON line of an events file.
func encodeEvent(e content.Event) []byte {
	in := make([]any, len(e.Inputs))
	for i, v := range e.Inputs {
		switch v.Kind {
		case content.KindString:
			in[i] = v.Str
		case content.KindInt:
			in[i] = int64(v.Num)
		case content.KindUint:
			in[i] = v.Num
		case content.KindBool:
			in[i] = v.Num == 1
		}
	}
	b, err := json.Marshal(map[string]any{"template_type": e.Type.String(), "inputs": in})
	if err != nil {
		panic(err)
	}
	return b
}
