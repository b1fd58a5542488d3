package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/memstore"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// TestPropertyMirrorsSQLite drives a memstore and an SQLite store through
// the same random writes (duplicates, unknown references, retried
// check-ins, stale revisions, times off the millisecond): every write must
// answer alike, and at the end every read. (Reading everything after each
// step would find a difference sooner, but SQLite makes that slow, and a
// difference in what is stored lasts.) The conformance suite pins down the
// cases someone thought of; this finds the ones nobody did.
//
// One difference is allowed: a write naming a missing tenant, channel or
// artifact fails with the database's foreign-key error in sqlstore, and
// with store.ErrNotFound here.
func TestPropertyMirrorsSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("opens an SQLite database per case")
	}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		sql, err := sqlstore.Open(ctx, "", t.TempDir())
		if err != nil {
			rt.Fatal(err)
		}
		defer sql.Close()
		m := &mirror{mem: memstore.New(), sql: sql}
		defer m.mem.Close()
		m.seed(ctx, rt)
		rt.Repeat(m.actions(ctx))
		m.compareReads(ctx, rt)
	})
}

type mirror struct {
	mem, sql store.Store
}

// seed gives both stores a vendor with a channel, two organisations, a
// release and some devices, so that most random writes find what they
// refer to.
func (m *mirror) seed(ctx context.Context, rt *rapid.T) {
	for _, tn := range []store.Tenant{{ID: "acme", Kind: store.TenantVendor}, {ID: "contoso", Kind: store.TenantOrg}, {ID: "fabrikam", Kind: store.TenantOrg}} {
		m.both(rt, "seed tenant", func(s store.Store) (any, error) { return nil, s.CreateTenant(ctx, tn) })
	}
	m.both(rt, "seed channel", func(s store.Store) (any, error) {
		return nil, s.CreateChannel(ctx, store.Channel{ID: "acme/ipc", Vendor: "acme", Name: "ipc", Kind: store.ChannelContent})
	})
	for v := range uint64(2) {
		m.both(rt, "seed artifact", func(s store.Store) (any, error) {
			return nil, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: v + 1, SHA256: "aa", Bytes: []byte{1}})
		})
	}
	m.both(rt, "seed release", func(s store.Store) (any, error) {
		return nil, s.CreateRelease(ctx, store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 1, State: store.ReleaseRolling})
	})
	for i, id := range deviceIDs[:4] {
		d := store.Device{ID: id, Org: orgIDs[i%2], Platform: []string{"windows", "linux"}[i/2], OSBuild: "22631", AgentVersion: "7.11.0",
			EnrolledAt: t0, LastSeen: t0.Add(time.Duration(i) * 20 * time.Minute)}
		m.both(rt, "seed device", func(s store.Store) (any, error) { return nil, s.CreateDevice(ctx, d) })
	}
}

// both runs op on each store and fails unless they answer alike.
func (m *mirror) both(rt *rapid.T, what string, op func(store.Store) (any, error)) {
	rt.Helper()
	gotSQL, errSQL := op(m.sql)
	gotMem, errMem := op(m.mem)
	if d := errDiff(errSQL, errMem); d != "" {
		rt.Fatalf("%s: %s", what, d)
	}
	if errSQL == nil && !reflect.DeepEqual(gotSQL, gotMem) {
		rt.Fatalf("%s:\nsqlite   %+v\nmemstore %+v", what, gotSQL, gotMem)
	}
}

func errDiff(sql, mem error) string {
	if (sql == nil) != (mem == nil) {
		return fmt.Sprintf("sqlite error %v, memstore error %v", sql, mem)
	}
	for _, sentinel := range []error{store.ErrNotFound, store.ErrConflict, store.ErrStale, store.ErrUnavailable} {
		s, m := errors.Is(sql, sentinel), errors.Is(mem, sentinel)
		if s == m || (sentinel == store.ErrNotFound && m && !errors.Is(sql, store.ErrConflict) && !errors.Is(sql, store.ErrStale)) {
			continue // a foreign key is ErrNotFound here
		}
		return fmt.Sprintf("sqlite error %v, memstore error %v", sql, mem)
	}
	return ""
}

