package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Conformance cases for staged rollouts (issue 4).

// releaseDiff describes how got differs from want, or returns "".
func releaseDiff(got, want store.Release) string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Channel", got.Channel == want.Channel, got.Channel, want.Channel)
	check("Version", got.Version == want.Version, got.Version, want.Version)
	check("Plan", string(got.Plan) == string(want.Plan), string(got.Plan), string(want.Plan))
	check("State", got.State == want.State, got.State, want.State)
	check("Wave", got.Wave == want.Wave, got.Wave, want.Wave)
	check("Reason", got.Reason == want.Reason, got.Reason, want.Reason)
	check("Revision", got.Revision == want.Revision, got.Revision, want.Revision)
	check("CreatedBy", got.CreatedBy == want.CreatedBy, got.CreatedBy, want.CreatedBy)
	check("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("UpdatedAt", got.UpdatedAt.Equal(want.UpdatedAt), got.UpdatedAt, want.UpdatedAt)
	check("WaveStartedAt", got.WaveStartedAt.Equal(want.WaveStartedAt), got.WaveStartedAt, want.WaveStartedAt)
	check("CompletedAt", got.CompletedAt.Equal(want.CompletedAt), got.CompletedAt, want.CompletedAt)
	check("Lane", got.Lane == want.Lane, got.Lane, want.Lane)
	check("Phase", got.Phase == want.Phase, got.Phase, want.Phase)
	check("HaltedBy", got.HaltedBy == want.HaltedBy, got.HaltedBy, want.HaltedBy)
	check("CreatorToken", got.CreatorToken == want.CreatorToken, got.CreatorToken, want.CreatorToken)
	check("GatesSince", got.GatesSince.Equal(want.GatesSince) && got.GatesSince.IsZero() == want.GatesSince.IsZero(), got.GatesSince, want.GatesSince)
	// Cohort: nil reads back nil, bytes read back as they were.
	check("Cohort", (got.Cohort == nil) == (want.Cohort == nil) && string(got.Cohort) == string(want.Cohort), fmt.Sprintf("%q", got.Cohort), fmt.Sprintf("%q", want.Cohort))
	// Approvals: none reads back nil.
	sameApprovals := slices.EqualFunc(got.Approvals, want.Approvals, func(a, b store.Approval) bool {
		return a.Actor == b.Actor && a.Reason == b.Reason && a.At.Equal(b.At) && a.Token == b.Token && a.TokenCreator == b.TokenCreator
	}) && (got.Approvals == nil) == (len(want.Approvals) == 0)
	check("Approvals", sameApprovals, got.Approvals, want.Approvals)
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func testReleaseStagedFields(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 293, SHA256: "bb", Size: 1, Bytes: []byte{4}, CreatedAt: t0}))

	// Every new field set on create.
	full := store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 292, Plan: []byte(`{"waves":[]}`), State: store.ReleaseAwaitingApproval,
		CreatedBy: "alice", CreatorToken: "tok-alice", CreatedAt: t0, UpdatedAt: t0, WaveStartedAt: t0,
		Lane: "emergency", Phase: "baking", HaltedBy: "",
		Approvals: []store.Approval{
			{Actor: "bob", At: t0.Add(time.Minute), Reason: "reviewed the diff", Token: "tok-bob", TokenCreator: "tok-admin"},
			{Actor: "carol", At: t0.Add(2*time.Minute + 250*time.Millisecond), Reason: "second pair of eyes"},
		},
		GatesSince: t0.Add(90 * time.Second),
		Cohort:     []byte(`{"strata":{"windows/7.11.0/22631":["dev-1","dev-2"]}}`)}
	must(t, s.CreateRelease(ctx, full))
	// Every new field left empty.
	empty := store.Release{ID: "rel-2", Channel: "acme/ipc", Version: 293, Plan: []byte(`{}`), State: store.ReleaseDraft, CreatedBy: "alice", CreatedAt: t0, UpdatedAt: t0}
	must(t, s.CreateRelease(ctx, empty))

	full.Revision, empty.Revision = 1, 1
	for _, want := range []store.Release{full, empty} {
		got, err := s.GetRelease(ctx, want.ID)
		must(t, err)
		if d := releaseDiff(got, want); d != "" {
			t.Errorf("GetRelease(%s) after create: %s", want.ID, d)
		}
	}
	list, err := s.ListReleases(ctx, "")
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListReleases = %d releases, want 2", len(list))
	}
	for i, want := range []store.Release{full, empty} {
		if d := releaseDiff(list[i], want); d != "" {
			t.Errorf("ListReleases[%d]: %s", i, d)
		}
	}

	// An update writes every field: the full release loses its approvals
	// and cohort, the empty one gains them.
	upd := full
	upd.State, upd.Phase, upd.HaltedBy, upd.Reason = store.ReleaseHalted, "gating", "controller", "silence 3.2% above control"
	upd.Lane, upd.Approvals, upd.Cohort, upd.GatesSince = "normal", nil, nil, time.Time{}
	upd.UpdatedAt = t0.Add(time.Hour)
	rev, err := s.UpdateRelease(ctx, upd)
	must(t, err)
	if rev != 2 {
		t.Errorf("revision after update = %d, want 2", rev)
	}
	upd.Revision = rev
	got, err := s.GetRelease(ctx, "rel-1")
	must(t, err)
	if d := releaseDiff(got, upd); d != "" {
		t.Errorf("after clearing update: %s", d)
	}

	upd2 := empty
	upd2.State, upd2.Lane, upd2.Phase = store.ReleaseRolling, "emergency", "baking"
	upd2.Approvals = []store.Approval{{Actor: "dave", At: t0.Add(3 * time.Minute), Reason: "ok"}}
	upd2.Cohort = []byte(`[1,2,3]`)
	upd2.GatesSince = t0.Add(4 * time.Minute)
	rev, err = s.UpdateRelease(ctx, upd2)
	must(t, err)
	upd2.Revision = rev
	got, err = s.GetRelease(ctx, "rel-2")
	must(t, err)
	if d := releaseDiff(got, upd2); d != "" {
		t.Errorf("after filling update: %s", d)
	}
	// An empty, non-nil approval list reads back nil too.
	upd2.Approvals = []store.Approval{}
	rev, err = s.UpdateRelease(ctx, upd2)
	must(t, err)
	upd2.Revision = rev
	got, err = s.GetRelease(ctx, "rel-2")
	must(t, err)
	if got.Approvals != nil {
		t.Errorf("empty approvals read back as %#v, want nil", got.Approvals)
	}

	// A writer holding an old revision changes none of the new fields.
	stale := full // revision 1; stored is 2
	stale.Lane, stale.Phase, stale.HaltedBy = "stale", "stale", "stale"
	stale.Approvals = []store.Approval{{Actor: "mallory", At: t0}}
	stale.Cohort, stale.GatesSince = []byte(`"stale"`), t0.Add(time.Hour)
	_, err = s.UpdateRelease(ctx, stale)
	wantErr(t, err, store.ErrStale)
	got, err = s.GetRelease(ctx, "rel-1")
	must(t, err)
	if d := releaseDiff(got, upd); d != "" {
		t.Errorf("stale update changed the release: %s", d)
	}
}

