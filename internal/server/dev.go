package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ringfence/ringfence/examples"
	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/trust"
)

// DevCredentials is what `ringfence server --dev` writes to
// <data>/dev-credentials.json.
type DevCredentials struct {
	AdminToken     string `json:"admin_token"`
	PublisherToken string `json:"publisher_token"`
	ApproverToken  string `json:"approver_token"`
	OrgAdminToken  string `json:"org_admin_token"`
	ViewerToken    string `json:"viewer_token"`
	EnrollToken    string `json:"enroll_token"`
	Server         string `json:"server"`
	// ApproverSigningKey is vendor acme's second key (threshold 2), for
	// `ringfence sign`: releases leave their canary waves only once it
	// signed too.
	ApproverSigningKey string `json:"approver_signing_key,omitempty"`
}

// ExampleCatalog is the catalog embedded in the binary: the examples'
// template types and capability manifests.
func ExampleCatalog() (*content.Catalog, error) {
	return content.LoadCatalogFS(examples.Content, "content/template-types", "content/manifests")
}

// SeedDev prepares a development server: vendor acme with content channel
// acme/ipc, organisation contoso, a token for each role, an enrolment
// token, and bundle ipc-292 published as a completed release, so a newly
// enrolled agent gets it at once. On a data directory seeded before, it
// reuses the stored credentials.
func (s *Server) SeedDev(ctx context.Context, dataDir, serverURL string) (*DevCredentials, error) {
	path := filepath.Join(dataDir, "dev-credentials.json")
	if _, err := s.store.GetTenant(ctx, "acme"); err == nil {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("dev mode: %s was seeded before but %s is unreadable (%v); use a new --data directory", dataDir, path, err)
		}
		var c DevCredentials
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("dev mode: %s: %w", path, err)
		}
		c.Server = serverURL
		return &c, writeCredentials(path, &c)
	}
	now := s.now()
	for _, t := range []store.Tenant{
		{ID: "acme", Kind: store.TenantVendor, Name: "Acme Security (dev)", CreatedAt: now},
		{ID: "contoso", Kind: store.TenantOrg, Name: "Contoso Hospitals (dev)", CreatedAt: now},
	} {
		if err := s.store.CreateTenant(ctx, t); err != nil {
			return nil, fmt.Errorf("dev mode: %w", err)
		}
	}
	if err := s.store.CreateChannel(ctx, store.Channel{ID: "acme/ipc", Vendor: "acme", Name: "ipc", Kind: store.ChannelContent, Category: "detection", CreatedAt: now}); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	// One agent-build channel per platform, so that the dev setup can
	// publish a build of the agent itself (docs/agent.md, "Updating
	// itself").
	for _, p := range agentbuild.Platforms {
		ch := store.Channel{ID: "acme/sensor-" + p, Vendor: "acme", Name: "sensor-" + p, Kind: store.ChannelAgent, Category: "agent", CreatedAt: now}
		if err := s.store.CreateChannel(ctx, ch); err != nil {
			return nil, fmt.Errorf("dev mode: %w", err)
		}
	}
	c := &DevCredentials{Server: serverURL}
	for _, t := range []struct {
		tenant string
		role   store.Role
		dst    *string
	}{
		{"", store.RoleAdmin, &c.AdminToken},
		{"acme", store.RolePublisher, &c.PublisherToken},
		{"acme", store.RoleApprover, &c.ApproverToken},
		{"contoso", store.RoleOrgAdmin, &c.OrgAdminToken},
		{"contoso", store.RoleViewer, &c.ViewerToken},
	} {
		sec := "rft_" + secret(32)
		tok := store.APIToken{ID: "tok-" + secret(8), Tenant: t.tenant, Role: t.role, Name: "dev " + string(t.role), Hash: hashSecret(sec), CreatedAt: now}
		if err := s.store.CreateAPIToken(ctx, tok); err != nil {
			return nil, fmt.Errorf("dev mode: %w", err)
		}
		*t.dst = sec
	}
	c.EnrollToken = "rfe_" + secret(32)
	if err := s.store.CreateEnrollToken(ctx, store.EnrollToken{ID: "enr-" + secret(8), Org: "contoso", Hash: hashSecret(c.EnrollToken), CreatedAt: now}); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	src, err := fs.ReadFile(examples.Content, "content/bundles/ipc-292.yaml")
	if err != nil {
		return nil, fmt.Errorf("dev mode: embedded bundle: %w", err)
	}
	b, err := content.ParseBundle("examples/content/bundles/ipc-292.yaml", src)
	if err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	v := s.cfg.Catalog.Validate(b, 0)
	if !v.Accepted() {
		return nil, fmt.Errorf("dev mode: the embedded bundle is rejected: %v", v.Findings)
	}
	bytes := v.Encoded
	if err := s.store.PutArtifact(ctx, store.Artifact{Channel: "acme/ipc", Version: b.Version, SHA256: content.Hash(bytes), Size: int64(len(bytes)), Bytes: bytes, CreatedAt: now}); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	if c.ApproverSigningKey, err = s.SeedDevTrust(dataDir, "acme/ipc/292.bundle", bytes); err != nil {
		return nil, fmt.Errorf("dev mode: signed-update repository: %w", err)
	}
	plan, _ := json.Marshal(rollout.DefaultContentPlan())
	rel := store.Release{ID: "rel-acme-ipc-292-dev", Channel: "acme/ipc", Version: b.Version, Plan: plan, State: store.ReleaseCompleted,
		Wave: len(rollout.DefaultContentPlan().Waves) - 1, CreatedBy: "dev mode", CreatedAt: now, UpdatedAt: now, WaveStartedAt: now, CompletedAt: now}
	if err := s.store.CreateRelease(ctx, rel); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	if _, err := s.store.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: "dev mode", Action: "dev.seed", Target: "acme, contoso, acme/ipc@292", Reason: "ringfence server --dev"}); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	return c, writeCredentials(path, c)
}

