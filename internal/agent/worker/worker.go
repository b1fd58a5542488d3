package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/content"
)

// The worker protocol is JSON lines on the worker's stdin and stdout, one
// message per line. The agent sends
//
//	{"op":"load","id":7,"channel":"acme/ipc","version":293,"path":".../293.bundle"}
//	{"op":"load","id":8,"channel":"acme/ipc","version":294,"path":".../294.bundle","shadow":true}
//	{"op":"unload","id":8,"channel":"acme/ipc"}
//	{"op":"counts","id":9}
//	{"op":"event","event":{"template_type":"ipc@3","inputs":[...]}}
//
// and the worker answers every request but events, by id (ids start at 1):
//
//	{"id":7,"ok":true}   {"id":7,"error":"..."}
//	{"id":9,"counts":{"acme/ipc":{"log":3,"alert":1}},"shadow":{"acme/ipc":{"block":40}},"rejected":2}
//
// A channel runs at most one enforced and one shadow version: a load
// with "shadow" replaces the channel's shadow content, which is
// evaluated like the enforced content but counted apart ("shadow"), as
// what it would have done.
//
// Events get no reply: at sensor rates a reply per event would double the
// traffic, and a stream of bad events would flood the agent. Events the
// worker cannot parse are counted instead and reported as "rejected" with
// the counts. A line that is not a request, or a request without an id,
// gets an error with id 0.
const (
	OpLoad   = "load"
	OpUnload = "unload"
	OpCounts = "counts"
	OpEvent  = "event"
)