func testHourlyCap(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "fabrikam", Kind: store.TenantOrg, Name: "Fabrikam", HourlyCap: 250, CreatedAt: t0}))
	caps := func() map[string]int {
		all, err := s.ListTenants(ctx)
		must(t, err)
		m := map[string]int{}
		for _, tn := range all {
			m[tn.ID] = tn.HourlyCap
		}
		return m
	}
	if got, want := fmt.Sprint(caps()), fmt.Sprint(map[string]int{"acme": 0, "acme-it": 0, "contoso": 0, "fabrikam": 250}); got != want {
		t.Errorf("caps after create = %s, want %s", got, want)
	}
	must(t, s.SetHourlyCap(ctx, "contoso", 100))
	must(t, s.SetHourlyCap(ctx, "fabrikam", 0))
	c, err := s.GetTenant(ctx, "contoso")
	must(t, err)
	if c.HourlyCap != 100 || c.Name != "Contoso Hospitals" || c.Kind != store.TenantOrg {
		t.Errorf("contoso after SetHourlyCap: %+v", c)
	}
	if got, want := fmt.Sprint(caps()), fmt.Sprint(map[string]int{"acme": 0, "acme-it": 0, "contoso": 100, "fabrikam": 0}); got != want {
		t.Errorf("caps after set = %s, want %s", got, want)
	}
	wantErr(t, s.SetHourlyCap(ctx, "nobody", 100), store.ErrNotFound)
}

// offerWrite is a check-in by d (reporting its stored attributes) that
// records offers.
func offerWrite(d store.Device, offers ...store.Offer) store.CheckinWrite {
	return store.CheckinWrite{Device: d, Offers: offers}
}

func testOffers(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	d1 := store.Device{ID: "dev-1", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	d2 := store.Device{ID: "dev-2", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	it := store.Device{ID: "it-1", Org: "acme-it", Platform: "linux", OSBuild: "6.8", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	must(t, s.CreateDevices(ctx, []store.Device{d1, d2, it}))
	since := func(org string, at time.Time) int64 {
		t.Helper()
		n, err := s.OffersSince(ctx, org, at)
		must(t, err)
		return n
	}

	_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{
		offerWrite(d1, store.Offer{Release: "rel-1", Device: "dev-1", Org: "contoso", Wave: 1, At: t0}),
		offerWrite(it, store.Offer{Release: "rel-1", Device: "it-1", Org: "acme-it", Wave: 0, At: t0}),
	})
	must(t, err)
	// A repeat (the device asked again, or the batch was retried) is
	// ignored, even in a later batch and at a later time; another release
	// offered to the same device counts.
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{
		offerWrite(d1, store.Offer{Release: "rel-1", Device: "dev-1", Org: "contoso", Wave: 2, At: t0.Add(time.Minute)},
			store.Offer{Release: "rel-2", Device: "dev-1", Org: "contoso", Wave: 1, At: t0.Add(2 * time.Minute)}),
		offerWrite(d2, store.Offer{Release: "rel-1", Device: "dev-2", Org: "contoso", Wave: 1, At: t0.Add(3 * time.Minute)}),
	})
	must(t, err)
	for _, c := range []struct {
		org  string
		at   time.Time
		want int64
	}{
		{"contoso", t0, 3},
		{"contoso", t0.Add(time.Minute), 2}, // the repeat at +1m did not replace the offer at t0
		{"contoso", t0.Add(2 * time.Minute), 2},
		{"contoso", t0.Add(2*time.Minute + time.Millisecond), 1},
		{"contoso", t0.Add(time.Hour), 0},
		{"acme-it", t0, 1},
		{"acme-it", t0.Add(time.Second), 0},
		{"nobody", t0, 0},
	} {
		if got := since(c.org, c.at); got != c.want {
			t.Errorf("OffersSince(%s, t0+%v) = %d, want %d", c.org, c.at.Sub(t0), got, c.want)
		}
	}
	// Offers are written in the batch's transaction: a batch that fails
	// stores none of them.
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{
		offerWrite(d2, store.Offer{Release: "rel-3", Device: "dev-2", Org: "contoso", Wave: 0, At: t0.Add(time.Hour)}),
		{Device: store.Device{ID: "ghost"}},
	})
	wantErr(t, err, store.ErrNotFound)
	if got := since("contoso", t0.Add(time.Hour)); got != 0 {
		t.Errorf("a failed batch stored %d offers", got)
	}
}

