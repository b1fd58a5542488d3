package memstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ringfence/ringfence/internal/store"
)

// Devices: every method whose cost grows with the fleet is in this file,
// so that the fleet simulator, which embeds a Store, can see at a glance
// what it replaces with its compact arrays.

// device is a stored device and what it last reported per channel.
type device struct {
	store.Device
	channels []store.DeviceChannel // sorted by channel
	hbWindow int64                 // the last heartbeat window counted
}

// devices index the fleet. fleet and onVersion are kept with every write,
// so FleetSizes and DevicesOnVersion, which the controller asks every
// tick, never walk the devices.
type devices struct {
	byID map[string]*device
	// ids are every device id, for paging in id order. They are sorted
	// lazily: enrolment appends, usually in order already, and the next
	// ListDevices sorts if one arrived out of order.
	ids      []string
	unsorted bool

	fleet     map[string]int64         // unrevoked devices per organisation
	onVersion map[channelVersion]int64 // unrevoked devices per running version
}

type channelVersion struct {
	channel string
	version uint64
}

func newDevices() devices {
	return devices{byID: map[string]*device{}, fleet: map[string]int64{}, onVersion: map[channelVersion]int64{}}
}

func (ds *devices) add(d store.Device) {
	d.EnrolledAt, d.LastSeen = norm(d.EnrolledAt), norm(d.LastSeen)
	ds.byID[d.ID] = &device{Device: d}
	if n := len(ds.ids); n > 0 && ds.ids[n-1] >= d.ID {
		ds.unsorted = true
	}
	ds.ids = append(ds.ids, d.ID)
	if !d.Revoked {
		ds.fleet[d.Org]++
	}
}

// count moves one unrevoked device onto (by +1) or off (by -1) a version.
func (ds *devices) count(k channelVersion, by int64) {
	if n := ds.onVersion[k] + by; n != 0 {
		ds.onVersion[k] = n
	} else {
		delete(ds.onVersion, k)
	}
}

// report stores what a device says it runs on one channel.
func (ds *devices) report(d *device, c store.DeviceChannel) {
	c.Device, c.UpdatedAt = d.ID, norm(c.UpdatedAt)
	c.Offered, c.Release = false, "" // not stored
	i, found := slices.BinarySearchFunc(d.channels, c.Channel, func(x store.DeviceChannel, ch string) int { return cmp.Compare(x.Channel, ch) })
	if found {
		if !d.Revoked {
			ds.count(channelVersion{c.Channel, d.channels[i].ActiveVersion}, -1)
		}
		d.channels[i] = c
	} else {
		d.channels = slices.Insert(d.channels, i, c)
	}
	if !d.Revoked {
		ds.count(channelVersion{c.Channel, c.ActiveVersion}, +1)
	}
}

// canEnroll reports whether t lets d enrol as its use number use.
func canEnroll(t store.EnrollToken, d store.Device, use int64) bool {
	return !t.Revoked && t.Org == d.Org && (t.MaxUses == 0 || use <= t.MaxUses) &&
		(t.ExpiresAt.IsZero() || ms(d.EnrolledAt) < ms(t.ExpiresAt))
}

func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	return s.CreateDevices(ctx, []store.Device{d})
}

// CreateDevices checks the whole batch before storing any of it: all or
// none, as in one transaction.
func (s *Store) CreateDevices(ctx context.Context, ds []store.Device) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	var batch map[string]bool // ids earlier in the batch
	if len(ds) > 1 {
		batch = make(map[string]bool, len(ds))
	}
	uses := map[string]int64{} // enrolment token → uses by the batch
	for _, d := range ds {
		if st.devices.byID[d.ID] != nil || batch[d.ID] {
			return fmt.Errorf("create device %s: %w", d.ID, store.ErrConflict)
		}
		if _, ok := st.tenants[d.Org]; !ok {
			return fmt.Errorf("create device %s: organisation %s: %w", d.ID, d.Org, store.ErrNotFound)
		}
		if batch != nil {
			batch[d.ID] = true
		}
		if d.EnrolledWith != "" {
			t, ok := st.enrollTokens[d.EnrolledWith]
			uses[t.ID]++
			if !ok || !canEnroll(t, d, t.Uses+uses[t.ID]) {
				return fmt.Errorf("create device %s with %s: %w", d.ID, d.EnrolledWith, store.ErrEnrollToken)
			}
		}
	}
	for _, d := range ds {
		st.devices.add(d)
	}
	for id, n := range uses {
		t := st.enrollTokens[id]
		t.Uses += n
		st.enrollTokens[id] = t
	}
	return nil
}

