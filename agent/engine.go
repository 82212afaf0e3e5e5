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
	hw     engineHardware
	after  int // failed runs in a row before a reprogram; 0 never
	log    *slog.Logger
	inL    offload.Layout
	outL   offload.Layout
	mu     sync.Mutex
	drv    *qnndriver.Driver
	check  func() error // the PL-ownership check of the current load
	streak int          // failed runs in a row
	retry  bool         // this streak has had its reprogram
	stop   error        // why the engine is stopped for good (nil while it runs)
	counts engineCounts
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
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stop != nil {
		return e.stop
	}
	e.counts.PLChecks++
	if err := e.check(); err != nil {
		e.stop = fmt.Errorf("engine stopped: %w (the agent no longer touches the PL; restart it to program its bitstream again once the other program is done)", err)
		e.log.Error("the PL changed under the agent; engine stopped", "err", err)
		return e.stop
	}
	err := run(e.drv)
	if err == nil {
		e.streak, e.retry = 0, false
		return nil
	}
	e.streak++
	if e.after > 0 && e.streak >= e.after && !e.retry {
		e.retry = true
		e.reprogram(ctx)
	}
	return err
}

// reprogram loads the bitstream again and reopens the driver; e.mu held.
func (e *engine) reprogram(ctx context.Context) {
	t := time.Now()
	e.log.Warn("engine failing after resets; programming the bitstream again", "failed_runs", e.streak)
	e.counts.Reprograms++
	e.counts.closedResets += e.drv.Resets()
	e.drv.Close()
	e.drv = nil
	err := e.hw.Reprogram(ctx)
	var drv *qnndriver.Driver
	if err == nil {
		drv, err = e.hw.Open()
	}
	if err == nil {
		e.drv = drv
	}
	if err == nil {
		e.check, err = e.hw.Claim()
	}
	if err != nil {
		e.counts.ReprogramFailed++
		e.stop = fmt.Errorf("engine stopped: reprogramming the PL after %d failed runs: %w", e.streak, err)
		e.log.Error("reprogramming failed; the engine is stopped and the agent reports itself unhealthy", "err", err)
		return
	}
	e.log.Warn("bitstream programmed again, engine reopened", "took", time.Since(t).Round(time.Millisecond))
}

// Err says why the engine is stopped for good; nil while it runs.
func (e *engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stop
}

// Counts reports the recoveries so far.
func (e *engine) Counts() engineCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.counts
	c.Resets = c.closedResets
	if e.drv != nil {
		c.Resets += e.drv.Resets()
	}
	return c
}

// Close closes the driver.
func (e *engine) Close() error {
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
