package server

import (
	"context"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// meteredStore counts the store's failures in ringfence_store_errors_total:
// every call the server makes goes through it, so no path that meets a
// failing database can forget to count it. Close, SetAuditKey and
// Atomically pass through uncounted: Atomically's own error is whatever
// its function returned, and the calls inside it are counted themselves.
type meteredStore struct {
	store.Store
	m *metrics
}

var _ store.Store = meteredStore{}

func (ms meteredStore) Ping(ctx context.Context) error {
	err := ms.Store.Ping(ctx)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) CreateTenant(ctx context.Context, t store.Tenant) error {
	err := ms.Store.CreateTenant(ctx, t)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	v, err := ms.Store.GetTenant(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	v, err := ms.Store.ListTenants(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CreateChannel(ctx context.Context, c store.Channel) error {
	err := ms.Store.CreateChannel(ctx, c)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetChannel(ctx context.Context, id string) (store.Channel, error) {
	v, err := ms.Store.GetChannel(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListChannels(ctx context.Context, vendor string) ([]store.Channel, error) {
	v, err := ms.Store.ListChannels(ctx, vendor)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) PutArtifact(ctx context.Context, a store.Artifact) error {
	err := ms.Store.PutArtifact(ctx, a)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetArtifact(ctx context.Context, channel string, version uint64) (store.Artifact, error) {
	v, err := ms.Store.GetArtifact(ctx, channel, version)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) LatestArtifactVersion(ctx context.Context, channel string) (uint64, error) {
	v, err := ms.Store.LatestArtifactVersion(ctx, channel)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CreateRelease(ctx context.Context, r store.Release) error {
	err := ms.Store.CreateRelease(ctx, r)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetRelease(ctx context.Context, id string) (store.Release, error) {
	v, err := ms.Store.GetRelease(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListReleases(ctx context.Context, channel string) ([]store.Release, error) {
	v, err := ms.Store.ListReleases(ctx, channel)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) UpdateRelease(ctx context.Context, r store.Release, audit ...store.AuditEntry) (int64, error) {
	v, err := ms.Store.UpdateRelease(ctx, r, audit...)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) PutPolicy(ctx context.Context, p store.Policy) error {
	err := ms.Store.PutPolicy(ctx, p)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	v, err := ms.Store.ListPolicies(ctx, org)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) AllPolicies(ctx context.Context) ([]store.Policy, error) {
	v, err := ms.Store.AllPolicies(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	err := ms.Store.CreateAPIToken(ctx, t)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	v, err := ms.Store.APITokenByHash(ctx, hash)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	v, err := ms.Store.GetAPIToken(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListAPITokens(ctx context.Context, tenant string) ([]store.APIToken, error) {
	v, err := ms.Store.ListAPITokens(ctx, tenant)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) RevokeAPIToken(ctx context.Context, id string) error {
	err := ms.Store.RevokeAPIToken(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	err := ms.Store.CreateEnrollToken(ctx, t)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) EnrollTokenByHash(ctx context.Context, hash string) (store.EnrollToken, error) {
	v, err := ms.Store.EnrollTokenByHash(ctx, hash)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) RevokeEnrollToken(ctx context.Context, id string) error {
	err := ms.Store.RevokeEnrollToken(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) ListEnrollTokens(ctx context.Context, org string) ([]store.EnrollToken, error) {
	v, err := ms.Store.ListEnrollTokens(ctx, org)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CreateDevice(ctx context.Context, d store.Device) error {
	err := ms.Store.CreateDevice(ctx, d)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) CreateDevices(ctx context.Context, ds []store.Device) error {
	err := ms.Store.CreateDevices(ctx, ds)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetDevice(ctx context.Context, id string) (store.Device, error) {
	v, err := ms.Store.GetDevice(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	v, err := ms.Store.ListDevices(ctx, f)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) DeviceChannels(ctx context.Context, device string) ([]store.DeviceChannel, error) {
	v, err := ms.Store.DeviceChannels(ctx, device)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) RevokeDevice(ctx context.Context, id string) error {
	err := ms.Store.RevokeDevice(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) ApplyCheckins(ctx context.Context, ws []store.CheckinWrite) ([]store.CheckinResult, error) {
	v, err := ms.Store.ApplyCheckins(ctx, ws)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) TouchDevices(ctx context.Context, seen []store.DeviceSeen, counters []store.Counter) error {
	err := ms.Store.TouchDevices(ctx, seen, counters)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) Counters(ctx context.Context, release string) ([]store.Counter, error) {
	v, err := ms.Store.Counters(ctx, release)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CounterTotals(ctx context.Context, release string, sinceMark bool) ([]store.Counter, error) {
	v, err := ms.Store.CounterTotals(ctx, release, sinceMark)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) MarkCounters(ctx context.Context, release string) error {
	err := ms.Store.MarkCounters(ctx, release)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) SetHourlyCap(ctx context.Context, org string, bp int) error {
	err := ms.Store.SetHourlyCap(ctx, org, bp)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) OffersSince(ctx context.Context, org string, since time.Time) (int64, error) {
	v, err := ms.Store.OffersSince(ctx, org, since)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) FleetSizes(ctx context.Context) (map[string]int64, error) {
	v, err := ms.Store.FleetSizes(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) AgentVersions(ctx context.Context) ([]store.AgentVersionCount, error) {
	v, err := ms.Store.AgentVersions(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) VersionCounts(ctx context.Context, q store.VersionQuery) ([]store.VersionCount, error) {
	v, err := ms.Store.VersionCounts(ctx, q)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) SilenceStats(ctx context.Context, q store.SilenceQuery) ([]store.SilenceStat, error) {
	v, err := ms.Store.SilenceStats(ctx, q)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) DevicesOnVersion(ctx context.Context, channel string, version uint64) (int64, error) {
	v, err := ms.Store.DevicesOnVersion(ctx, channel, version)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) PutPlanTemplate(ctx context.Context, t store.PlanTemplate) error {
	err := ms.Store.PutPlanTemplate(ctx, t)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) DeletePlanTemplate(ctx context.Context, vendor, name string) error {
	err := ms.Store.DeletePlanTemplate(ctx, vendor, name)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) PlanTemplates(ctx context.Context, vendor string) ([]store.PlanTemplate, error) {
	v, err := ms.Store.PlanTemplates(ctx, vendor)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) SetKillSwitch(ctx context.Context, k store.KillSwitch) error {
	err := ms.Store.SetKillSwitch(ctx, k)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) KillSwitches(ctx context.Context) ([]store.KillSwitch, error) {
	v, err := ms.Store.KillSwitches(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) Announce(ctx context.Context) error {
	err := ms.Store.Announce(ctx)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) WatchChanges(ctx context.Context, onChange func()) error {
	err := ms.Store.WatchChanges(ctx, onChange)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) Lead(ctx context.Context) (store.Lease, error) {
	v, err := ms.Store.Lead(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	v, err := ms.Store.AppendAudit(ctx, e)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListAudit(ctx context.Context, afterSeq int64, limit int) ([]store.AuditEntry, error) {
	v, err := ms.Store.ListAudit(ctx, afterSeq, limit)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) SealAuditLog(ctx context.Context, key []byte) (int, error) {
	v, err := ms.Store.SealAuditLog(ctx, key)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) AddAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	err := ms.Store.AddAuditCheckpoint(ctx, c)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error) {
	v, err := ms.Store.ListAuditCheckpoints(ctx, afterSeq, limit)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) CreateWebhook(ctx context.Context, w store.Webhook) error {
	err := ms.Store.CreateWebhook(ctx, w)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) GetWebhook(ctx context.Context, id string) (store.Webhook, error) {
	v, err := ms.Store.GetWebhook(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	v, err := ms.Store.ListWebhooks(ctx)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) SetWebhookEnabled(ctx context.Context, id string, enabled bool) error {
	err := ms.Store.SetWebhookEnabled(ctx, id, enabled)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) DeleteWebhook(ctx context.Context, id string) error {
	err := ms.Store.DeleteWebhook(ctx, id)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) EnqueueWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	err := ms.Store.EnqueueWebhookDeliveries(ctx, ds)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) DueWebhookDeliveries(ctx context.Context, now time.Time, limit int) ([]store.WebhookDelivery, error) {
	v, err := ms.Store.DueWebhookDeliveries(ctx, now, limit)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) RecordWebhookAttempt(ctx context.Context, a store.WebhookAttempt, state store.DeliveryState, attempts int, next time.Time) error {
	err := ms.Store.RecordWebhookAttempt(ctx, a, state, attempts, next)
	ms.m.storeError(err, ctx.Err())
	return err
}

func (ms meteredStore) WebhookDeliveries(ctx context.Context, webhook string, limit int) ([]store.WebhookDelivery, error) {
	v, err := ms.Store.WebhookDeliveries(ctx, webhook, limit)
	ms.m.storeError(err, ctx.Err())
	return v, err
}

func (ms meteredStore) ChannelOrgs(ctx context.Context, channel string) ([]string, error) {
	v, err := ms.Store.ChannelOrgs(ctx, channel)
	ms.m.storeError(err, ctx.Err())
	return v, err
}