func testFleetSizes(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	got, err := s.FleetSizes(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("FleetSizes with no devices = %v, want empty", got)
	}
	var ds []store.Device
	for i := range 5 {
		ds = append(ds, store.Device{ID: fmt.Sprintf("c-%d", i), Org: "contoso", EnrolledAt: t0})
	}
	ds = append(ds, store.Device{ID: "it-1", Org: "acme-it", EnrolledAt: t0}, store.Device{ID: "it-2", Org: "acme-it", EnrolledAt: t0})
	must(t, s.CreateDevices(ctx, ds))
	must(t, s.RevokeDevice(ctx, "c-3"))
	must(t, s.RevokeDevice(ctx, "it-1"))
	must(t, s.RevokeDevice(ctx, "it-2"))
	got, err = s.FleetSizes(ctx)
	must(t, err)
	if fmt.Sprint(got) != fmt.Sprint(map[string]int64{"contoso": 4}) {
		t.Errorf("FleetSizes = %v, want map[contoso:4] (revoked devices excluded)", got)
	}
}

func testAgentVersions(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	got, err := s.AgentVersions(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("AgentVersions with no devices = %v, want none", got)
	}
	dev := func(id, platform, agent string) store.Device {
		return store.Device{ID: id, Org: "contoso", Platform: platform, AgentVersion: agent, EnrolledAt: t0}
	}
	must(t, s.CreateDevices(ctx, []store.Device{dev("a", "windows", "7.12.0"), dev("b", "windows", "7.11.3"), dev("c", "windows", "7.12.0"),
		dev("d", "linux", "7.12.0"), dev("e", "windows", "7.13.0")}))
	must(t, s.RevokeDevice(ctx, "e"))
	got, err = s.AgentVersions(ctx)
	must(t, err)
	av := func(platform, agent string, n int64) store.AgentVersionCount {
		return store.AgentVersionCount{Platform: platform, AgentVersion: agent, Devices: n}
	}
	want := []store.AgentVersionCount{av("linux", "7.12.0", 1), av("windows", "7.11.3", 1), av("windows", "7.12.0", 2)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AgentVersions = %v, want %v (revoked devices excluded, sorted)", got, want)
	}
}

func testSilenceStats(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	since, overdue := t0, t0.Add(time.Hour)
	dev := func(id, platform, osBuild string, lastSeen time.Time) store.Device {
		return store.Device{ID: id, Org: "contoso", Platform: platform, OSBuild: osBuild, AgentVersion: "7.11.0", EnrolledAt: t0.Add(-time.Hour), LastSeen: lastSeen}
	}
	win := func(id string, lastSeen time.Time) store.Device { return dev(id, "windows", "22631", lastSeen) }
	lin := func(id string, lastSeen time.Time) store.Device { return dev(id, "linux", "6.8", lastSeen) }
	fine, quiet, gone := t0.Add(2*time.Hour), t0.Add(30*time.Minute), t0.Add(-time.Hour)
	type fd struct {
		d       store.Device
		offered string // release offered, if any
		revoked bool
	}
	fleet := []fd{
		// windows/7.11.0/22631
		{d: win("w-offered-fine", fine), offered: "rel-1"},
		{d: win("w-offered-quiet", quiet), offered: "rel-1"},
		{d: win("w-offered-gone", gone), offered: "rel-1"}, // offered: counts though last seen before Since
		{d: win("w-control-fine", fine)},
		{d: win("w-control-quiet", t0.Add(10*time.Minute))},
		{d: win("w-control-gone", gone)},                                      // before Since, not offered: in neither group
		{d: win("w-offered-revoked", quiet), offered: "rel-1", revoked: true}, // revoked: in neither group
		{d: win("w-control-revoked", fine), revoked: true},
		{d: win("w-other-release", fine), offered: "rel-2"},   // offered another release: control
		{d: win("w-control-edge", since)},                     // last seen exactly at Since: control, silent
		{d: win("w-offered-edge", overdue), offered: "rel-1"}, // last seen exactly at OverdueBefore: not silent
		// linux/7.11.0/6.8
		{d: lin("l-offered-fine", fine), offered: "rel-1"},
		{d: lin("l-control-quiet", t0.Add(20*time.Minute))},
		// Another organisation: a row of its own.
		{d: store.Device{ID: "it-offered-quiet", Org: "acme-it", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0.Add(-time.Hour), LastSeen: quiet}, offered: "rel-1"},
		// macos/7.10.0/14.5: only long-gone devices, so no row.
		{d: store.Device{ID: "m-gone", Org: "contoso", Platform: "macos", OSBuild: "14.5", AgentVersion: "7.10.0", LastSeen: gone}},
	}
	var ds []store.Device
	var ws []store.CheckinWrite
	for _, f := range fleet {
		ds = append(ds, f.d)
		if f.offered != "" {
			ws = append(ws, offerWrite(f.d, store.Offer{Release: f.offered, Device: f.d.ID, Org: "contoso", Wave: 1, At: t0.Add(time.Minute)}))
		}
	}
	must(t, s.CreateDevices(ctx, ds))
	_, err := s.ApplyCheckins(ctx, ws)
	must(t, err)
	for _, f := range fleet {
		if f.revoked {
			must(t, s.RevokeDevice(ctx, f.d.ID))
		}
	}
	got, err := s.SilenceStats(ctx, store.SilenceQuery{Release: "rel-1", Since: since, OverdueBefore: overdue})
	must(t, err)
	want := []store.SilenceStat{
		{Org: "acme-it", Stratum: "windows/7.11.0/22631", Offered: 1, OfferedSilent: 1},
		{Org: "contoso", Stratum: "linux/7.11.0/6.8", Offered: 1, OfferedSilent: 0, Control: 1, ControlSilent: 1},
		{Org: "contoso", Stratum: "windows/7.11.0/22631", Offered: 4, OfferedSilent: 2, Control: 4, ControlSilent: 2},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("SilenceStats =\n%+v\nwant\n%+v", got, want)
	}
	// A release offered to nobody: everyone seen since is control.
	got, err = s.SilenceStats(ctx, store.SilenceQuery{Release: "rel-9", Since: since, OverdueBefore: overdue})
	must(t, err)
	want = []store.SilenceStat{
		{Org: "acme-it", Stratum: "windows/7.11.0/22631", Control: 1, ControlSilent: 1},
		{Org: "contoso", Stratum: "linux/7.11.0/6.8", Control: 2, ControlSilent: 1},
		{Org: "contoso", Stratum: "windows/7.11.0/22631", Control: 7, ControlSilent: 3},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("SilenceStats of an unoffered release =\n%+v\nwant\n%+v", got, want)
	}
	// An offered device that confirmed the release (its last-known-good on
	// the release's channel is the release's version or later) counts
	// apart, with its own silence; one whose last-known-good is older, or
	// on another channel, is still a silent offered device.
	chans := func(d store.Device, cs ...store.DeviceChannel) store.CheckinWrite {
		return store.CheckinWrite{Device: d, Channels: cs}
	}
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{
		chans(win("w-offered-quiet", quiet), store.DeviceChannel{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: 293, State: "active", UpdatedAt: quiet}),
		chans(win("w-offered-gone", gone), store.DeviceChannel{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: 292, State: "probation", UpdatedAt: gone},
			store.DeviceChannel{Channel: "acme/other", ActiveVersion: 900, LKGVersion: 900, State: "active", UpdatedAt: gone}),
	})
	must(t, err)
	got, err = s.SilenceStats(ctx, store.SilenceQuery{Release: "rel-1", Since: since, OverdueBefore: overdue, Channel: "acme/ipc", Version: 293})
	must(t, err)
	want = []store.SilenceStat{
		{Org: "acme-it", Stratum: "windows/7.11.0/22631", Offered: 1, OfferedSilent: 1},
		{Org: "contoso", Stratum: "linux/7.11.0/6.8", Offered: 1, OfferedSilent: 0, Control: 1, ControlSilent: 1},
		{Org: "contoso", Stratum: "windows/7.11.0/22631", Offered: 4, OfferedSilent: 1, Confirmed: 1, ConfirmedSilent: 1, Control: 4, ControlSilent: 2},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("SilenceStats with confirmed devices =\n%+v\nwant\n%+v", got, want)
	}
}

