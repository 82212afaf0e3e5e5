package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/fpgadetector/pynq-agent/overlay/sim"
)

// Faults the simulation injects from the config ([sim] faults), so that users and
// tests rehearse what a board does when its hardware misbehaves:
//
//	engine-hang@N       the engine hangs on every frame from the N-th on (1-based)
//	engine-hang-once@N  the engine hangs on the N-th frame only
//	dma-error@N         the engine's DDR master gets a bus error on the N-th frame
//	load-fail           the bitstream load fails at start-up
//
// A hang is the engine never raising done: the driver times out (engine.timeout),
// resets the PL and the frame fails; a persistent one stalls the pipeline, which
// health reports.
type Fault struct {
	Kind  string // "engine-hang", "engine-hang-once", "dma-error", "load-fail"
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
	case "engine-hang", "engine-hang-once", "dma-error":
		n, err := strconv.Atoi(at)
		if !hasAt || err != nil || n < 1 {
			return Fault{}, fmt.Errorf("fault %q: want %s@N with N a frame number from 1", s, kind)
		}
		return Fault{Kind: kind, Frame: n}, nil
	}
	return Fault{}, fmt.Errorf("fault %q: unknown (engine-hang@N, engine-hang-once@N, dma-error@N, load-fail)", s)
}

// engineFaults wraps the model so that the simulated engine hangs on the frames the
// faults name: before each engine run it arms the hang in the simulated BlackBoxJam.
type engineFaults struct {
	Model
	jam    *sim.Jam
	faults []Fault
	frame  atomic.Int64
}

func (f *engineFaults) Infer(ctx context.Context, j *Job) error {
	n := int(f.frame.Add(1))
	for _, ft := range f.faults {
		switch {
		case ft.Kind == "engine-hang" && n == ft.Frame:
			f.jam.SetStuck(true) // from here on; PL resets do not help
		case ft.Kind == "engine-hang-once" && n == ft.Frame:
			f.jam.InjectHang(1) // the next start; the driver's reset after the timeout ends it
		case ft.Kind == "dma-error" && n == ft.Frame:
			f.jam.InjectBusError(1)
		}
	}
	return f.Model.Infer(ctx, j)
}
