package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxSourceSize caps a content source file (template type, manifest or
// bundle). Larger files are refused before parsing, so a 100 MB file costs
// no more than reading MaxSourceSize+1 bytes.
const MaxSourceSize = 8 << 20

// maxNesting caps YAML nesting depth; no valid content file nests deeper
// than about six levels.
const maxNesting = 32

// Pos is a location in a source file. Line and Col are 1-based; Offset is a
// 0-based byte offset used where no line is known.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	switch {
	case p.Line > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	default:
		return p.File
	}
}

// SourceError is a problem with the text of a content file: malformed YAML
// or JSON, an unknown key, a value of the wrong kind. It always names the
// file and the location.
type SourceError struct {
	Pos    Pos
	Offset int // byte offset, or -1 when Pos.Line says where
	Msg    string
	Err    error // the cause, such as ErrTooLarge, for errors.Is; may be nil
}

func (e *SourceError) Error() string {
	if e.Pos.Line == 0 && e.Offset >= 0 {
		return fmt.Sprintf("%s: byte offset %d: %s", e.Pos.File, e.Offset, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

func (e *SourceError) Unwrap() error { return e.Err }

// SourceErrors is every problem found in one file.
type SourceErrors []*SourceError

func (es SourceErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// ErrTooLarge is wrapped by errors for inputs over a size limit.
var ErrTooLarge = errors.New("too large")

// readSource reads a file, refusing files over MaxSourceSize without
// reading them whole.
func readSource(path string) ([]byte, error) { return readSourceFS(osFS{}, path) }

func readSourceFS(fsys fs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxSourceSize {
		return nil, &SourceError{Pos: Pos{File: path}, Offset: MaxSourceSize, Err: ErrTooLarge,
			Msg: fmt.Sprintf("file is larger than the %d MiB limit for content sources: %v", MaxSourceSize>>20, ErrTooLarge)}
	}
	return b, nil
}

// parseYAML checks the raw bytes and parses exactly one YAML (or JSON)
// document, returning its top-level mapping node.
func parseYAML(file string, b []byte) (*yaml.Node, error) {
	if err := compiledSourceError(file, b); err != nil {
		return nil, err
	}
	if i := bytes.IndexFunc(b, notYAMLText); i >= 0 {
		// go-yaml refuses these too, but without saying where.
		if b[i] == 0 {
			return nil, byteError(file, b, i, "NUL byte in file (content sources are UTF-8 text)")
		}
		r, _ := utf8.DecodeRune(b[i:])
		return nil, byteError(file, b, i, fmt.Sprintf("control character %U in file (YAML does not allow it)", r))
	}
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, byteError(file, b, i, "invalid UTF-8")
	}
	if d, off := flowNesting(b, maxNesting); d > maxNesting {
		return nil, byteError(file, b, off, fmt.Sprintf("nesting deeper than %d levels", maxNesting))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SourceError{Pos: Pos{File: file}, Offset: 0, Msg: "empty file: want a YAML or JSON mapping"}
		}
		return nil, syntaxError(file, b, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &SourceError{Pos: nodePos(file, &extra), Offset: -1, Msg: "more than one YAML document in file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, b, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &SourceError{Pos: Pos{File: file}, Offset: -1, Msg: "want one YAML or JSON mapping"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &SourceError{Pos: nodePos(file, root), Offset: -1, Msg: "want a mapping at the top level, got " + kindName(root)}
	}
	return root, nil
}

// flowNesting counts flow-style bracket nesting cheaply so that a hostile
// file cannot drive the YAML parser into deep recursion. Block-style nesting
// needs a line per level and is bounded by the file size limit.
//
// It returns the deepest nesting in b and, when limit is not negative, the
// byte offset of the first bracket that opens a level deeper than limit
// (-1 if none).
func flowNesting(b []byte, limit int) (maxDepth, off int) {
	depth := 0
	off = -1
	inQuote := byte(0)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inQuote != 0 {
			if c == '\\' && inQuote == '"' {
				i++
			} else if c == inQuote || c == '\n' {
				inQuote = 0
			}
			continue
		}
		switch c {
		case '"', '\'':
			inQuote = c
		case '[', '{':
			depth++
			maxDepth = max(maxDepth, depth)
			if limit >= 0 && depth > limit && off < 0 {
				off = i
			}
		case ']', '}':
			depth = max(0, depth-1)
		case '#':
			for i < len(b) && b[i] != '\n' {
				i++
			}
		}
	}
	return maxDepth, off
}

// syntaxError reports a document go-yaml could not parse. go-yaml gives
// only an approximate line for parser errors, and none when that line is
// the first, so a document that looks like JSON (the whole of a one-line
// JSON file) is located by encoding/json's byte offset instead.
func syntaxError(file string, b []byte, err error) *SourceError {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(b, &v); errors.As(jerr, &se) {
			off := int(se.Offset) - 1 // Offset counts the bytes read, the bad one included
			if se.Offset >= int64(len(b)) {
				off = len(b) // unexpected end of input
			}
			off = max(off, 0)
			return byteError(file, b, off, "malformed YAML/JSON: "+se.Error())
		}
	}
	return yamlError(file, b, err)
}

var yamlLineRe = "line "

// yamlError turns a go-yaml error, which reads "yaml: line 3: ...", into a
// SourceError naming the file and line. go-yaml leaves the line out when
// it is the first, and for an undefined alias, which is looked up in b.
// (parseYAML has already refused the bytes go-yaml's reader would fail on
// without any position.)
func yamlError(file string, b []byte, err error) *SourceError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		name, _, _ = strings.Cut(name, "'")
		if i := bytes.Index(b, []byte("*"+name)); i >= 0 {
			return byteError(file, b, i, "malformed YAML/JSON: "+msg)
		}
	}
	line := 1
	if strings.HasPrefix(msg, yamlLineRe) {
		rest := msg[len(yamlLineRe):]
		if i := strings.Index(rest, ":"); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &SourceError{Pos: Pos{File: file, Line: line, Col: 1}, Offset: -1, Msg: "malformed YAML/JSON: " + msg}
}

// notYAMLText reports whether YAML forbids r in a document: control
// characters other than tab and line breaks, and U+FFFE, U+FFFF.
func notYAMLText(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r >= 0x20 && r <= 0x7e, r == 0x85,
		r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= 0x10ffff:
		return false
	}
	return true
}