var (
	tenantIDs  = []string{"acme", "globex", "contoso", "fabrikam"}
	orgIDs     = []string{"contoso", "fabrikam", "ghost"}
	channelIDs = []string{"acme/ipc", "acme/sensor", "globex/ipc"}
	releaseIDs = []string{"rel-1", "rel-2", "rel-3"}
	deviceIDs  = []string{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-10"}
	strata     = []string{"windows/7.11.0/22631", "linux/7.11.0/6.8"}
	metrics    = []string{"heartbeat", "applied", "worker-crash"}
)

// at draws a time: often zero, sometimes off the millisecond.
func at(rt *rapid.T, label string) time.Time {
	if rapid.IntRange(0, 9).Draw(rt, label+"-zero") == 0 {
		return time.Time{}
	}
	ms := rapid.Int64Range(-60_000, 7_200_000).Draw(rt, label)
	ns := rapid.SampledFrom([]int64{0, 0, 1, 999_999}).Draw(rt, label+"-ns")
	return t0.Add(time.Duration(ms)*time.Millisecond + time.Duration(ns)).In(time.FixedZone("CEST", 2*3600))
}

func counters(rt *rapid.T) []store.Counter {
	return rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.Counter {
		return store.Counter{CounterKey: store.CounterKey{
			Release: rapid.SampledFrom(releaseIDs).Draw(rt, "release"),
			Wave:    rapid.IntRange(0, 2).Draw(rt, "wave"),
			Org:     rapid.SampledFrom(orgIDs).Draw(rt, "org"),
			Stratum: rapid.SampledFrom(strata).Draw(rt, "stratum"),
			Window:  t0.Add(time.Duration(rapid.IntRange(0, 3).Draw(rt, "minute"))*time.Minute + time.Duration(rapid.SampledFrom([]int{0, 0, 1}).Draw(rt, "window-ns"))),
			Metric:  rapid.SampledFrom(metrics).Draw(rt, "metric"),
		}, Value: rapid.Int64Range(-1, 5).Draw(rt, "value")}
	}), 0, 4).Draw(rt, "counters")
}

