package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// Against a real server: `audit key` prints the signing key to pin, `audit
// verify --public-key` checks the live log, `audit export` writes it with
// its signed checkpoints as JSON lines, and `audit verify --file` checks
// the export offline — and names the entry when the export was rewritten
// with the public hash function. The server's audit keys are files in its
// data directory, owner-only.
func TestAuditExportVerifiesOffline(t *testing.T) {
	s := startDevServer(t, "--audit-checkpoint-interval", "200ms")
	for _, k := range []string{"audit.key", "audit-signing.key"} {
		st, err := os.Stat(filepath.Join(s.data, k))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a file only its owner reads", k, err, st.Mode().Perm())
		}
	}
	admin := []string{"--server", s.url, "--token", s.creds.Admin}
	ok(t, s.as(t, s.creds.Admin, "tenants", "create", "fabrikam", "--kind", "org", "--name", "Fabrikam"))
	dir := t.TempDir()
	pub := filepath.Join(dir, "audit.pub")
	r := ok(t, rfEnv(t, nil, append([]string{"audit", "key"}, admin...)...))
	if !strings.HasPrefix(r.stdout, "ed25519 ") {
		t.Fatalf("audit key: %q", r.stdout)
	}
	if err := os.WriteFile(pub, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	// Wait for a checkpoint of the last entry.
	var export string
	deadline := time.Now().Add(time.Minute)
	for {
		export = ok(t, rfEnv(t, nil, append([]string{"audit", "export"}, admin...)...)).stdout
		lines := strings.Split(strings.TrimSpace(export), "\n")
		if strings.HasPrefix(lines[len(lines)-1], `{"checkpoint":{"seq":`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the last entry after a minute:\n%s", export)
		}
		time.Sleep(50 * time.Millisecond)
	}
	file := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(file, []byte(export), 0o644); err != nil {
		t.Fatal(err)
	}
	wantContains(t, ok(t, rfEnv(t, nil, append([]string{"audit", "verify", "--public-key", pub}, admin...)...)).stdout, "audit log verified: ")
	wantContains(t, ok(t, rfEnv(t, nil, "audit", "verify", "--file", file, "--public-key", pub)).stdout, "audit log verified: ")

	// The export rewritten: the tenant's entry reworded, every hash after
	// it recomputed with the public function.
	var out bytes.Buffer
	prev := ""
	for _, l := range strings.Split(strings.TrimSpace(export), "\n") {
		var e store.AuditEntry
		if strings.Contains(l, `"checkpoint"`) {
			out.WriteString(l + "\n")
			continue
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Action == "tenant.create" {
			e.Reason = "nothing happened"
		}
		if e.Action == "tenant.create" || prev != e.PrevHash {
			e.PrevHash, e.Hash = prev, store.AuditHash(e)
		}
		prev = e.Hash
		b, _ := json.Marshal(e)
		out.Write(append(b, '\n'))
	}
	forged := filepath.Join(dir, "forged.jsonl")
	if err := os.WriteFile(forged, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r = rfEnv(t, nil, "audit", "verify", "--file", forged, "--public-key", pub)
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "but its signed checkpoint says")
	r = rfEnv(t, nil, "audit", "verify", "--file", forged)
	wantCode(t, r, 2)
	wantContains(t, r.stderr, "--public-key")

	// --follow writes entries as they come, until interrupted.
	follow := exec.Command(binary, append([]string{"audit", "export", "--follow", "--interval", "100ms", "--after", "1"}, admin...)...)
	follow.Env = cleanEnv()
	var fout, ferr lockedBuffer
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill() })
	ok(t, s.as(t, s.creds.Admin, "tenants", "create", "northwind", "--kind", "org", "--name", "Northwind"))
	waitFor(t, &ferr, "the new entry followed", func() bool { return strings.Contains(fout.String(), `"target":"northwind"`) })
	if strings.Contains(fout.String(), `"seq":1,`) {
		t.Errorf("--after 1 wrote entry 1:\n%s", fout.String())
	}
	follow.Process.Signal(os.Interrupt)
	if err := follow.Wait(); err != nil {
		t.Errorf("export --follow after an interrupt: %v\n%s", err, ferr.String())
	}
}
