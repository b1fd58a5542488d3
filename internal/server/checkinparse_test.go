package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/ringfence/ringfence/internal/protocol"
)

// What agents send (as encoding/json writes protocol.CheckinRequest) takes
// the fast path; the rest is left to encoding/json.
func TestParseCheckinTakesWhatAgentsSend(t *testing.T) {
	agent, _ := json.Marshal(protocol.CheckinRequest{DeviceID: "dev-1", Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0",
		Channels: []protocol.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: 292, State: "probation", Shadow: true},
			{Channel: "acme/sensor-windows", ActiveVersion: 2, State: "active"}},
		Events: []protocol.EventReport{}})
	fast := [][]byte{
		agent,
		[]byte(` { "platform" : "linux" , "channels" : [ ] , "events" : [ ] } `),
		[]byte(`{}`),
		[]byte(`{"platform":"windows","channels":null,"events":null}`),
		[]byte(`{"channels":[{"channel":"a/b","active_version":18446744073709551615}]}`),
	}
	for _, b := range fast {
		var got protocol.CheckinRequest
		if !parseCheckin(b, &got) {
			t.Errorf("not taken: %s", b)
		}
	}
	slow := [][]byte{
		[]byte(`{"events":[{"seq":1,"type":"applied"}]}`),                // an event
		[]byte(`{"platform":"win\u0064ows"}`),                            // an escape
		[]byte(`{"Platform":"windows"}`),                                 // another spelling of a field
		[]byte(`{"platform":null}`),                                      // a null
		[]byte(`{"channels":[{"active_version":-1}]}`),                   // a sign
		[]byte(`{"channels":[{"active_version":1.5}]}`),                  // a fraction
		[]byte(`{"channels":[{"active_version":18446744073709551616}]}`), // too large
		[]byte(`{"channels":[{"active_version":01}]}`),                   // a leading zero
		[]byte(`{"platform":"windows"} {}`),                              // trailing data
		[]byte(`{"platform":"windows",}`),                                // a trailing comma
		[]byte(`{"colour":"blue"}`),                                      // an unknown field
		[]byte("{\"platform\":\"caf\xc3\xa9\"}"),                         // beyond ASCII
		[]byte(`[]`),
		[]byte(``),
	}
	for _, b := range slow {
		var got protocol.CheckinRequest
		if parseCheckin(b, &got) {
			t.Errorf("taken: %s", b)
		}
	}
}

// Where the fast parser answers, encoding/json (as decodeJSON runs it)
// decodes the same body to the same request.
func FuzzParseCheckinAgreesWithEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"device_id":"d","platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":292,"state":"active"}],"events":[],"health":"ok"}`))
	f.Add([]byte(`{"channels":[{"channel":"acme/ipc","shadow":true,"shadow":false}],"channels":[]}`))
	f.Add([]byte(` {"events" : [ ] , "platform":"x"}`))
	f.Add([]byte(`{"channels":[{"active_version":0,"lkg_version":10}]}`))
	f.Add([]byte(`{"platform":"a\"b"}`))
	f.Add([]byte(`{"events":null,"channels":null,"events":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast protocol.CheckinRequest
		if !parseCheckin(b, &fast) {
			return
		}
		var slow protocol.CheckinRequest
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() {
			t.Fatalf("the fast parser took %q, which encoding/json refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %#v\njson %#v", b, fast, slow)
		}
	})
}

// The hand-written answer is byte for byte what encoding/json writes, on
// random answers (strings with quotes, controls, HTML and non-ASCII
// among them).
func TestAppendCheckinResponse(t *testing.T) {
	f := func(resp protocol.CheckinResponse, artifacts []protocol.Artifact) bool {
		for i := range resp.Channels {
			if i < len(artifacts) {
				resp.Channels[i].Artifact = &artifacts[i]
			}
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(resp); err != nil {
			t.Fatal(err)
		}
		got := appendCheckinResponse(nil, &resp)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("\n got %s\nwant %s", got, want.Bytes())
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"", "plain", `quote"`, `back\slash`, "tab\t", "<b>&", "caf\u00e9", "\xff", "line\u2028sep"} {
		if !f(protocol.CheckinResponse{Channels: []protocol.ChannelDesired{{Channel: s, Release: s, Reason: s, Shadow: true}}}, []protocol.Artifact{{URL: s}}) {
			t.Errorf("string %q", s)
		}
	}
}