func (m *mirror) actions(ctx context.Context) map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"create-tenant": func(rt *rapid.T) {
			tn := store.Tenant{ID: rapid.SampledFrom(tenantIDs).Draw(rt, "id"),
				Kind:      rapid.SampledFrom([]store.TenantKind{store.TenantVendor, store.TenantOrg, "bogus"}).Draw(rt, "kind"),
				Internal:  rapid.Bool().Draw(rt, "internal"),
				HourlyCap: rapid.IntRange(0, 300).Draw(rt, "cap"), CreatedAt: at(rt, "created")}
			m.both(rt, "CreateTenant", func(s store.Store) (any, error) { return nil, s.CreateTenant(ctx, tn) })
		},
		"set-hourly-cap": func(rt *rapid.T) {
			org, bp := rapid.SampledFrom(tenantIDs).Draw(rt, "org"), rapid.IntRange(0, 300).Draw(rt, "bp")
			m.both(rt, "SetHourlyCap", func(s store.Store) (any, error) { return nil, s.SetHourlyCap(ctx, org, bp) })
		},
		"create-channel": func(rt *rapid.T) {
			id := rapid.SampledFrom(channelIDs).Draw(rt, "id")
			c := store.Channel{ID: id, Vendor: id[:len(id)-len("/ipc")], Name: "ipc", Kind: rapid.SampledFrom([]store.ChannelKind{store.ChannelContent, store.ChannelAgent}).Draw(rt, "kind"),
				Unpausable: rapid.Bool().Draw(rt, "unpausable"), CreatedAt: at(rt, "created")}
			if id == "acme/sensor" {
				c.Vendor = "acme"
			}
			m.both(rt, "CreateChannel", func(s store.Store) (any, error) { return nil, s.CreateChannel(ctx, c) })
		},
		"put-artifact": func(rt *rapid.T) {
			a := store.Artifact{Channel: rapid.SampledFrom(channelIDs).Draw(rt, "channel"), Version: rapid.Uint64Range(1, 4).Draw(rt, "version"),
				SHA256: rapid.SampledFrom([]string{"aa", "bb"}).Draw(rt, "sha"), CreatedAt: at(rt, "created")}
			a.Bytes = []byte(a.SHA256)
			a.Size = int64(len(a.Bytes))
			m.both(rt, "PutArtifact", func(s store.Store) (any, error) { return nil, s.PutArtifact(ctx, a) })
		},
		"create-release": func(rt *rapid.T) {
			r := m.drawRelease(rt)
			m.both(rt, "CreateRelease", func(s store.Store) (any, error) { return nil, s.CreateRelease(ctx, r) })
		},
		"update-release": func(rt *rapid.T) {
			r := m.drawRelease(rt)
			r.Revision = rapid.Int64Range(0, 3).Draw(rt, "revision")
			m.both(rt, "UpdateRelease", func(s store.Store) (any, error) { return s.UpdateRelease(ctx, r) })
		},
		"put-policy": func(rt *rapid.T) {
			p := store.Policy{Org: rapid.SampledFrom(orgIDs).Draw(rt, "org"), Channel: rapid.SampledFrom(channelIDs).Draw(rt, "channel"),
				Track:     rapid.SampledFrom([]string{"early", "ga", "paused"}).Draw(rt, "track"),
				Windows:   rapid.SampledFrom([][]string{nil, {}, {"mon-fri 01:00-05:00"}}).Draw(rt, "windows"),
				UpdatedAt: at(rt, "updated")}
			m.both(rt, "PutPolicy", func(s store.Store) (any, error) { return nil, s.PutPolicy(ctx, p) })
		},
		"api-token": func(rt *rapid.T) {
			tok := store.APIToken{ID: rapid.SampledFrom([]string{"tok-1", "tok-2", "tok-3"}).Draw(rt, "id"), Tenant: rapid.SampledFrom(tenantIDs).Draw(rt, "tenant"),
				Role: store.RoleViewer, Hash: rapid.SampledFrom([]string{"h1", "h2", "h3"}).Draw(rt, "hash"), CreatedAt: at(rt, "created")}
			m.both(rt, "CreateAPIToken", func(s store.Store) (any, error) { return nil, s.CreateAPIToken(ctx, tok) })
			if rapid.Bool().Draw(rt, "revoke") {
				m.both(rt, "RevokeAPIToken", func(s store.Store) (any, error) { return nil, s.RevokeAPIToken(ctx, tok.ID) })
			}
			m.both(rt, "APITokenByHash", func(s store.Store) (any, error) { return s.APITokenByHash(ctx, tok.Hash) })
			m.both(rt, "GetAPIToken", func(s store.Store) (any, error) { return s.GetAPIToken(ctx, tok.ID) })
		},
		"enroll-token": func(rt *rapid.T) {
			tok := store.EnrollToken{ID: rapid.SampledFrom([]string{"en-1", "en-2"}).Draw(rt, "id"), Org: rapid.SampledFrom(orgIDs).Draw(rt, "org"),
				Hash: rapid.SampledFrom([]string{"e1", "e2", "e3"}).Draw(rt, "hash"), CreatedAt: at(rt, "created"), ExpiresAt: at(rt, "expires")}
			m.both(rt, "CreateEnrollToken", func(s store.Store) (any, error) { return nil, s.CreateEnrollToken(ctx, tok) })
			if rapid.Bool().Draw(rt, "revoke") {
				m.both(rt, "RevokeEnrollToken", func(s store.Store) (any, error) { return nil, s.RevokeEnrollToken(ctx, tok.ID) })
			}
			m.both(rt, "EnrollTokenByHash", func(s store.Store) (any, error) { return s.EnrollTokenByHash(ctx, tok.Hash) })
		},
		"create-devices": func(rt *rapid.T) {
			ds := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.Device {
				return store.Device{ID: rapid.SampledFrom(deviceIDs).Draw(rt, "id"), Org: rapid.SampledFrom(orgIDs).Draw(rt, "org"),
					Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: at(rt, "enrolled"), LastSeen: at(rt, "seen"),
					LastSeq: rapid.Uint64Range(0, 2).Draw(rt, "seq"), Revoked: rapid.IntRange(0, 5).Draw(rt, "revoked") == 0}
			}), 1, 3).Draw(rt, "devices")
			if len(ds) == 1 {
				m.both(rt, "CreateDevice", func(s store.Store) (any, error) { return nil, s.CreateDevice(ctx, ds[0]) })
				return
			}
			m.both(rt, "CreateDevices", func(s store.Store) (any, error) { return nil, s.CreateDevices(ctx, ds) })
		},
		"revoke-device": func(rt *rapid.T) {
			id := rapid.SampledFrom(deviceIDs).Draw(rt, "id")
			m.both(rt, "RevokeDevice", func(s store.Store) (any, error) { return nil, s.RevokeDevice(ctx, id) })
		},
		"apply-checkins": func(rt *rapid.T) {
			ws := rapid.SliceOfN(rapid.Custom(m.drawCheckin), 1, 3).Draw(rt, "writes")
			m.both(rt, "ApplyCheckins", func(s store.Store) (any, error) { return s.ApplyCheckins(ctx, ws) })
		},
		"touch-devices": func(rt *rapid.T) {
			seen := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.DeviceSeen {
				return store.DeviceSeen{ID: rapid.SampledFrom(deviceIDs).Draw(rt, "id"), LastSeen: at(rt, "seen")}
			}), 0, 3).Draw(rt, "seen")
			cs := counters(rt)
			m.both(rt, "TouchDevices", func(s store.Store) (any, error) { return nil, s.TouchDevices(ctx, seen, cs) })
		},
		"mark-counters": func(rt *rapid.T) {
			rel := rapid.SampledFrom(releaseIDs).Draw(rt, "release")
			m.both(rt, "MarkCounters", func(s store.Store) (any, error) { return nil, s.MarkCounters(ctx, rel) })
		},
		"kill-switch": func(rt *rapid.T) {
			k := store.KillSwitch{Scope: rapid.SampledFrom([]string{"*", "acme/ipc", "globex/ipc"}).Draw(rt, "scope"), Engaged: rapid.Bool().Draw(rt, "engaged"),
				Reason: rapid.SampledFrom([]string{"", "incident"}).Draw(rt, "reason"), Actor: "alice", At: at(rt, "at")}
			m.both(rt, "SetKillSwitch", func(s store.Store) (any, error) { return nil, s.SetKillSwitch(ctx, k) })
		},
		"append-audit": func(rt *rapid.T) {
			e := store.AuditEntry{Time: at(rt, "at"), Actor: "alice", Action: rapid.SampledFrom([]string{"release.create", "release.halt"}).Draw(rt, "action"), Target: "rel-1"}
			m.both(rt, "AppendAudit", func(s store.Store) (any, error) { return s.AppendAudit(ctx, e) })
		},
	}
}

