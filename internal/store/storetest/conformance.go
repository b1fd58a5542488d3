package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Opener gives each subtest a fresh, empty store.
type Opener func(t *testing.T) store.Store

// Hasher recomputes an audit entry's chain hash, so the suite can check
// the chain without knowing the implementation.
type Hasher func(store.AuditEntry) string

var t0 = time.Date(2026, 7, 19, 4, 9, 0, 0, time.UTC)

// Run is the conformance suite every store.Store must pass.
func Run(t *testing.T, open Opener, hash Hasher) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store, Hasher)
	}{
		{"tenants", testTenants},
		{"channels", testChannels},
		{"artifacts-are-immutable", testArtifacts},
		{"releases-optimistic-concurrency", testReleases},
		{"policies-upsert", testPolicies},
		{"tokens", testTokens},
		{"devices", testDevices},
		{"checkins-are-idempotent", testCheckins},
		{"counters-concurrent-writers", testCountersConcurrent},
		{"release-staged-fields", testReleaseStagedFields},
		{"hourly-cap", testHourlyCap},
		{"offers-stored-once", testOffers},
		{"testimony-counts-devices-offered", testTestimony},
		{"testimony-counts-the-nth-time", testTestimonyNth},
		{"channels-say-whether-offered", testOfferedChannels},
		{"audit-keyed-and-checkpointed", testAuditKeyed},
		{"release-change-and-its-audit-entry-together", testReleaseAudited},
		{"enroll-token-uses", testEnrollTokenUses},
		{"fleet-sizes", testFleetSizes},
		{"agent-versions", testAgentVersions},
		{"silence-stats", testSilenceStats},
		{"devices-on-version", testDevicesOnVersion},
		{"version-counts", testVersionCounts},
		{"offer-cap", testOfferCap},
		{"kill-switches", testKillSwitches},
		{"plan-templates", testPlanTemplates},
		{"lead", testLead},
		{"audit-chain", testAudit},
		{"audit-concurrent-appends", testAuditConcurrent},
		{"webhooks-and-their-outbox", testWebhooks},
		{"channel-orgs", testChannelOrgs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s, hash)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// seed creates vendor acme with channel acme/ipc holding artifact 292,
// and organisation contoso.
func seed(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme Security", CreatedAt: t0}))
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "contoso", Kind: store.TenantOrg, Name: "Contoso Hospitals", CreatedAt: t0}))
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "acme-it", Kind: store.TenantOrg, Name: "Acme IT", Internal: true, CreatedAt: t0}))
	must(t, s.CreateChannel(ctx, store.Channel{ID: "acme/ipc", Vendor: "acme", Name: "ipc", Kind: store.ChannelContent, Category: "detection", CreatedAt: t0}))
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 292, SHA256: "aa", Size: 3, Bytes: []byte{1, 2, 3}, CreatedAt: t0, Findings: `[{"level":"warning"}]`}))
}

func testTenants(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Kind != store.TenantVendor || got.Name != "Acme Security" || !got.CreatedAt.Equal(t0) {
		t.Errorf("got %+v", got)
	}
	wantErr(t, s.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantOrg, Name: "x"}), store.ErrConflict)
	_, err = s.GetTenant(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound)
	all, err := s.ListTenants(ctx)
	must(t, err)
	if len(all) != 3 || all[0].ID != "acme" || !all[1].Internal || all[1].ID != "acme-it" || all[2].Internal {
		t.Errorf("ListTenants = %+v", all)
	}
	it, err := s.GetTenant(ctx, "acme-it")
	must(t, err)
	if !it.Internal {
		t.Error("internal flag lost")
	}
}

