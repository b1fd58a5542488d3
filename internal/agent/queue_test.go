package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ringfence/ringfence/internal/protocol"
)

func openQueue(t testing.TB, dir string, limit int) *Queue {
	t.Helper()
	q, err := OpenQueue(dir, limit)
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	return q
}

func push(t testing.TB, q *Queue, typ EventType) Event {
	t.Helper()
	e, err := q.Append(Event{Time: t0, Type: typ, Channel: "acme/ipc", Version: 293})
	if err != nil {
		t.Fatalf("Append %s: %v", typ, err)
	}
	return e
}

func seqs(events []Event) []uint64 {
	out := []uint64{}
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

func TestEventWireFormat(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"applied", Event{Seq: 1, Time: t0, Type: EventApplied, Channel: "acme/ipc", Version: 292},
			`{"seq":1,"time":"2026-11-27T01:50:00Z","type":"applied","channel":"acme/ipc","version":292}`},
		{"actions", Event{Seq: 3, Time: t0, Type: EventActions, Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"alert": 3, "block": 1}},
			`{"seq":3,"time":"2026-11-27T01:50:00Z","type":"actions","channel":"acme/ipc","version":292,"counts":{"alert":3,"block":1}}`},
		{"no-channel", Event{Seq: 4, Time: t0, Type: EventUncleanReboot, Reason: "power loss"},
			`{"seq":4,"time":"2026-11-27T01:50:00Z","type":"unclean-reboot","reason":"power loss"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("JSON:\ngot  %s\nwant %s", got, tc.want)
			}
			dec := json.NewDecoder(bytes.NewReader(got))
			dec.DisallowUnknownFields()
			var r protocol.EventReport
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("the server's type does not read it: %v", err)
			}
			back, _ := json.Marshal(r)
			if string(back) != tc.want {
				t.Errorf("through the server's type:\ngot  %s\nwant %s", back, tc.want)
			}
		})
	}
}

func TestQueueSeqSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, 0)
	for i, typ := range []EventType{EventApplied, EventActions, EventHealthy} {
		if e := push(t, q, typ); e.Seq != uint64(i+1) {
			t.Errorf("event %d: got seq %d, want %d", i, e.Seq, i+1)
		}
	}
	q = openQueue(t, dir, 0)
	if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Errorf("after reopening: got seqs %v, want [1 2 3]", got)
	}
	if e := push(t, q, EventWorkerCrash); e.Seq != 4 {
		t.Errorf("after reopening: got seq %d, want 4", e.Seq)
	}
	// With everything acknowledged the file holds no event, and the
	// numbers still go on.
	if err := q.Ack(4); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, 0)
	if q.Len() != 0 {
		t.Errorf("after acking all and reopening: %d events, want 0", q.Len())
	}
	if e := push(t, q, EventActions); e.Seq != 5 {
		t.Errorf("after acking all and reopening: got seq %d, want 5", e.Seq)
	}
}

func TestQueueAck(t *testing.T) {
	tests := []struct {
		name string
		ack  uint64
		want []uint64
		next uint64
	}{
		{"nothing", 0, []uint64{1, 2, 3, 4}, 5},
		{"some", 2, []uint64{3, 4}, 5},
		{"all", 4, []uint64{}, 5},
		// The server has stored numbers this queue forgot (a lost data
		// directory): the next events must be numbered above them.
		{"beyond", 9, []uint64{}, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, dir, 0)
			for _, typ := range []EventType{EventApplied, EventActions, EventHealthy, EventActions} {
				push(t, q, typ)
			}
			if err := q.Ack(tc.ack); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after Ack(%d): got %v, want %v", tc.ack, got, tc.want)
			}
			data, err := os.ReadFile(filepath.Join(dir, QueueFile))
			if err != nil {
				t.Fatal(err)
			}
			if lines := bytes.Count(data, []byte("\n")); lines != 1+len(tc.want) {
				t.Errorf("file has %d lines, want a header and %d events:\n%s", lines, len(tc.want), data)
			}
			q = openQueue(t, dir, 0)
			if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after reopening: got %v, want %v", got, tc.want)
			}
			if e := push(t, q, EventActions); e.Seq != tc.next {
				t.Errorf("next seq: got %d, want %d", e.Seq, tc.next)
			}
		})
	}
}

func TestQueueTornLastLine(t *testing.T) {
	tests := []struct {
		name, tail string
	}{
		{"partial-line", `{"seq":3,"time":"2026-11-27T01:5`},
		{"complete-json-without-newline", `{"seq":3,"time":"2026-11-27T01:50:00Z","type":"applied"}`},
		{"zero-filled", "\x00\x00\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, dir, 0)
			push(t, q, EventApplied)
			push(t, q, EventHealthy)
			path := filepath.Join(dir, QueueFile)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tc.tail); err != nil {
				t.Fatal(err)
			}
			f.Close()

			q = openQueue(t, dir, 0)
			if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, []uint64{1, 2}) {
				t.Errorf("after the torn write: got %v, want [1 2]", got)
			}
			// The next line must not be glued to the torn one.
			if e := push(t, q, EventWorkerCrash); e.Seq != 3 {
				t.Errorf("next seq: got %d, want 3", e.Seq)
			}
			q = openQueue(t, dir, 0)
			if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
				t.Errorf("after appending past the torn write: got %v, want [1 2 3]", got)
			}
		})
	}
}

