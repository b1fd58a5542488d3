package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
)

// snapshot is the read-only view check-ins are answered from. It is
// rebuilt whole and swapped atomically; a check-in never waits for it.
type snapshot struct {
	builtAt  time.Time
	gen      uint64 // from Server.snapGen: a new one for every build
	tenants  map[string]store.Tenant
	channels map[string]store.Channel
	// releases per channel, ascending version
	releases map[string][]*releaseInfo
	byID     map[string]*releaseInfo
	policies map[policyKey]rollout.Track
	windows  map[policyKey][]rollout.Window
	// channel order for responses
	channelIDs []string
	// engaged kill switches by scope ("*" or a channel)
	kills map[string]store.KillSwitch
	// hourly budgets of the organisations that set one
	budget map[string]orgBudget
	// withheld are the targets of halted and rolled-back releases that no
	// other release ships, by name: /tuf/targets/ does not serve them.
	withheld map[string]*releaseInfo
	// aimed remembers which releases of a channel target devices of a
	// platform and agent version (targetKey): every check-in asks, and a
	// fleet has few such pairs. At most maxAimed are remembered, so
	// devices reporting made-up versions cannot grow it without bound.
	aimed  sync.Map // targetKey -> *aimedAt
	nAimed atomic.Int64
}

type targetKey struct{ channel, platform, agent string }

// aimedAt is a channel's releases that target one platform and agent
// version, in the snapshot's order; shared, never modified.
type aimedAt struct {
	views []rollout.ReleaseView
	infos []*releaseInfo
}

const maxAimed = 4096

// aimedAt returns the releases of channel that target devices of platform
// running agent.
func (sn *snapshot) aimedAt(cat *content.Catalog, channel, platform, agent string) *aimedAt {
	k := targetKey{channel, platform, agent}
	if a, ok := sn.aimed.Load(k); ok {
		return a.(*aimedAt)
	}
	v, err := content.ParseAgentVersion(agent)
	a := &aimedAt{}
	for _, ri := range sn.releases[channel] {
		if ri.targetsDevice(cat, platform, v, err == nil) {
			a.views = append(a.views, ri.view)
			a.infos = append(a.infos, ri)
		}
	}
	// A place is taken before the entry is stored, so check-ins side by
	// side cannot push the count past maxAimed.
	if sn.nAimed.Add(1) > maxAimed {
		sn.nAimed.Add(-1)
	} else if _, loaded := sn.aimed.LoadOrStore(k, a); loaded {
		sn.nAimed.Add(-1)
	}
	return a
}

// orgBudget is an organisation's hourly cap in devices and the offers
// stored in the last hour when the snapshot was built.
type orgBudget struct{ limit, used int64 }

// frozen reports whether a kill switch covers a channel.
func (sn *snapshot) frozen(channel string) bool {
	_, all := sn.kills["*"]
	_, one := sn.kills[channel]
	return all || one
}

type policyKey struct{ org, channel string }

type releaseInfo struct {
	rel     store.Release
	view    rollout.ReleaseView
	sha256  string
	size    int64
	targets content.Targets
	// kind-specific: content bundles know their targets; nil means all
	hasTargets bool
	// buildPlatform: an agent build goes to devices of its platform only.
	buildPlatform string
	// target is the artifact's name in the signed-update repository;
	// signing how far its vendor signed it, signingNote what is missing.
	target      string
	signing     rollout.Signing
	signingNote string
}

// artifactMeta caches what the snapshot needs of an artifact, keyed by
// channel and version: artifacts are immutable, so it never goes stale.
type artifactMeta struct {
	sha256     string
	size       int64
	targets    content.Targets
	hasTargets bool
	// buildPlatform is an agent build's platform ("" for content).
	buildPlatform string
}

