package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// engine is the accelerator the pipeline and /api/verify use: the QNN driver behind two
// guards. Before each run it checks that the PL still holds the agent's design (another
// program may have reprogrammed it, and then the registers mapped belong to something
// else): if not, the engine stops for good with ErrPLChanged and is never touched
// again. And when runs keep failing although the driver resets the engine after each,
// it programs the bitstream again and reopens the driver, once per run of failures; if
// that fails the engine stops and Health reports it, so the watchdog lets systemd
// restart the agent.
type engine struct {
	hw    engineHardware
	after int // failed runs in a row before a reprogram; 0 never
	log   *slog.Logger
	inL   offload.Layout
	outL  offload.Layout

	// runMu lets one run or reprogram at a time use the driver; a run may last until
	// engine.timeout. mu guards the state below and is held only briefly, so Health,
	// /api/status and /metrics never wait for a run (they did, and a slow or hung
	// engine made /healthz hang with it).
	runMu  sync.Mutex
	mu     sync.Mutex
	drv    *qnndriver.Driver // written with both held
	check  func() error      // the PL-ownership check of the current load (runMu)
	streak int               // failed runs in a row
	retry  bool              // this streak has had its reprogram
	stop   error             // why the engine is stopped for good (nil while it runs)
	counts engineCounts      // Resets as of the last run's end
}

// engineHardware is what the engine needs from the board (or the simulation).
type engineHardware struct {
	// Open opens the driver on the loaded PL.
	Open func() (*qnndriver.Driver, error)
	// Reprogram loads the bitstream again.
	Reprogram func(ctx context.Context) error
	// Claim returns the check that the PL still holds what was just loaded.
	Claim func() (func() error, error)
}

// engineCounts are the engine's recoveries, for /api/status and /metrics.
type engineCounts struct {
	Resets          int `json:"engine_resets"`     // resets after a failed run (driver)
	Reprograms      int `json:"reprograms"`        // bitstream loads after repeated failures
	ReprogramFailed int `json:"reprograms_failed"` // of those, loads or reopens that failed
	PLChecks        int `json:"pl_checks"`         // PL-ownership checks made
	closedResets    int `json:"-"`                 // resets of drivers closed by a reprogram
}

func newEngine(hw engineHardware, after int, log *slog.Logger) (*engine, error) {
	drv, err := hw.Open()
	if err != nil {
		return nil, err
	}
	check, err := hw.Claim()
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("pl check: %w", err)
	}
	return &engine{hw: hw, after: after, log: log, drv: drv, check: check, inL: drv.InLayout(), outL: drv.OutLayout()}, nil
}

var (
	_ offload.Accelerator = (*engine)(nil)
	_ tracer              = (*engine)(nil)
)

func (e *engine) InLayout() offload.Layout  { return e.inL }
func (e *engine) OutLayout() offload.Layout { return e.outL }

// Run runs the hidden layers after the PL check.
func (e *engine) Run(ctx context.Context, in []byte) ([]byte, error) {
	var out []byte
	err := e.do(ctx, func(d *qnndriver.Driver) (err error) { out, err = d.Run(ctx, in); return err })
	return out, err
}

// RunTrace is Run with every layer's output (for /api/verify).
func (e *engine) RunTrace(ctx context.Context, in []byte) ([]qnndriver.LayerOutput, error) {
	var outs []qnndriver.LayerOutput
	err := e.do(ctx, func(d *qnndriver.Driver) (err error) { outs, err = d.RunTrace(ctx, in); return err })
	return outs, err
}

func (e *engine) do(ctx context.Context, run func(*qnndriver.Driver) error) error {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	e.mu.Lock()
	stop := e.stop
	e.counts.PLChecks++
	e.mu.Unlock()
	if stop != nil {
		return stop
	}
	if err := e.check(); err != nil {
		e.stopWith(fmt.Errorf("engine stopped: %w (the agent no longer touches the PL; restart it to program its bitstream again once the other program is done)", err))
		e.log.Error("the PL changed under the agent; engine stopped", "err", err)
		return e.Err()
	}
	err := run(e.drv)
	e.mu.Lock()
	e.counts.Resets = e.counts.closedResets + e.drv.Resets() // no run in progress: runMu
	if err == nil {
		e.streak, e.retry = 0, false
		e.mu.Unlock()
		return nil
	}
	e.streak++
	again := e.after > 0 && e.streak >= e.after && !e.retry
	if again {
		e.retry = true
	}
	e.mu.Unlock()
	if again {
		e.reprogram(ctx)
	}
	return err
}

// stopWith stops the engine for good with err.
func (e *engine) stopWith(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stop = err
}

// reprogram loads the bitstream again and reopens the driver; runMu held.
func (e *engine) reprogram(ctx context.Context) {
	t := time.Now()
	e.mu.Lock()
	streak := e.streak
	e.counts.Reprograms++
	e.counts.closedResets += e.drv.Resets() // no run in progress: runMu
	drv := e.drv
	e.drv = nil
	e.mu.Unlock()
	e.log.Warn("engine failing after resets; programming the bitstream again", "failed_runs", streak)
	drv.Close()
	var opened *qnndriver.Driver
	var check func() error
	err := e.hw.Reprogram(ctx)
	if err == nil {
		opened, err = e.hw.Open()
	}
	if err == nil {
		check, err = e.hw.Claim()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drv = opened // nil when the load or the open failed
	e.counts.Resets = e.counts.closedResets
	if err != nil {
		e.counts.ReprogramFailed++
		e.stop = fmt.Errorf("engine stopped: reprogramming the PL after %d failed runs: %w", streak, err)
		e.log.Error("reprogramming failed; the engine is stopped and the agent reports itself unhealthy", "err", err)
		return
	}
	e.check = check
	e.log.Warn("bitstream programmed again, engine reopened", "took", time.Since(t).Round(time.Millisecond))
}

// Err says why the engine is stopped for good; nil while it runs.
func (e *engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stop
}

// Counts reports the recoveries as of the last run's end.
func (e *engine) Counts() engineCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts
}

// Close closes the driver, after the run in progress.
func (e *engine) Close() error {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.drv == nil {
		return nil
	}
	return e.drv.Close()
}

// Driver is the current QNN driver (for the simulation's fault and verify hooks); nil
// after a failed reprogram.
func (e *engine) Driver() *qnndriver.Driver {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.drv
}