func testDevicesOnVersion(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	var ds []store.Device
	var ws []store.CheckinWrite
	for i, v := range []uint64{292, 292, 291, 292, 292} {
		d := store.Device{ID: fmt.Sprintf("dev-%d", i), Org: "contoso", Platform: "windows", AgentVersion: "7.11.0", EnrolledAt: t0}
		ds = append(ds, d)
		chans := []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: v, LKGVersion: 290, State: "active", UpdatedAt: t0}}
		if i == 0 {
			chans = append(chans, store.DeviceChannel{Channel: "acme/other", ActiveVersion: 292, State: "active", UpdatedAt: t0})
		}
		ws = append(ws, store.CheckinWrite{Device: d, Channels: chans})
	}
	must(t, s.CreateDevices(ctx, ds))
	_, err := s.ApplyCheckins(ctx, ws)
	must(t, err)
	must(t, s.RevokeDevice(ctx, "dev-3"))
	// dev-4 moved on to 293: its old version no longer counts.
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: ds[4], Channels: []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: 292, State: "probation", UpdatedAt: t0}}}})
	must(t, err)
	for _, c := range []struct {
		channel string
		version uint64
		want    int64
	}{
		{"acme/ipc", 292, 2}, // dev-0, dev-1; dev-3 is revoked
		{"acme/ipc", 291, 1},
		{"acme/ipc", 293, 1},
		{"acme/ipc", 290, 0}, // last known good is not running
		{"acme/other", 292, 1},
		{"acme/none", 292, 0},
	} {
		n, err := s.DevicesOnVersion(ctx, c.channel, c.version)
		must(t, err)
		if n != c.want {
			t.Errorf("DevicesOnVersion(%s, %d) = %d, want %d", c.channel, c.version, n, c.want)
		}
	}
}

func testVersionCounts(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "fabrikam", Name: "Fabrikam", Kind: store.TenantOrg, CreatedAt: t0}))
	quiet := t0.Add(time.Hour)
	var ds []store.Device
	var ws []store.CheckinWrite
	for i, c := range []struct {
		org     string
		version uint64
		seen    time.Time
	}{
		{"contoso", 292, quiet}, {"contoso", 292, t0}, {"contoso", 291, quiet},
		{"contoso", 292, quiet}, // revoked below
		{"fabrikam", 292, t0},
	} {
		d := store.Device{ID: fmt.Sprintf("dev-%d", i), Org: c.org, Platform: "windows", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: c.seen}
		ds = append(ds, d)
		chans := []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: c.version, LKGVersion: 290, State: "active", UpdatedAt: t0}}
		if i == 0 {
			chans = append(chans, store.DeviceChannel{Channel: "acme/agent", ActiveVersion: 7, State: "active", UpdatedAt: t0})
		}
		ws = append(ws, store.CheckinWrite{Device: d, Channels: chans})
	}
	must(t, s.CreateDevices(ctx, ds))
	_, err := s.ApplyCheckins(ctx, ws)
	must(t, err)
	must(t, s.RevokeDevice(ctx, "dev-3"))
	vc := func(ch string, v uint64, n, silent int64) store.VersionCount {
		return store.VersionCount{Channel: ch, Version: v, Devices: n, Silent: silent}
	}
	for _, c := range []struct {
		org  string
		want []store.VersionCount
	}{
		// dev-1 and dev-4 were last seen before the hour: quiet.
		{"", []store.VersionCount{vc("acme/agent", 7, 1, 0), vc("acme/ipc", 291, 1, 0), vc("acme/ipc", 292, 3, 2)}},
		{"contoso", []store.VersionCount{vc("acme/agent", 7, 1, 0), vc("acme/ipc", 291, 1, 0), vc("acme/ipc", 292, 2, 1)}},
		{"fabrikam", []store.VersionCount{vc("acme/ipc", 292, 1, 1)}},
		{"nobody", nil},
	} {
		got, err := s.VersionCounts(ctx, store.VersionQuery{Org: c.org, QuietBefore: quiet})
		must(t, err)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("VersionCounts(org %q) = %v, want %v (revoked devices excluded, sorted by channel and version)", c.org, got, c.want)
		}
	}
}

