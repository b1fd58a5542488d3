package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ringfence/ringfence/internal/protocol"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// QueueFile is the event queue's name in the agent's data directory.
const QueueFile = "events.jsonl"

const (
	// MaxEvents is the default bound on queued events: at the default
	// check-in interval, weeks of a device's events.
	MaxEvents = 10000
	// MaxEventsPerCheckin is how many events the server takes at once.
	MaxEventsPerCheckin = protocol.MaxEventsPerCheckin
	// MaxReason is the longest reason, in bytes, the server takes.
	MaxReason = protocol.MaxReason
	// maxCount is the server's bound on one action count.
	maxCount = protocol.MaxActionCount
	// queueSchema is the format of the queue's header line.
	queueSchema = 1
)

// EventType is an event's "type" on the wire.
type EventType string

const (
	EventApplied       EventType = protocol.EventApplied
	EventApplyFailed   EventType = protocol.EventApplyFailed
	EventHealthy       EventType = protocol.EventHealthy
	EventReverted      EventType = protocol.EventReverted
	EventWorkerCrash   EventType = protocol.EventWorkerCrash
	EventUncleanReboot EventType = protocol.EventUncleanReboot
	EventBootLoop      EventType = protocol.EventBootLoop
	EventActions       EventType = protocol.EventActions
	EventShadowActions EventType = protocol.EventShadowActions
)

func (t EventType) known() bool { return protocol.KnownEvent(string(t)) }

// Droppable events may be dropped, oldest first, when the queue is full.
// Only the periodic action counts are: every other event is what the
// server's health gates count, and losing one would hide a failure from
// the rollout that caused it.
func (t EventType) Droppable() bool { return protocol.ActionEvent(string(t)) }