func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return store.Device{}, err
	}
	defer s.mu.RUnlock()
	d := st.devices.byID[id]
	if d == nil {
		return store.Device{}, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return d.Device, nil
}

// ListDevices pages through the devices in id order, at most 10000 at a
// time as in sqlstore.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	if st.devices.unsorted {
		// Sorting writes: start again under the write lock.
		s.mu.RUnlock()
		if st, err = s.lock(ctx); err != nil {
			return nil, err
		}
		defer s.mu.Unlock()
		if st.devices.unsorted {
			slices.Sort(st.devices.ids)
			st.devices.unsorted = false
		}
	} else {
		defer s.mu.RUnlock()
	}
	ids := st.devices.ids
	i, found := slices.BinarySearch(ids, f.After)
	if found {
		i++
	}
	var out []store.Device
	for ; i < len(ids) && len(out) < limit; i++ {
		d := st.devices.byID[ids[i]]
		if (f.Org == "" || d.Org == f.Org) && (f.Platform == "" || d.Platform == f.Platform) && (f.AgentVersion == "" || d.AgentVersion == f.AgentVersion) {
			out = append(out, d.Device)
		}
	}
	return out, nil
}

// DeviceChannels lists what a device reported, by channel; an unknown
// device has reported nothing.
func (s *Store) DeviceChannels(ctx context.Context, id string) ([]store.DeviceChannel, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	d := st.devices.byID[id]
	if d == nil || len(d.channels) == 0 {
		return nil, nil
	}
	out := slices.Clone(d.channels)
	for i, c := range out {
		for _, r := range st.releases.byChannel[c.Channel] {
			if _, ok := st.offers.byRelease[r.ID][id]; ok && r.Version == c.ActiveVersion {
				out[i].Offered = true
			}
		}
	}
	return out, nil
}

func (s *Store) RevokeDevice(ctx context.Context, id string) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	d := st.devices.byID[id]
	if d == nil {
		return fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	if d.Revoked {
		return nil
	}
	d.Revoked = true
	if n := st.devices.fleet[d.Org] - 1; n > 0 {
		st.devices.fleet[d.Org] = n
	} else {
		delete(st.devices.fleet, d.Org)
	}
	for _, c := range d.channels {
		st.devices.count(channelVersion{c.Channel, c.ActiveVersion}, -1)
	}
	return nil
}