func TestQueueCorrupt(t *testing.T) {
	header := `{"queue":1,"last_seq":0}` + "\n"
	ev := func(seq int, typ string) string {
		return `{"seq":` + itoa(seq) + `,"time":"2026-11-27T01:50:00Z","type":"` + typ + `"}` + "\n"
	}
	tests := []struct {
		name, data, want string
	}{
		{"corrupt-middle-line", header + ev(1, "applied") + "{garbage\n" + ev(3, "healthy"), "line 3: invalid character"},
		{"corrupt-terminated-last-line", header + ev(1, "applied") + "{garbage\n", "line 3: invalid character"},
		{"empty-middle-line", header + ev(1, "applied") + "\n" + ev(3, "healthy"), "line 3: empty"},
		{"no-header", ev(1, "applied"), `line 1: queue header: json: unknown field "seq"`},
		{"empty-file", "", "line 1: no queue header"},
		{"newer-format", `{"queue":2,"last_seq":0}` + "\n", "line 1: queue format 2; this agent reads format 1"},
		{"seq-not-increasing", header + ev(2, "applied") + ev(2, "healthy"), "line 3: seq 2 after 2"},
		{"seq-zero", header + ev(0, "applied"), "line 2: seq 0 after 0"},
		{"unknown-type", header + ev(1, "rebooted"), `line 2: seq 1: unknown event type "rebooted"`},
		{"unknown-field", header + `{"seq":1,"type":"applied","host":"x"}` + "\n", `line 2: json: unknown field "host"`},
		{"two-values", header + `{"seq":1,"type":"applied"} {}` + "\n", "line 2: data after the value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, QueueFile)
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			q, err := OpenQueue(dir, 0)
			if err == nil {
				t.Fatalf("OpenQueue = %d events, want an error", q.Len())
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestQueueBound(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, 5)
	// 1 applied, 2 actions, 3 healthy, 4 actions, 5 actions: full.
	for _, typ := range []EventType{EventApplied, EventActions, EventHealthy, EventActions, EventActions} {
		push(t, q, typ)
	}
	steps := []struct {
		typ  EventType
		want []uint64
	}{
		{EventWorkerCrash, []uint64{1, 3, 4, 5, 6}},       // the oldest actions, 2, makes room
		{EventActions, []uint64{1, 3, 5, 6, 7}},           // then 4
		{EventReverted, []uint64{1, 3, 6, 7, 8}},          // then 5
		{EventBootLoop, []uint64{1, 3, 6, 8, 9}},          // then the newest actions, 7
		{EventUncleanReboot, []uint64{1, 3, 6, 8, 9, 10}}, // nothing droppable left: kept over the bound
		{EventApplyFailed, []uint64{1, 3, 6, 8, 9, 10, 11}},
	}
	for i, s := range steps {
		push(t, q, s.typ)
		if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d, %s: got %v, want %v", i+1, s.typ, got, s.want)
		}
	}
	_, err := q.Append(Event{Time: t0, Type: EventActions, Counts: map[string]int64{"log": 1}})
	if !errors.Is(err, ErrQueueFull) {
		t.Errorf("actions into a queue full of non-droppable events: got %v, want ErrQueueFull", err)
	}
	if q.LastSeq() != 11 {
		t.Errorf("a refused event took a number: last seq %d, want 11", q.LastSeq())
	}
	q = openQueue(t, dir, 5)
	if got, want := seqs(q.Pending(0)), []uint64{1, 3, 6, 8, 9, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("after reopening: got %v, want %v", got, want)
	}
}

func TestQueuePendingLimit(t *testing.T) {
	dir := t.TempDir()
	var events []Event
	for i := 1; i <= 1500; i++ {
		events = append(events, Event{Seq: uint64(i), Time: t0, Type: EventActions})
	}
	data, err := encodeQueue(1500, events)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, QueueFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, dir, 0)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"three", 3, 3},
		{"zero-means-the-server-limit", 0, 1000},
		{"over-the-server-limit", 5000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := q.Pending(tc.limit)
			if len(got) != tc.want || got[0].Seq != 1 || got[len(got)-1].Seq != uint64(tc.want) {
				t.Errorf("Pending(%d): %d events from %d to %d, want the oldest %d", tc.limit, len(got), got[0].Seq, got[len(got)-1].Seq, tc.want)
			}
		})
	}
	// What Pending returns is the caller's.
	q2 := openQueue(t, t.TempDir(), 0)
	push(t, q2, EventActions)
	if _, err := q2.Append(Event{Time: t0, Type: EventActions, Counts: map[string]int64{"log": 1}}); err != nil {
		t.Fatal(err)
	}
	q2.Pending(0)[1].Counts["log"] = 99
	if n := q2.Pending(0)[1].Counts["log"]; n != 1 {
		t.Errorf("changing a returned event changed the queue: count %d, want 1", n)
	}
}

