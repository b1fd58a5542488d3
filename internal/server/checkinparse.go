package server

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/ringfence/ringfence/internal/protocol"
)

// parseCheckin reads the check-in agents send almost always, a device's
// state with no events, without encoding/json, whose decoding was a third
// of the check-in's cost. It takes only the plain form: the exact field
// names, strings of printable ASCII without escapes, unsigned integers,
// true and false, and an empty or null "events". Anything else (an event,
// an escape, a null, a field it does not know, a malformed body) returns
// false, and the caller decodes the body with encoding/json, which then
// says what is wrong. Where it returns true, req is what encoding/json
// would have decoded (FuzzParseCheckinAgreesWithEncodingJSON).
func parseCheckin(b []byte, req *protocol.CheckinRequest) bool {
	p := checkinParser{b: b}
	var r protocol.CheckinRequest
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "device_id":
			return p.str(&r.DeviceID)
		case "platform":
			return p.str(&r.Platform)
		case "os_build":
			return p.str(&r.OSBuild)
		case "agent_version":
			return p.str(&r.AgentVersion)
		case "health":
			return p.str(&r.Health)
		case "events":
			// An empty array or null only: events are rare and varied.
			if p.null() {
				r.Events = nil
				return true
			}
			if !p.lit('[') {
				return false
			}
			p.space()
			r.Events = []protocol.EventReport{}
			return p.lit(']')
		case "channels":
			if p.null() {
				r.Channels = nil
				return true
			}
			r.Channels = []protocol.ChannelReport{}
			return p.array(func() bool {
				var c protocol.ChannelReport
				if !p.object(func(key []byte) bool {
					switch string(key) {
					case "channel":
						return p.str(&c.Channel)
					case "active_version":
						return p.uint(&c.ActiveVersion)
					case "lkg_version":
						return p.uint(&c.LKGVersion)
					case "state":
						return p.str(&c.State)
					case "shadow":
						return p.boolean(&c.Shadow)
					}
					return false
				}) {
					return false
				}
				r.Channels = append(r.Channels, c)
				return true
			})
		}
		return false
	})
	p.space()
	if !ok || p.i != len(p.b) {
		return false
	}
	*req = r
	return true
}

type checkinParser struct {
	b []byte
	i int
}

func (p *checkinParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// lit consumes c after any white space.
func (p *checkinParser) lit(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}, field calling value for each key.
func (p *checkinParser) object(field func(key []byte) bool) bool {
	if !p.lit('{') {
		return false
	}
	if p.lit('}') {
		return true
	}
	for {
		key, ok := p.raw()
		if !ok || !p.lit(':') {
			return false
		}
		p.space()
		if !field(key) {
			return false
		}
		if p.lit('}') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

// array reads [elem, ...].
func (p *checkinParser) array(elem func() bool) bool {
	if !p.lit('[') {
		return false
	}
	if p.lit(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.lit(']') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

// raw reads a string of printable ASCII without escapes.
func (p *checkinParser) raw() ([]byte, bool) {
	if !p.lit('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *checkinParser) str(dst *string) bool {
	s, ok := p.raw()
	if ok {
		*dst = string(s)
	}
	return ok
}

// uint reads a JSON integer of at most 64 bits, without sign, fraction or
// exponent.
func (p *checkinParser) uint(dst *uint64) bool {
	p.space()
	start := p.i
	var v uint64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return false
		}
		v = v*10 + d
		p.i++
	}
	n := p.i - start
	if n == 0 || n > 1 && p.b[start] == '0' {
		return false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	*dst = v
	return true
}

// null consumes a null, as encoding/json reads into a slice: nil.
func (p *checkinParser) null() bool {
	p.space()
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

func (p *checkinParser) boolean(dst *bool) bool {
	p.space()
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
		*dst = true
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
		*dst = false
	default:
		return false
	}
	return true
}

// appendCheckinResponse appends resp as JSON, as encoding/json writes it
// (the same fields, omitted alike, strings escaped alike, and a newline):
// encoding the answer took as long as deciding it. TestAppendCheckinResponse
// compares the two on random answers.
func appendCheckinResponse(b []byte, resp *protocol.CheckinResponse) []byte {
	b = append(b, `{"channels":`...)
	if resp.Channels == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range resp.Channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"channel":`...)
			b = appendString(b, c.Channel)
			b = append(b, `,"desired_version":`...)
			b = strconv.AppendUint(b, c.DesiredVersion, 10)
			if c.Release != "" {
				b = append(b, `,"release":`...)
				b = appendString(b, c.Release)
			}
			b = append(b, `,"reason":`...)
			b = appendString(b, c.Reason)
			if c.Shadow {
				b = append(b, `,"shadow":true`...)
			}
			if a := c.Artifact; a != nil {
				b = append(b, `,"artifact":{"url":`...)
				b = appendString(b, a.URL)
				b = append(b, `,"sha256":`...)
				b = appendString(b, a.SHA256)
				b = append(b, `,"size":`...)
				b = strconv.AppendInt(b, a.Size, 10)
				b = append(b, `,"target":`...)
				b = appendString(b, a.Target)
				b = append(b, '}')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"next_checkin_s":`...)
	b = strconv.AppendInt(b, int64(resp.NextCheckinS), 10)
	b = append(b, `,"ack_seq":`...)
	b = strconv.AppendUint(b, resp.AckSeq, 10)
	return append(b, "}\n"...)
}

// appendString appends s as encoding/json quotes it: as it is when it is
// printable ASCII that needs no escape (nearly always), else through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
