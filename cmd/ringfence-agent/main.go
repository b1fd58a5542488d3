// Command ringfence-agent is the endpoint agent: it checks in with the
// control plane, installs only what the vendor signed, runs content in a
// supervised worker process and goes back to last-known-good content by
// itself. It is small: no database drivers, no server code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringfence/ringfence/internal/agentcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
