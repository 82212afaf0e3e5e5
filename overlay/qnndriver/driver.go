// Package qnndriver drives QNN-MO's offload engine (the BlackBoxJam HLS IP) and
// implements offload.Accelerator over any overlay.Bus and dma.Allocator: the board's
// /dev/mem and zocl, or the FPGA simulation. It loads each hidden layer's weights from
// DDR buffers (a doInit=1 run), computes the layer (doInit=0) between ping-pong
// activation buffers, runs layers with more than MaxOFMCh outputs in parts whose
// outputs the CPU concatenates, polls ap_done with a timeout, and after a hang resets
// the PL and reports the layer with a register dump.
package qnndriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// VLNV identifies the engine in a .hwh.
const VLNV = "xilinx.com:hls:BlackBoxJam:"

// DefaultTimeout bounds one engine run. The board's largest layer takes tens of
// milliseconds; the simulation under qemu is far slower.
const DefaultTimeout = 30 * time.Second

// SLCR facts for the default reset (Zynq-7000 TRM): FPGA_RST_CTRL bit 0 drives
// FCLK_RESET0_N, which the overlay's proc_sys_reset turns into the IP's ap_rst_n.
const (
	slcrUnlock        = 0x008
	slcrUnlockKey     = 0xDF0D
	slcrFPGAResetCtrl = 0x240
)

// ErrHang is matched by every *HangError.
var ErrHang = errors.New("engine did not finish")

// Config configures Open.
type Config struct {
	Bus    overlay.Bus     // register access (wrap the board's in overlay.NewCheckedBus with overlay.SLCRRange)
	Alloc  dma.Allocator   // contiguous buffers the engine reaches
	Design *overlay.Design // the loaded bitstream's .hwh: locates the engine and its registers
	Model  *quant.Model    // the network (qnnmo.LoadDir)
	Limits offload.Limits  // engine synthesis limits; offload.W1A3 when zero
	// Instance selects the engine when the design has several; "" takes the only one.
	Instance string
	// Preload allocates and fills every run's weight buffers at Open and keeps them for
	// all frames (what the agent does); otherwise each frame allocates, fills and frees
	// them run by run.
	Preload bool
	Timeout time.Duration // per engine run; DefaultTimeout when 0
	// Reset returns the engine to idle after a hang. nil pulses the PL reset through the
	// SLCR on Bus (the HLS block has no reset register of its own).
	Reset func(ctx context.Context) error
	Log   *slog.Logger // nil: slog.Default()
}

// Driver runs a model's hidden layers on the engine. Concurrent Runs are serialized
// (the engine runs one layer at a time).
type Driver struct {
	mu     sync.Mutex
	cfg    Config
	log    *slog.Logger
	runs   []offload.Run
	names  []string // layer name per run, for messages
	regs   overlay.Region
	off    regOffsets
	shadow map[string]uint32 // last value written per register, for hang reports
	inst   string            // the engine's instance in the design

	weights  [][2]dma.Buffer // per run when preloaded
	act      [2]dma.Buffer   // ping-pong activations
	split    []dma.Buffer    // part outputs of split layers
	inL      offload.Layout
	outL     offload.Layout
	broken   error // the hang that needs a reset before the next run
	closed   bool
	lastWait time.Duration
	resets   int // engine resets after failed runs
}

var _ offload.Accelerator = (*Driver)(nil)

