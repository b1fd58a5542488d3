package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/store"
)

// FleetView is the fleet as one principal may see it (the web console's
// fleet page): the operator every organisation, an organisation's admin
// and viewers their own, vendors none (they see aggregate figures of
// their releases only, as on the API).
type FleetView struct {
	Orgs    []OrgView
	Devices int
	// Strata counts devices by platform/agent version/OS build, the
	// strata the canary waves sample.
	Strata []FleetCount
	// Versions counts devices by the version they run on each channel.
	Versions []FleetCount
	// Silent are devices quiet for longer than SilentAfter, longest quiet
	// first (at most maxSilentShown); SilentCount is all of them.
	Silent      []DeviceInfo
	SilentCount int
	SilentAfter time.Duration
}

// OrgView is one organisation's tracks, maintenance windows and hourly
// budget.
type OrgView struct {
	ID, Name string
	Devices  int
	Policies []PolicyInfo
	// HourlyCap is the budget in basis points of the fleet (0: none);
	// BudgetLimit and BudgetUsed are devices per hour as the check-in
	// path counts them (the snapshot's figures).
	HourlyCap               int
	BudgetLimit, BudgetUsed int64
}

// FleetCount is a number of devices with one key: a stratum, or a channel
// and version.
type FleetCount struct {
	Key     string
	Devices int
	Silent  int
}

const maxSilentShown = 50

// Fleet reads the devices p may see: org "" is every organisation p may
// read (all for the operator, its own for an organisation).
func (s *Server) Fleet(ctx context.Context, p Principal, org string) (FleetView, error) {
	if org == "" && !p.isAdmin() {
		org = p.Tenant
	}
	if !s.mayReadOrg(p, org) {
		return FleetView{}, forbidden("token may not read the devices of %q; vendors see aggregate figures of their releases only", org)
	}
	sn := s.snap.Load()
	now := s.now()
	v := FleetView{SilentAfter: s.silentAfter()}
	byOrg := map[string]*OrgView{}
	ts, err := s.store.ListTenants(ctx)
	if err != nil {
		return v, storeError("tenants", err)
	}
	for _, t := range ts {
		if t.Kind != store.TenantOrg || (org != "" && t.ID != org) {
			continue
		}
		ov := &OrgView{ID: t.ID, Name: t.Name, HourlyCap: t.HourlyCap}
		if b, ok := sn.budget[t.ID]; ok {
			ov.BudgetLimit, ov.BudgetUsed = b.limit, b.used
		}
		ps, err := s.store.ListPolicies(ctx, t.ID)
		if err != nil {
			return v, storeError("policies of "+t.ID, err)
		}
		for _, pol := range ps {
			ov.Policies = append(ov.Policies, PolicyInfo{Org: pol.Org, Channel: pol.Channel, Track: pol.Track, Windows: pol.Windows})
		}
		byOrg[t.ID] = ov
	}
	strata := map[string]*FleetCount{}
	count := func(m map[string]*FleetCount, key string, silent bool) {
		c := m[key]
		if c == nil {
			c = &FleetCount{Key: key}
			m[key] = c
		}
		c.Devices++
		if silent {
			c.Silent++
		}
	}
	quietSince := now.Add(-v.SilentAfter)
	after := ""
	for {
		ds, err := s.store.ListDevices(ctx, store.DeviceFilter{Org: org, After: after, Limit: 5000})
		if err != nil {
			return v, storeError("devices", err)
		}
		for _, d := range ds {
			if d.Revoked {
				continue
			}
			silent := d.LastSeen.Before(quietSince)
			v.Devices++
			if ov := byOrg[d.Org]; ov != nil {
				ov.Devices++
			}
			count(strata, stratumOf(d.Platform, d.AgentVersion, d.OSBuild), silent)
			if silent {
				v.SilentCount++
				v.Silent = append(v.Silent, toDeviceInfo(d))
			}
		}
		if len(ds) < 5000 {
			break
		}
		after = ds[len(ds)-1].ID
	}
	slices.SortFunc(v.Silent, func(a, b DeviceInfo) int { return cmp.Or(a.LastSeen.Compare(b.LastSeen), cmp.Compare(a.ID, b.ID)) })
	v.Silent = v.Silent[:min(len(v.Silent), maxSilentShown)]
	vcs, err := s.store.VersionCounts(ctx, store.VersionQuery{Org: org, QuietBefore: quietSince})
	if err != nil {
		return v, storeError("versions", err)
	}
	versions := map[string]*FleetCount{}
	for _, c := range vcs {
		versions[fmt.Sprintf("%s@%d", c.Channel, c.Version)] = &FleetCount{Key: fmt.Sprintf("%s@%d", c.Channel, c.Version), Devices: int(c.Devices), Silent: int(c.Silent)}
	}
	v.Strata, v.Versions = sortedCounts(strata), sortedCounts(versions)
	for _, ov := range byOrg {
		v.Orgs = append(v.Orgs, *ov)
	}
	slices.SortFunc(v.Orgs, func(a, b OrgView) int { return cmp.Compare(a.ID, b.ID) })
	return v, nil
}