// ApplyCheckins writes a batch in device order, as sqlstore does, so a
// device checking in twice in one batch sees its first write.
//
// Events themselves are not kept: nothing in store.Store reads them back,
// and the device's LastSeq is all that idempotence needs.
func (s *Store) ApplyCheckins(ctx context.Context, ws []store.CheckinWrite) ([]store.CheckinResult, error) {
	order := byDevice(ws)
	st, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	// An unknown device is the only way a write can fail, so checking
	// them all first makes the batch all or nothing.
	for _, i := range order {
		if st.devices.byID[ws[i].Device.ID] == nil {
			return nil, fmt.Errorf("check-in of device %s: %w", ws[i].Device.ID, store.ErrNotFound)
		}
	}
	out := make([]store.CheckinResult, len(ws))
	for _, i := range order {
		w := &ws[i]
		d := st.devices.byID[w.Device.ID]
		seq := d.LastSeq
		d.Anomalies += w.Anomalies
		for _, e := range w.Events {
			if e.Seq <= seq {
				continue // a retry: stored already, counted already
			}
			cs, refused := st.believe(w.Device.ID, e.Counters)
			st.addCounters(cs)
			out[i].Refused += refused
			d.Anomalies += int64(refused)
			seq = e.Seq
			out[i].NewEvents++
		}
		out[i].LastSeq = seq
		d.Platform, d.OSBuild, d.AgentVersion, d.LastSeq = w.Device.Platform, w.Device.OSBuild, w.Device.AgentVersion, seq
		if ms(w.Device.LastSeen) > ms(d.LastSeen) {
			d.LastSeen = norm(w.Device.LastSeen)
		}
		for _, c := range w.Channels {
			st.devices.report(d, c)
		}
		for _, o := range w.Offers {
			// An offer without device or organisation is this device's.
			if o.Device == "" {
				o.Device = w.Device.ID
			}
			if o.Org == "" && o.Device == w.Device.ID {
				o.Org = d.Org
			}
			if o.Cap > 0 && st.offers.spent(o) {
				out[i].Capped = append(out[i].Capped, o.Release)
				continue
			}
			st.offers.add(o)
		}
		for _, c := range w.Channels {
			if _, ok := st.offers.byRelease[c.Release][d.ID]; ok && c.Release != "" {
				out[i].Offered = append(out[i].Offered, c.Release)
			}
		}
	}
	return out, nil
}

// byDevice is the order ApplyCheckins writes a batch in: by device id.
func byDevice(ws []store.CheckinWrite) []int { return store.WriteOrder(ws) }

// TouchDevices moves last-seen times forward, ignoring unknown devices,
// and adds the counters.
func (s *Store) TouchDevices(ctx context.Context, seen []store.DeviceSeen, counters []store.Counter) error {
	st, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	counters = slices.Clip(counters) // AddBeats appends: never into the caller's array
	for _, x := range seen {
		d := st.devices.byID[x.ID]
		if d == nil {
			continue
		}
		if ms(d.LastSeen) < ms(x.LastSeen) {
			d.LastSeen = norm(x.LastSeen)
		}
		if x.Window > 0 && len(x.Beats) > 0 && d.hbWindow < x.Window {
			d.hbWindow = x.Window
			counters = store.AddBeats(counters, x.Beats)
		}
	}
	st.addCounters(counters)
	return nil
}

// FleetSizes counts the unrevoked devices per organisation; organisations
// without any are left out.
func (s *Store) FleetSizes(ctx context.Context) (map[string]int64, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return maps.Clone(st.devices.fleet), nil
}

// AgentVersions walks the devices: publishing asks, rarely.
func (s *Store) AgentVersions(ctx context.Context) ([]store.AgentVersionCount, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	type key struct{ platform, agent string }
	n := map[key]int64{}
	for _, d := range st.devices.byID {
		if !d.Revoked {
			n[key{d.Platform, d.AgentVersion}]++
		}
	}
	out := make([]store.AgentVersionCount, 0, len(n))
	for k, c := range n {
		out = append(out, store.AgentVersionCount{Platform: k.platform, AgentVersion: k.agent, Devices: c})
	}
	slices.SortFunc(out, func(a, b store.AgentVersionCount) int {
		return cmp.Or(strings.Compare(a.Platform, b.Platform), strings.Compare(a.AgentVersion, b.AgentVersion))
	})
	return out, nil
}

func (s *Store) DevicesOnVersion(ctx context.Context, channel string, version uint64) (int64, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return st.devices.onVersion[channelVersion{channel, version}], nil
}