func testKillSwitches(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	ks, err := s.KillSwitches(ctx)
	must(t, err)
	if len(ks) != 0 {
		t.Errorf("kill switches of a new store: %+v", ks)
	}
	must(t, s.SetKillSwitch(ctx, store.KillSwitch{Scope: "acme/ipc", Engaged: true, Reason: "bad bundle", Actor: "alice", At: t0}))
	must(t, s.SetKillSwitch(ctx, store.KillSwitch{Scope: "*", Engaged: true, Reason: "incident 17", Actor: "bob", At: t0.Add(time.Minute)}))
	must(t, s.SetKillSwitch(ctx, store.KillSwitch{Scope: "*", Engaged: false, Reason: "incident 17 resolved", Actor: "carol", At: t0.Add(time.Hour)}))
	ks, err = s.KillSwitches(ctx)
	must(t, err)
	want := []store.KillSwitch{
		{Scope: "*", Engaged: false, Reason: "incident 17 resolved", Actor: "carol", At: t0.Add(time.Hour)},
		{Scope: "acme/ipc", Engaged: true, Reason: "bad bundle", Actor: "alice", At: t0},
	}
	if len(ks) != len(want) {
		t.Fatalf("kill switches = %+v, want %+v", ks, want)
	}
	for i := range want {
		g, w := ks[i], want[i]
		if g.Scope != w.Scope || g.Engaged != w.Engaged || g.Reason != w.Reason || g.Actor != w.Actor || !g.At.Equal(w.At) {
			t.Errorf("kill switch %d = %+v, want %+v", i, g, w)
		}
	}
}

func testPlanTemplates(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	ps, err := s.PlanTemplates(ctx, "")
	must(t, err)
	if len(ps) != 0 {
		t.Errorf("plans of a new store: %+v", ps)
	}
	must(t, s.PutPlanTemplate(ctx, store.PlanTemplate{Vendor: "globex", Name: "fast", Plan: []byte(`{"waves":[1]}`), UpdatedAt: t0, UpdatedBy: "gina"}))
	must(t, s.PutPlanTemplate(ctx, store.PlanTemplate{Vendor: "acme", Name: "slow", Plan: []byte(`{"waves":[2]}`), UpdatedAt: t0, UpdatedBy: "alice"}))
	must(t, s.PutPlanTemplate(ctx, store.PlanTemplate{Vendor: "acme", Name: "fast", Plan: []byte(`{"waves":[3]}`), UpdatedAt: t0, UpdatedBy: "alice"}))
	// Replaced whole, not added.
	must(t, s.PutPlanTemplate(ctx, store.PlanTemplate{Vendor: "acme", Name: "slow", Plan: []byte(`{"waves":[4]}`), UpdatedAt: t0.Add(time.Hour), UpdatedBy: "bob"}))
	got := func(vendor string) string {
		ps, err := s.PlanTemplates(ctx, vendor)
		must(t, err)
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s/%s %s %s %s", p.Vendor, p.Name, p.Plan, p.UpdatedBy, p.UpdatedAt.UTC().Format(time.RFC3339)))
		}
		return strings.Join(out, "; ")
	}
	if g, w := got(""), `acme/fast {"waves":[3]} alice 2026-07-19T04:09:00Z; acme/slow {"waves":[4]} bob 2026-07-19T05:09:00Z; globex/fast {"waves":[1]} gina 2026-07-19T04:09:00Z`; g != w {
		t.Errorf("plans:\n got %s\nwant %s", g, w)
	}
	if g, w := got("globex"), `globex/fast {"waves":[1]} gina 2026-07-19T04:09:00Z`; g != w {
		t.Errorf("globex's plans: %s, want %s", g, w)
	}
	must(t, s.DeletePlanTemplate(ctx, "acme", "fast"))
	wantErr(t, s.DeletePlanTemplate(ctx, "acme", "fast"), store.ErrNotFound)
	wantErr(t, s.DeletePlanTemplate(ctx, "initech", "fast"), store.ErrNotFound)
	if g := got("acme"); !strings.HasPrefix(g, "acme/slow") || strings.Contains(g, "fast") {
		t.Errorf("acme's plans after a delete: %s", g)
	}
}

func testLead(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	l, err := s.Lead(ctx)
	must(t, err)
	must(t, l.Check(ctx))
	must(t, l.Release())
	must(t, l.Release()) // idempotent
	// Released, the lease can be taken again.
	l, err = s.Lead(ctx)
	must(t, err)
	must(t, l.Check(ctx))
	// Once the store is closed the lease is gone.
	must(t, s.Close())
	wantErr(t, l.Check(ctx), store.ErrUnavailable)
	must(t, l.Release())
	_, err = s.Lead(ctx)
	wantErr(t, err, store.ErrUnavailable)
}

