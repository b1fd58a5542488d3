package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// ErrBootstrapped is a store that already has an admin token: the first
// one is made once, and the others through the API by an admin.
var ErrBootstrapped = errors.New("the store already has an admin token: make more with ringfence tokens create, as an admin")

// BootstrapAdmin makes the operator's first admin token in a store that
// has none, and audits it as made by "bootstrap". It is how a server that
// is not in development mode gets its first credential: run it once, with
// the store's audit key set, before or beside the first replica. It
// returns the token's secret, which is shown once and never stored.
func BootstrapAdmin(ctx context.Context, st store.Store, name string, now time.Time) (string, error) {
	sec := "rft_" + secret(32)
	tok := store.APIToken{ID: "tok-" + secret(8), Role: store.RoleAdmin, Name: name, Hash: hashSecret(sec), CreatedAt: now}
	err := st.Atomically(ctx, func(ctx context.Context) error {
		// The audit entry first: appending takes the audit log's lock
		// until the transaction ends, so two bootstraps side by side (two
		// replicas' operators, a retried job) run one after the other,
		// and the second finds the first's token and rolls back.
		if _, err := st.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: "bootstrap", Action: "token.create", Target: tok.ID, Reason: "the operator's first admin token (" + name + ")"}); err != nil {
			return err
		}
		ts, err := st.ListAPITokens(ctx, "")
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Role == store.RoleAdmin && t.Tenant == "" && !t.Revoked {
				return ErrBootstrapped
			}
		}
		return st.CreateAPIToken(ctx, tok)
	})
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	return sec, nil
}
