package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// batchWriter is the group commit for device writes: check-ins and
// enrolments queue here and one goroutine writes them in batches, one
// transaction each. Writes that must be durable before the answer (events,
// version changes, enrolments) wait for their batch; a heartbeat alone does
// not, so at most the last moments of last-seen times are lost in a crash.
type batchWriter struct {
	st    store.Store
	log   *slog.Logger
	queue chan *writeReq
	wg    sync.WaitGroup
}

type writeReq struct {
	checkin *store.CheckinWrite
	enroll  *store.Device
	done    chan writeResult // nil: nobody waits
}

type writeResult struct {
	res store.CheckinResult
	err error
}

const (
	writeQueue = 8192
	maxBatch   = 512
)

var errQueueFull = errors.New("write queue full")

func newBatchWriter(st store.Store, log *slog.Logger) *batchWriter {
	return &batchWriter{st: st, log: log, queue: make(chan *writeReq, writeQueue)}
}

// submit queues a write; it fails at once when the queue is full, so a
// slow store turns into 503s rather than unbounded memory.
func (b *batchWriter) submit(r *writeReq) error {
	b.wg.Add(1)
	select {
	case b.queue <- r:
		return nil
	default:
		b.wg.Done()
		return errQueueFull
	}
}

// drain waits until everything submitted so far is written.
func (b *batchWriter) drain() { b.wg.Wait() }

func (b *batchWriter) run(ctx context.Context) {
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case r := <-b.queue:
			batch = append(batch[:0], r)
		case <-ctx.Done():
			// Finish what is queued before leaving.
			for {
				select {
				case r := <-b.queue:
					b.flush([]*writeReq{r})
				default:
					return
				}
			}
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		b.flush(batch)
	}
}

func (b *batchWriter) flush(batch []*writeReq) {
	defer b.wg.Add(-len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var devs []store.Device
	var devReqs, ciReqs []*writeReq
	var cis []store.CheckinWrite
	for _, r := range batch {
		if r.enroll != nil {
			devs = append(devs, *r.enroll)
			devReqs = append(devReqs, r)
		} else {
			cis = append(cis, *r.checkin)
			ciReqs = append(ciReqs, r)
		}
	}
	if len(devs) > 0 {
		err := b.st.CreateDevices(ctx, devs)
		if err != nil && len(devs) > 1 {
			// One bad row fails the transaction: retry one by one so the
			// others still land and only the bad one reports an error.
			for i, d := range devs {
				reply(devReqs[i], writeResult{err: b.st.CreateDevices(ctx, []store.Device{d})})
			}
		} else {
			for _, r := range devReqs {
				reply(r, writeResult{err: err})
			}
		}
	}
	if len(cis) > 0 {
		res, err := b.st.ApplyCheckins(ctx, cis)
		if err != nil && len(cis) > 1 && !errors.Is(err, store.ErrUnavailable) {
			for i, c := range cis {
				r, err := b.st.ApplyCheckins(ctx, []store.CheckinWrite{c})
				wr := writeResult{err: err}
				if err == nil {
					wr.res = r[0]
				}
				reply(ciReqs[i], wr)
			}
			return
		}
		for i, r := range ciReqs {
			wr := writeResult{err: err}
			if err == nil {
				wr.res = res[i]
			}
			reply(r, wr)
		}
		if err != nil {
			b.log.Warn("check-in batch not written", "checkins", len(cis), "err", err)
		}
	}
}

func reply(r *writeReq, wr writeResult) {
	if r.done != nil {
		r.done <- wr
	}
}