// testTestimony: a device's counters about a release count only when the
// release was offered to it (else they are its anomalies), each Once mark
// the first time, across batches — and a device speaks only for itself.
func testTestimony(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	d1 := store.Device{ID: "dev-1", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	d2 := store.Device{ID: "dev-2", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	must(t, s.CreateDevices(ctx, []store.Device{d1, d2}))
	_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{offerWrite(d1, store.Offer{Release: "rel-1", Device: "dev-1", Org: "contoso", Wave: 1, At: t0})})
	must(t, err)
	key := func(metric string) store.CounterKey {
		return store.CounterKey{Release: "rel-1", Wave: 1, Org: "contoso", Stratum: "windows/7.11.0/22631", Window: t0, Metric: metric}
	}
	said := func(dev, metric, once string, offered bool) store.Counter {
		return store.Counter{CounterKey: key(metric), Value: 1, Device: dev, Once: once, Offered: offered}
	}
	event := func(seq uint64, cs ...store.Counter) store.Event {
		return store.Event{Seq: seq, Time: t0, Type: "worker-crash", Channel: "acme/ipc", Version: 292, Counters: cs}
	}
	res, err := s.ApplyCheckins(ctx, []store.CheckinWrite{
		{Device: d1, Events: []store.Event{
			event(1, said("dev-1", "worker-crash", "worker-crash", true), said("dev-1", "control-worker-crash", "control-worker-crash", false)),
			event(2, said("dev-1", "worker-crash", "worker-crash", true)), // said before: not counted
			event(3, store.Counter{CounterKey: key("action-alert"), Value: 5}),
		}},
		{Device: d2, Anomalies: 2, Events: []store.Event{
			event(1, said("dev-2", "worker-crash", "worker-crash", true)), // never offered rel-1
			event(2, said("dev-1", "applied", "", false)),                 // speaks for another device
			event(3, said("dev-2", "control-worker-crash", "control-worker-crash", false)),
		}},
	})
	must(t, err)
	if res[0].Refused != 0 || res[1].Refused != 2 || res[0].NewEvents != 3 || res[1].NewEvents != 3 {
		t.Errorf("results %+v, want dev-1 none refused and dev-2 two, three new events each", res)
	}
	// A later batch: the mark still holds; a new mark counts.
	res, err = s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: d1, Events: []store.Event{
		event(4, said("dev-1", "worker-crash", "worker-crash", true), said("dev-1", "reverted", "reverted", true)),
	}}})
	must(t, err)
	if res[0].Refused != 0 {
		t.Errorf("result %+v", res[0])
	}
	cs, err := s.CounterTotals(ctx, "rel-1", false)
	must(t, err)
	got := map[string]int64{}
	for _, c := range cs {
		got[c.Metric] += c.Value
	}
	want := map[string]int64{"worker-crash": 1, "control-worker-crash": 2, "action-alert": 5, "reverted": 1}
	if !maps.Equal(got, want) {
		t.Errorf("totals %v, want %v", got, want)
	}
	for id, want := range map[string]int64{"dev-1": 0, "dev-2": 4} {
		d, err := s.GetDevice(ctx, id)
		must(t, err)
		if d.Anomalies != want {
			t.Errorf("%s: %d anomalies, want %d", id, d.Anomalies, want)
		}
	}
}

// testTestimonyNth: a counter with Nth counts the Nth time its device
// says its Once mark about a release, once, across batches; counters of
// one event with the same mark step its tally once, so the first and the
// third of a device's unclean reboots each count one.
func testTestimonyNth(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	d := store.Device{ID: "dev-1", Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	must(t, s.CreateDevices(ctx, []store.Device{d}))
	_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{offerWrite(d, store.Offer{Release: "rel-1", Device: "dev-1", Org: "contoso", Wave: 1, At: t0})})
	must(t, err)
	counter := func(metric string, nth int) store.Counter {
		return store.Counter{CounterKey: store.CounterKey{Release: "rel-1", Wave: 1, Org: "contoso", Stratum: "windows/7.11.0/22631", Window: t0, Metric: metric},
			Value: 1, Device: "dev-1", Once: "unclean-reboot", Nth: nth, Offered: true}
	}
	reboot := func(seq uint64) store.Event {
		return store.Event{Seq: seq, Time: t0, Type: "unclean-reboot", Channel: "acme/ipc", Version: 293,
			Counters: []store.Counter{counter("unclean-reboot", 1), counter("boot-loop", 3)}}
	}
	totals := func() map[string]int64 {
		t.Helper()
		cs, err := s.CounterTotals(ctx, "rel-1", false)
		must(t, err)
		got := map[string]int64{}
		for _, c := range cs {
			got[c.Metric] += c.Value
		}
		return got
	}
	for i, batch := range [][]uint64{{1, 2}, {3}, {4, 5, 6}} {
		var evs []store.Event
		for _, seq := range batch {
			evs = append(evs, reboot(seq))
		}
		_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: d, Events: evs}})
		must(t, err)
		want := map[string]int64{"unclean-reboot": 1, "boot-loop": 0}
		if i > 0 {
			want["boot-loop"] = 1
		}
		if got := totals(); got["unclean-reboot"] != want["unclean-reboot"] || got["boot-loop"] != want["boot-loop"] {
			t.Errorf("after batch %d (%d reboots): totals %v, want %v", i+1, batch[len(batch)-1], got, want)
		}
	}
}

