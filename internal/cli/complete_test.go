package cli_test

import (
	"strings"
	"testing"
)

// TestCompletion: the shell completes release ids and channels from the
// server, with the token the command would use; without a server it
// offers nothing, quietly.
func TestCompletion(t *testing.T) {
	s := startDevServer(t)
	pub := s.creds.Publisher
	var rels []struct {
		ID string `json:"id"`
	}
	decodeJSON(t, ok(t, s.as(t, pub, "release", "list", "--json")), &rels)
	if len(rels) == 0 {
		t.Fatal("the dev server has no release")
	}
	r := ok(t, s.as(t, pub, "__complete", "release", "status", ""))
	wantContains(t, r.stdout, rels[0].ID+"\tacme/ipc completed")
	r = ok(t, s.as(t, pub, "__complete", "release", "create", "acme/s"))
	wantContains(t, r.stdout, "acme/sensor-linux\tagent")
	if strings.Contains(r.stdout, "acme/ipc") {
		t.Errorf("completing acme/s offered acme/ipc:\n%s", r.stdout)
	}
	r = ok(t, s.as(t, pub, "__complete", "publish", "--channel", ""))
	wantContains(t, r.stdout, "acme/ipc\tcontent")
	// No server: no completions, no error text in them.
	r = ok(t, rfEnv(t, []string{"RINGFENCE_SERVER=http://127.0.0.1:1", "RINGFENCE_TOKEN=" + pub}, "__complete", "release", "status", ""))
	if strings.Contains(r.stdout, "rel-") || strings.Contains(r.stdout, "error") {
		t.Errorf("completion without a server offered:\n%s", r.stdout)
	}
}