func byteError(file string, b []byte, off int, msg string) *SourceError {
	line := 1 + bytes.Count(b[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(b[:off], '\n')
	return &SourceError{Pos: Pos{File: file, Line: line, Col: col}, Offset: off,
		Msg: fmt.Sprintf("%s (byte offset %d)", msg, off)}
}

func nodePos(file string, n *yaml.Node) Pos { return Pos{File: file, Line: n.Line, Col: n.Column} }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// decoder walks a YAML node tree, collecting every problem with its
// position instead of stopping at the first one.
type decoder struct {
	file string
	errs SourceErrors
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &SourceError{Pos: nodePos(d.file, n), Offset: -1, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return d.errs
}

// fields decodes a mapping: handlers maps each known key to a function;
// unknown, duplicate and missing required keys are errors.
func (d *decoder) fields(n *yaml.Node, what string, required []string, handlers map[string]func(*yaml.Node)) {
	if n.Kind == yaml.AliasNode {
		d.errorf(n, "%s: YAML aliases are not allowed in content", what)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be plain strings", what)
			continue
		}
		h, ok := handlers[k.Value]
		if !ok {
			d.errorf(k, "%s: unknown key %q (known keys: %s)", what, k.Value, strings.Join(sortedKeys(handlers), ", "))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			d.errorf(v, "%s: %s: YAML aliases are not allowed in content", what, k.Value)
			continue
		}
		h(v)
	}
	for _, r := range required {
		if !seen[r] {
			d.errorf(n, "%s: missing required key %q", what, r)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func (d *decoder) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s: want a string, got %s", what, kindName(n))
		return ""
	}
	d.text(n, what)
	return n.Value
}

// text refuses in a decoded value what parseYAML refuses in the raw file:
// a YAML escape ("\0", "\x00", "\u0000") must not smuggle in a control
// character the file itself may not hold.
func (d *decoder) text(n *yaml.Node, what string) {
	if i := strings.IndexFunc(n.Value, notYAMLText); i >= 0 {
		r, _ := utf8.DecodeRuneInString(n.Value[i:])
		d.errorf(n, "%s: control character %U in the value, written as an escape (content values are text: the file may not hold it raw either)", what, r)
	}
}

// uint decodes a whole number from lo to hi, saying that range when the
// number is outside it.
func (d *decoder) uint(n *yaml.Node, what string, lo, hi uint64) uint64 {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "%s: want a whole number, got %s", what, kindName(n))
		return 0
	}
	neg, v, err := parseWhole(n.Value)
	switch {
	case err != nil:
		d.errorf(n, "%s: %v", what, err)
		return 0
	case neg && v != 0, v < lo, v > hi:
		d.errorf(n, "%s: want a whole number from %d to %d, got %s", what, lo, hi, n.Value)
		return 0
	}
	return v
}

// parseWhole reads a whole number the one way every part of Ringfence
// reads it: decimal without leading zeros, or hexadecimal after 0x, with
// an optional sign. A leading zero is refused because YAML 1.1 reads 010
// as eight and YAML 1.2, JSON and people as ten; 0o, 0b and digit
// separators are refused so that a number means one thing to every reader.
func parseWhole(s string) (neg bool, mag uint64, err error) {
	t := s
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		neg, t = true, rest
	} else {
		t = strings.TrimPrefix(t, "+")
	}
	base := 10
	if rest, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		base, t = 16, rest
	}
	lower := strings.ToLower(t)
	switch {
	case t == "":
		return false, 0, fmt.Errorf("%q is not a whole number", s)
	case strings.Contains(t, "_") || base == 10 && (strings.HasPrefix(lower, "0o") || strings.HasPrefix(lower, "0b")):
		return false, 0, fmt.Errorf("%q: write whole numbers in decimal, or in hexadecimal after 0x (no 0o, 0b or '_')", s)
	case base == 10 && len(t) > 1 && t[0] == '0':
		return false, 0, fmt.Errorf("%q has a leading zero, which YAML 1.1 reads as octal and JSON and YAML 1.2 as decimal: write it without the zero, or in hexadecimal after 0x", s)
	}
	mag, err = strconv.ParseUint(t, base, 64)
	if err != nil {
		return false, 0, fmt.Errorf("%q is not a whole number from 0 to %d", s, uint64(math.MaxUint64))
	}
	return neg, mag, nil
}

func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list, got %s", what, kindName(n))
		return nil
	}
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			d.errorf(c, "%s: YAML aliases are not allowed in content", what)
			return nil
		}
	}
	return n.Content
}

func (d *decoder) strs(n *yaml.Node, what string) []string {
	var out []string
	for i, c := range d.seq(n, what) {
		out = append(out, d.str(c, fmt.Sprintf("%s[%d]", what, i)))
	}
	return out
}

// Scalar is a value as written in the source, typed later against the
// template type's field.
type Scalar struct {
	Text string
	Tag  string // YAML tag: !!str, !!int, !!bool, !!float, !!null
	Pos  Pos
}

func (d *decoder) scalar(n *yaml.Node, what string) Scalar {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want a single value, got %s", what, kindName(n))
		return Scalar{Pos: nodePos(d.file, n)}
	}
	d.text(n, what)
	return Scalar{Text: n.Value, Tag: n.Tag, Pos: nodePos(d.file, n)}
}
