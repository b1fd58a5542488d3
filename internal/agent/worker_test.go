package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/content"

	"github.com/ringfence/ringfence/internal/agent/worker"
)

var examplesDir = filepath.Join("..", "..", "examples", "content")

// contentFixture is the example ipc bundle, compiled as the validator
// compiles it for release, and the sample events.
type contentFixture struct {
	compiled *content.Compiled
	encoded  []byte
	events   [][]byte
}

var (
	fixtureOnce sync.Once
	fixture     contentFixture
	fixtureErr  error
)

func loadContent(tb testing.TB) contentFixture {
	tb.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = buildContent() })
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return fixture
}

func buildContent() (contentFixture, error) {
	cat, err := content.LoadCatalog(filepath.Join(examplesDir, "template-types"), filepath.Join(examplesDir, "manifests"))
	if err != nil {
		return contentFixture{}, err
	}
	b, err := content.LoadBundle(filepath.Join(examplesDir, "bundles", "ipc-292.yaml"))
	if err != nil {
		return contentFixture{}, err
	}
	v := cat.Validate(b, 0)
	if !v.Accepted() {
		return contentFixture{}, fmt.Errorf("ipc-292.yaml not accepted: %v", v.Findings)
	}
	data, err := os.ReadFile(filepath.Join(examplesDir, "events", "ipc-sample.jsonl"))
	if err != nil {
		return contentFixture{}, err
	}
	fx := contentFixture{compiled: v.Compiled, encoded: v.Encoded}
	for line := range bytes.Lines(data) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fx.events = append(fx.events, line)
		}
	}
	return fx, nil
}

