package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the kind of one event input value.
type Kind uint8

const (
	// KindNone is an input the sensor left empty: reading it is an error
	// for the instance, just like reading past the end of the inputs.
	KindNone Kind = iota
	KindString
	KindInt
	KindUint
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindUint:
		return "uint"
	case KindBool:
		return "bool"
	}
	return "none"
}

// Value is one input of an event. Num holds int64 bits for KindInt and
// 0/1 for KindBool.
type Value struct {
	Kind Kind
	Str  string
	Num  uint64
}

// Str, Int, Uint and Bool build values.
func Str(s string) Value  { return Value{Kind: KindString, Str: s} }
func Int(n int64) Value   { return Value{Kind: KindInt, Num: uint64(n)} }
func Uint(n uint64) Value { return Value{Kind: KindUint, Num: n} }
func Bool(b bool) Value   { return Value{Kind: KindBool, Num: b2u(b)} }
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Event is one sensor event: a template type and its input vector, input 1
// first. The vector may be shorter than the template type: an agent supplies
// only as many inputs as its manifest says.
type Event struct {
	Type   TypeRef
	Inputs []Value
}

// MaxInputLen caps one string input; longer inputs are an error for the
// instances that read them, which bounds the time per event.
const MaxInputLen = 64 << 10

// MaxEventLine caps one line of an events file.
const MaxEventLine = 4 << 20

// eventJSON is one line of an events file:
// {"template_type":"ipc@3","inputs":["a",1,true,null]}
type eventJSON struct {
	TemplateType string            `json:"template_type"`
	Inputs       []json.RawMessage `json:"inputs"`
}

// ParseEvent decodes one JSON event line. Strings become KindString,
// non-negative whole numbers KindUint (they also satisfy int fields),
// negative ones KindInt, booleans KindBool and null KindNone.
func ParseEvent(line []byte) (Event, error) {
	if !utf8.Valid(line) {
		return Event{}, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var ej eventJSON
	if err := dec.Decode(&ej); err != nil {
		return Event{}, fmt.Errorf("malformed event JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, errors.New("malformed event JSON: trailing data after the event object")
	}
	ref, err := ParseTypeRef(ej.TemplateType)
	if err != nil {
		return Event{}, err
	}
	if len(ej.Inputs) > MaxFields {
		return Event{}, fmt.Errorf("%d inputs, more than the limit of %d", len(ej.Inputs), MaxFields)
	}
	ev := Event{Type: ref, Inputs: make([]Value, len(ej.Inputs))}
	for i, raw := range ej.Inputs {
		v, err := parseInput(raw)
		if err != nil {
			return Event{}, fmt.Errorf("input %d: %v", i+1, err)
		}
		ev.Inputs[i] = v
	}
	return ev, nil
}

func parseInput(raw json.RawMessage) (Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Value{}, errors.New("empty value")
	}
	switch raw[0] {
	case 'n':
		return Value{}, nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return Value{}, err
		}
		return Bool(b), nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, err
		}
		return Str(s), nil
	case '[', '{':
		return Value{}, errors.New("want a string, number, boolean or null, got a list or object")
	}
	s := string(raw)
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return Uint(u), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n >= 0 {
			return Uint(uint64(n)), nil // "-0" is zero like any other
		}
		return Int(n), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
		return Value{}, fmt.Errorf("number %s is not a whole number in the 64-bit range", s)
	}
	return Value{}, fmt.Errorf("malformed value %q", s)
}
