package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// enrolAudit gathers enrolments per token and minute for the audit log:
// one entry per token and minute with its count, not one per device (a
// deployment enrols thousands an hour).
type enrolAudit struct {
	mu sync.Mutex
	m  map[enrolKey]*enrolCount
}

type enrolKey struct {
	token  string
	minute int64 // unix minutes
}

type enrolCount struct {
	org  string
	n    int
	last string // the last device enrolled
}

func (a *enrolAudit) add(token, org, device string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[enrolKey]*enrolCount{}
	}
	k := enrolKey{token, at.Unix() / 60}
	c := a.m[k]
	if c == nil {
		c = &enrolCount{org: org}
		a.m[k] = c
	}
	c.n++
	c.last = device
}

// pending reports whether any enrolment waits to be audited.
func (a *enrolAudit) pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m) > 0
}

// take removes and returns the counts of minutes before now (all of them
// when all is set), oldest first.
func (a *enrolAudit) take(now time.Time, all bool) []store.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []enrolKey
	for k := range a.m {
		if all || k.minute < now.Unix()/60 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y enrolKey) int {
		if x.minute != y.minute {
			return int(x.minute - y.minute)
		}
		if x.token < y.token {
			return -1
		}
		return 1
	})
	var out []store.AuditEntry
	for _, k := range keys {
		c := a.m[k]
		delete(a.m, k)
		from := time.Unix(k.minute*60, 0).UTC()
		out = append(out, store.AuditEntry{Time: from.Add(time.Minute), Actor: "enrolment token " + k.token, Action: "device.enroll", Target: k.token,
			Reason: fmt.Sprintf("%d device(s) of %s enrolled in the minute from %s (last %s)", c.n, c.org, from.Format("15:04"), c.last)})
	}
	return out
}

// flushEnrolments writes the enrolment counts of finished minutes (every
// one with all) to the audit log; what cannot be written is logged, as
// the devices are enrolled already.
func (s *Server) flushEnrolments(ctx context.Context, all bool) {
	// The clock is read only when there is something to write: the
	// simulator's clock belongs to its own goroutine, and it enrols no
	// device through this path.
	if !s.enrolled.pending() {
		return
	}
	for _, e := range s.enrolled.take(s.now(), all) {
		if _, err := s.store.AppendAudit(ctx, e); err != nil {
			s.log.Warn("enrolments not audited", "token", e.Target, "entry", e.Reason, "err", err)
		}
	}
}
