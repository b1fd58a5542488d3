package server

import "testing"

// An offer admitted before a snapshot reads the store but stored while it
// reads (or after) is in neither the snapshot's count nor, if the
// reservations were simply cleared, in the replica's: the cap would be
// overshot by the check-ins in flight (seen as 13 devices against a cap
// of 12 on a busy machine). The reservation is kept until a snapshot
// that began reading after the offer was stored is in use.
func TestBudgetKeepsReservationsAcrossASnapshotRead(t *testing.T) {
	const org = "fabrikam"
	snap := func(used int64) *snapshot {
		return &snapshot{budget: map[string]orgBudget{org: {limit: 2, used: used}}}
	}
	var b budgets
	sn := snap(0)
	if !b.admit(sn, org) { // a check-in in flight: admitted, not stored yet
		t.Fatal("first offer refused")
	}
	b.beginRead() // a snapshot starts reading: it will not see the offer
	b.stored(org) // the offer lands while it reads
	b.reset()     // the new snapshot is in use
	sn = snap(0)  // its read missed the offer
	if !b.admit(sn, org) {
		t.Fatal("second offer refused: the cap is 2")
	}
	b.stored(org)
	if b.admit(sn, org) {
		t.Fatal("third offer admitted: the cap of 2 is overshot")
	}
	// A snapshot that read after both offers were stored counts them
	// itself; the replica keeps nothing more.
	b.beginRead()
	b.reset()
	if b.admit(snap(2), org) {
		t.Fatal("an offer admitted beyond the stored count")
	}
	if !b.admit(snap(1), org) {
		t.Fatal("an offer refused under the stored count")
	}
	// A reservation whose write failed is returned.
	b.release(org)
	if !b.admit(snap(1), org) {
		t.Fatal("a released reservation still counts")
	}
	// A read that failed leaves the reservations as they were.
	b.beginRead()
	b.endRead()
	if b.admit(snap(1), org) {
		t.Fatal("a failed read dropped a reservation")
	}
}