// writeBundle writes the example bundle as version v of acme/ipc and
// returns its path.
func writeBundle(tb testing.TB, dir string, v uint64) string {
	tb.Helper()
	fx := loadContent(tb)
	data := fx.encoded
	if v != fx.compiled.Version {
		c := *fx.compiled
		c.Version = v
		data = c.Marshal()
	}
	path := filepath.Join(dir, fmt.Sprintf("%d.bundle", v))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// wantCounts is what an in-process evaluator counts on the sample events
// fed rounds times: the reference the worker must agree with.
func wantCounts(tb testing.TB, rounds int) map[string]int64 {
	tb.Helper()
	fx := loadContent(tb)
	ev, err := content.NewEvaluator(fx.compiled)
	if err != nil {
		tb.Fatal(err)
	}
	counts := map[string]int64{}
	var res content.Result
	for range rounds {
		for _, line := range fx.events {
			e, err := content.ParseEvent(line)
			if err != nil {
				tb.Fatal(err)
			}
			ev.Eval(e, &res)
			for _, i := range res.Matches {
				counts[fx.compiled.Instances[i].Action.String()]++
			}
		}
	}
	if len(counts) == 0 {
		tb.Fatal("the sample events match nothing in the example bundle: the counts tests would prove nothing")
	}
	return counts
}

// framed is an event line as the supervisor sends it.
func framed(event []byte) string { return string(worker.EventPrefix) + string(event) + "}" }

// replyWant is one expected reply; errHas is a part of its error.
type replyWant struct {
	id       uint64
	ok       bool
	errHas   string
	counts   map[string]map[string]int64
	shadow   map[string]map[string]int64
	rejected int64
}

func TestRunWorkerProtocol(t *testing.T) {
	fx := loadContent(t)
	dir := t.TempDir()
	b292 := writeBundle(t, dir, 292)
	garbage := filepath.Join(dir, "garbage.bundle")
	if err := os.WriteFile(garbage, []byte("not a bundle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(id uint64, ch string, v uint64, path string) string {
		return fmt.Sprintf(`{"op":"load","id":%d,"channel":%q,"version":%d,"path":%q}`, id, ch, v, path)
	}
	shadow := func(id uint64, path string) string {
		return fmt.Sprintf(`{"op":"load","id":%d,"channel":"acme/ipc","version":292,"path":%q,"shadow":true}`, id, path)
	}
	var events []string
	for _, e := range fx.events {
		events = append(events, framed(e))
	}
	// The same events as a generic request, fields in another order.
	var unframed []string
	for _, e := range fx.events {
		unframed = append(unframed, `{ "event": `+string(e)+`, "op": "event" }`)
	}
	ipc := func(rounds int) map[string]map[string]int64 {
		return map[string]map[string]int64{"acme/ipc": wantCounts(t, rounds)}
	}
	lines := func(parts ...any) []string {
		var out []string
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				out = append(out, p)
			case []string:
				out = append(out, p...)
			}
		}
		return out
	}

	tests := []struct {
		name  string
		lines []string
		want  []replyWant
	}{
		{name: "not-json", lines: lines("not json", "{"), want: []replyWant{{errHas: "malformed request"}, {errHas: "malformed request"}}},
		{name: "blank-lines-ignored", lines: lines("", "   ", "\r"), want: nil},
		{name: "request-without-id", lines: lines(`{"op":"counts"}`, load(0, "acme/ipc", 292, b292), `{"op":"counts","id":1}`),
			want: []replyWant{{errHas: "without an id"}, {errHas: "without an id"}, {id: 1}}},
		{name: "unknown-op", lines: lines(`{"op":"frob","id":3}`), want: []replyWant{{id: 3, errHas: `unknown op "frob"`}}},
		{name: "load-without-path", lines: lines(`{"op":"load","id":4,"channel":"acme/ipc","version":292}`), want: []replyWant{{id: 4, errHas: "required"}}},
		{name: "load-missing-file", lines: lines(load(5, "acme/ipc", 292, filepath.Join(dir, "nope.bundle"))), want: []replyWant{{id: 5, errHas: "load acme/ipc@292"}}},
		{name: "load-garbage", lines: lines(load(6, "acme/ipc", 292, garbage)), want: []replyWant{{id: 6, errHas: "garbage.bundle"}}},
		{name: "load-other-version", lines: lines(load(7, "acme/ipc", 293, b292)), want: []replyWant{{id: 7, errHas: "holds acme/ipc@292"}}},
		{name: "load-other-channel", lines: lines(load(8, "acme/dns", 292, b292)), want: []replyWant{{id: 8, errHas: "holds acme/ipc@292"}}},
		{name: "unload-without-channel", lines: lines(`{"op":"unload","id":9}`), want: []replyWant{{id: 9, errHas: "no channel"}}},
		{name: "line-too-long", lines: lines(strings.Repeat("x", worker.MaxRequestLine+10), `{"op":"counts","id":10}`),
			want: []replyWant{{errHas: "longer than"}, {id: 10}}},
		{name: "events-counted", lines: lines(load(1, "acme/ipc", 292, b292), events, events, `{"op":"counts","id":2}`, `{"op":"counts","id":3}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, counts: ipc(2)}, {id: 3}}},
		{name: "events-unframed", lines: lines(load(1, "acme/ipc", 292, b292), unframed, `{"op":"counts","id":2}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, counts: ipc(1)}}},
		{name: "events-before-load-not-counted", lines: lines(events, load(1, "acme/ipc", 292, b292), `{"op":"counts","id":2}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2}}},
		{name: "counts-survive-unload-once", lines: lines(load(1, "acme/ipc", 292, b292), events, `{"op":"unload","id":2,"channel":"acme/ipc"}`, events,
			`{"op":"counts","id":3}`, `{"op":"counts","id":4}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, ok: true}, {id: 3, counts: ipc(1)}, {id: 4}}},
		{name: "refused-load-keeps-content", lines: lines(load(1, "acme/ipc", 292, b292), load(2, "acme/ipc", 293, garbage), events, `{"op":"counts","id":3}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, errHas: "garbage.bundle"}, {id: 3, counts: ipc(1)}}},
		{name: "shadow-counted-apart", lines: lines(load(1, "acme/ipc", 292, b292), shadow(2, b292), events, `{"op":"counts","id":3}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, ok: true}, {id: 3, counts: ipc(1), shadow: ipc(1)}}},
		{name: "shadow-alone-enforces-nothing", lines: lines(shadow(1, b292), events, events, `{"op":"counts","id":2}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, shadow: ipc(2)}}},
		{name: "shadow-unload-keeps-enforced", lines: lines(load(1, "acme/ipc", 292, b292), shadow(2, b292), `{"op":"unload","id":3,"channel":"acme/ipc","shadow":true}`,
			events, `{"op":"counts","id":4}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, ok: true}, {id: 3, ok: true}, {id: 4, counts: ipc(1)}}},
		{name: "enforced-unload-keeps-shadow", lines: lines(load(1, "acme/ipc", 292, b292), shadow(2, b292), `{"op":"unload","id":3,"channel":"acme/ipc"}`,
			events, `{"op":"counts","id":4}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, ok: true}, {id: 3, ok: true}, {id: 4, shadow: ipc(1)}}},
		{name: "bad-events-rejected", lines: lines(load(1, "acme/ipc", 292, b292),
			framed([]byte(`{"template_type":"ipc@3","inputs":[[1]]}`)), framed([]byte(`nope`)), `{"op":"event"}`, `{"op":"event","event":{"template_type":"x"}}`,
			`{"op":"counts","id":2}`),
			want: []replyWant{{id: 1, ok: true}, {id: 2, rejected: 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Join(tt.lines, "\n") + "\n"
			var out bytes.Buffer
			if err := worker.Run(context.Background(), strings.NewReader(in), &out, worker.Fault{}); err != nil {
				t.Fatalf("worker.Run: %v", err)
			}
			got := decodeReplies(t, out.Bytes())
			if len(got) != len(tt.want) {
				t.Fatalf("got %d replies, want %d:\n%s", len(got), len(tt.want), out.String())
			}
			for i, w := range tt.want {
				g := got[i]
				if g.ID != w.id || g.OK != w.ok || g.Rejected != w.rejected ||
					(w.errHas == "") != (g.Error == "") || !strings.Contains(g.Error, w.errHas) ||
					!equalCounts(g.Counts, w.counts) || !equalCounts(g.Shadow, w.shadow) {
					t.Errorf("reply %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func equalCounts(a, b map[string]map[string]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]int64) bool { return maps.Equal(x, y) })
}

func decodeReplies(t *testing.T, out []byte) []worker.Reply {
	t.Helper()
	var replies []worker.Reply
	for line := range bytes.Lines(out) {
		var r worker.Reply
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("reply %q is not JSON: %v", line, err)
		}
		replies = append(replies, r)
	}
	return replies
}

func TestRunWorkerEndsWithContext(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, pr, io.Discard, worker.Fault{}) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("worker.Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("worker.Run still blocked reading after its context ended")
	}
}

func TestLineReaderSkipsLongLines(t *testing.T) {
	in := "short\n" + strings.Repeat("y", 200<<10) + "\nnext\nlast"
	lr := worker.NewLineReader(strings.NewReader(in), 100)
	type line struct {
		text string
		long bool
	}
	want := []line{{"short", false}, {strings.Repeat("y", 100), true}, {"next", false}, {"last", false}}
	for i, w := range want {
		got, long, err := lr.Next()
		if err != nil || string(got) != w.text || long != w.long {
			t.Fatalf("line %d = %.20q (long %v, err %v), want %.20q (long %v)", i, got, long, err, w.text, w.long)
		}
	}
	if _, _, err := lr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last line: err %v, want EOF", err)
	}
}

// FuzzWorkerProtocol feeds arbitrary request streams to an in-process
// worker with no fault injected: it must answer or skip every line, never
// panic, and write only replies.
func FuzzWorkerProtocol(f *testing.F) {
	fx := loadContent(f)
	bundle := writeBundle(f, f.TempDir(), 292)
	seeds := []string{
		`{"op":"load","id":1,"channel":"acme/ipc","version":292,"path":"$BUNDLE"}` + "\n" + framed(fx.events[0]) + "\n" + `{"op":"counts","id":2}`,
		`{"op":"load","id":1,"channel":"acme/ipc","version":292,"path":"$BUNDLE"}` + "\n" + `{"op":"unload","id":2,"channel":"acme/ipc"}` + "\n" + framed(fx.events[1]),
		framed([]byte(`{"template_type":"ipc@3","inputs":[null,-1,18446744073709551615,1e3,"\u0000"]}`)),
		`{"op":"load","id":1,"channel":"acme/ipc","version":292,"path":"/dev/null"}`,
		`{"op":"counts","id":18446744073709551615}` + "\n\n\r\n" + `{"op":"event","event":`,
		"\xff\xfe{\"op\":\"load\"}\n[]\nnull\n\"op\"",
		`{"op":"counts"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.ReplaceAll(data, []byte("$BUNDLE"), []byte(filepath.ToSlash(bundle)))
		var out bytes.Buffer
		if err := worker.Run(context.Background(), bytes.NewReader(data), &out, worker.Fault{}); err != nil {
			t.Fatalf("worker.Run: %v", err)
		}
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, maxReplyLine)
		for sc.Scan() {
			var r worker.Reply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("reply %q is not JSON: %v", sc.Bytes(), err)
			}
			if r.Error == "" && !r.OK && r.Counts == nil && r.Rejected == 0 && r.ID == 0 {
				t.Fatalf("empty reply %q", sc.Bytes())
			}
		}
	})
}
