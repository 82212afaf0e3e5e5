package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/quant/detector"
)

// Faults the simulation injects from the config ([sim] faults), so that users and
// tests rehearse what a board does when its hardware misbehaves:
//
//	engine-hang@N       the engine hangs on every frame from the N-th on (1-based),
//	                    whatever is done: a broken board
//	engine-wedge@N      the engine hangs from the N-th frame until the bitstream is
//	                    programmed again (PL resets do not clear it)
//	engine-hang-once@N  the engine hangs on the N-th frame only
//	dma-error@N         the engine's DDR master gets a bus error on the N-th frame
//	pl-taken@N          before the N-th frame another program loads a bitstream
//	load-fail           the bitstream load fails at start-up
//
// A hang is the engine never raising done: the driver times out (engine.timeout),
// resets the PL and the frame fails; after engine.reprogram_after failures in a row
// the agent programs the bitstream again (which ends a wedge); a hang that outlives
// that stalls the pipeline, which health reports.
type Fault struct {
	Kind  string // "engine-hang", "engine-wedge", "engine-hang-once", "dma-error", "pl-taken", "load-fail"
	Frame int    // 1-based frame of the engine faults
}

// ParseFault reads one fault spec.
func ParseFault(s string) (Fault, error) {
	kind, at, hasAt := strings.Cut(strings.TrimSpace(s), "@")
	switch kind {
	case "load-fail":
		if hasAt {
			return Fault{}, fmt.Errorf("fault %q: load-fail takes no @frame", s)
		}
		return Fault{Kind: kind}, nil
	case "engine-hang", "engine-wedge", "engine-hang-once", "dma-error", "pl-taken":
		n, err := strconv.Atoi(at)
		if !hasAt || err != nil || n < 1 {
			return Fault{}, fmt.Errorf("fault %q: want %s@N with N a frame number from 1", s, kind)
		}
		return Fault{Kind: kind, Frame: n}, nil
	}
	return Fault{}, fmt.Errorf("fault %q: unknown (engine-hang@N, engine-wedge@N, engine-hang-once@N, dma-error@N, pl-taken@N, load-fail)", s)
}

// engineFaults wraps the model so that the simulated engine misbehaves on the frames
// the faults name: before each engine run it arms the fault in the simulated
// BlackBoxJam the PL holds now (a reprogram makes a new one).
type engineFaults struct {
	Model
	a      *Agent
	inst   string
	faults []Fault
	frame  atomic.Int64
}

func (f *engineFaults) Accelerate(ctx context.Context, fr *detector.Frame) error {
	n := int(f.frame.Add(1))
	jam, _ := f.a.machine.Jam(f.inst)
	for _, ft := range f.faults {
		switch {
		case jam == nil:
		case ft.Kind == "engine-hang" && n >= ft.Frame:
			jam.SetStuck(true) // on every frame: no reset or reprogram helps
		case ft.Kind == "engine-wedge" && n == ft.Frame:
			jam.SetStuck(true) // until a reprogram replaces this engine
		case ft.Kind == "engine-hang-once" && n == ft.Frame:
			jam.InjectHang(1) // the next start; the driver's reset after the timeout ends it
		case ft.Kind == "dma-error" && n == ft.Frame:
			jam.InjectBusError(1)
		}
		if ft.Kind == "pl-taken" && n == ft.Frame {
			// Another program's load: the simulated manager loads the same design again,
			// which is enough for the agent to lose track of what the PL holds.
			if _, err := f.a.machine.Program(ctx, f.a.cfg.Path(f.a.cfg.Bitstream.Path), bitstream.Options{}); err != nil {
				return fmt.Errorf("sim.faults pl-taken: %w", err)
			}
		}
	}
	return f.Model.Accelerate(ctx, fr)
}