func (s *Server) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sn := &snapshot{
		gen:      s.snapGen.Add(1),
		builtAt:  s.now(),
		tenants:  map[string]store.Tenant{},
		channels: map[string]store.Channel{},
		releases: map[string][]*releaseInfo{},
		byID:     map[string]*releaseInfo{},
		policies: map[policyKey]rollout.Track{},
		windows:  map[policyKey][]rollout.Window{},
		kills:    map[string]store.KillSwitch{},
		budget:   map[string]orgBudget{},
	}
	ts, err := s.store.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("snapshot tenants: %w", err)
	}
	capped := false
	for _, t := range ts {
		sn.tenants[t.ID] = t
		capped = capped || t.HourlyCap > 0
	}
	installed := false
	if capped {
		// Before the offers are read: those stored from here on may be
		// missing from this snapshot's count (budgets.reset keeps them
		// once it is in use); a snapshot never installed leaves the
		// reservations as they were.
		s.budgets.beginRead()
		defer func() {
			if !installed {
				s.budgets.endRead()
			}
		}()
		if err := s.loadBudgets(ctx, sn); err != nil {
			return err
		}
	}
	ks, err := s.store.KillSwitches(ctx)
	if err != nil {
		return fmt.Errorf("snapshot kill switches: %w", err)
	}
	for _, k := range ks {
		if k.Engaged {
			sn.kills[k.Scope] = k
		}
	}
	cs, err := s.store.ListChannels(ctx, "")
	if err != nil {
		return fmt.Errorf("snapshot channels: %w", err)
	}
	for _, c := range cs {
		sn.channels[c.ID] = c
		sn.channelIDs = append(sn.channelIDs, c.ID)
	}
	ps, err := s.store.AllPolicies(ctx)
	if err != nil {
		return fmt.Errorf("snapshot policies: %w", err)
	}
	for _, p := range ps {
		tr, err := rollout.ParseTrack(p.Track)
		if err != nil {
			s.log.Warn("stored policy has a bad track; using ga", "org", p.Org, "channel", p.Channel, "track", p.Track)
			tr = rollout.DefaultTrack
		}
		sn.policies[policyKey{p.Org, p.Channel}] = tr
		for _, ws := range p.Windows {
			w, err := rollout.ParseWindow(ws)
			if err != nil {
				s.log.Warn("stored policy has a bad maintenance window; it is ignored", "org", p.Org, "channel", p.Channel, "window", ws)
				continue
			}
			sn.windows[policyKey{p.Org, p.Channel}] = append(sn.windows[policyKey{p.Org, p.Channel}], w)
		}
	}
	rs, err := s.store.ListReleases(ctx, "")
	if err != nil {
		return fmt.Errorf("snapshot releases: %w", err)
	}
	ix, err := s.signingIndex()
	if err != nil {
		return fmt.Errorf("snapshot signed-update repository: %w", err)
	}
	for _, r := range rs {
		meta, err := s.artifactMeta(ctx, r.Channel, r.Version)
		if err != nil {
			return fmt.Errorf("snapshot release %s: %w", r.ID, err)
		}
		plan, err := rollout.ParsePlan(r.Plan)
		if err != nil {
			s.log.Warn("stored release has a bad plan; it is skipped", "release", r.ID, "err", err)
			continue
		}
		ri := &releaseInfo{rel: r, sha256: meta.sha256, size: meta.size, targets: meta.targets, hasTargets: meta.hasTargets, buildPlatform: meta.buildPlatform,
			view: rollout.ReleaseView{ID: r.ID, Version: r.Version, State: r.State, Wave: r.Wave, Plan: plan, CompletedAt: r.CompletedAt}}
		ri.target = targetName(r.Channel, sn.channels[r.Channel].Kind, r.Version)
		ri.signing, ri.signingNote = signing(ix, ri.target)
		if len(r.Cohort) > 0 && ri.view.State.Live() {
			var c rollout.Cohort
			if err := json.Unmarshal(r.Cohort, &c); err == nil {
				ri.view.Strata = c.Bounds
				if c.Wave == r.Wave {
					ri.view.Ramp = c.Ramp
				}
			}
		}
		if sn.frozen(r.Channel) && ri.view.State.Live() {
			// A kill switch: nobody gets a version still rolling out, and
			// devices on one go back to their last-known-good.
			ri.view.State = rollout.StateHalted
		}
		sn.releases[r.Channel] = append(sn.releases[r.Channel], ri)
		sn.byID[r.ID] = ri
	}
	for _, l := range sn.releases {
		slices.SortFunc(l, func(a, b *releaseInfo) int { return compareU64(a.rel.Version, b.rel.Version) })
	}
	sn.withheld = withheldTargets(sn)
	s.snap.Store(sn)
	installed = true
	if capped {
		s.budgets.reset()
	}
	s.ready.Store(true)
	return nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Server) artifactMeta(ctx context.Context, channel string, version uint64) (artifactMeta, error) {
	key := fmt.Sprintf("%s@%d", channel, version)
	if m, ok := s.metaCache.Load(key); ok {
		return m.(artifactMeta), nil
	}
	a, err := s.store.GetArtifact(ctx, channel, version)
	if err != nil {
		return artifactMeta{}, err
	}
	m := artifactMeta{sha256: a.SHA256, size: a.Size}
	if h, err := agentbuild.ReadHeader(bufio.NewReader(bytes.NewReader(a.Bytes))); err == nil {
		m.buildPlatform = h.Platform
	}
	if content.IsCompiled(a.Bytes) {
		if c, err := content.Unmarshal(a.Bytes); err == nil {
			if t, err := content.TargetsOf(c); err == nil {
				m.targets, m.hasTargets = t, true
			}
		}
	}
	s.metaCache.Store(key, m)
	return m, nil
}

