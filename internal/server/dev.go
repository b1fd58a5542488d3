package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ringfence/ringfence/examples"
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
	if err := s.seedTrust(dataDir, "acme/ipc/292.bundle", bytes); err != nil {
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

// seedTrust creates the signed-update repository for development: its
// offline keys in <data>/dev-keys (never do that for a real fleet), vendor
// acme's key held by the server so that publishing signs, and the seed
// bundle signed.
func (s *Server) seedTrust(dataDir, target string, data []byte) error {
	if s.cfg.TUFDir == "" {
		return nil
	}
	if _, ok := s.tufRepo(); ok {
		return nil
	}
	repo := trust.Repo{Dir: s.cfg.TUFDir}
	keys := filepath.Join(dataDir, "dev-keys")
	if err := trust.Init(repo, keys, trust.InitOptions{Now: s.now()}); err != nil {
		return err
	}
	if err := trust.AddVendor(repo, keys, "acme", filepath.Join(repo.Dir, "vendor-keys", "acme.key"), s.now()); err != nil {
		return err
	}
	return s.signTarget("acme", target, data)
}
