package server_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

// The attack of issue 14: someone who can write the database rewrites the
// audit log — an entry deleted, the rest renumbered, every hash
// recomputed with the public hash function — and `audit verify` used to
// accept it. The chain is keyed with the server's audit key and its head
// is signed; a rewrite without the keys fails, naming the first entry.
func TestRewrittenAuditLogFailsVerify(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.createTenant(t, "fabrikam", "org", store.RoleOrgAdmin)
		e.setPolicy(t, "ga-delay:6")
		rel := e.publishRelease(t, 293)
		e.must(t, http.StatusOK, "POST", "/v1/releases/"+rel.ID+"/halt", e.creds.PublisherToken, map[string]string{"reason": "test halt"}, nil)
		if err := e.srv.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		var v server.AuditVerdict
		e.must(t, http.StatusOK, "GET", "/v1/audit/verify", e.creds.AdminToken, nil, &v)
		if !v.Verified || v.Entries < 7 || v.Checkpoints != 1 {
			t.Fatalf("untouched log: %+v, want verified with one checkpoint", v)
		}
		var es []store.AuditEntry
		e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &es)
		for _, a := range es {
			if !a.Keyed {
				t.Fatalf("entry %d is not keyed", a.Seq)
			}
		}

		for _, keyed := range []bool{false, true} {
			// Entry 3 deleted, the rest renumbered and re-hashed with the
			// public function (marked keyed or not).
			forged := append(append([]store.AuditEntry{}, es[:2]...), es[3:]...)
			for i := range forged {
				forged[i].Seq, forged[i].PrevHash = int64(i+1), ""
				if i > 0 {
					forged[i].PrevHash = forged[i-1].Hash
				}
				forged[i].Hash, forged[i].Keyed = store.AuditHash(forged[i]), keyed
			}
			rewrite(t, e.st, forged)
			e.must(t, http.StatusOK, "GET", "/v1/audit/verify", e.creds.AdminToken, nil, &v)
			if v.Verified || v.BrokenSeq != 1 {
				t.Errorf("log rewritten with the public hash (keyed %v): %+v, want entry 1 named", keyed, v)
			}
			// Without the audit key (offline, with the public key), the
			// signed checkpoint still finds it.
			cps, err := e.st.ListAuditCheckpoints(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			check := store.NewAuditChecker(nil, e.checkpointKey.Public().(ed25519.PublicKey), cps)
			seq, why := check.Entries(0, forged)
			if seq == 0 {
				seq, why = check.Done()
			}
			if seq == 0 || !strings.Contains(why, "checkpoint") {
				t.Errorf("offline check of the rewritten log (keyed %v): entry %d, %q; want the checkpoint to name it", keyed, seq, why)
			}
		}
		rewrite(t, e.st, es)
		e.must(t, http.StatusOK, "GET", "/v1/audit/verify", e.creds.AdminToken, nil, &v)
		if !v.Verified {
			t.Errorf("restored log: %+v", v)
		}
	})
}

// rewrite replaces the audit log in the database, as someone with write
// access to it could.
func rewrite(t *testing.T, st *sqlstore.Store, es []store.AuditEntry) {
	t.Helper()
	db := st.DB()
	if _, err := db.Exec(`DELETE FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	q := `INSERT INTO audit_log (seq, at, actor, action, target, reason, prev_hash, hash, keyed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	for _, a := range es {
		if _, err := db.Exec(q, a.Seq, store.Millis(a.Time), a.Actor, a.Action, a.Target, a.Reason, a.PrevHash, a.Hash, a.Keyed); err != nil {
			t.Fatal(err)
		}
	}
}

// A log written before the server had an audit key is checked and sealed
// with it when a server with a key starts, once and audited; from then on
// every entry is keyed and the log verifies.
func TestAuditLogIsSealedOnceWithTheKey(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 3 {
		if _, err := st.AppendAudit(ctx, store.AuditEntry{Time: time.Unix(int64(i), 0), Actor: "old", Action: "tenant.create"}); err != nil {
			t.Fatal(err)
		}
	}
	key := []byte("the audit key")
	for range 2 { // the second start seals nothing more
		runCtx, cancel := context.WithCancel(ctx)
		srv := server.New(server.Config{AuditKey: key, ControllerTick: time.Hour}, st, time.Now, quietLogger())
		if err := srv.Start(runCtx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	es, err := st.ListAudit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[3].Action != "audit.seal" || !strings.Contains(es[3].Reason, "3 entries") {
		t.Fatalf("after two starts: %+v, want the 3 old entries and one audit.seal", es)
	}
	if seq, why := store.VerifyChain(key, "", false, es); seq != 0 {
		t.Errorf("sealed log: entry %d: %s", seq, why)
	}
}

// A change and its audit entry are one write: when the entry cannot be
// stored (here a trigger refuses every new entry), the change is not
// stored either — a tenant, a kill switch, a release's halt — and once
// entries can be stored again, both are.
func TestChangeAndItsAuditEntryAreOneWrite(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		rel := e.publishRelease(t, 293)
		refuse := []string{`CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END`}
		allow := []string{`DROP TRIGGER no_audit`}
		if e.storeURL != "" {
			refuse = []string{`CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER no_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()`}
			allow = []string{`DROP TRIGGER no_audit ON audit_log`}
		}
		exec := func(qs []string) {
			for _, q := range qs {
				if _, err := e.st.DB().Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		tenant := map[string]string{"id": "fabrikam", "kind": "org", "name": "Fabrikam"}
		kill := map[string]any{"engaged": true, "reason": "bad day"}
		halt := map[string]string{"reason": "crashes"}
		exec(refuse)
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/tenants", tenant},
			{"PUT", "/v1/kill-switch", kill},
			{"POST", "/v1/releases/" + rel.ID + "/halt", halt},
		} {
			if code, body := e.call(t, c.method, c.path, e.creds.AdminToken, c.body); code < 500 {
				t.Errorf("%s %s with the audit log refusing entries: %d %s, want 5xx", c.method, c.path, code, body)
			}
		}
		if code, _ := e.call(t, "GET", "/v1/tenants/fabrikam", e.creds.AdminToken, nil); code != http.StatusNotFound {
			t.Errorf("the tenant was stored without its audit entry: GET answered %d", code)
		}
		var kills []store.KillSwitch
		e.must(t, http.StatusOK, "GET", "/v1/kill-switches", e.creds.AdminToken, nil, &kills)
		for _, k := range kills {
			if k.Engaged {
				t.Errorf("the kill switch was engaged without its audit entry: %+v", k)
			}
		}
		if st := e.status(t, rel.ID); st.Release.State == "halted" {
			t.Errorf("the release was halted without its audit entry")
		}
		exec(allow)
		e.must(t, http.StatusCreated, "POST", "/v1/tenants", e.creds.AdminToken, tenant, nil)
		var es []store.AuditEntry
		e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &es)
		if last := es[len(es)-1]; last.Action != "tenant.create" || last.Target != "fabrikam" {
			t.Errorf("last entry %+v, want the tenant's", last)
		}
	})
}