func testChannels(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateChannel(ctx, store.Channel{ID: "acme/sensor", Vendor: "acme", Name: "sensor", Kind: store.ChannelAgent, Category: "system-critical", Unpausable: true, CreatedAt: t0}))
	c, err := s.GetChannel(ctx, "acme/sensor")
	must(t, err)
	if !c.Unpausable || c.Kind != store.ChannelAgent || c.Category != "system-critical" {
		t.Errorf("got %+v", c)
	}
	wantErr(t, s.CreateChannel(ctx, store.Channel{ID: "acme/ipc", Vendor: "acme", Name: "ipc", Kind: store.ChannelContent}), store.ErrConflict)
	if err := s.CreateChannel(ctx, store.Channel{ID: "ghost/ipc", Vendor: "ghost", Name: "ipc", Kind: store.ChannelContent}); err == nil {
		t.Error("a channel of an unknown vendor was accepted")
	}
	cs, err := s.ListChannels(ctx, "acme")
	must(t, err)
	if len(cs) != 2 {
		t.Errorf("ListChannels(acme) = %d channels, want 2", len(cs))
	}
	cs, err = s.ListChannels(ctx, "contoso")
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("ListChannels(contoso) = %d channels, want 0", len(cs))
	}
}

func testArtifacts(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	// The same bytes again: a no-op. Other bytes for the same version: refused.
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 292, SHA256: "aa", Size: 3, Bytes: []byte{1, 2, 3}}))
	wantErr(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 292, SHA256: "bb", Size: 1, Bytes: []byte{9}}), store.ErrConflict)
	a, err := s.GetArtifact(ctx, "acme/ipc", 292)
	must(t, err)
	if a.SHA256 != "aa" || string(a.Bytes) != "\x01\x02\x03" || a.Size != 3 || a.Findings != `[{"level":"warning"}]` {
		t.Errorf("stored artifact changed: %+v, want its bytes and its findings as published", a)
	}
	_, err = s.GetArtifact(ctx, "acme/ipc", 291)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 300, SHA256: "cc", Size: 0, Bytes: []byte{}}))
	v, err := s.LatestArtifactVersion(ctx, "acme/ipc")
	must(t, err)
	if v != 300 {
		t.Errorf("latest = %d, want 300", v)
	}
	v, err = s.LatestArtifactVersion(ctx, "acme/none")
	must(t, err)
	if v != 0 {
		t.Errorf("latest of empty channel = %d, want 0", v)
	}
}

func testReleases(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	r := store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 292, Plan: []byte(`{"waves":[]}`), State: store.ReleaseRolling,
		CreatedBy: "alice", CreatorToken: "tok-alice", CreatedAt: t0, UpdatedAt: t0, WaveStartedAt: t0}
	must(t, s.CreateRelease(ctx, r))
	wantErr(t, s.CreateRelease(ctx, store.Release{ID: "rel-2", Channel: "acme/ipc", Version: 292, Plan: []byte(`{}`), State: store.ReleaseRolling}), store.ErrConflict)
	if err := s.CreateRelease(ctx, store.Release{ID: "rel-3", Channel: "acme/ipc", Version: 999, Plan: []byte(`{}`), State: store.ReleaseRolling}); err == nil {
		t.Error("a release of a version without an artifact was accepted")
	}
	got, err := s.GetRelease(ctx, "rel-1")
	must(t, err)
	if got.Revision != 1 || got.State != store.ReleaseRolling || string(got.Plan) != `{"waves":[]}` || !got.WaveStartedAt.Equal(t0) {
		t.Fatalf("got %+v", got)
	}
	got.State, got.Wave, got.Reason = store.ReleaseHalted, 1, "crash rate 4.1% > limit 0.5%"
	rev, err := s.UpdateRelease(ctx, got)
	must(t, err)
	if rev != 2 {
		t.Errorf("revision after update = %d, want 2", rev)
	}
	// A second writer holding the old revision loses.
	got.State = store.ReleaseCompleted
	_, err = s.UpdateRelease(ctx, got)
	wantErr(t, err, store.ErrStale)
	again, err := s.GetRelease(ctx, "rel-1")
	must(t, err)
	if again.State != store.ReleaseHalted || again.Reason != "crash rate 4.1% > limit 0.5%" || again.Wave != 1 {
		t.Errorf("stale update changed the release: %+v", again)
	}
	_, err = s.UpdateRelease(ctx, store.Release{ID: "nope", Revision: 1, Plan: []byte(`{}`), State: store.ReleaseRolling})
	wantErr(t, err, store.ErrNotFound)
	// A state no code knows is refused, and what was stored stays.
	bad := again
	bad.State = "exploded"
	if _, err := s.UpdateRelease(ctx, bad); err == nil || !strings.Contains(err.Error(), "exploded") {
		t.Errorf("UpdateRelease with state %q: %v, want an error naming it", bad.State, err)
	}
	if err := s.CreateRelease(ctx, store.Release{ID: "rel-4", Channel: "acme/ipc", Version: 292, Plan: []byte(`{}`), State: "exploded"}); err == nil {
		t.Error("CreateRelease with an unknown state was accepted")
	}
	if kept, err := s.GetRelease(ctx, "rel-1"); err != nil || kept.State != store.ReleaseHalted || kept.Revision != again.Revision {
		t.Errorf("after refused writes rel-1 is %+v (%v), want it unchanged", kept, err)
	}
	rs, err := s.ListReleases(ctx, "acme/ipc")
	must(t, err)
	if len(rs) != 1 {
		t.Errorf("ListReleases = %d, want 1", len(rs))
	}
}

