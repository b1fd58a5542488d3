package cli_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/cli"
)

// TestPreflightInterrupted: a cancelled context (what Ctrl-C gives the
// command through signal.NotifyContext) ends preflight with exit status 2,
// a message saying why, and no verdict on stdout.
func TestPreflightInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupt signal received"))
	var stdout, stderr bytes.Buffer
	code := cli.Run(ctx, preflightArgs(ipc292), &stdout, &stderr)
	if code != cli.ExitUsage {
		t.Errorf("got exit %d, want %d", code, cli.ExitUsage)
	}
	if want := "preflight interrupted (interrupt signal received) while checking " + ipc292; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
	if strings.Contains(stdout.String(), "ACCEPTED") || strings.Contains(stdout.String(), "REJECTED") {
		t.Errorf("an interrupted preflight printed a verdict: %q", stdout.String())
	}
}