// testEnrollTokenUses: a device enrolled with a token uses it up, in the
// transaction that creates the device; a used-up, expired, revoked or
// foreign token fails the whole batch.
func testEnrollTokenUses(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateEnrollToken(ctx, store.EnrollToken{ID: "en-2", Org: "contoso", Hash: "e2", CreatedAt: t0, MaxUses: 2}))
	must(t, s.CreateEnrollToken(ctx, store.EnrollToken{ID: "en-1", Org: "contoso", Hash: "e1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	must(t, s.CreateEnrollToken(ctx, store.EnrollToken{ID: "en-it", Org: "acme-it", Hash: "e3", CreatedAt: t0.Add(time.Second)}))
	dev := func(id, org, token string, at time.Time) store.Device {
		return store.Device{ID: id, Org: org, Platform: "windows", OSBuild: "22631", AgentVersion: "7.12.0", EnrolledAt: at, LastSeen: at, EnrolledWith: token}
	}
	uses := func(hash string) int64 {
		t.Helper()
		et, err := s.EnrollTokenByHash(ctx, hash)
		must(t, err)
		return et.Uses
	}
	must(t, s.CreateDevices(ctx, []store.Device{dev("d1", "contoso", "en-2", t0), dev("d2", "contoso", "en-1", t0)}))
	must(t, s.CreateDevice(ctx, dev("d3", "contoso", "en-2", t0)))
	if uses("e2") != 2 || uses("e1") != 1 {
		t.Fatalf("uses %d and %d, want 2 and 1", uses("e2"), uses("e1"))
	}
	for name, batch := range map[string][]store.Device{
		"used up":      {dev("d4", "contoso", "en-2", t0)},
		"expired":      {dev("d5", "contoso", "en-1", t0.Add(time.Hour))},
		"foreign":      {dev("d6", "contoso", "en-it", t0)},
		"unknown":      {dev("d7", "contoso", "en-9", t0)},
		"one bad of 2": {dev("d8", "contoso", "en-1", t0), dev("d9", "contoso", "en-2", t0)},
	} {
		wantErr(t, s.CreateDevices(ctx, batch), store.ErrEnrollToken)
		for _, d := range batch {
			if _, err := s.GetDevice(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: device %s was created (%v)", name, d.ID, err)
			}
		}
	}
	if uses("e2") != 2 || uses("e1") != 1 {
		t.Errorf("failed batches used tokens: uses %d and %d, want 2 and 1", uses("e2"), uses("e1"))
	}
	must(t, s.RevokeEnrollToken(ctx, "en-it"))
	wantErr(t, s.CreateDevice(ctx, dev("d10", "acme-it", "en-it", t0)), store.ErrEnrollToken)
	if d, err := s.GetDevice(ctx, "d1"); err != nil || d.EnrolledWith != "en-2" {
		t.Errorf("d1 enrolled with %q (%v), want en-2", d.EnrolledWith, err)
	}
	ts, err := s.ListEnrollTokens(ctx, "contoso")
	must(t, err)
	if len(ts) != 2 || ts[0].ID != "en-1" || ts[1].ID != "en-2" || ts[1].MaxUses != 2 || ts[1].Uses != 2 {
		t.Errorf("contoso's tokens %+v, want en-1 then en-2 (2 of 2 used)", ts)
	}
	all, err := s.ListEnrollTokens(ctx, "")
	must(t, err)
	if len(all) != 3 || all[2].ID != "en-it" || !all[2].Revoked {
		t.Errorf("all tokens %+v", all)
	}
}

// testOfferedChannels: a device's channel says whether the release of its
// active version was offered to it, when the server writes it (in the
// write's transaction, counting an offer of the same write) and when it
// is read back: only then is the device's time on it the release's
// exposure.
func testOfferedChannels(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateRelease(ctx, store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 292, Plan: []byte(`{"waves":[]}`), State: store.ReleaseRolling,
		CreatedBy: "alice", CreatedAt: t0, UpdatedAt: t0, WaveStartedAt: t0}))
	dev := func(id string) store.Device {
		return store.Device{ID: id, Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0}
	}
	must(t, s.CreateDevices(ctx, []store.Device{dev("dev-1"), dev("dev-2"), dev("dev-3")}))
	_, err := s.ApplyCheckins(ctx, []store.CheckinWrite{offerWrite(dev("dev-1"), store.Offer{Release: "rel-1", Device: "dev-1", Org: "contoso", Wave: 1, At: t0})})
	must(t, err)
	runs := func(d string, offers ...store.Offer) store.CheckinWrite {
		w := offerWrite(dev(d), offers...)
		w.Channels = []store.DeviceChannel{{Device: d, Channel: "acme/ipc", ActiveVersion: 292, LKGVersion: 291, State: "probation", UpdatedAt: t0, Release: "rel-1"}}
		return w
	}
	res, err := s.ApplyCheckins(ctx, []store.CheckinWrite{
		runs("dev-1"), // offered before
		runs("dev-2"), // never offered
		runs("dev-3", store.Offer{Release: "rel-1", Device: "dev-3", Org: "contoso", Wave: 1, At: t0}), // offered in the same write
	})
	must(t, err)
	for i, want := range []bool{true, false, true} {
		if got := slices.Contains(res[i].Offered, "rel-1"); got != want {
			t.Errorf("dev-%d: written channel offered %v (%v), want %v", i+1, got, res[i].Offered, want)
		}
		chs, err := s.DeviceChannels(ctx, fmt.Sprintf("dev-%d", i+1))
		must(t, err)
		if len(chs) != 1 || chs[0].Offered != want || chs[0].Release != "" {
			t.Errorf("dev-%d: channels read back %+v, want one with offered %v", i+1, chs, want)
		}
	}
	// A version without a release is offered nothing.
	w := runs("dev-1")
	w.Channels[0].ActiveVersion, w.Channels[0].Release = 291, ""
	res, err = s.ApplyCheckins(ctx, []store.CheckinWrite{w})
	must(t, err)
	chs, err := s.DeviceChannels(ctx, "dev-1")
	must(t, err)
	if len(res[0].Offered) != 0 || len(chs) != 1 || chs[0].Offered {
		t.Errorf("on 291: result %+v, channels %+v; want nothing offered", res[0], chs)
	}
}

