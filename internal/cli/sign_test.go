package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The two-person rule as vendors live it: the publisher publishes (the dev
// server holds the publisher's key, so the canary name is signed); the
// approver fetches the request on a connected machine, signs it where the
// key is (no server), and the signatures are uploaded with publish.
func TestSignOfflineAndUpload(t *testing.T) {
	s := startDevServer(t)
	src, err := os.ReadFile(ipc292)
	if err != nil {
		t.Fatal(err)
	}
	ipc293 := writeFile(t, t.TempDir(), "ipc-293.yaml", bytes.Replace(src, []byte("\nversion: 292\n"), []byte("\nversion: 293\n"), 1))
	r := ok(t, s.as(t, s.creds.Publisher, "publish", ipc293))
	wantContains(t, r.stdout, "canary: acme/ipc/293.bundle has 1 of the 2 vendor signatures it needs")
	wantContains(t, r.stdout, "next: ringfence sign acme --key FILE --expect acme/ipc/293.bundle=")
	r = s.as(t, s.creds.Publisher, "publish", "--signatures", writeFile(t, t.TempDir(), "none.json", []byte(`{"vendor":"acme","roles":[]}`)))
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "no signed role")
	wantCode(t, s.as(t, s.creds.Publisher, "publish"), 2)

	dir := t.TempDir()
	req := filepath.Join(dir, "request.json")
	r = ok(t, s.as(t, s.creds.Approver, "sign", "acme", "--save-request", req))
	wantContains(t, r.stdout, "role acme version")
	wantContains(t, r.stdout, "1 of 2 signature(s) so far")
	wantContains(t, r.stdout, "adds acme/ipc/293.bundle")

	// Offline: no server, no token. A wrong expectation refuses to sign.
	sigs := filepath.Join(dir, "sigs.json")
	r = ringfence(t, "sign", "acme", "--request", req, "--key", s.creds.SigningKey, "--out", sigs, "--expect", "acme/ipc/293.bundle="+strings.Repeat("0", 64))
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "not the "+strings.Repeat("0", 64)+" you expect")
	if _, err := os.Stat(sigs); err == nil {
		t.Fatal("signatures written despite the refusal")
	}
	var sha string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, "adds acme/ipc/293.bundle") {
			sha = strings.Fields(line)[3]
		}
	}
	if len(sha) != 64 {
		t.Fatalf("no hash in the request's description:\n%s", r.stdout)
	}
	r = ok(t, ringfence(t, "sign", "acme", "--request", req, "--key", s.creds.SigningKey, "--out", sigs, "--expect", "acme/ipc/293.bundle="+sha))
	wantContains(t, r.stdout, "added 1 signature(s)")
	wantCode(t, ringfence(t, "sign", "globex", "--request", req, "--key", s.creds.SigningKey, "--out", sigs), 2)
	wantCode(t, ringfence(t, "sign", "acme", "--request", req, "--out", sigs), 2)

	// Back online: upload. The production role is published.
	r = ok(t, s.as(t, s.creds.Approver, "publish", "--signatures", sigs))
	wantContains(t, r.stdout, "role acme version")
	wantContains(t, r.stdout, "2 of 2 signature(s), published")
	r = ok(t, s.as(t, s.creds.Approver, "sign", "acme", "--key", s.creds.SigningKey, "--upload"))
	wantContains(t, r.stdout, "nothing awaits vendor acme's signatures")
	// A viewer of another tenant may not upload.
	r = s.as(t, s.creds.OrgAdmin, "publish", "--signatures", sigs)
	wantCode(t, r, 1)
	wantContains(t, r.stderr, "may not upload signatures")
}
