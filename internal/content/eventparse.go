package content

import (
	"unicode/utf8"
	"unsafe"
)

// EventParser decodes event lines as ParseEvent does, without allocating
// once its buffers have grown to the events it sees: the agent's worker
// reads every event the sensor reports, and ParseEvent's allocations
// (a decoder, raw messages, strings) were most of the worker's memory
// under load.
//
// It reads the lines sensors write: keys exactly "template_type" and
// "inputs", once each; strings with the common escapes; whole numbers.
// Anything else (other spellings of the keys, a \u escape of a surrogate
// half, a fraction, a malformed line) goes to ParseEvent, whose event or
// error it returns, so its answers are ParseEvent's for every line
// (FuzzEventParserAgreesWithParseEvent).
//
// The Event it returns, its inputs and their strings, belong to the
// parser and are valid until the next Parse. Not safe for concurrent use.
type EventParser struct {
	inputs []Value
	spans  [][2]int // string inputs' bytes in buf, by input
	buf    []byte
	typSrc []byte // the template type typ was parsed from
	typ    TypeRef
}

// Parse decodes one JSON event line.
func (p *EventParser) Parse(line []byte) (Event, error) {
	if ev, ok := p.fast(line); ok {
		return ev, nil
	}
	return ParseEvent(line)
}

// fast is the allocation-free path; false: not a line it reads.
func (p *EventParser) fast(line []byte) (Event, bool) {
	if !utf8.Valid(line) {
		return Event{}, false
	}
	s := scanner{b: line}
	p.inputs, p.spans, p.buf = p.inputs[:0], p.spans[:0], p.buf[:0]
	var typ []byte
	sawType, sawInputs := false, false
	s.ws()
	if !s.eat('{') {
		return Event{}, false
	}
	s.ws()
	if !s.eat('}') {
		for {
			key, ok := s.rawString()
			if !ok {
				return Event{}, false
			}
			s.ws()
			if !s.eat(':') {
				return Event{}, false
			}
			s.ws()
			switch string(key) {
			case "template_type":
				if sawType {
					return Event{}, false
				}
				sawType = true
				if typ, ok = s.rawString(); !ok {
					return Event{}, false
				}
			case "inputs":
				if sawInputs || !p.inputList(&s) {
					return Event{}, false
				}
				sawInputs = true
			default:
				return Event{}, false
			}
			s.ws()
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return Event{}, false
			}
			s.ws()
		}
	}
	s.ws()
	if s.i != len(s.b) || !sawType || !p.typeRef(typ) {
		return Event{}, false
	}
	// The strings are made now that buf no longer grows.
	for i, sp := range p.spans {
		if sp[1] > sp[0] {
			p.inputs[i].Str = unsafe.String(&p.buf[sp[0]], sp[1]-sp[0])
		}
	}
	return Event{Type: p.typ, Inputs: p.inputs}, true
}

// typeRef parses the template type, or reuses the last one when the
// text is the same (a sensor's events are of a few types).
func (p *EventParser) typeRef(b []byte) bool {
	if p.typSrc != nil && string(b) == string(p.typSrc) {
		return true
	}
	t, err := ParseTypeRef(string(b))
	if err != nil {
		return false
	}
	p.typ, p.typSrc = t, append(p.typSrc[:0], b...)
	return true
}

func (p *EventParser) inputList(s *scanner) bool {
	if !s.eat('[') {
		return false
	}
	s.ws()
	if s.eat(']') {
		return true
	}
	for {
		if len(p.inputs) == MaxFields {
			return false
		}
		v, span, ok := p.value(s)
		if !ok {
			return false
		}
		p.inputs, p.spans = append(p.inputs, v), append(p.spans, span)
		s.ws()
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
		s.ws()
	}
}

// value reads one input; a string's bytes go to buf, at span.
func (p *EventParser) value(s *scanner) (Value, [2]int, bool) {
	var none [2]int
	if s.i >= len(s.b) {
		return Value{}, none, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		start := len(p.buf)
		var ok bool
		if p.buf, ok = s.str(p.buf); !ok {
			return Value{}, none, false
		}
		return Value{Kind: KindString}, [2]int{start, len(p.buf)}, true
	case c == 'n':
		return Value{}, none, s.word("null")
	case c == 't':
		return Bool(true), none, s.word("true")
	case c == 'f':
		return Bool(false), none, s.word("false")
	case c == '-' || '0' <= c && c <= '9':
		v, ok := s.whole()
		return v, none, ok
	}
	return Value{}, none, false
}

// scanner walks a line for EventParser.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) word(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// rawString reads a string without escapes, as keys and template types
// are written.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str appends a string's text, unescaped, to dst.
func (s *scanner) str(dst []byte) ([]byte, bool) {
	if !s.eat('"') {
		return dst, false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return dst, true
		case c < 0x20:
			return dst, false
		case c != '\\':
			dst = append(dst, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return dst, false
		}
		esc := s.b[s.i+1]
		s.i += 2
		switch esc {
		case '"', '\\', '/':
			dst = append(dst, esc)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := s.hex4()
			// Surrogate halves (pairs, or lone ones that become U+FFFD)
			// are left to ParseEvent.
			if !ok || 0xD800 <= r && r <= 0xDFFF {
				return dst, false
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, false
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// whole reads a JSON integer as ParseEvent types it: non-negative ones
// (and "-0") are Uint, negative ones Int. Fractions, exponents, leading
// zeros and numbers out of range are not read here.
func (s *scanner) whole() (Value, bool) {
	neg := s.eat('-')
	start := s.i
	var n uint64
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if n > (1<<64-1-d)/10 {
			return Value{}, false
		}
		n = n*10 + d
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 1 && s.b[start] == '0' {
		return Value{}, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return Value{}, false
		}
	}
	switch {
	case !neg || n == 0:
		return Uint(n), true
	case n <= 1<<63:
		return Int(int64(-n)), true
	}
	return Value{}, false
}
