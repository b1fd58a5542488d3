package agentbuild

import (
	"bytes"
	"strings"
	"testing"
)

func good() Header { return Header{Platform: "linux", Arch: "amd64", AgentVersion: "7.13.0"} }

func TestPackParseRoundTrip(t *testing.T) {
	exe, wk := []byte("\x7fELF pretend executable"), []byte("\x7fELF pretend worker")
	for _, worker := range [][]byte{nil, wk} {
		b, err := Pack(good(), exe, worker)
		if err != nil {
			t.Fatal(err)
		}
		if !Is(b) {
			t.Fatal("a packed build is not recognised")
		}
		h, got, gotWorker, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, exe) || !bytes.Equal(gotWorker, worker) || h.Platform != "linux" || h.Arch != "amd64" || h.AgentVersion != "7.13.0" || h.Size != int64(len(exe)) {
			t.Errorf("round trip: %+v %q %q", h, got, gotWorker)
		}
	}
}

// TestParseRefuses: every way a build can be wrong is refused, naming
// what is wrong.
func TestParseRefuses(t *testing.T) {
	exe := []byte("\x7fELF pretend executable")
	b, err := Pack(good(), exe, nil)
	if err != nil {
		t.Fatal(err)
	}
	withWorker, err := Pack(good(), exe, []byte("worker"))
	if err != nil {
		t.Fatal(err)
	}
	header := func(json string) []byte { return []byte(Magic + json + "\n" + string(exe)) }
	sum := string(b[strings.Index(string(b), `"sha256":"`)+10:][:64])
	cases := []struct {
		name, want string
		b          []byte
	}{
		{"raw-executable", "not an agent build", exe},
		{"empty", "not an agent build", nil},
		{"truncated", "executable is", b[:len(b)-3]},
		{"trailing-bytes", "bytes follow", append(append([]byte{}, b...), 'x')},
		{"worker-truncated", "worker is", withWorker[:len(withWorker)-2]},
		{"worker-tampered", "worker's sha256", append(append([]byte{}, withWorker[:len(withWorker)-1]...), 'X')},
		{"worker-size-without-hash", "give both or neither", header(`{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":24,"sha256":"` + sum + `","worker_size":6}`)},
		{"tampered", "sha256", append(append([]byte{}, b[:len(b)-1]...), 'X')},
		{"no-newline", "header", []byte(Magic + `{"platform":"linux"`)},
		{"unknown-field", "unknown field", header(`{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":24,"sha256":"` + sum + `","root":true}`)},
		{"bad-platform", "platform", header(`{"platform":"Linux","arch":"amd64","agent_version":"7.13.0","size":24,"sha256":"` + sum + `"}`)},
		{"bad-arch", "arch", header(`{"platform":"linux","arch":"amd64;rm","agent_version":"7.13.0","size":24,"sha256":"` + sum + `"}`)},
		{"bad-version", "agent_version", header(`{"platform":"linux","arch":"amd64","agent_version":"7.13 0","size":24,"sha256":"` + sum + `"}`)},
		{"zero-size", "size", header(`{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":0,"sha256":"` + sum + `"}`)},
		{"short-sha", "sha256", header(`{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":24,"sha256":"abc"}`)},
		{"overlong-header", "longer than", []byte(Magic + strings.Repeat(" ", 5000) + "{}\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Parse(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Pack(good(), []byte("exe"), nil)
	f.Add(b)
	b, _ = Pack(good(), []byte("exe"), []byte("worker"))
	f.Add(b)
	f.Add([]byte(Magic + "{}\n"))
	f.Add([]byte("MZ\x90\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, exe, worker, err := Parse(b)
		if err != nil {
			return
		}
		// What parses is a valid header over exactly its executables, and
		// packs back to the same bytes.
		if err := h.Validate(); err != nil || int64(len(exe)) != h.Size || int64(len(worker)) != h.WorkerSize {
			t.Fatalf("parsed an invalid build: %+v (%v)", h, err)
		}
		again, err := Pack(Header{Platform: h.Platform, Arch: h.Arch, AgentVersion: h.AgentVersion}, exe, worker)
		if err != nil {
			t.Fatal(err)
		}
		if _, exe2, worker2, err := Parse(again); err != nil || !bytes.Equal(exe, exe2) || !bytes.Equal(worker, worker2) {
			t.Fatalf("repacked build does not parse to the same executable: %v", err)
		}
	})
}