// VersionCounts walks the devices: the console's fleet page asks, on a
// person's request.
func (s *Store) VersionCounts(ctx context.Context, q store.VersionQuery) ([]store.VersionCount, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	type counts struct{ devices, silent int64 }
	n := map[channelVersion]*counts{}
	for _, d := range st.devices.byID {
		if d.Revoked || (q.Org != "" && d.Org != q.Org) {
			continue
		}
		quiet := d.LastSeen.Before(q.QuietBefore)
		for _, c := range d.channels {
			k := channelVersion{c.Channel, c.ActiveVersion}
			if n[k] == nil {
				n[k] = &counts{}
			}
			n[k].devices++
			if quiet {
				n[k].silent++
			}
		}
	}
	out := make([]store.VersionCount, 0, len(n))
	for k, c := range n {
		out = append(out, store.VersionCount{Channel: k.channel, Version: k.version, Devices: c.devices, Silent: c.silent})
	}
	slices.SortFunc(out, func(a, b store.VersionCount) int {
		return cmp.Or(strings.Compare(a.Channel, b.Channel), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// confirmed reports whether a device's last-known-good on channel is
// version or later (version 0: never).
func confirmed(d *device, channel string, version uint64) bool {
	if version == 0 {
		return false
	}
	i, found := slices.BinarySearchFunc(d.channels, channel, func(x store.DeviceChannel, ch string) int { return cmp.Compare(x.Channel, ch) })
	return found && d.channels[i].LKGVersion >= version
}

// SilenceStats is one pass over the devices. An offered device counts
// whenever it was last seen: its offer proves it was seen after the
// release started.
func (s *Store) SilenceStats(ctx context.Context, q store.SilenceQuery) ([]store.SilenceStat, error) {
	since, overdue := ms(q.Since), ms(q.OverdueBefore)
	type key struct{ org, platform, agent, osBuild string }
	acc := map[key]*store.SilenceStat{}
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	offered := st.offers.byRelease[q.Release]
	for _, d := range st.devices.byID {
		if d.Revoked {
			continue
		}
		_, isOffered := offered[d.ID]
		seen := ms(d.LastSeen)
		if !isOffered && seen < since {
			continue
		}
		k := key{d.Org, d.Platform, d.AgentVersion, d.OSBuild}
		a := acc[k]
		if a == nil {
			a = &store.SilenceStat{}
			acc[k] = a
		}
		silent := seen < overdue
		switch {
		case isOffered && confirmed(d, q.Channel, q.Version):
			a.Offered++
			a.Confirmed++
			if silent {
				a.ConfirmedSilent++
			}
		case isOffered:
			a.Offered++
			if silent {
				a.OfferedSilent++
			}
		default:
			a.Control++
			if silent {
				a.ControlSilent++
			}
		}
	}
	s.mu.RUnlock()
	// sqlstore groups by the joined string, which two different triples
	// can share ("a/b"+"c" and "a"+"b/c"): merge on it too.
	type name struct{ org, stratum string }
	byName := make(map[name]*store.SilenceStat, len(acc))
	for k, a := range acc {
		n := name{k.org, k.platform + "/" + k.agent + "/" + k.osBuild}
		if m := byName[n]; m != nil {
			m.Offered += a.Offered
			m.OfferedSilent += a.OfferedSilent
			m.Confirmed += a.Confirmed
			m.ConfirmedSilent += a.ConfirmedSilent
			m.Control += a.Control
			m.ControlSilent += a.ControlSilent
			continue
		}
		a.Org, a.Stratum = n.org, n.stratum
		byName[n] = a
	}
	var out []store.SilenceStat
	for _, a := range byName {
		out = append(out, *a)
	}
	slices.SortFunc(out, store.CompareSilence)
	return out, nil
}

// ChannelOrgs walks the fleet: it is asked only when an event of the
// channel is notified to organisations' subscriptions.
func (s *Store) ChannelOrgs(ctx context.Context, channel string) ([]string, error) {
	st, err := s.rlock(ctx)
	if err != nil {
		return nil, err
	}
	orgs := map[string]bool{}
	for org, byChannel := range st.policies {
		if _, ok := byChannel[channel]; ok {
			orgs[org] = true
		}
	}
	for _, d := range st.devices.byID {
		if d.Revoked || orgs[d.Org] {
			continue
		}
		if _, found := slices.BinarySearchFunc(d.channels, channel, func(x store.DeviceChannel, ch string) int { return cmp.Compare(x.Channel, ch) }); found {
			orgs[d.Org] = true
		}
	}
	s.mu.RUnlock()
	return slices.Sorted(maps.Keys(orgs)), nil
}