func writeCredentials(path string, c *DevCredentials) error {
	b, _ := json.MarshalIndent(c, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dev mode: write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// SeedDevTrust creates the signed-update repository for development: its
// offline keys in <data>/dev-keys (never do that for a real fleet) and
// vendor acme with two keys, threshold 2. The server holds acme-1 (the
// publisher's), so publishing signs for the canary waves; acme-2, the
// approver's, stays in dev-keys for `ringfence sign`. The seed bundle is
// signed by both. The simulator's live mode seeds its server with it too.
func (s *Server) SeedDevTrust(dataDir, target string, data []byte) (approverKey string, err error) {
	keys := filepath.Join(dataDir, "dev-keys")
	approverKey = filepath.Join(keys, "acme-2.key")
	if s.cfg.TUFDir == "" {
		return "", nil
	}
	if _, ok := s.tufRepo(); ok {
		return approverKey, nil
	}
	repo := trust.Repo{Dir: s.cfg.TUFDir}
	if err := trust.Init(repo, keys, trust.InitOptions{Now: s.now()}); err != nil {
		return "", err
	}
	files, err := trust.AddVendor(repo, keys, "acme", trust.VendorOptions{NewKeys: 2, OutDir: keys, Now: s.now()})
	if err != nil {
		return "", err
	}
	held := filepath.Join(repo.Dir, "vendor-keys", "acme", filepath.Base(files[0]))
	if err := os.MkdirAll(filepath.Dir(held), 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(files[0], held); err != nil {
		return "", err
	}
	signers, err := heldKeys(repo, "acme")
	if err != nil {
		return "", err
	}
	approver, err := trust.LoadKey(files[1])
	if err != nil {
		return "", err
	}
	return approverKey, trust.AddTarget(repo, target, data, s.now(), append(signers, approver)...)
}

// PublishUnvalidated stores a content bundle's encoding and stages its
// signed target as publishing does, but without the validator: the
// simulator's switch for replaying a bundle the validator would refuse
// (july19-bypass). No request and no flag of the server reaches it.
func (s *Server) PublishUnvalidated(ctx context.Context, channel string, version uint64, encoded []byte) (PublishResult, error) {
	res := PublishResult{Channel: channel, Version: version, SHA256: content.Hash(encoded), Size: len(encoded), Findings: content.Findings{},
		Target: targetName(channel, store.ChannelContent, version)}
	a := store.Artifact{Channel: channel, Version: version, SHA256: res.SHA256, Size: int64(len(encoded)), Bytes: encoded, CreatedAt: s.now()}
	if err := s.store.PutArtifact(ctx, a); err != nil {
		return res, fmt.Errorf("artifact %s@%d: %w", channel, version, err)
	}
	vendor, _, _ := strings.Cut(channel, "/")
	var err error
	if res.Signing, res.SigningNote, err = s.stageArtifact(vendor, res.Target, encoded); err != nil {
		return res, err
	}
	_, err = s.store.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: "simulator", Action: "artifact.publish",
		Target: fmt.Sprintf("%s@%d", channel, version), Reason: "validation bypassed by the simulator; sha256 " + res.SHA256})
	return res, err
}