func testPolicies(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.PutPolicy(ctx, store.Policy{Org: "contoso", Channel: "acme/ipc", Track: "ga", UpdatedAt: t0}))
	must(t, s.PutPolicy(ctx, store.Policy{Org: "contoso", Channel: "acme/ipc", Track: "ga-delay:24", Windows: []string{"mon-fri 01:00-05:00"}, UpdatedAt: t0}))
	ps, err := s.ListPolicies(ctx, "contoso")
	must(t, err)
	if len(ps) != 1 || ps[0].Track != "ga-delay:24" || len(ps[0].Windows) != 1 || ps[0].Windows[0] != "mon-fri 01:00-05:00" {
		t.Errorf("policies = %+v", ps)
	}
	all, err := s.AllPolicies(ctx)
	must(t, err)
	if len(all) != 1 {
		t.Errorf("AllPolicies = %d, want 1", len(all))
	}
}

func testTokens(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok-1", Tenant: "acme", Role: store.RolePublisher, Name: "ci", Hash: "h1", CreatedAt: t0, CreatedBy: "tok-admin"}))
	wantErr(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok-2", Tenant: "acme", Role: store.RoleViewer, Hash: "h1"}), store.ErrConflict)
	tok, err := s.APITokenByHash(ctx, "h1")
	must(t, err)
	if tok.Role != store.RolePublisher || tok.Tenant != "acme" || tok.Revoked || tok.CreatedBy != "tok-admin" {
		t.Errorf("got %+v", tok)
	}
	byID, err := s.GetAPIToken(ctx, "tok-1")
	must(t, err)
	if byID.Hash != "h1" || byID.Role != store.RolePublisher {
		t.Errorf("GetAPIToken = %+v", byID)
	}
	_, err = s.GetAPIToken(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	must(t, s.RevokeAPIToken(ctx, "tok-1"))
	tok, err = s.APITokenByHash(ctx, "h1")
	must(t, err)
	if !tok.Revoked {
		t.Error("token not revoked")
	}
	wantErr(t, s.RevokeAPIToken(ctx, "nope"), store.ErrNotFound)
	_, err = s.APITokenByHash(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)

	must(t, s.CreateEnrollToken(ctx, store.EnrollToken{ID: "en-1", Org: "contoso", Hash: "e1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	et, err := s.EnrollTokenByHash(ctx, "e1")
	must(t, err)
	if et.Org != "contoso" || !et.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("got %+v", et)
	}
	must(t, s.RevokeEnrollToken(ctx, "en-1"))
	et, err = s.EnrollTokenByHash(ctx, "e1")
	must(t, err)
	if !et.Revoked {
		t.Error("enrolment token not revoked")
	}
}

func testDevices(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	for i := range 25 {
		platform := "windows"
		if i%5 == 0 {
			platform = "linux"
		}
		must(t, s.CreateDevice(ctx, store.Device{ID: fmt.Sprintf("dev-%03d", i), Org: "contoso", CredHash: fmt.Sprintf("c%d", i),
			Platform: platform, OSBuild: "22631", AgentVersion: "7.11.0", EnrolledAt: t0}))
	}
	wantErr(t, s.CreateDevice(ctx, store.Device{ID: "dev-000", Org: "contoso"}), store.ErrConflict)
	// A batch is all or nothing: one duplicate id and none is created.
	wantErr(t, s.CreateDevices(ctx, []store.Device{{ID: "dev-100", Org: "contoso"}, {ID: "dev-000", Org: "contoso"}}), store.ErrConflict)
	if _, err := s.GetDevice(ctx, "dev-100"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("half a failed batch was stored: %v", err)
	}
	must(t, s.CreateDevices(ctx, []store.Device{{ID: "dev-100", Org: "contoso", Platform: "linux"}, {ID: "dev-101", Org: "contoso", Platform: "linux"}}))
	d, err := s.GetDevice(ctx, "dev-007")
	must(t, err)
	if d.Platform != "windows" || d.AgentVersion != "7.11.0" || !d.EnrolledAt.Equal(t0) {
		t.Errorf("got %+v", d)
	}
	linux, err := s.ListDevices(ctx, store.DeviceFilter{Org: "contoso", Platform: "linux"})
	must(t, err)
	if len(linux) != 7 {
		t.Errorf("linux devices = %d, want 7", len(linux))
	}
	// Pagination returns every device once, in order.
	var seen []string
	after := ""
	for {
		page, err := s.ListDevices(ctx, store.DeviceFilter{Org: "contoso", Limit: 10, After: after})
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			seen = append(seen, d.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(seen) != 27 || seen[0] != "dev-000" || seen[26] != "dev-101" {
		t.Errorf("paged through %d devices: %v", len(seen), seen)
	}
	none, err := s.ListDevices(ctx, store.DeviceFilter{Org: "acme"})
	must(t, err)
	if len(none) != 0 {
		t.Errorf("vendor acme lists %d devices, want 0", len(none))
	}
	must(t, s.RevokeDevice(ctx, "dev-001"))
	d, err = s.GetDevice(ctx, "dev-001")
	must(t, err)
	if !d.Revoked {
		t.Error("device not revoked")
	}
}

func testCheckins(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateDevice(ctx, store.Device{ID: "dev-1", Org: "contoso", CredHash: "c", Platform: "windows", AgentVersion: "7.11.0", EnrolledAt: t0}))
	win := t0.Truncate(time.Minute)
	key := func(metric string) store.CounterKey {
		return store.CounterKey{Release: "rel-1", Wave: 1, Org: "contoso", Stratum: "windows/7.11.0/22631", Window: win, Metric: metric}
	}
	w := store.CheckinWrite{
		Device:   store.Device{ID: "dev-1", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", LastSeen: t0.Add(time.Second)},
		Channels: []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: 292, LKGVersion: 291, State: "probation", UpdatedAt: t0}},
		Events: []store.Event{
			{Seq: 1, Time: t0, Type: "applied", Channel: "acme/ipc", Version: 292, Counters: []store.Counter{{CounterKey: key("applied"), Value: 1}}},
			{Seq: 2, Time: t0, Type: "actions", Channel: "acme/ipc", Version: 292, Counts: map[string]int64{"block": 3},
				Counters: []store.Counter{{CounterKey: key("action-block"), Value: 3}}},
		},
	}
	res, err := s.ApplyCheckins(ctx, []store.CheckinWrite{w})
	must(t, err)
	if res[0].NewEvents != 2 || res[0].LastSeq != 2 {
		t.Errorf("first apply: %+v, want 2 new events, last seq 2", res[0])
	}
	// The same check-in retried (the response was lost): nothing counts twice.
	w.Device.LastSeen = t0.Add(2 * time.Second)
	res, err = s.ApplyCheckins(ctx, []store.CheckinWrite{w})
	must(t, err)
	if res[0].NewEvents != 0 || res[0].LastSeq != 2 {
		t.Errorf("retry: %+v, want 0 new events, last seq 2", res[0])
	}
	// The heartbeat of the window, batched by the server.
	must(t, s.TouchDevices(ctx, nil, []store.Counter{{CounterKey: key("heartbeat"), Value: 1}}))
	cs, err := s.Counters(ctx, "rel-1")
	must(t, err)
	got := map[string]int64{}
	for _, c := range cs {
		got[c.Metric] = c.Value
	}
	want := map[string]int64{"applied": 1, "action-block": 3, "heartbeat": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters = %v, want %v", got, want)
	}
	d, err := s.GetDevice(ctx, "dev-1")
	must(t, err)
	if d.LastSeq != 2 || d.OSBuild != "22631" || !d.LastSeen.Equal(t0.Add(2*time.Second)) {
		t.Errorf("device after check-ins: %+v", d)
	}
	dc, err := s.DeviceChannels(ctx, "dev-1")
	must(t, err)
	if len(dc) != 1 || dc[0].ActiveVersion != 292 || dc[0].LKGVersion != 291 || dc[0].State != "probation" {
		t.Errorf("device channels = %+v", dc)
	}
	// An older last-seen (a delayed batch) never moves last-seen back.
	w2 := store.CheckinWrite{Device: store.Device{ID: "dev-1", Platform: "windows", OSBuild: "22631", AgentVersion: "7.11.0", LastSeen: t0}}
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{w2})
	must(t, err)
	d, _ = s.GetDevice(ctx, "dev-1")
	if !d.LastSeen.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("last seen went back to %v", d.LastSeen)
	}
	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: store.Device{ID: "ghost"}}})
	wantErr(t, err, store.ErrNotFound)

	// Batched heartbeats: last-seen moves forward only; counters add up;
	// an unknown device in the batch changes nothing and fails nothing.
	later := t0.Add(time.Minute)
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{{ID: "dev-1", LastSeen: later}, {ID: "ghost", LastSeen: later}},
		[]store.Counter{{CounterKey: key("heartbeat"), Value: 41}}))
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{{ID: "dev-1", LastSeen: t0}}, nil))
	d, _ = s.GetDevice(ctx, "dev-1")
	if !d.LastSeen.Equal(later) || d.LastSeq != 2 {
		t.Errorf("after touches: last seen %v, last seq %d; want %v, 2", d.LastSeen, d.LastSeq, later)
	}
	cs, err = s.Counters(ctx, "rel-1")
	must(t, err)
	for _, c := range cs {
		if c.Metric == "heartbeat" && c.Value != 42 {
			t.Errorf("heartbeat counter = %d, want 42", c.Value)
		}
	}
	// A device's heartbeat counts once per window, whichever replica sends
	// it and however often: the same window twice (two replicas), a later
	// window, then an older one (a delayed batch), and a window of an
	// unknown device, which counts nothing.
	beat := func(id string, window int64) store.DeviceSeen {
		return store.DeviceSeen{ID: id, LastSeen: later, Window: window, Beats: []store.CounterKey{key("heartbeat")}}
	}
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{beat("dev-1", 1000)}, nil))
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{beat("dev-1", 1000)}, nil))
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{beat("dev-1", 1001), beat("ghost", 1001)}, nil))
	must(t, s.TouchDevices(ctx, []store.DeviceSeen{beat("dev-1", 999)}, nil))
	cs, err = s.Counters(ctx, "rel-1")
	must(t, err)
	for _, c := range cs {
		if c.Metric == "heartbeat" && c.Value != 44 {
			t.Errorf("heartbeat counter after the windows 1000, 1000, 1001, 999 = %d, want 44 (one per window)", c.Value)
		}
	}

	// Running totals: over all windows, per organisation; a mark makes
	// the gates count only what comes after it.
	other := key("heartbeat")
	other.Org, other.Window = "acme-it", win.Add(time.Minute)
	must(t, s.TouchDevices(ctx, nil, []store.Counter{{CounterKey: other, Value: 8}}))
	totals := func(sinceMark bool) string {
		t.Helper()
		ts, err := s.CounterTotals(ctx, "rel-1", sinceMark)
		must(t, err)
		var got []string
		for _, c := range ts {
			if !c.Window.IsZero() || c.Release != "rel-1" {
				t.Errorf("total %+v: want the release and no window", c)
			}
			got = append(got, fmt.Sprintf("%d/%s/%s/%s=%d", c.Wave, c.Org, c.Stratum, c.Metric, c.Value))
		}
		return fmt.Sprint(got)
	}
	wantTotals := "[1/acme-it/windows/7.11.0/22631/heartbeat=8 1/contoso/windows/7.11.0/22631/action-block=3 1/contoso/windows/7.11.0/22631/applied=1 1/contoso/windows/7.11.0/22631/heartbeat=44]"
	if got := totals(false); got != wantTotals {
		t.Errorf("totals = %s, want %s", got, wantTotals)
	}
	if got := totals(true); got != wantTotals {
		t.Errorf("totals without a mark = %s, want all of them: %s", got, wantTotals)
	}
	must(t, s.MarkCounters(ctx, "rel-1"))
	if got := totals(true); got != "[]" {
		t.Errorf("totals right after the mark = %s, want none", got)
	}
	after := key("applied")
	after.Window = win.Add(2 * time.Minute)
	must(t, s.TouchDevices(ctx, nil, []store.Counter{{CounterKey: after, Value: 2}}))
	if got, want := totals(true), "[1/contoso/windows/7.11.0/22631/applied=2]"; got != want {
		t.Errorf("totals since the mark = %s, want %s", got, want)
	}
	if got := totals(false); !strings.Contains(got, "applied=3") {
		t.Errorf("totals = %s, want applied=3 over the whole life", got)
	}
	// A second mark replaces the first.
	must(t, s.MarkCounters(ctx, "rel-1"))
	if got := totals(true); got != "[]" {
		t.Errorf("totals after a second mark = %s, want none", got)
	}
}