// testAuditKeyed: entries written without a key are sealed with one once
// (a broken chain is not); entries appended with a key are keyed; a
// checkpoint is stored once per entry and listed after a sequence number.
func testAuditKeyed(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	key := []byte("audit key")
	s.SetAuditKey(nil)
	for i := range 2 {
		_, err := s.AppendAudit(ctx, store.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "alice", Action: "tenant.create"})
		must(t, err)
	}
	for want := range []int{2, 0} {
		n, err := s.SealAuditLog(ctx, key)
		must(t, err)
		if n != 2-2*want {
			t.Errorf("seal %d: sealed %d entries, want %d", want+1, n, 2-2*want)
		}
	}
	s.SetAuditKey(key)
	e, err := s.AppendAudit(ctx, store.AuditEntry{Time: t0.Add(time.Minute), Actor: "bob", Action: "release.halt"})
	must(t, err)
	es, err := s.ListAudit(ctx, 0, 10)
	must(t, err)
	if seq, why := store.VerifyChain(key, "", false, es); seq != 0 || len(es) != 3 || !e.Keyed {
		t.Errorf("keyed log of %d entries (last keyed %v): entry %d: %s", len(es), e.Keyed, seq, why)
	}
	if _, err := s.SealAuditLog(ctx, []byte("another key")); !errors.Is(err, store.ErrAuditBroken) {
		t.Errorf("sealing a log keyed with another key: %v, want ErrAuditBroken", err)
	}
	for _, c := range []store.AuditCheckpoint{
		{Seq: 2, Hash: es[1].Hash, Time: t0, KeyID: "k1", Signature: []byte{1, 2}},
		{Seq: 3, Hash: es[2].Hash, Time: t0, KeyID: "k1", Signature: []byte{3}},
		{Seq: 2, Hash: "other", Time: t0, KeyID: "k2", Signature: []byte{9}}, // a repeat: ignored
	} {
		must(t, s.AddAuditCheckpoint(ctx, c))
	}
	cps, err := s.ListAuditCheckpoints(ctx, 0, 10)
	must(t, err)
	if len(cps) != 2 || cps[0].Seq != 2 || cps[0].KeyID != "k1" || string(cps[0].Signature) != "\x01\x02" || cps[1].Seq != 3 {
		t.Errorf("checkpoints %+v", cps)
	}
	cps, err = s.ListAuditCheckpoints(ctx, 2, 10)
	must(t, err)
	if len(cps) != 1 || cps[0].Seq != 3 {
		t.Errorf("checkpoints after 2: %+v", cps)
	}
}

// testReleaseAudited: a release update and the audit entries that say why
// are stored together; a stale update stores neither.
func testReleaseAudited(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	r := store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 292, Plan: []byte(`{"waves":[]}`), State: store.ReleaseRolling,
		CreatedBy: "alice", CreatedAt: t0, UpdatedAt: t0, WaveStartedAt: t0}
	must(t, s.CreateRelease(ctx, r))
	got, err := s.GetRelease(ctx, "rel-1")
	must(t, err)
	halt := store.AuditEntry{Time: t0, Actor: "bob", Action: "release.halt", Target: "rel-1", Reason: "crashes"}
	upd := got
	upd.State = store.ReleaseHalted
	rev, err := s.UpdateRelease(ctx, upd, halt)
	must(t, err)
	stale := got // at the old revision
	stale.State = store.ReleaseRolling
	if _, err := s.UpdateRelease(ctx, stale, store.AuditEntry{Time: t0, Actor: "carol", Action: "release.resume", Target: "rel-1"}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale update: %v, want ErrStale", err)
	}
	es, err := s.ListAudit(ctx, 0, 100)
	must(t, err)
	if len(es) != 1 || es[0].Action != "release.halt" || es[0].Actor != "bob" {
		t.Errorf("audit log %+v, want the halt alone", es)
	}
	if got, err := s.GetRelease(ctx, "rel-1"); err != nil || got.State != store.ReleaseHalted || got.Revision != rev {
		t.Errorf("release %+v (%v), want halted at revision %d", got, err, rev)
	}
}

// An offer with a Cap is stored only while the organisation's offers of
// the hour before it are fewer than the cap, counted one offer at a time,
// within a batch too; a repeat of a stored offer uses nothing again; and
// an hour later the budget is there again.
func testOfferCap(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	var devs []store.Device
	for i := range 4 {
		devs = append(devs, store.Device{ID: fmt.Sprintf("dev-%d", i), Org: "contoso", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0, LastSeen: t0})
	}
	must(t, s.CreateDevices(ctx, devs))
	offer := func(d store.Device, at time.Time) store.CheckinWrite {
		return offerWrite(d, store.Offer{Release: "rel-1", Device: d.ID, Org: "contoso", Wave: 1, At: at, Cap: 2})
	}
	res, err := s.ApplyCheckins(ctx, []store.CheckinWrite{offer(devs[0], t0), offer(devs[1], t0.Add(time.Minute)), offer(devs[2], t0.Add(2*time.Minute))})
	must(t, err)
	capped := func(rs []store.CheckinResult) []int {
		var out []int
		for i, r := range rs {
			if len(r.Capped) > 0 {
				out = append(out, i)
			}
		}
		return out
	}
	// The batch is written in device order: dev-0 and dev-1 fit, dev-2 not.
	if got := capped(res); !slices.Equal(got, []int{2}) {
		t.Errorf("capped writes %v, want [2] (the third offer of a budget of 2)", got)
	}
	// A repeat of dev-0's offer is no new offer; dev-3's is one too many.
	res, err = s.ApplyCheckins(ctx, []store.CheckinWrite{offer(devs[0], t0.Add(3*time.Minute)), offer(devs[3], t0.Add(3*time.Minute))})
	must(t, err)
	if got := capped(res); !slices.Equal(got, []int{1}) {
		t.Errorf("capped writes %v, want [1] (the repeat uses nothing; the new offer is over budget)", got)
	}
	if n, err := s.OffersSince(ctx, "contoso", t0); err != nil || n != 2 {
		t.Errorf("OffersSince = %d, %v; want the budget's 2", n, err)
	}
	// Just over an hour after dev-0's offer one place is free again (the
	// hour includes its first instant), dev-1's still counts.
	later := t0.Add(time.Hour + time.Second)
	res, err = s.ApplyCheckins(ctx, []store.CheckinWrite{offer(devs[2], later), offer(devs[3], later)})
	must(t, err)
	if got := capped(res); !slices.Equal(got, []int{1}) {
		t.Errorf("an hour later: capped writes %v, want [1] (one place freed by the offer at t0)", got)
	}
}
