package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/store/storetest"
)

// Bootstraps side by side on one PostgreSQL make one admin token: the
// others find it and change nothing (not even the audit log).
func TestBootstrapOnceUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	const n = 8
	stores := make([]*sqlstore.Store, n)
	for i := range stores {
		st, err := sqlstore.Open(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores[i] = st
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = server.BootstrapAdmin(ctx, st, "first admin", time.Now())
		}()
	}
	wg.Wait()
	made := 0
	for _, err := range errs {
		switch {
		case err == nil:
			made++
		case !errors.Is(err, server.ErrBootstrapped):
			t.Errorf("bootstrap: %v", err)
		}
	}
	ts, err := stores[0].ListAPITokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	admins := 0
	for _, tok := range ts {
		if tok.Role == store.RoleAdmin {
			admins++
		}
	}
	es, err := stores[0].ListAudit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if made != 1 || admins != 1 || len(es) != 1 {
		t.Errorf("%d bootstraps succeeded, %d admin tokens, %d audit entries; want 1, 1, 1", made, admins, len(es))
	}
}