// Open maps the engine's registers and allocates its buffers.
func Open(cfg Config) (*Driver, error) {
	if cfg.Limits == (offload.Limits{}) {
		cfg.Limits = offload.W1A3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Bus == nil || cfg.Alloc == nil || cfg.Design == nil || cfg.Model == nil {
		return nil, errors.New("qnn driver: Bus, Alloc, Design and Model are required")
	}
	runs, err := offload.Plan(cfg.Model, cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("qnn driver: %w", err)
	}
	mod, rng, err := findEngine(cfg.Design, cfg.Instance)
	if err != nil {
		return nil, err
	}
	off, err := registerOffsets(mod)
	if err != nil {
		return nil, fmt.Errorf("qnn driver: %s in %s: %w", mod.Instance, cfg.Design.Name, err)
	}
	regs, err := cfg.Bus.Map(rng.Base, int(rng.Size()))
	if err != nil {
		return nil, fmt.Errorf("qnn driver: map %s registers: %w", mod.Instance, err)
	}
	d := &Driver{cfg: cfg, log: cfg.Log, runs: runs, regs: regs, off: off, shadow: map[string]uint32{}, inst: mod.Instance}
	if d.log == nil {
		d.log = slog.Default()
	}
	for _, r := range runs {
		d.names = append(d.names, cfg.Model.Layers[r.Conv].Name)
	}
	first, last := runs[0], runs[len(runs)-1]
	d.inL = offload.DDRLayout(int(first.IFMCh), int(first.IFMDim))
	d.outL = offload.DDRLayout(int(last.OFMCh)*last.Parts, last.OutDim)
	if err := d.allocate(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// findEngine returns the BlackBoxJam module and its register range.
// Instance is the engine's instance name in the design (e.g. BlackBoxJam_0).
func (d *Driver) Instance() string { return d.inst }

func findEngine(d *overlay.Design, instance string) (*overlay.Module, overlay.AddrRange, error) {
	var mods []*overlay.Module
	for _, m := range d.FindByVLNV(VLNV) {
		if instance == "" || m.Instance == instance {
			mods = append(mods, m)
		}
	}
	if len(mods) != 1 {
		names := make([]string, len(mods))
		for i, m := range mods {
			names[i] = m.Instance
		}
		return nil, overlay.AddrRange{}, fmt.Errorf("qnn driver: %s has %d BlackBoxJam engines %v (want one; set Instance, or load the QNN overlay's .hwh)", d.Name, len(mods), names)
	}
	rng, ok := d.Range(mods[0].Instance)
	if !ok {
		return nil, rng, fmt.Errorf("qnn driver: %s is not in the CPU's address map of %s", mods[0].Instance, d.Name)
	}
	return mods[0], rng, nil
}

// allocate gets the activation and split buffers (and all weight buffers if preloading).
func (d *Driver) allocate() error {
	lim := d.cfg.Limits
	maxPixels, maxSplit, splitPixels := 0, 0, 0
	for _, r := range d.runs {
		maxPixels = max(maxPixels, int(r.IFMDim*r.IFMDim), r.OutDim*r.OutDim)
		if r.Parts > 1 { // a part's output: the split layers are the late, small ones
			maxSplit = max(maxSplit, r.Parts)
			splitPixels = max(splitPixels, r.OutDim*r.OutDim)
		}
	}
	size := maxPixels * lim.RecordBytes()
	for i := range d.act {
		b, err := d.cfg.Alloc.Alloc(size)
		if err != nil {
			return fmt.Errorf("qnn driver: activation buffer: %w", err)
		}
		d.act[i] = b
	}
	for i := 0; i < maxSplit; i++ {
		b, err := d.cfg.Alloc.Alloc(splitPixels * lim.RecordBytes())
		if err != nil {
			return fmt.Errorf("qnn driver: split buffer: %w", err)
		}
		d.split = append(d.split, b)
	}
	if !d.cfg.Preload {
		return nil
	}
	for _, r := range d.runs {
		w, err := d.weightBuffers(r)
		if err != nil {
			return err
		}
		d.weights = append(d.weights, w)
	}
	return nil
}

// weightBuffers allocates and fills the two weight buffers of one run.
func (d *Driver) weightBuffers(r offload.Run) ([2]dma.Buffer, error) {
	var bufs [2]dma.Buffer
	w1, w2, err := offload.LayerBuffers(d.cfg.Model, r, d.cfg.Limits)
	if err != nil {
		return bufs, fmt.Errorf("qnn driver: layer %s weights: %w", d.cfg.Model.Layers[r.Conv].Name, err)
	}
	for i, data := range [][]byte{w1, w2} {
		b, err := d.cfg.Alloc.Alloc(len(data))
		if err == nil {
			copy(b.Bytes(), data)
			err = b.SyncForDevice()
		}
		if err != nil {
			closeAll(bufs[:])
			return bufs, fmt.Errorf("qnn driver: layer %s weight buffer %d: %w", d.cfg.Model.Layers[r.Conv].Name, i+1, err)
		}
		bufs[i] = b
	}
	return bufs, nil
}

// WeightBuffer returns the physical address and size of a preloaded weight buffer:
// i = 0 the weights (in1), 1 the thresholds (in2) of the first run of the named layer.
// It is for diagnostics and for fault injection in the simulation (flip a bit in
// simulated DDR and check that verification names the layer).
func (d *Driver) WeightBuffer(layer string, i int) (phys uint64, size int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.cfg.Preload || i < 0 || i > 1 {
		return 0, 0, fmt.Errorf("qnn driver: weight buffer %d of %s: only preloaded buffers 0 and 1 exist", i, layer)
	}
	for r, name := range d.names {
		if name == layer {
			b := d.weights[r][i]
			return b.PhysAddr(), len(b.Bytes()), nil
		}
	}
	return 0, 0, fmt.Errorf("qnn driver: no engine layer %q (layers: %v)", layer, d.names)
}

func closeAll(bufs []dma.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Close()
		}
	}
}

// InLayout is the packed input Run takes (the first engine layer's input records).
func (d *Driver) InLayout() offload.Layout { return d.inL }

// OutLayout is the packed output Run returns.
func (d *Driver) OutLayout() offload.Layout { return d.outL }

// Close frees the buffers and unmaps the registers.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, w := range d.weights {
		closeAll(w[:])
	}
	closeAll(d.act[:])
	closeAll(d.split)
	if d.regs != nil {
		return d.regs.Close()
	}
	return nil
}