// targetsDevice reports whether a release's artifact is meant for the
// device: by the same rule validation checked it by (content.Catalog
// Delivers), so no agent receives content that nothing checked against
// what that agent supplies.
func (ri *releaseInfo) targetsDevice(cat *content.Catalog, platform string, agent content.AgentVersion, agentOK bool) bool {
	if ri.buildPlatform != "" {
		return platform == ri.buildPlatform
	}
	if !ri.hasTargets {
		return true
	}
	return agentOK && cat.Delivers(ri.targets, platform, agent)
}

func withheldTargets(sn *snapshot) map[string]*releaseInfo {
	out := map[string]*releaseInfo{}
	shipped := map[string]bool{}
	for _, ri := range sn.byID {
		switch {
		case ri.view.State.Reaches():
			shipped[ri.target] = true
		case ri.view.State.Bad():
			out[ri.target] = ri
		}
	}
	for t := range shipped {
		delete(out, t)
	}
	return out
}

// completed reports whether release id of channel has completed.
// release is the channel's release of version v, if the snapshot has it.
func (sn *snapshot) release(channel string, v uint64) *releaseInfo {
	for _, ri := range sn.releases[channel] {
		if ri.rel.Version == v {
			return ri
		}
	}
	return nil
}

func (sn *snapshot) completed(channel, id string) bool {
	for _, ri := range sn.releases[channel] {
		if ri.rel.ID == id {
			return ri.view.State == rollout.StateCompleted
		}
	}
	return false
}

func (sn *snapshot) track(org, channel string) rollout.Track {
	if t, ok := sn.policies[policyKey{org, channel}]; ok {
		return t
	}
	return rollout.DefaultTrack
}

// loadBudgets reads, for each organisation with an hourly cap, its fleet
// size and the offers its devices got in the last hour.
func (s *Server) loadBudgets(ctx context.Context, sn *snapshot) error {
	sizes, err := s.store.FleetSizes(ctx)
	if err != nil {
		return fmt.Errorf("snapshot fleet sizes: %w", err)
	}
	for id, t := range sn.tenants {
		if t.HourlyCap <= 0 {
			continue
		}
		used, err := s.store.OffersSince(ctx, id, sn.builtAt.Add(-time.Hour))
		if err != nil {
			return fmt.Errorf("snapshot offers of %s: %w", id, err)
		}
		limit := max(1, sizes[id]*int64(t.HourlyCap)/rollout.Positions)
		sn.budget[id] = orgBudget{limit: limit, used: used}
	}
	return nil
}
