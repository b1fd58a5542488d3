package content_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
)

// eventLines are the sample events and lines at the edges of what
// EventParser reads itself: escapes, numbers at the limits, keys spelled
// otherwise, repeated or missing.
func eventLines(tb testing.TB) [][]byte {
	tb.Helper()
	sample, err := os.ReadFile(filepath.Join(examplesDir, "events", "ipc-sample.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for line := range bytes.Lines(sample) {
		out = append(out, bytes.TrimSpace(line))
	}
	for _, s := range []string{
		``, `{}`, ` { } `, `null`, `[]`, `{"template_type":"ipc@3"}`, `{"template_type":"ipc@3","inputs":null}`,
		`{"inputs":[1],"template_type":"ipc@3"}`, `{"template_type":"ipc@3","template_type":"ipc@3","inputs":[]}`,
		`{"Template_Type":"ipc@3","inputs":[]}`, `{"template_type":"ipc@3","INPUTS":[1]}`,
		`{"template_type":"ipc@3","inputs":[]} {}`, `{"template_type":"ipc@3","inputs":[1.5]}`, `{"template_type":"ipc@3","inputs":[1.]}`,
		`{"template_type":"ipc@3","inputs":[1e3, -0, 18446744073709551616, -9223372036854775809]}`,
		`{"template_type":"ipc@3","inputs":[18446744073709551615, -9223372036854775808, -1, 0, 007, -]}`,
		`{"template_type":"ipc@3","inputs":[18446744073709551615, -9223372036854775808, -1, 0]}`,
		`{"template_type":"ipc@3","inputs":["\ud800", "\u0000", [1], {"a":1}]}`,
		// One edge a line, so that a line falls back for that edge alone.
		`{"template_type":"ipc@3","inputs":[007]}`, `{"template_type":"ipc@3","inputs":[-]}`, `{"template_type":"ipc@3","inputs":[1e3]}`,
		`{"template_type":"ipc@3","inputs":[-0]}`, `{"template_type":"ipc@3","inputs":[18446744073709551616]}`,
		`{"template_type":"ipc@3","inputs":[-9223372036854775809]}`, `{"template_type":"ipc@3","inputs":[-9223372036854775808]}`,
		`{"template_type":"ipc@3","inputs":["\ud800"]}`, `{"template_type":"ipc@3","inputs":["\udc00x"]}`,
		`{"template_type":"ipc@3","inputs":["\ud83d\ude00"]}`, `{"template_type":"ipc@3","inputs":["\u00"]}`,
		`{"template_type":"ipc@3","inputs":["\ud83d\ude00", "\u00e9\u20AC", "\"\\\/\b\f\n\r\t", "\x"]}`,
		`{"template_type":"ipc@3","inputs":["a\u00e9b", "", "é€😀"]}`,
		`{"template_type":"ipc@3","inputs":[true,false,null,"x",-1,18446744073709551615]}`,
		`{"template_type":"ipc@3","inputs":[tru, nul, fals]}`, `{"template_type":"ipc@3","inputs":[1,]}`,
		`{"template_type":"IPC@3","inputs":[]}`, `{"template_type":"ipc@0","inputs":[]}`, `{"template_type":"ip\u0063@3","inputs":[]}`,
		`{"template_type":"ipc@3","inputs":[],"extra":1}`, "{\"template_type\":\"ipc@3\",\"inputs\":[\"\xff\"]}",
		"{\"template_type\":\"ipc@3\",\"inputs\":[\"a\tb\"]}",
		`{"template_type":"ipc@3","inputs":[` + strings.Repeat(`0,`, 300) + `0]}`,
		`{"template_type":"ipc@3","inputs":[` + strings.Repeat(`"s",`, content.MaxFields-1) + `"s"]}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// sampleEvents are the example events, every one valid.
func sampleEvents(tb testing.TB) [][]byte {
	var out [][]byte
	for _, l := range eventLines(tb) {
		if _, err := content.ParseEvent(l); err != nil {
			break // the edge cases follow the samples
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		tb.Fatal("no sample events")
	}
	return out
}

// agree checks that one parser's answer for a line is ParseEvent's.
func agree(t *testing.T, p *content.EventParser, line []byte) {
	t.Helper()
	want, wantErr := content.ParseEvent(line)
	got, err := p.Parse(line)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, ParseEvent's %v", line, err, wantErr)
	}
	if got.Type != want.Type || !slices.Equal(got.Inputs, want.Inputs) {
		t.Fatalf("%q:\n got %+v\nwant %+v", line, got, want)
	}
}

// One parser, reused across lines as the worker does, answers every line
// as ParseEvent does; the strings of one event stay intact while the
// parser is not used again.
func TestEventParserAgreesWithParseEvent(t *testing.T) {
	var p content.EventParser
	for _, line := range eventLines(t) {
		agree(t, &p, line)
	}
}

// FuzzEventParserAgreesWithParseEvent: for any line, and any line before
// it through the same parser, EventParser's answer is ParseEvent's.
func FuzzEventParserAgreesWithParseEvent(f *testing.F) {
	lines := eventLines(f)
	for i, l := range lines {
		f.Add(lines[(i+1)%len(lines)], l)
	}
	f.Fuzz(func(t *testing.T, before, line []byte) {
		var p content.EventParser
		_, _ = p.Parse(before)
		agree(t, &p, line)
	})
}

// The worker's parser allocates nothing per event once warm, on the
// sample events (Windows paths with escapes, numbers, booleans).
func TestEventParserAllocatesNothing(t *testing.T) {
	if content.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	lines := sampleEvents(t)
	var p content.EventParser
	for _, l := range lines {
		if _, err := p.Parse(l); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := p.Parse(lines[i%len(lines)]); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

// BenchmarkParseEvent compares the two parsers on the sample events.
func BenchmarkParseEvent(b *testing.B) {
	lines := sampleEvents(b)
	b.Run("ParseEvent", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := content.ParseEvent(lines[i%len(lines)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EventParser", func(b *testing.B) {
		var p content.EventParser
		b.ReportAllocs()
		for i := range b.N {
			if _, err := p.Parse(lines[i%len(lines)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