// HangError reports a run whose ap_done never rose.
type HangError struct {
	Layer  string      // IR layer name
	Run    offload.Run // the run's register values
	DoInit bool        // the weight-load run (true) or the compute run
	Waited time.Duration
	Ctrl   uint32            // ap_ctrl when giving up
	Regs   map[string]uint32 // the values the driver wrote, by register name
	Cause  error             // the context's error
}

func (e *HangError) Error() string {
	kind := "compute"
	if e.DoInit {
		kind = "weight load"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "qnn engine hang: %s run of layer %s (part %d/%d) not done after %v (ap_ctrl 0x%X: start %d done %d idle %d)",
		kind, e.Layer, e.Run.Part+1, e.Run.Parts, e.Waited.Round(time.Millisecond), e.Ctrl, e.Ctrl&1, e.Ctrl>>1&1, e.Ctrl>>2&1)
	b.WriteString("; registers written:")
	for _, n := range regOrder {
		v, ok := e.Regs[n]
		switch {
		case !ok:
		case n == "in1" || n == "in2" || n == "out" || n == "CTRL":
			fmt.Fprintf(&b, " %s=0x%X", n, v)
		default:
			fmt.Fprintf(&b, " %s=%d", n, v)
		}
	}
	b.WriteString(" (the engine is reset before the next run; if hangs repeat, check the register values against the engine limits or reprogram the bitstream)")
	return b.String()
}

func (e *HangError) Unwrap() []error { return []error{ErrHang, e.Cause} }

// DefaultEngineHz is the engine's clock when the design does not say: FCLK0 of the
// QNN-MO overlays.
const DefaultEngineHz = 100e6

// EngineEstimate is how long the real engine takes for one frame's runs, from the cycle
// model of its folding (offload.Limits.Cycles) at the design's FCLK0, and that clock.
func (d *Driver) EngineEstimate() (time.Duration, float64) {
	hz := DefaultEngineHz
	for _, c := range d.cfg.Design.Clocks {
		if c.Index == 0 && c.Enabled && c.Hz() > 0 {
			hz = c.Hz()
		}
	}
	return d.cfg.Limits.EngineTime(d.runs, hz), hz
}