// testCountersConcurrent: writers that add to the same counters in
// different orders (replicas flushing heartbeats, the batch writer storing
// events) all succeed (no deadlock) and lose nothing.
func testCountersConcurrent(t *testing.T, s store.Store, _ Hasher) {
	ctx := context.Background()
	seed(t, s)
	var keys []store.CounterKey
	for _, org := range []string{"contoso", "acme-it"} {
		for _, metric := range []string{"heartbeat", "control-heartbeat", "applied"} {
			for w := range 5 {
				keys = append(keys, store.CounterKey{Release: "rel-1", Wave: 1, Org: org, Stratum: "windows/7.12.0/22631", Window: t0.Add(time.Duration(w) * time.Minute), Metric: metric})
			}
		}
	}
	const writers, rounds = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				cs := make([]store.Counter, len(keys))
				for i := range keys {
					// Each writer walks the keys from a different place.
					cs[i] = store.Counter{CounterKey: keys[(i*7+g*11+r)%len(keys)], Value: 1}
				}
				if err := s.TouchDevices(ctx, nil, cs); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent counter writer: %v", err)
	}
	ts, err := s.CounterTotals(ctx, "rel-1", false)
	must(t, err)
	if len(ts) != 6 {
		t.Fatalf("got %d totals, want 6 (2 organisations x 3 metrics)", len(ts))
	}
	for _, c := range ts {
		if c.Value != writers*rounds*5 {
			t.Errorf("total %s/%s = %d, want %d", c.Org, c.Metric, c.Value, writers*rounds*5)
		}
	}
}

