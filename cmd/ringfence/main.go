// Command ringfence is the Ringfence control-plane binary: content tools
// today; the server, admin commands and simulator join it as subcommands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringfence/ringfence/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
