// Command tako runs untrusted Python in hardened, single-use Docker
// containers behind a Tako VM compatible HTTP API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr)
	code, show := exitCode(err)
	if show {
		fmt.Fprintf(os.Stderr, "tako: %v\n", err)
	}
	if code != 0 {
		stop() // os.Exit skips the deferred call
		os.Exit(code)
	}
}