// sortedCounts lists counts by most devices first, then by key.
func sortedCounts(m map[string]*FleetCount) []FleetCount {
	out := make([]FleetCount, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b FleetCount) int { return cmp.Or(cmp.Compare(b.Devices, a.Devices), cmp.Compare(a.Key, b.Key)) })
	return out
}

// PublishedArtifact is one artifact a release names, for the console's
// content page: the store keeps no findings (publish returns them), so
// what is shown is what was signed and shipped.
type PublishedArtifact struct {
	Channel   string
	Version   uint64
	SHA256    string
	Size      int64
	CreatedAt time.Time
	Releases  []string // release ids and states
	// Findings are what validation and preflight said when it was
	// published (warnings and notes: errors are never published).
	Findings content.Findings
}

// Published lists the artifacts on channels p may read that a release
// names, and each channel's newest, newest first.
func (s *Server) Published(ctx context.Context, p Principal) ([]PublishedArtifact, error) {
	rels, err := s.Releases(ctx, p, "")
	if err != nil {
		return nil, err
	}
	type key struct {
		channel string
		version uint64
	}
	seen := map[key]*PublishedArtifact{}
	var order []key
	add := func(ch string, v uint64) error {
		k := key{ch, v}
		if _, ok := seen[k]; ok || v == 0 {
			return nil
		}
		a, err := s.store.GetArtifact(ctx, ch, v)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return storeError(fmt.Sprintf("artifact %s@%d", ch, v), err)
		}
		pa := &PublishedArtifact{Channel: ch, Version: v, SHA256: a.SHA256, Size: a.Size, CreatedAt: a.CreatedAt}
		if a.Findings != "" {
			if err := json.Unmarshal([]byte(a.Findings), &pa.Findings); err != nil {
				s.log.Warn("stored findings unreadable", "artifact", fmt.Sprintf("%s@%d", ch, v), "err", err)
			}
		}
		seen[k] = pa
		order = append(order, k)
		return nil
	}
	chans := map[string]bool{}
	for _, r := range rels {
		if err := add(r.Channel, r.Version); err != nil {
			return nil, err
		}
		seen[key{r.Channel, r.Version}].Releases = append(seen[key{r.Channel, r.Version}].Releases, r.ID+" ("+r.State+")")
		chans[r.Channel] = true
	}
	cs, err := s.store.ListChannels(ctx, "")
	if err != nil {
		return nil, storeError("channels", err)
	}
	for _, c := range cs {
		if !p.vendorAccess(c.Vendor, false) && !chans[c.ID] {
			continue
		}
		latest, err := s.store.LatestArtifactVersion(ctx, c.ID)
		if err != nil {
			return nil, storeError("channel "+c.ID, err)
		}
		if err := add(c.ID, latest); err != nil {
			return nil, err
		}
	}
	out := make([]PublishedArtifact, 0, len(order))
	for _, k := range order {
		out = append(out, *seen[k])
	}
	slices.SortFunc(out, func(a, b PublishedArtifact) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.Channel, b.Channel), cmp.Compare(b.Version, a.Version))
	})
	return out, nil
}

// ControllerTick is how often the rollout controller judges releases: a
// page that follows a release polls at least as often.
func (s *Server) ControllerTick() time.Duration { return s.cfg.ControllerTick }

// HeartbeatSpan is how long a device on a release may go between
// heartbeats and still count as reporting (the gates' figure).
func (s *Server) HeartbeatSpan() time.Duration {
	return max(s.cfg.CounterWindow, s.cfg.CheckinInterval)
}
