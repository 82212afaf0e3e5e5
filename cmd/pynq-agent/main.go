// Command pynq-agent is the board daemon: it programs the bitstream, drives the QNN
// engine and serves the live chair-detection feed. With -sim it runs on any Linux
// machine against the FPGA simulation.
package main

import (
	"context"
	"flag"
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
		fmt.Fprintln(os.Stderr, "pynq-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pynq-agent", flag.ContinueOnError)
	sim := fs.Bool("sim", false, "run against the FPGA simulation instead of the board")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	_ = ctx
	_ = sim
	log.Error("the board daemon is not built yet (issue 6)")
	return fmt.Errorf("not available yet: see issue 6 (board daemon)")
}