func testAudit(t *testing.T, s store.Store, hash Hasher) {
	ctx := context.Background()
	for i, a := range []string{"tenant.create", "release.create", "release.halt"} {
		e, err := s.AppendAudit(ctx, store.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "alice", Action: a, Target: "acme/ipc@292", Reason: "test"})
		must(t, err)
		if e.Seq != int64(i+1) || e.Hash == "" {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	es, err := s.ListAudit(ctx, 0, 0)
	must(t, err)
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	checkChain(t, es, hash)
	es, err = s.ListAudit(ctx, 2, 10)
	must(t, err)
	if len(es) != 1 || es[0].Action != "release.halt" {
		t.Errorf("ListAudit after 2 = %+v", es)
	}
}

func checkChain(t *testing.T, es []store.AuditEntry, hash Hasher) {
	t.Helper()
	prev := ""
	for i, e := range es {
		if e.Seq != int64(i+1) || e.PrevHash != prev || hash(e) != e.Hash {
			t.Fatalf("chain broken at entry %d: %+v (prev %q)", i+1, e, prev)
		}
		prev = e.Hash
	}
}

func testAuditConcurrent(t *testing.T, s store.Store, hash Hasher) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := s.AppendAudit(ctx, store.AuditEntry{Time: t0, Actor: fmt.Sprint("actor-", g), Action: fmt.Sprint("a", i)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	es, err := s.ListAudit(ctx, 0, 0)
	must(t, err)
	if len(es) != 40 {
		t.Fatalf("%d entries, want 40", len(es))
	}
	checkChain(t, es, hash)
}
