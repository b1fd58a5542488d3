package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/cli"
)

// A mistyped command gets a suggestion and the usage hint; a command that
// fails while it runs (here: the port is taken) gets neither hint nor
// suggestion, since the command line was right.
func TestMistakesAndFailuresAreToldApart(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := cli.Run(context.Background(), []string{"release", "statu"}, &stdout, &stderr); code != cli.ExitUsage ||
		!strings.Contains(stderr.String(), `did you mean status?`) || !strings.Contains(stderr.String(), "--help") {
		t.Errorf("ringfence release statu: exit %d, stderr %q; want 2, a suggestion and the usage hint", code, stderr.String())
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	stdout.Reset()
	stderr.Reset()
	data := filepath.Join(t.TempDir(), "data")
	code := cli.Run(context.Background(), []string{"server", "--listen", taken.Addr().String(), "--data", data}, &stdout, &stderr)
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "address already in use") || strings.Contains(stderr.String(), "--help") {
		t.Errorf("ringfence server on a taken port: exit %d, stderr %q; want 2 naming the port, without the usage hint", code, stderr.String())
	}
	// The port is bound before anything is written: no data directory,
	// no keys left behind.
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the failed server left %s behind (%v)", data, err)
	}
}

// Under --json an error is a JSON object on stderr, with the exit status.
func TestErrorsUnderJSONAreJSON(t *testing.T) {
	// A server that is not there: an address that refuses connections.
	gone := "http://" + refusedAddr(t)
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"release", "list", "--json", "--server", gone, "--token", "rft_x"}, &stdout, &stderr)
	var got struct {
		Error string `json:"error"`
		Exit  int    `json:"exit"`
	}
	if err := json.Unmarshal(stderr.Bytes(), &got); err != nil || code != cli.ExitUsage || got.Exit != code || !strings.Contains(got.Error, "cannot reach the server") {
		t.Errorf("release list --json against no server: exit %d, stderr %q (%v); want a JSON error with exit 2", code, stderr.String(), err)
	}
}
