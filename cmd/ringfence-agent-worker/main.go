// Command ringfence-agent-worker evaluates detection content for
// ringfence-agent, which starts and supervises it; people do not run it.
// It is a separate, small binary (the interpreter and nothing else: no
// TUF, no HTTP) so that the idle worker costs a few megabytes; shipped
// next to ringfence-agent, which falls back to `ringfence-agent worker`
// without it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringfence/ringfence/internal/agent/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fault, err := worker.ParseFault(os.Getenv(worker.FaultEnv))
	if err == nil {
		err = worker.Run(ctx, os.Stdin, os.Stdout, fault)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ringfence-agent-worker:", err)
		os.Exit(1)
	}
}