func TestQueueRefusesWhatTheServerRefuses(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"unknown-type", Event{Type: "rebooted"}, `unknown event type "rebooted"`},
		{"no-type", Event{}, `unknown event type ""`},
		{"bad-channel", Event{Type: EventApplied, Channel: "acme"}, `channel "acme" is not VENDOR/CHANNEL`},
		{"upper-case-channel", Event{Type: EventApplied, Channel: "Acme/ipc"}, `channel "Acme/ipc" is not VENDOR/CHANNEL`},
		{"unknown-action", Event{Type: EventActions, Counts: map[string]int64{"nuke": 1}}, `counts: unknown action "nuke"`},
		{"negative-count", Event{Type: EventActions, Counts: map[string]int64{"block": -1}}, "counts.block: -1 is out of range"},
		{"huge-count", Event{Type: EventActions, Counts: map[string]int64{"block": 1<<40 + 1}}, "counts.block: 1099511627777 is out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := openQueue(t, t.TempDir(), 0)
			_, err := q.Append(tc.e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Append: got %v, want an error saying %q", err, tc.want)
			}
			if q.Len() != 0 || q.LastSeq() != 0 {
				t.Errorf("a refused event was queued: %d events, last seq %d", q.Len(), q.LastSeq())
			}
		})
	}
}

func TestCleanReason(t *testing.T) {
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name, in, want string
	}{
		{"short", "exit status 3", "exit status 3"},
		{"control-characters", "panic:\nindex out of range\t[21]\x7f", "panic: index out of range [21] "},
		{"invalid-utf8", "bad \xff\xfe byte", "bad \uFFFD byte"},
		{"exactly-the-limit", long[:MaxReason], long[:MaxReason]},
		{"too-long", long, long[:MaxReason-3] + "…"},
		// A three-byte character straddling the cut is not split.
		{"cut-at-a-character", long[:MaxReason-4] + "€€", long[:MaxReason-4] + "…"},
		// Each invalid byte becomes three: measured after replacing.
		{"invalid-bytes-widen", strings.Repeat("\xffa", 600), strings.Repeat("\uFFFDa", 255) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cleanReason(tc.in)
			if got != tc.want {
				t.Errorf("cleanReason:\ngot  %q\nwant %q", got, tc.want)
			}
			if len(got) > MaxReason || !utf8.ValidString(got) || !printable(got) {
				t.Errorf("cleanReason(%q) = %q: not acceptable to the server", tc.in, got)
			}
		})
	}
	// And through the queue and back.
	dir := t.TempDir()
	q := openQueue(t, dir, 0)
	if _, err := q.Append(Event{Time: t0, Type: EventApplyFailed, Reason: long + "\n"}); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, 0)
	if r := q.Pending(0)[0].Reason; len(r) != MaxReason || !strings.HasSuffix(r, "…") {
		t.Errorf("queued reason: %d bytes ending %q, want %d ending with …", len(r), r[len(r)-5:], MaxReason)
	}
}

// A failed append may leave part of a line behind; the next write must
// not build on it, and the failed event's number is not handed out again.
func TestQueueAppendAfterFailedWrite(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, 0)
	push(t, q, EventApplied)
	path := filepath.Join(dir, QueueFile)
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Make the append fail: the file is replaced by a directory.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(Event{Time: t0, Type: EventHealthy}); err == nil {
		t.Fatal("Append into a directory: got no error")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(saved, `{"seq":2,"ty`...), 0o600); err != nil {
		t.Fatal(err)
	}
	if e := push(t, q, EventWorkerCrash); e.Seq != 3 {
		t.Errorf("after a failed append: got seq %d, want 3", e.Seq)
	}
	q = openQueue(t, dir, 0)
	if got := seqs(q.Pending(0)); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Errorf("after reopening: got %v, want [1 3]", got)
	}
}

func FuzzDecodeQueue(f *testing.F) {
	good, err := encodeQueue(3, []Event{
		{Seq: 1, Time: t0, Type: EventApplied, Channel: "acme/ipc", Version: 293},
		{Seq: 3, Time: t0, Type: EventActions, Counts: map[string]int64{"block": 2}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append(good, `{"seq":4`...))
	f.Fuzz(func(t *testing.T, data []byte) {
		last, events, _, err := decodeQueue(data)
		if err != nil {
			return
		}
		// Whatever decodes is acceptable to the server and encodes back
		// to the same queue.
		for i, e := range events {
			if err := e.check(); err != nil || e.Seq == 0 || e.Seq > last || (i > 0 && e.Seq <= events[i-1].Seq) {
				t.Fatalf("decoded event %d %+v: check %v, last seq %d", i, e, err, last)
			}
		}
		again, err := encodeQueue(last, events)
		if err != nil {
			t.Fatal(err)
		}
		last2, events2, torn, err := decodeQueue(again)
		if err != nil || torn || last2 != last || len(events2) != len(events) {
			t.Fatalf("re-encoded queue: %d events, last %d, torn %v, err %v; want %d events, last %d", len(events2), last2, torn, err, len(events), last)
		}
	})
}
