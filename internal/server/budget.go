package server

import "sync"

// budgets admits new offers against organisations' hourly caps. The
// snapshot carries the offers stored in the last hour; budgets counts the
// ones this replica admitted since, so a burst of check-ins between two
// snapshots cannot overshoot the cap.
type budgets struct {
	mu    sync.Mutex
	extra map[string]int64
}

// admit reserves one offer for org, or reports that its budget is spent.
func (b *budgets) admit(sn *snapshot, org string) bool {
	ob, capped := sn.budget[org]
	if !capped {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ob.used+b.extra[org] >= ob.limit {
		return false
	}
	if b.extra == nil {
		b.extra = map[string]int64{}
	}
	b.extra[org]++
	return true
}

// release returns a reservation whose offer was not stored.
func (b *budgets) release(org string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.extra[org] > 0 {
		b.extra[org]--
	}
}

// reset starts counting afresh when a new snapshot has read the store.
func (b *budgets) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.extra = nil
}
