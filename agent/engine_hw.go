package agent

import (
	"context"
	"fmt"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
)

// plWatcher checks that the PL still holds what was loaded (bitstream.Watch).
type plWatcher interface{ Check() error }

// watchBoardPL starts watching the board's FPGA manager and PYNQ's record; tests
// substitute a fake.
var watchBoardPL = func(pynqStates []string) (plWatcher, error) {
	return (&bitstream.Manager{}).Watch(pynqStates)
}

// reprogramBoard loads the bitstream again through the FPGA manager and sets the
// fabric clocks.
func (a *Agent) reprogramBoard(ctx context.Context, bus overlay.Bus, design *overlay.Design) error {
	bit := a.cfg.Path(a.cfg.Bitstream.Path)
	if _, err := boardProgrammer.Program(ctx, bit, bitstream.Options{}); err != nil {
		return fmt.Errorf("program bitstream: %w", err)
	}
	return applyClocks(bus, design)
}

// claimBoard returns the per-run check of the board's PL: the FPGA manager still
// operating, PYNQ's record unchanged, and, where telemetry's FPGA-load probe runs, no
// load since the agent's.
func (a *Agent) claimBoard() (func() error, error) {
	w, err := watchBoardPL(a.cfg.Bitstream.PYNQStates)
	if err != nil {
		return nil, err
	}
	var base uint64
	probe := false
	if a.tel != nil {
		base, probe = a.tel.FPGALoadCount()
	}
	return func() error {
		if err := w.Check(); err != nil {
			return err
		}
		if probe {
			if n, _ := a.tel.FPGALoadCount(); n != base {
				return fmt.Errorf("%w: the kernel loaded %d bitstream(s) since the agent's (telemetry's FPGA-load probe)", bitstream.ErrPLChanged, n-base)
			}
		}
		return nil
	}, nil
}

// reprogramSim loads the bitstream into the simulated board again: new IP models, as a
// real load gives a freshly configured PL.
func (a *Agent) reprogramSim(ctx context.Context) error {
	if _, err := a.machine.Program(ctx, a.cfg.Path(a.cfg.Bitstream.Path), bitstream.Options{}); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// claimSim returns the per-run check of the simulated PL.
func (a *Agent) claimSim() (func() error, error) { return watchSimPL(a.machine).Check, nil }

// simPL watches the simulated FPGA manager as bitstream.Watch watches the board's:
// still operating, and no load since the agent's (sim.faults "pl-taken@N" makes one).
type simPL struct {
	m     *sim.Machine
	loads int
}

func watchSimPL(m *sim.Machine) *simPL { return &simPL{m: m, loads: m.Loads()} }

func (w *simPL) Check() error {
	if st := w.m.State(); st != bitstream.StateOperating {
		return fmt.Errorf("%w: the simulated FPGA manager is in state %q", bitstream.ErrPLChanged, st)
	}
	if n := w.m.Loads(); n != w.loads {
		return fmt.Errorf("%w: the simulated FPGA manager loaded %d bitstream(s) since the agent's", bitstream.ErrPLChanged, n-w.loads)
	}
	return nil
}

// reprogramEmulated loads the bitstream through the kernel's FPGA manager again, then
// gives the simulated PL fresh IP models, as the load would.
func (a *Agent) reprogramEmulated(ctx context.Context) error {
	if _, err := boardProgrammer.Program(ctx, a.cfg.Path(a.cfg.Bitstream.Path), bitstream.Options{}); err != nil {
		return fmt.Errorf("program bitstream: %w", err)
	}
	return a.reprogramSim(ctx)
}

// claimEmulated checks both halves of an emulated board: the kernel's FPGA manager as on
// the board, and the simulated PL.
func (a *Agent) claimEmulated() (func() error, error) {
	board, err := a.claimBoard()
	if err != nil {
		return nil, err
	}
	pl := watchSimPL(a.machine)
	return func() error {
		if err := board(); err != nil {
			return err
		}
		return pl.Check()
	}, nil
}
