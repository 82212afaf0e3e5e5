// Command pynqctl is the host CLI of FPGADetector: it imports darknet models, runs them,
// exports and quantizes them for the PYNQ-Z2's QNN engine, and deploys to the board.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pynqctl:", err)
		os.Exit(exitCode(err))
	}
}

// run builds the command tree and executes it with args.
func run(ctx context.Context, args []string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	root := newRootCmd(log)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
