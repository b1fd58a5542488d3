package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/memstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// open gives each subtest a fresh store. No case of the suite reopens a
// store, so nothing needs to outlive Close.
func open(t *testing.T) store.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open, store.AuditHash) }

var t0 = time.Date(2026, 7, 19, 4, 9, 0, 0, time.UTC)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seed creates vendor acme with channel acme/ipc holding artifact 292,
// organisation contoso and its device dev-1.
func seed(t *testing.T) *memstore.Store {
	t.Helper()
	ctx := context.Background()
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "acme", Kind: store.TenantVendor, Name: "Acme"}))
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "contoso", Kind: store.TenantOrg, Name: "Contoso"}))
	must(t, s.CreateChannel(ctx, store.Channel{ID: "acme/ipc", Vendor: "acme", Name: "ipc", Kind: store.ChannelContent}))
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 292, SHA256: "aa", Size: 3, Bytes: []byte{1, 2, 3}}))
	must(t, s.CreateDevice(ctx, store.Device{ID: "dev-1", Org: "contoso", Platform: "windows"}))
	return s
}

// Neither what a caller passes in nor what it gets back shares memory with
// the store.
func TestCopies(t *testing.T) {
	ctx := context.Background()
	s := seed(t)

	in := []byte{4, 5, 6}
	must(t, s.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: 293, SHA256: "bb", Size: 3, Bytes: in}))
	in[0] = 0
	a, err := s.GetArtifact(ctx, "acme/ipc", 293)
	must(t, err)
	a.Bytes[1] = 0
	if a, _ := s.GetArtifact(ctx, "acme/ipc", 293); string(a.Bytes) != "\x04\x05\x06" {
		t.Errorf("artifact bytes changed through the caller's slices: %v", a.Bytes)
	}

	r := store.Release{ID: "rel-1", Channel: "acme/ipc", Version: 292, Plan: []byte(`{"waves":[]}`), State: store.ReleaseRolling,
		Approvals: []store.Approval{{Actor: "bob", At: t0}}, Cohort: []byte(`[1]`)}
	must(t, s.CreateRelease(ctx, r))
	r.Plan[0], r.Cohort[0], r.Approvals[0].Actor = 'x', 'x', "mallory"
	got, err := s.GetRelease(ctx, "rel-1")
	must(t, err)
	got.Plan[0], got.Cohort[0], got.Approvals[0].Actor = 'y', 'y', "eve"
	list, err := s.ListReleases(ctx, "")
	must(t, err)
	list[0].Plan[1] = 'z'
	got, err = s.GetRelease(ctx, "rel-1")
	must(t, err)
	if string(got.Plan) != `{"waves":[]}` || string(got.Cohort) != `[1]` || got.Approvals[0].Actor != "bob" {
		t.Errorf("release changed through the caller's slices: %+v", got)
	}

	w := []string{"mon-fri 01:00-05:00"}
	must(t, s.PutPolicy(ctx, store.Policy{Org: "contoso", Channel: "acme/ipc", Track: "ga", Windows: w}))
	w[0] = "never"
	ps, err := s.AllPolicies(ctx)
	must(t, err)
	ps[0].Windows[0] = "never"
	if ps, _ := s.ListPolicies(ctx, "contoso"); ps[0].Windows[0] != "mon-fri 01:00-05:00" {
		t.Errorf("policy windows changed through the caller's slices: %v", ps[0].Windows)
	}

	_, err = s.ApplyCheckins(ctx, []store.CheckinWrite{{Device: store.Device{ID: "dev-1", Platform: "windows"},
		Channels: []store.DeviceChannel{{Channel: "acme/ipc", ActiveVersion: 292, State: "active"}}}})
	must(t, err)
	dc, err := s.DeviceChannels(ctx, "dev-1")
	must(t, err)
	dc[0].ActiveVersion = 1
	if dc, _ := s.DeviceChannels(ctx, "dev-1"); dc[0].ActiveVersion != 292 {
		t.Errorf("device channel changed through the caller's slice: %+v", dc[0])
	}
	sizes, err := s.FleetSizes(ctx)
	must(t, err)
	sizes["contoso"] = 99
	if sizes, _ := s.FleetSizes(ctx); sizes["contoso"] != 1 {
		t.Errorf("fleet sizes changed through the caller's map: %v", sizes)
	}
}

// Times read back as from a database: UTC, whole milliseconds.
func TestTimesReadBackAsStored(t *testing.T) {
	ctx := context.Background()
	s := seed(t)
	local := time.Date(2026, 7, 19, 6, 9, 0, 123456789, time.FixedZone("CEST", 2*3600))
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "fabrikam", Kind: store.TenantOrg, CreatedAt: local}))
	tn, err := s.GetTenant(ctx, "fabrikam")
	must(t, err)
	if want := time.Date(2026, 7, 19, 4, 9, 0, 123000000, time.UTC); tn.CreatedAt != want {
		t.Errorf("created at %v, want %v", tn.CreatedAt, want)
	}
	e, err := s.AppendAudit(ctx, store.AuditEntry{Time: local, Actor: "alice", Action: "tenant.create"})
	must(t, err)
	if e.Time.Location() != time.UTC || e.Time.Nanosecond() != 123000000 || e.Hash != store.AuditHash(e) {
		t.Errorf("audit entry %+v", e)
	}
}

// A closed store, like a closed database, is unavailable; so is one asked
// with an expired context.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	s := seed(t)
	expired, cancel := context.WithDeadline(ctx, t0)
	defer cancel()
	if _, err := s.GetTenant(expired, "acme"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetTenant with an expired context: %v, want ErrUnavailable", err)
	}
	must(t, s.Close())
	must(t, s.Close())
	for name, err := range map[string]error{
		"Ping":         s.Ping(ctx),
		"CreateTenant": s.CreateTenant(ctx, store.Tenant{ID: "x", Kind: store.TenantOrg}),
		"TouchDevices": s.TouchDevices(ctx, nil, nil),
		"MarkCounters": s.MarkCounters(ctx, "rel-1"),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := s.CounterTotals(ctx, "rel-1", false); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CounterTotals after Close: %v, want ErrUnavailable", err)
	}
}

// Devices enrolled out of id order still page in id order, also when
// more arrive between pages.
func TestListDevicesOutOfOrder(t *testing.T) {
	ctx := context.Background()
	s := seed(t)
	for _, id := range []string{"dev-9", "dev-3", "dev-7", "dev-0"} {
		must(t, s.CreateDevice(ctx, store.Device{ID: id, Org: "contoso"}))
	}
	page := func(after string) []string {
		t.Helper()
		ds, err := s.ListDevices(ctx, store.DeviceFilter{After: after, Limit: 2})
		must(t, err)
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		return ids
	}
	if got := fmt.Sprint(page("")); got != "[dev-0 dev-1]" {
		t.Errorf("first page %s, want [dev-0 dev-1]", got)
	}
	must(t, s.CreateDevices(ctx, []store.Device{{ID: "dev-8", Org: "contoso"}, {ID: "dev-2", Org: "contoso"}}))
	if got := fmt.Sprint(page("dev-1")); got != "[dev-2 dev-3]" {
		t.Errorf("second page %s, want [dev-2 dev-3]", got)
	}
	if got := fmt.Sprint(page("dev-3")); got != "[dev-7 dev-8]" {
		t.Errorf("third page %s, want [dev-7 dev-8]", got)
	}
	if got := fmt.Sprint(page("dev-8")); got != "[dev-9]" {
		t.Errorf("last page %s, want [dev-9]", got)
	}
}