func (m *mirror) drawRelease(rt *rapid.T) store.Release {
	var approvals []store.Approval
	switch rapid.IntRange(0, 2).Draw(rt, "approvals") {
	case 1:
		approvals = []store.Approval{}
	case 2:
		approvals = []store.Approval{{Actor: "bob", At: at(rt, "approved"), Reason: "ok"}}
	}
	return store.Release{ID: rapid.SampledFrom(releaseIDs).Draw(rt, "id"), Channel: rapid.SampledFrom(channelIDs).Draw(rt, "channel"),
		Version: rapid.Uint64Range(1, 4).Draw(rt, "version"), Plan: rapid.SampledFrom([][]byte{nil, []byte(`{}`)}).Draw(rt, "plan"),
		State: rapid.SampledFrom([]store.ReleaseState{store.ReleaseRolling, store.ReleaseHalted}).Draw(rt, "state"),
		Wave:  rapid.IntRange(0, 3).Draw(rt, "wave"), CreatedBy: "alice", CreatedAt: at(rt, "created"), UpdatedAt: at(rt, "updated"),
		WaveStartedAt: at(rt, "wave-started"), GatesSince: at(rt, "gates-since"), Lane: "normal", Approvals: approvals,
		Cohort: rapid.SampledFrom([][]byte{nil, {}, []byte(`[1]`)}).Draw(rt, "cohort")}
}

func (m *mirror) drawCheckin(rt *rapid.T) store.CheckinWrite {
	w := store.CheckinWrite{Device: store.Device{ID: rapid.SampledFrom(deviceIDs).Draw(rt, "device"),
		Platform: rapid.SampledFrom([]string{"windows", "linux"}).Draw(rt, "platform"), OSBuild: "22631", AgentVersion: "7.11.0",
		LastSeen: at(rt, "seen")}}
	if rapid.IntRange(0, 19).Draw(rt, "ghost") == 0 {
		w.Device.ID = "ghost"
	}
	w.Channels = rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.DeviceChannel {
		return store.DeviceChannel{Channel: rapid.SampledFrom(channelIDs).Draw(rt, "channel"), ActiveVersion: rapid.Uint64Range(1, 3).Draw(rt, "active"),
			LKGVersion: 1, State: "active", UpdatedAt: at(rt, "updated")}
	}), 0, 2).Draw(rt, "channels")
	w.Events = rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.Event {
		return store.Event{Seq: rapid.Uint64Range(0, 6).Draw(rt, "seq"), Time: at(rt, "at"), Type: "applied", Counters: counters(rt)}
	}), 0, 3).Draw(rt, "events")
	w.Offers = rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) store.Offer {
		return store.Offer{Release: rapid.SampledFrom(releaseIDs).Draw(rt, "release"), Device: rapid.SampledFrom(append([]string{"", ""}, deviceIDs...)).Draw(rt, "device"),
			Org: rapid.SampledFrom([]string{"", "contoso", "fabrikam"}).Draw(rt, "org"), Wave: 1, At: at(rt, "at"),
			Cap: rapid.Int64Range(0, 3).Draw(rt, "cap")}
	}), 0, 2).Draw(rt, "offers")
	return w
}