type Request struct {
	Op      string          `json:"op"`
	ID      uint64          `json:"id,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Version uint64          `json:"version,omitempty"`
	Path    string          `json:"path,omitempty"`
	Shadow  bool            `json:"shadow,omitempty"` // load, unload: the channel's shadow content
	Event   json.RawMessage `json:"event,omitempty"`
}

type Reply struct {
	ID     uint64                      `json:"id"`
	OK     bool                        `json:"ok,omitempty"`
	Error  string                      `json:"error,omitempty"`
	Counts map[string]map[string]int64 `json:"counts,omitempty"`
	// Shadow are the matches of shadow content, as Counts.
	Shadow map[string]map[string]int64 `json:"shadow,omitempty"`
	// Rejected is the number of events the worker could not parse since
	// the last counts request.
	Rejected int64 `json:"rejected,omitempty"`
}

// EventPrefix is how the supervisor frames every event. The worker
// recognises it and hands the rest of the line to content.ParseEvent, so
// the hot path decodes each event once instead of twice.
var EventPrefix = []byte(`{"op":"event","event":`)

// MaxRequestLine bounds one request line: the largest event plus its frame.
const MaxRequestLine = content.MaxEventLine + 64

// maxReplyError bounds the error text in a reply, which may quote the
// request, so that a hostile request cannot make a reply the agent will
// not read.
const maxReplyError = 1024

// CrashStatus is the exit status of a worker killed by an injected
// fault: EX_SOFTWARE, an internal software error.
const CrashStatus = 70

// Run is `ringfence-agent worker`: it evaluates events against the
// content the agent loads, reading requests from in and answering on out,
// until in ends (the agent closed the pipe or died) or ctx does. It
// returns an error only when it cannot read or write its pipes: bad
// requests, bad bundles and bad events are answered and survived.
//
// A worker-crash fault ends the process, deliberately: it stands for
// content that faults the interpreter, which no reply can report.
func Run(ctx context.Context, in io.Reader, out io.Writer, fault Fault) error {
	// A read blocked on the pipe cannot see ctx; closing the pipe ends it.
	if c, ok := in.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
	}
	w := &worker{out: bufio.NewWriter(out), fault: fault, counts: map[slot]*actionCounts{}}
	lr := NewLineReader(in, MaxRequestLine)
	for {
		line, long, err := lr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: read requests: %w", err)
		}
		if long {
			err = w.reply(Reply{Error: fmt.Sprintf("request line longer than %d bytes: skipped", MaxRequestLine)})
		} else {
			err = w.handle(line)
		}
		if err != nil {
			return fmt.Errorf("worker: write reply: %w", err)
		}
	}
}

// actionCounts counts matches by content.Action, indexed by its value: the
// count per match is an array increment, no map lookup, whatever the value.
type actionCounts [256]int64

// slot is where content runs: a channel's enforced or shadow content.
type slot struct {
	channel string
	shadow  bool
}

func compareSlots(a, b slot) int {
	if c := strings.Compare(a.channel, b.channel); c != 0 {
		return c
	}
	switch {
	case a.shadow == b.shadow:
		return 0
	case b.shadow:
		return -1
	}
	return 1
}

// running is one slot's loaded content.
type running struct {
	slot
	c      *content.Compiled
	eval   *content.Evaluator
	counts *actionCounts
}

type worker struct {
	out   *bufio.Writer
	fault Fault
	// loaded is sorted by slot, so evaluation order does not depend on
	// map iteration.
	loaded   []*running
	counts   map[slot]*actionCounts // kept past an unload until reported
	rejected int64
	res      content.Result      // reused: no allocation per event
	parser   content.EventParser // likewise; an event lives until the next
}

func (w *worker) handle(line []byte) error {
	line = bytes.TrimRight(line, " \t\r")
	if len(line) == 0 {
		return nil
	}
	if bytes.HasPrefix(line, EventPrefix) && line[len(line)-1] == '}' {
		w.event(line[len(EventPrefix) : len(line)-1])
		return nil
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return w.reply(Reply{Error: fmt.Sprintf("malformed request: %v", err)})
	}
	if req.Op == OpEvent {
		w.event(req.Event)
		return nil
	}
	// Id 0 is reserved for lines that could not be read as a request;
	// acting on a request whose answer cannot be matched would leave the
	// agent unsure what the worker runs.
	if req.ID == 0 {
		return w.reply(Reply{Error: fmt.Sprintf("%q request without an id: ignored", req.Op)})
	}
	switch req.Op {
	case OpLoad:
		if err := w.load(req); err != nil {
			return w.reply(Reply{ID: req.ID, Error: err.Error()})
		}
		return w.reply(Reply{ID: req.ID, OK: true})
	case OpUnload:
		if req.Channel == "" {
			return w.reply(Reply{ID: req.ID, Error: "unload: no channel"})
		}
		sl := slot{req.Channel, req.Shadow}
		w.loaded = slices.DeleteFunc(w.loaded, func(r *running) bool { return r.slot == sl })
		return w.reply(Reply{ID: req.ID, OK: true})
	case OpCounts:
		return w.reply(w.takeCounts(req.ID))
	}
	return w.reply(Reply{ID: req.ID, Error: fmt.Sprintf("unknown op %q", req.Op)})
}

func (w *worker) reply(r Reply) error {
	if len(r.Error) > maxReplyError {
		r.Error = strings.ToValidUTF8(r.Error[:maxReplyError], "") + "…"
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	w.out.Write(b)
	w.out.WriteByte('\n')
	return w.out.Flush()
}

// load replaces the channel's content only once the new bundle is known
// good, so a refused load leaves the worker running what it ran.
func (w *worker) load(req Request) error {
	if req.Channel == "" || req.Version == 0 || req.Path == "" {
		return fmt.Errorf("load %q@%d: channel, version and path are all required", req.Channel, req.Version)
	}
	name := fmt.Sprintf("%s@%d", req.Channel, req.Version)
	if req.Shadow {
		name += " (shadow)"
	}
	c, err := readBundle(req.Path)
	if err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	// A slot holding another channel's or version's bytes is a bug or
	// tampering on this device; running it would count its matches
	// against the wrong release.
	if c.Vendor+"/"+c.Channel != req.Channel || c.Version != req.Version {
		return fmt.Errorf("load %s: %s holds %s", name, req.Path, c.Name())
	}
	ev, err := content.NewEvaluator(c)
	if err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	if w.fault.WorkerCrash(req.Channel, req.Version) {
		crashForFault(name)
	}
	if w.fault.Hang(req.Channel, req.Version) {
		fmt.Fprintf(os.Stderr, "fault injected: %s %s\n", FaultHang, name)
		for { // no answer, no more reading: only a kill ends it
			time.Sleep(time.Hour) // (a bare select{} would be a detected deadlock: a crash)
		}
	}
	sl := slot{req.Channel, req.Shadow}
	counts := w.counts[sl]
	if counts == nil {
		counts = new(actionCounts)
		w.counts[sl] = counts
	}
	r := &running{slot: sl, c: c, eval: ev, counts: counts}
	i, found := slices.BinarySearchFunc(w.loaded, sl, func(r *running, sl slot) int { return compareSlots(r.slot, sl) })
	if found {
		w.loaded[i] = r
	} else {
		w.loaded = slices.Insert(w.loaded, i, r)
	}
	return nil
}

// crashForFault ends the process as faulting content would. An exit with
// a status of its own, after one line on stderr, rather than a panic: the
// supervisor reports the status and the last stderr lines, and a panic's
// goroutine dump would push the line naming the fault out of that tail.
// Death by a signal takes the same path in the supervisor and is tested
// with SIGKILL.
func crashForFault(name string) {
	fmt.Fprintf(os.Stderr, "fault injected: %s %s\n", FaultWorkerCrash, name)
	os.Exit(CrashStatus)
}

func readBundle(path string) (*content.Compiled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, content.MaxCompiledSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > content.MaxCompiledSize {
		return nil, fmt.Errorf("%s is larger than the %d-byte limit of a compiled bundle", path, content.MaxCompiledSize)
	}
	c, err := content.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// event evaluates one event against every loaded channel. No panic
// recovery here on purpose: the interpreter never panics, and if it ever
// did, the worker dying is what the supervisor counts as a crash and
// reverts the content over.
func (w *worker) event(raw []byte) {
	ev, err := w.parser.Parse(raw)
	if err != nil {
		w.rejected++
		return
	}
	for _, r := range w.loaded {
		r.eval.Eval(ev, &w.res)
		for _, i := range w.res.Matches {
			r.counts[r.c.Instances[i].Action]++
		}
	}
}

// takeCounts reports the matches since the last report and starts
// counting afresh; counts of channels unloaded since are reported once
// and then forgotten.
func (w *worker) takeCounts(id uint64) Reply {
	rep := Reply{ID: id, Counts: map[string]map[string]int64{}, Rejected: w.rejected}
	for sl, counts := range w.counts {
		to := &rep.Counts
		if sl.shadow {
			to = &rep.Shadow
		}
		for a, n := range counts {
			if n == 0 {
				continue
			}
			if *to == nil {
				*to = map[string]map[string]int64{}
			}
			if (*to)[sl.channel] == nil {
				(*to)[sl.channel] = map[string]int64{}
			}
			(*to)[sl.channel][content.Action(a).String()] = n
		}
		if slices.ContainsFunc(w.loaded, func(r *running) bool { return r.slot == sl }) {
			*counts = actionCounts{}
		} else {
			delete(w.counts, sl)
		}
	}
	w.rejected = 0
	return rep
}

// LineReader reads lines of at most max bytes, without the newline. Of a
// longer line it returns the first max bytes and says so, and skips the
// rest: one oversized line costs a bounded buffer and does not end the
// stream.
type LineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next line, valid until the following call, and whether
// it was cut at max. A last line without a newline counts.
func (lr *LineReader) Next() (line []byte, long bool, err error) {
	// One big line must not pin its buffer for the process's lifetime:
	// the idle worker is meant to be small.
	if cap(lr.buf) > 256<<10 {
		lr.buf = nil
	}
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		data := bytes.TrimSuffix(chunk, []byte{'\n'})
		if room := lr.max - len(lr.buf); len(data) > room {
			data, long = data[:room], true
		}
		lr.buf = append(lr.buf, data...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			return lr.buf, long, nil
		case errors.Is(err, io.EOF) && len(chunk)+len(lr.buf) > 0:
			return lr.buf, long, nil
		}
		return nil, false, err
	}
}