// Event is one queued device event. Its JSON is the server's wire type
// (EventReport in the check-in API) field for field.
type Event struct {
	Seq     uint64           `json:"seq"`
	Time    time.Time        `json:"time"`
	Type    EventType        `json:"type"`
	Channel string           `json:"channel,omitempty"` // "vendor/channel"
	Version uint64           `json:"version,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Counts  map[string]int64 `json:"counts,omitempty"` // log, alert, block
}

// ErrQueueFull is returned for a droppable event when the queue is full
// and holds nothing droppable to make room.
var ErrQueueFull = errors.New("event queue full")

// Queue is the durable event queue, <data>/events.jsonl. Events are
// numbered from 1 for the device's whole life: a number is never reused,
// not even after every event was acknowledged and the agent restarted,
// because the server ignores a number it has stored before.
//
// The file is JSON lines: a header {"queue":1,"last_seq":N} carrying the
// highest number given out when the file was last rewritten, then one
// event per line. An event is queued once its line, newline included, is
// fsynced; so a line without its newline is a write a crash interrupted,
// which was never reported as queued, and is dropped on open.
//
// The bound is soft: when the queue is full the oldest droppable events
// make room, and if there are none, non-droppable events are still kept,
// over the bound. There are a handful of those per activation, so a queue
// full of them means something is badly wrong, which is the last thing to
// forget. Dropping was chosen over merging action counts: an event sent
// but not yet acknowledged may already be stored under its number, so
// rewriting it into a merged event would either lose or double-count.
// Dropped events leave gaps in the numbers, which the server accepts.
//
// A Queue is safe for concurrent use by one process.
type Queue struct {
	mu      sync.Mutex
	dir     string
	path    string
	max     int
	events  []Event
	lastSeq uint64
	// broken: an append failed and may have left a partial line, which
	// the next line would be glued to; the next write rewrites the file.
	broken bool
}

type queueHeader struct {
	Queue   int    `json:"queue"`
	LastSeq uint64 `json:"last_seq"`
}

// OpenQueue opens dir's event queue, creating it if there is none.
// maxEvents bounds it; 0 means MaxEvents. A line that cannot be read,
// other than an interrupted last one, is an error naming it.
func OpenQueue(dir string, maxEvents int) (*Queue, error) {
	if maxEvents <= 0 {
		maxEvents = MaxEvents
	}
	q := &Queue{dir: dir, path: filepath.Join(dir, QueueFile), max: maxEvents}
	data, err := os.ReadFile(q.path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := q.rewrite(nil, 0); err != nil {
			return nil, fmt.Errorf("create event queue: %w", err)
		}
		return q, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open event queue: %w", err)
	}
	lastSeq, events, torn, err := decodeQueue(data)
	if err != nil {
		return nil, fmt.Errorf("open event queue %s: %w", q.path, err)
	}
	q.events, q.lastSeq = events, lastSeq
	if torn {
		if err := q.rewrite(events, lastSeq); err != nil {
			return nil, fmt.Errorf("open event queue: drop interrupted last line: %w", err)
		}
	}
	return q, nil
}

// Append numbers the event, queues it durably and returns it as queued.
// Any Seq given is replaced. The reason is made printable and cut to
// MaxReason bytes; an event the server would refuse (unknown type, bad
// channel or counts) is an error, since one such event would have the
// server refuse every check-in that carries it.
func (q *Queue) Append(e Event) (Event, error) {
	e.Time = e.Time.UTC() // also drops the monotonic reading, which the file cannot keep
	e.Reason = cleanReason(e.Reason)
	e.Counts = maps.Clone(e.Counts)
	if err := e.check(); err != nil {
		return Event{}, fmt.Errorf("queue %s event: %w", e.Type, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	full := len(q.events) >= q.max
	if full && e.Type.Droppable() && !slices.ContainsFunc(q.events, func(e Event) bool { return e.Type.Droppable() }) {
		return Event{}, fmt.Errorf("queue %s event: %w: %d events, none droppable", e.Type, ErrQueueFull, len(q.events))
	}
	// Taken even if the write fails: the line may have reached the disk.
	q.lastSeq++
	e.Seq = q.lastSeq
	if full || q.broken {
		next := bound(append(slices.Clone(q.events), e), q.max)
		if err := q.rewrite(next, q.lastSeq); err != nil {
			return Event{}, fmt.Errorf("queue %s event: %w", e.Type, err)
		}
		q.events, q.broken = next, false
		return e.clone(), nil
	}
	line, err := json.Marshal(e)
	if err != nil {
		return Event{}, fmt.Errorf("queue %s event: %w", e.Type, err)
	}
	if err := appendDurable(q.path, append(line, '\n')); err != nil {
		q.broken = true
		return Event{}, fmt.Errorf("queue %s event: %w", e.Type, err)
	}
	q.events = append(q.events, e)
	return e.clone(), nil
}

// Pending returns the oldest queued events, at most limit of them; a
// limit that is not positive or over MaxEventsPerCheckin means
// MaxEventsPerCheckin, since the server refuses more.
func (q *Queue) Pending(limit int) []Event {
	if limit <= 0 || limit > MaxEventsPerCheckin {
		limit = MaxEventsPerCheckin
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Event, min(limit, len(q.events)))
	for i := range out {
		out[i] = q.events[i].clone()
	}
	return out
}

// Ack drops every event numbered seq or less: the server has stored them
// (its ack_seq). An ack above the highest number given out means the
// server has seen numbers this queue forgot (its data directory was lost);
// numbering continues above it, or the server would ignore what follows.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := sort.Search(len(q.events), func(i int) bool { return q.events[i].Seq > seq })
	last := max(q.lastSeq, seq)
	if n == 0 && last == q.lastSeq && !q.broken {
		return nil
	}
	rest := slices.Clone(q.events[n:])
	if err := q.rewrite(rest, last); err != nil {
		return fmt.Errorf("ack events up to %d: %w", seq, err)
	}
	q.events, q.lastSeq, q.broken = rest, last, false
	return nil
}

// Len is how many events are queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// LastSeq is the highest number given out so far.
func (q *Queue) LastSeq() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lastSeq
}

// rewrite replaces the file with exactly these events, atomically.
// Rewriting a full queue on each append costs about a megabyte written
// per event, which only a device long offline pays, and keeps the file
// within the bound.
func (q *Queue) rewrite(events []Event, lastSeq uint64) error {
	data, err := encodeQueue(lastSeq, events)
	if err != nil {
		return err
	}
	return writeFileAtomic(q.dir, QueueFile, data)
}

// bound drops the oldest droppable events until at most limit remain, or
// none droppable is left.
func bound(events []Event, limit int) []Event {
	drop := len(events) - limit
	if drop <= 0 {
		return events
	}
	return slices.DeleteFunc(events, func(e Event) bool {
		if drop > 0 && e.Type.Droppable() {
			drop--
			return true
		}
		return false
	})
}

func encodeQueue(lastSeq uint64, events []Event) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // one value and a newline per Encode
	if err := enc.Encode(queueHeader{Queue: queueSchema, LastSeq: lastSeq}); err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// decodeQueue reads a queue file. torn reports an unterminated last line,
// which it leaves out.
func decodeQueue(data []byte) (lastSeq uint64, events []Event, torn bool, err error) {
	lines := bytes.Split(data, []byte("\n"))
	// After the last newline: empty, or a line a crash interrupted.
	torn = len(lines[len(lines)-1]) > 0
	lines = lines[:len(lines)-1]
	if len(lines) == 0 {
		return 0, nil, false, errors.New("line 1: no queue header")
	}
	var h queueHeader
	if err := decodeStrict(lines[0], &h); err != nil {
		return 0, nil, false, fmt.Errorf("line 1: queue header: %w", err)
	}
	if h.Queue != queueSchema {
		return 0, nil, false, fmt.Errorf("line 1: queue format %d; this agent reads format %d", h.Queue, queueSchema)
	}
	lastSeq = h.LastSeq
	var prev uint64
	for i, line := range lines[1:] {
		n := i + 2
		if len(line) == 0 {
			return 0, nil, false, fmt.Errorf("line %d: empty", n)
		}
		var e Event
		if err := decodeStrict(line, &e); err != nil {
			return 0, nil, false, fmt.Errorf("line %d: %w", n, err)
		}
		if e.Seq == 0 || e.Seq <= prev {
			return 0, nil, false, fmt.Errorf("line %d: seq %d after %d; numbers start at 1 and increase", n, e.Seq, prev)
		}
		if err := e.check(); err != nil {
			return 0, nil, false, fmt.Errorf("line %d: seq %d: %w", n, e.Seq, err)
		}
		prev = e.Seq
		events = append(events, e)
	}
	return max(lastSeq, prev), events, torn, nil
}

// decodeStrict decodes exactly one JSON value with only known fields.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the value")
	}
	return nil
}

// check applies the server's rules for one event.
func (e *Event) check() error {
	if !e.Type.known() {
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	if e.Channel != "" && !protocol.ValidChannel(e.Channel) {
		return fmt.Errorf("channel %q is not VENDOR/CHANNEL", e.Channel)
	}
	if len(e.Reason) > MaxReason || !printable(e.Reason) {
		return fmt.Errorf("reason: at most %d printable bytes", MaxReason)
	}
	for k, v := range e.Counts {
		if k != "log" && k != "alert" && k != "block" {
			return fmt.Errorf("counts: unknown action %q (log, alert, block)", k)
		}
		if v < 0 || v > maxCount {
			return fmt.Errorf("counts.%s: %d is out of range", k, v)
		}
	}
	return nil
}

func (e Event) clone() Event {
	e.Counts = maps.Clone(e.Counts)
	return e
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// cleanReason makes a reason acceptable to the server: control characters
// (a worker's stderr has newlines) become spaces, invalid UTF-8 becomes
// U+FFFD, which must happen before measuring since JSON would widen each
// bad byte to three, and anything over MaxReason bytes is cut at a
// character boundary and marked with "…".
func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= MaxReason {
		return s
	}
	const mark = "…"
	cut := MaxReason - len(mark)
	for !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
