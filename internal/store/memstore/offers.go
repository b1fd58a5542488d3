package memstore

import (
	"context"
	"slices"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// offers keep what the two readers of offers need: which devices were
// offered a release (SilenceStats) and when each organisation's devices
// were offered anything (OffersSince, asked per organisation every tick
// for the hourly budgets). A wave number is stored with an offer in
// sqlstore but read by nothing, so it is not kept.
type offers struct {
	byRelease map[string]map[string]struct{} // release → devices offered it
	// byOrg are the times of an organisation's offers, in milliseconds,
	// sorted: counting those since a time is a binary search.
	byOrg map[string][]int64
}

func newOffers() offers {
	return offers{byRelease: map[string]map[string]struct{}{}, byOrg: map[string][]int64{}}
}

// add stores an offer once per (release, device); a repeat, even later or
// from another organisation, changes nothing.
func (o *offers) add(x store.Offer) {
	devs := o.byRelease[x.Release]
	if devs == nil {
		devs = map[string]struct{}{}
		o.byRelease[x.Release] = devs
	}
	if _, ok := devs[x.Device]; ok {
		return
	}
	devs[x.Device] = struct{}{}
	at := ms(x.At)
	times := o.byOrg[x.Org]
	// Offers arrive in about time order: appending is the common case.
	if n := len(times); n == 0 || times[n-1] <= at {
		o.byOrg[x.Org] = append(times, at)
		return
	}
	i, _ := slices.BinarySearch(times, at)
	o.byOrg[x.Org] = slices.Insert(times, i, at)
}

// spent reports whether a new offer would exceed its organisation's hourly
// budget (store.Offer.Cap); one stored already uses none of it again.
func (o *offers) spent(x store.Offer) bool {
	if _, ok := o.byRelease[x.Release][x.Device]; ok {
		return false
	}
	times := o.byOrg[x.Org]
	i, _ := slices.BinarySearch(times, ms(x.At.Add(-time.Hour)))
	return int64(len(times)-i) >= x.Cap
}

// OffersSince counts an organisation's offers at or after since.
func (s *Store) OffersSince(ctx context.Context, org string, since time.Time) (int64, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	times := st.offers.byOrg[org]
	i, _ := slices.BinarySearch(times, ms(since))
	return int64(len(times) - i), nil
}