// compareReads asks both stores everything.
func (m *mirror) compareReads(ctx context.Context, rt *rapid.T) {
	m.both(rt, "ListTenants", func(s store.Store) (any, error) { return s.ListTenants(ctx) })
	m.both(rt, "ListChannels", func(s store.Store) (any, error) { return s.ListChannels(ctx, "") })
	m.both(rt, "ListChannels(acme)", func(s store.Store) (any, error) { return s.ListChannels(ctx, "acme") })
	m.both(rt, "ListReleases", func(s store.Store) (any, error) { return s.ListReleases(ctx, "") })
	m.both(rt, "ListReleases(acme/ipc)", func(s store.Store) (any, error) { return s.ListReleases(ctx, "acme/ipc") })
	m.both(rt, "AllPolicies", func(s store.Store) (any, error) { return s.AllPolicies(ctx) })
	m.both(rt, "ListPolicies(contoso)", func(s store.Store) (any, error) { return s.ListPolicies(ctx, "contoso") })
	m.both(rt, "ListAPITokens", func(s store.Store) (any, error) { return s.ListAPITokens(ctx, "") })
	m.both(rt, "KillSwitches", func(s store.Store) (any, error) { return s.KillSwitches(ctx) })
	m.both(rt, "FleetSizes", func(s store.Store) (any, error) { return s.FleetSizes(ctx) })
	m.both(rt, "ListAudit", func(s store.Store) (any, error) { return s.ListAudit(ctx, 0, 0) })
	m.both(rt, "ListAudit(1, 2)", func(s store.Store) (any, error) { return s.ListAudit(ctx, 1, 2) })
	for _, ch := range channelIDs {
		m.both(rt, "LatestArtifactVersion", func(s store.Store) (any, error) { return s.LatestArtifactVersion(ctx, ch) })
		for v := range uint64(4) {
			m.both(rt, "GetArtifact", func(s store.Store) (any, error) { return s.GetArtifact(ctx, ch, v+1) })
			m.both(rt, "DevicesOnVersion", func(s store.Store) (any, error) { return s.DevicesOnVersion(ctx, ch, v+1) })
		}
	}
	for _, f := range []store.DeviceFilter{{}, {Org: "contoso", Limit: 2}, {After: "dev-1", Limit: 3}, {Platform: "linux"}} {
		m.both(rt, fmt.Sprintf("ListDevices(%+v)", f), func(s store.Store) (any, error) { return s.ListDevices(ctx, f) })
	}
	for _, id := range append(deviceIDs, "ghost") {
		m.both(rt, "GetDevice", func(s store.Store) (any, error) { return s.GetDevice(ctx, id) })
		m.both(rt, "DeviceChannels", func(s store.Store) (any, error) { return s.DeviceChannels(ctx, id) })
	}
	for _, rel := range releaseIDs {
		m.both(rt, "GetRelease", func(s store.Store) (any, error) { return s.GetRelease(ctx, rel) })
		m.both(rt, "Counters", func(s store.Store) (any, error) { return s.Counters(ctx, rel) })
		m.both(rt, "CounterTotals", func(s store.Store) (any, error) { return s.CounterTotals(ctx, rel, false) })
		m.both(rt, "CounterTotals(sinceMark)", func(s store.Store) (any, error) { return s.CounterTotals(ctx, rel, true) })
		for _, q := range []store.SilenceQuery{{Release: rel}, {Release: rel, Since: t0, OverdueBefore: t0.Add(time.Hour)},
			{Release: rel, Since: t0.Add(30 * time.Minute), OverdueBefore: t0.Add(90*time.Minute + time.Microsecond)}} {
			m.both(rt, "SilenceStats", func(s store.Store) (any, error) { return s.SilenceStats(ctx, q) })
		}
	}
	for _, org := range orgIDs {
		for _, since := range []time.Time{{}, t0, t0.Add(time.Hour + time.Microsecond)} {
			m.both(rt, "OffersSince", func(s store.Store) (any, error) { return s.OffersSince(ctx, org, since) })
		}
	}
}
