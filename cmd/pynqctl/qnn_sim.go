package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// qnnSimFlags are the `pynqctl qnn run --backend sim` options.
type qnnSimFlags struct {
	bitstream string
	ddrMiB    int
	preload   bool
	timeout   time.Duration
}

func (f *qnnSimFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.bitstream, "bitstream", "", "sim backend: the W1A3 overlay .bit (its .hwh beside it)")
	fl.IntVar(&f.ddrMiB, "sim-ddr", 64, "sim backend: simulated DDR in MiB")
	fl.BoolVar(&f.preload, "preload", true, "sim backend: allocate and fill all weight buffers once at start")
	fl.DurationVar(&f.timeout, "engine-timeout", qnndriver.DefaultTimeout, "sim backend: per engine run")
}

// runQNNSim runs the engine layers through the board driver on the FPGA simulation:
// program the bitstream into a simulated board, open the driver over its bus and
// allocator, run, write the output.
func runQNNSim(ctx context.Context, log *slog.Logger, model, input, output string, threads int, f qnnSimFlags) error {
	if f.bitstream == "" {
		return errors.New("the sim backend needs --bitstream FILE.bit (the W1A3 overlay, with its .hwh beside it)")
	}
	m, err := qnnmo.LoadDir(model)
	if err != nil {
		return err
	}
	board, err := sim.New(sim.Config{DDRSize: f.ddrMiB << 20, Threads: threads, WriteBack: true})
	if err != nil {
		return err
	}
	res, err := board.Program(ctx, f.bitstream, bitstream.Options{})
	if err != nil {
		return err
	}
	log.Info("programmed simulated PL", "bitstream", f.bitstream, "design", res.Header.DesignName, "state", res.State)
	d, err := qnndriver.Open(qnndriver.Config{
		Bus:   overlay.NewCheckedBus(board, board.Design(), overlay.SLCRRange),
		Alloc: board.Allocator(), Design: board.Design(), Model: m,
		Preload: f.preload, Timeout: f.timeout, Log: log,
	})
	if err != nil {
		return err
	}
	defer d.Close()
	in, err := os.ReadFile(input)
	if err != nil {
		return err
	}
	il := d.InLayout()
	if _, err := offload.LayoutForSize(il.Channels, il.Dim, len(in)); err != nil {
		return fmt.Errorf("%s: %w (the engine input is %dx%d pixels)", input, err, il.Dim, il.Dim)
	}
	start := time.Now()
	out, err := d.Run(ctx, in)
	if err != nil {
		return fmt.Errorf("%s: %w", input, err)
	}
	elapsed := time.Since(start)
	if err := os.WriteFile(output, out, 0o644); err != nil {
		return err
	}
	ol := d.OutLayout()
	log.Info("wrote engine output", "file", output, "backend", "sim", "channels", ol.Channels, "dim", ol.Dim,
		"record_bytes", ol.RecordBytes, "bytes", len(out), "engine_runs", func() int { j, _ := board.Jam("BlackBoxJam_0"); return j.Runs() }(), "elapsed", elapsed.Round(time.Millisecond))
	return nil
}
