package server

import "sync"

// budgets admits new offers against organisations' hourly caps. The
// snapshot carries the offers stored in the last hour; budgets counts the
// ones this replica admitted that the snapshot may lack, so a burst of
// check-ins between two snapshots cannot overshoot the cap.
//
// A snapshot reads the store while check-ins go on: an offer admitted
// before the read but stored after it is in neither count unless it is
// kept. So reset keeps what is still pending (admitted, not yet stored)
// and what was stored while a read was in progress (it may or may not be
// in the read: counting it twice errs towards the cap). A load-dependent
// overshoot by one device was seen in TestRolloutOrganisationHourlyBudget
// on a busy machine before.
type budgets struct {
	mu      sync.Mutex
	extra   map[string]int64 // admitted, perhaps not in the snapshot
	pending map[string]int64 // admitted, not yet stored
	during  map[string]int64 // stored while a snapshot read ran
	reads   int              // snapshot reads in progress
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
	if b.pending == nil {
		b.pending = map[string]int64{}
	}
	b.extra[org]++
	b.pending[org]++
	return true
}

// exhaust notes that the store refused an offer to org for its budget (a
// replica beside this one used the rest): nothing more is admitted until
// the next snapshot counts the offers again.
func (b *budgets) exhaust(sn *snapshot, org string) {
	ob, capped := sn.budget[org]
	if !capped {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.extra == nil {
		b.extra = map[string]int64{}
	}
	b.extra[org] = max(b.extra[org], ob.limit-ob.used)
}

// stored notes that an admitted offer is in the store.
func (b *budgets) stored(org string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[org] <= 0 {
		return // not admitted against a cap
	}
	b.pending[org]--
	if b.reads > 0 {
		if b.during == nil {
			b.during = map[string]int64{}
		}
		b.during[org]++
	}
}

// release returns a reservation whose offer was not stored.
func (b *budgets) release(org string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[org] > 0 {
		b.pending[org]--
		if b.extra[org] > 0 {
			b.extra[org]--
		}
	}
}

// beginRead is called before a snapshot reads the offers from the store.
func (b *budgets) beginRead() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
}

// endRead ends a snapshot read that failed: the reservations stay.
func (b *budgets) endRead() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reads > 0 {
		b.reads--
	}
	if b.reads == 0 {
		b.during = nil
	}
}

// reset starts counting afresh when a new snapshot has read the store:
// only what that read may lack is kept.
func (b *budgets) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.extra = map[string]int64{}
	for org, n := range b.pending {
		b.extra[org] += n
	}
	for org, n := range b.during {
		b.extra[org] += n
	}
	if b.reads > 0 {
		b.reads--
	}
	if b.reads == 0 {
		b.during = nil
	}
}
