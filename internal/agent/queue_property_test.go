package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"
)

var allEventTypes = []EventType{EventApplied, EventApplyFailed, EventHealthy, EventReverted,
	EventWorkerCrash, EventUncleanReboot, EventBootLoop, EventActions}

// TestPropertyQueueKeepsWhatMatters drives a small queue through random
// appends, acks, reopens and appends torn by a crash, and checks after
// every step that no non-droppable event is lost before it is acked, that
// numbers only go up (across reopens too) and that the bound holds
// whenever something droppable is left to make room.
func TestPropertyQueueKeepsWhatMatters(t *testing.T) {
	var atBound, survivedReopen int
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		limit := rapid.IntRange(1, 6).Draw(rt, "limit")
		q, err := OpenQueue(dir, limit)
		if err != nil {
			rt.Fatal(err)
		}
		kept := map[uint64]EventType{} // non-droppable, queued, not acked
		var highest uint64             // no number at or below it may be handed out
		reopen := func(rt *rapid.T) {
			q, err = OpenQueue(dir, limit)
			if err != nil {
				rt.Fatalf("reopen: %v", err)
			}
			if len(kept) > 0 {
				survivedReopen++
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				typ := rapid.SampledFrom(allEventTypes).Draw(rt, "type")
				if q.Len() >= limit {
					atBound++
				}
				e, err := q.Append(Event{Time: t0, Type: typ, Channel: "acme/ipc", Version: 7})
				if errors.Is(err, ErrQueueFull) && typ.Droppable() {
					return
				}
				if err != nil {
					rt.Fatalf("Append %s: %v", typ, err)
				}
				if e.Seq <= highest {
					rt.Fatalf("Append %s: seq %d, but %d was handed out or acked before", typ, e.Seq, highest)
				}
				highest = e.Seq
				if !typ.Droppable() {
					kept[e.Seq] = typ
				}
			},
			"ack": func(rt *rapid.T) {
				seq := rapid.Uint64Range(0, highest+2).Draw(rt, "seq")
				if err := q.Ack(seq); err != nil {
					rt.Fatalf("Ack(%d): %v", seq, err)
				}
				for s := range kept {
					if s <= seq {
						delete(kept, s)
					}
				}
				highest = max(highest, seq)
			},
			"reopen": reopen,
			"crash-mid-append": func(rt *rapid.T) {
				tail := rapid.SampledFrom([]string{`{"seq":`, "\x00\x00", `{"seq":99,"time":"0001-01-01T00:00:00Z","type":"applied"}`}).Draw(rt, "tail")
				f, err := os.OpenFile(filepath.Join(dir, QueueFile), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					rt.Fatal(err)
				}
				_, err = f.WriteString(tail)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					rt.Fatal(err)
				}
				reopen(rt)
			},
			"": func(rt *rapid.T) {
				events := q.Pending(0)
				have := map[uint64]EventType{}
				droppable := false
				for i, e := range events {
					if i > 0 && e.Seq <= events[i-1].Seq {
						rt.Fatalf("seqs out of order: %v", seqs(events))
					}
					have[e.Seq] = e.Type
					droppable = droppable || e.Type.Droppable()
				}
				for s, typ := range kept {
					if have[s] != typ {
						rt.Fatalf("%s event %d lost; queue holds %v", typ, s, seqs(events))
					}
				}
				if len(events) > limit && droppable {
					rt.Fatalf("%d events over the bound of %d with droppable ones among them", len(events), limit)
				}
				if q.LastSeq() < highest {
					rt.Fatalf("last seq %d below %d", q.LastSeq(), highest)
				}
			},
		})
	})
	// A run that never reaches the bound or never reopens a non-empty
	// queue checks nothing that matters.
	if atBound == 0 || survivedReopen == 0 {
		t.Errorf("vacuous: %d appends at the bound, %d reopens with events kept", atBound, survivedReopen)
	}
}
