package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fpgadetector/pynq-agent/agent/telemetry"
	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/web"
)

// Version is the daemon's version, set at link time (-ldflags "-X ...agent.Version=v1").
var Version = "dev"

// EngineVLNV identifies the QNN offload engine in a .hwh.
const EngineVLNV = qnndriver.VLNV

// Agent is the started daemon: the bitstream programmed, the engine mapped, the model
// loaded. It implements web.Backend.
type Agent struct {
	cfg   *Config
	log   *slog.Logger
	start time.Time

	bitInfo, modelInfo map[string]any
	names              []string // class names of every class (named "class N" when unnamed)
	model              Model
	qnn                *detector.QNN // the model when it is a QNN-MO model (verification, bench board)
	pipe               *Pipeline
	led                *statusLED
	closers            []func() error

	machine *sim.Machine         // the simulated board (sim backend), for tests
	tel     *telemetry.Telemetry // kernel telemetry; nil when unavailable

	engine *engine // the guarded engine driver (QNN models)

	ready   atomic.Bool
	viewers atomic.Pointer[func() int]

	verifyMu     sync.Mutex    // one verification image at a time
	verifyActive atomic.Int64  // UnixNano when the image in verification started, 0 idle
	verifyLast   atomic.Int64  // UnixNano when the last one finished
	verified     atomic.Uint64 // verification images done
}

var _ web.Backend = (*Agent)(nil)

// Overridable for tests: the board checks read these.
var (
	geteuid = os.Geteuid
	// openBoard returns the board's register bus and DMA allocator.
	openBoard = func() (overlay.Bus, dma.Allocator, error) {
		alloc, err := dma.OpenBoard("")
		if err != nil {
			return nil, nil, err
		}
		return overlay.DevMem{}, alloc, nil
	}
	// boardProgrammer is the FPGA manager.
	boardProgrammer bitstream.Programmer = &bitstream.Manager{}
)

// New starts the daemon up to the point of processing frames: it programs the
// bitstream (board: FPGA manager; sim: the simulated one), maps the engine, allocates
// its buffers and loads the weights. On failure everything opened so far is closed.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, start: time.Now()}
	// One limit for every decoder of the process: the board's memory is one budget.
	imageio.SetMaxPixels(cfg.Limits.MaxImagePixels)
	if err := a.startUp(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Agent) startUp(ctx context.Context) (err error) {
	cfg := a.cfg
	if err := a.loadNames(); err != nil {
		return err
	}
	switch cfg.Model.Kind {
	case ModelDarknet:
		err = a.startFloat()
	default:
		err = a.startQNN(ctx)
	}
	if err != nil {
		return err
	}
	if len(a.names) < a.model.Classes() {
		for i := len(a.names); i < a.model.Classes(); i++ {
			a.names = append(a.names, boxes.ClassName(nil, i))
		}
	}
	for _, c := range cfg.Model.Classes {
		if !slices.Contains(a.names, c) {
			return a.cfg.keyErr("model.classes", "%q is not a class of the model (names: %s)", c, cfg.Model.Names)
		}
	}
	a.pipe = NewPipeline(a.model, PipelineOptions{
		Names: a.names, Thresh: float32(cfg.Model.Thresh), Classes: cfg.Model.Classes,
		Queues: cfg.Queues, Source: cfg.Source, Log: a.log, OnDetect: a.led.detected,
		Decoder: a.decoder(), Threads: a.threadTracker(),
	})
	return nil
}

// decoder is the JPEG decoding the model's results were published with: stb_image for
// QNN-MO models, libjpeg (OpenCV builds of darknet) for float darknet models; the same
// defaults as `pynqctl detect`, so the agent's detections equal the CLI's.
func (a *Agent) decoder() imageio.Decoder {
	if a.cfg.Model.Kind == ModelDarknet {
		return imageio.LibJPEG
	}
	return qnnmo.ImageDecoder
}

func (a *Agent) loadNames() error {
	if a.cfg.Model.Names == "" {
		return nil
	}
	n, err := boxes.LoadNames(a.cfg.Path(a.cfg.Model.Names))
	if err != nil {
		return fmt.Errorf("model.names: %w", err)
	}
	a.names = n
	return nil
}

func (a *Agent) onClose(f func() error) { a.closers = append(a.closers, f) }

// Close releases the engine, buffers and LED (in reverse order of opening).
func (a *Agent) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// startFloat loads a darknet model that runs on the CPU; no bitstream is used.
func (a *Agent) startFloat() error {
	c := a.cfg.Model
	m, err := darknet.Load(a.cfg.Path(c.Cfg), a.cfg.Path(c.Weights), darknet.Options{})
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	d, err := detector.NewFloat(m, c.Threads, float32(c.NMS))
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	a.model = d
	a.modelInfo = map[string]any{"kind": ModelDarknet, "cfg": c.Cfg, "weights": c.Weights}
	if sum, err := hashFiles(a.cfg.Path(c.Cfg), a.cfg.Path(c.Weights)); err == nil {
		a.modelInfo["sha256"] = sum
	}
	a.log.Info("float model loaded; it runs on the CPU, the bitstream is not used", "cfg", c.Cfg)
	return nil
}

// startQNN programs the overlay, opens the engine driver and loads the model.
func (a *Agent) startQNN(ctx context.Context) error {
	c := a.cfg
	if c.Model.Dir == "" {
		return c.keyErr("model.dir", "no model: set model.dir (a QNN-MO parameter directory or a calibrated .onnx from pynqctl quant) or pass -model")
	}
	if c.Bitstream.Path == "" {
		return c.keyErr("bitstream.path", "no bitstream: set bitstream.path (the .bit; its .hwh beside it)")
	}
	dir := c.Path(c.Model.Dir)
	t := time.Now()
	m, err := loadQNNModel(dir)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	det, err := qnnmo.NewNetwork(m, c.Model.Threads)
	if err != nil {
		return fmt.Errorf("model %s: %w", dir, err)
	}
	a.modelInfo = map[string]any{"kind": ModelQNN, "dir": dir, "name": m.Name}
	if sum, err := hashDir(dir); err == nil {
		a.modelInfo["sha256"] = sum
	}
	a.log.Info("model loaded", "dir", dir, "layers", len(m.Layers), "took", time.Since(t).Round(time.Millisecond))

	var bus overlay.Bus
	var alloc dma.Allocator
	var design *overlay.Design
	hw := engineHardware{}
	switch c.Backend {
	case BackendSim:
		bus, alloc, design, err = a.programSim(ctx, m)
		hw.Reprogram, hw.Claim = a.reprogramSim, a.claimSim
	case BackendEmulated:
		bus, alloc, design, err = a.programEmulated(ctx)
		hw.Reprogram, hw.Claim = a.reprogramEmulated, a.claimEmulated
	default:
		bus, alloc, design, err = a.programBoard(ctx)
		hw.Reprogram = func(ctx context.Context) error { return a.reprogramBoard(ctx, bus, design) }
		hw.Claim = a.claimBoard
	}
	if err != nil {
		return err
	}
	checked := overlay.NewCheckedBus(bus, design, overlay.SLCRRange)
	hw.Open = func() (*qnndriver.Driver, error) {
		drv, err := qnndriver.Open(qnndriver.Config{
			Bus: checked, Alloc: alloc, Design: design, Model: m,
			Instance: c.Bitstream.Engine, Preload: true, Log: a.log, Timeout: c.Engine.Timeout.Duration,
		})
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		return drv, nil
	}
	if a.engine, err = newEngine(hw, c.Engine.ReprogramAfter, a.log); err != nil {
		return err
	}
	a.onClose(a.engine.Close)
	if a.qnn, err = detector.NewQNN(det, a.engine, float32(c.Model.NMS)); err != nil {
		return err
	}
	a.qnn.RecycleInputs = true
	a.model = a.qnn
	if err := a.injectEngineFaults(); err != nil {
		return err
	}
	a.led = openLED(checked, design, c.LED, a.log)
	a.onClose(a.led.Close)
	a.log.Info("engine ready", "backend", c.Backend, "design", design.Name)
	return nil
}

// injectEngineFaults wraps the model with the engine faults of sim.faults.
func (a *Agent) injectEngineFaults() error {
	faults, _ := a.cfg.SimFaults()
	faults = slices.DeleteFunc(faults, func(f Fault) bool { return f.Kind == "load-fail" })
	if len(faults) == 0 || a.machine == nil {
		return nil
	}
	inst := a.engine.Driver().Instance()
	if _, ok := a.machine.Jam(inst); !ok {
		return fmt.Errorf("sim.faults: the simulated design has no engine %q", inst)
	}
	a.model = &engineFaults{Model: a.model, a: a, inst: inst, faults: faults}
	a.log.Warn("fault injection on", "faults", a.cfg.Sim.Faults)
	return nil
}

// readBit parses the .bit header and records the bitstream's identity.
func (a *Agent) readBit() (*bitstream.Header, error) {
	path := a.cfg.Path(a.cfg.Bitstream.Path)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bitstream: %w", err)
	}
	bit, err := bitstream.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("bitstream %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	h := bit.Header
	a.bitInfo = map[string]any{
		"path": path, "hwh": a.cfg.HWHPath(), "design": h.DesignName, "part": h.Part,
		"date": h.Date + " " + h.Time, "vivado": h.Version, "sha256": hex.EncodeToString(sum[:]),
	}
	return &h, nil
}

// loadDesign reads the .hwh and requires the engine in it.
func (a *Agent) loadDesign() (*overlay.Design, error) {
	d, err := overlay.LoadHWH(a.cfg.HWHPath())
	if err != nil {
		return nil, fmt.Errorf("bitstream: %w (bitstream.hwh names it when it is not beside the .bit)", err)
	}
	if len(d.FindByVLNV(EngineVLNV)) == 0 {
		return nil, fmt.Errorf("bitstream: %s has no QNN engine (no module with VLNV %s*): use the QNN-MO W1A3 overlay", d.Name, EngineVLNV)
	}
	return d, nil
}

// programSim "programs" the simulated board: its manager checks the .bit and
// instantiates the IP models the .hwh beside it describes.
func (a *Agent) programSim(ctx context.Context, m *quant.Model) (overlay.Bus, dma.Allocator, *overlay.Design, error) {
	if _, err := a.readBit(); err != nil {
		return nil, nil, nil, err
	}
	design, err := a.loadDesign()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := a.startSim(ctx); err != nil {
		return nil, nil, nil, err
	}
	a.log.Info("bitstream programmed (simulated)", "bit", a.cfg.Path(a.cfg.Bitstream.Path), "design", a.bitInfo["design"])
	a.startTelemetry(design)
	return a.machine, a.machine.Allocator(), a.machine.Design(), nil
}

// startSim creates the simulated board and programs the bitstream into it.
func (a *Agent) startSim(ctx context.Context) error {
	machine, err := sim.New(sim.Config{Threads: a.cfg.Model.Threads, Synchronous: a.cfg.Sim.synchronous})
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	faults, _ := a.cfg.SimFaults() // Validate checked them
	if slices.ContainsFunc(faults, func(f Fault) bool { return f.Kind == "load-fail" }) {
		machine.FailNextLoad(bitstream.StateWriteError) // sim.faults: load-fail
	}
	if _, err := machine.Program(ctx, a.cfg.Path(a.cfg.Bitstream.Path), bitstream.Options{}); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	a.machine = machine
	return nil
}

// programEmulated programs an emulated board: the kernel's FPGA manager loads the
// bitstream exactly as on the board, then the simulation stands in for the PL the load
// would have configured.
func (a *Agent) programEmulated(ctx context.Context) (overlay.Bus, dma.Allocator, *overlay.Design, error) {
	if _, err := a.loadThroughKernel(ctx, "bitstream programmed (emulated board: the PL is simulated)"); err != nil {
		return nil, nil, nil, err
	}
	if err := a.startSim(ctx); err != nil {
		return nil, nil, nil, err
	}
	return a.machine, a.machine.Allocator(), a.machine.Design(), nil
}

// programBoard checks the board, programs the PL through the FPGA manager and sets the
// fabric clocks the design wants.
func (a *Agent) programBoard(ctx context.Context) (overlay.Bus, dma.Allocator, *overlay.Design, error) {
	design, err := a.loadThroughKernel(ctx, "bitstream programmed")
	if err != nil {
		return nil, nil, nil, err
	}
	bus, alloc, err := openBoard()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("board: %w", err)
	}
	a.onClose(alloc.Close)
	if err := applyClocks(bus, design); err != nil {
		return nil, nil, nil, err
	}
	return bus, alloc, design, nil
}

// loadThroughKernel checks the board (root, part, engine in the .hwh), has the kernel's
// FPGA manager load the bitstream (.bin in /lib/firmware) and starts the telemetry, so
// that its FPGA-load probe sees any later load.
func (a *Agent) loadThroughKernel(ctx context.Context, done string) (*overlay.Design, error) {
	design, err := a.checkBoard()
	if err != nil {
		return nil, err
	}
	bit := a.cfg.Path(a.cfg.Bitstream.Path)
	res, err := boardProgrammer.Program(ctx, bit, bitstream.Options{})
	if err != nil {
		return nil, fmt.Errorf("program bitstream: %w", err)
	}
	a.log.Info(done, "bit", bit, "method", res.Method, "state", res.State)
	a.startTelemetry(design)
	return design, nil
}

// applyClocks sets the fabric clocks the design wants.
func applyClocks(bus overlay.Bus, design *overlay.Design) error {
	clocks, err := overlay.OpenClocks(overlay.NewCheckedBus(bus, design, overlay.SLCRRange))
	if err != nil {
		return fmt.Errorf("board clocks: %w", err)
	}
	defer clocks.Close()
	if err := clocks.Apply(design); err != nil {
		return fmt.Errorf("board: %w", err)
	}
	return nil
}

// checkBoard refuses to start when the daemon cannot work: not root, a .bit for another
// part, or a .hwh without the engine.
func (a *Agent) checkBoard() (*overlay.Design, error) {
	if geteuid() != 0 {
		return nil, errors.New("board backend needs root (the FPGA manager, /dev/mem and the DMA allocator are root-only): run as root or under the systemd unit, or use -sim")
	}
	h, err := a.readBit()
	if err != nil {
		return nil, err
	}
	if err := h.CheckPart(bitstream.PartPYNQZ2, false); err != nil {
		return nil, fmt.Errorf("bitstream %s: %w", a.cfg.Bitstream.Path, err)
	}
	return a.loadDesign()
}

// hashDir is the sha256 over a directory's regular files: relative path, NUL, size,
// NUL, content, in path order, so renames and edits both change it.
func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		if err := hashOne(h, rel, p); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFiles(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		if err := hashOne(h, filepath.Base(p), p); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashOne(h io.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(name), fi.Size())
	_, err = io.Copy(h, f)
	return err
}

// Serve runs the pipeline on the configured source until ctx ends, then drains.
func (a *Agent) Serve(ctx context.Context, pub Publisher) error {
	input := a.cfg.SourceInput()
	open := func(ctx context.Context) (Source, error) { return OpenSource(ctx, input, a.cfg.Source) }
	return a.ServeSource(ctx, open, pub)
}

// ServeSource is Serve with another source (tests, embedding).
func (a *Agent) ServeSource(ctx context.Context, open Opener, pub Publisher) error {
	a.led.running(true)
	a.ready.Store(true)
	err := a.pipe.Run(ctx, open, pub)
	a.ready.Store(false)
	a.led.running(false)
	return err
}

// SetViewers tells Status how to count feed viewers (the hub's Viewers).
func (a *Agent) SetViewers(f func() int) { a.viewers.Store(&f) }

// Pipeline is the running pipeline (for figures and tests).
func (a *Agent) Pipeline() *Pipeline { return a.pipe }

// Names are the model's class names.
func (a *Agent) Names() []string { return slices.Clone(a.names) }

// Ready reports that start-up finished and the source delivers frames (a failing
// source, reopened with a growing delay, makes the daemon not ready: /readyz says why).
func (a *Agent) Ready() bool { return a.ready.Load() && a.pipe.SourceFailure() == "" }

// Health reports what keeps the daemon from doing its job, nil when nothing does: the
// engine stopped (another program reprogrammed the PL, or reprogramming after repeated
// failures failed), the engine stuck on one frame past engine.timeout, or frames going
// in and none coming out for health.stall (an engine that hangs or fails on every
// frame; the driver's timeout restarts each run, so only the stall shows it).
// /healthz, /readyz, the systemd watchdog, /api/status and /metrics all report it.
func (a *Agent) Health() error {
	if a.engine != nil {
		if err := a.engine.Err(); err != nil {
			return err
		}
	}
	if busy, limit := a.pipe.EngineBusy(), a.cfg.Engine.Timeout.Duration+time.Second; busy > limit {
		return fmt.Errorf("engine on one frame for %s (engine.timeout %s): the driver did not give up", busy.Round(time.Second), a.cfg.Engine.Timeout)
	}
	if r := a.pipe.Stalled(a.cfg.Health.Stall.Duration); r != "" {
		return errors.New(r)
	}
	return nil
}

// Status is the JSON of /api/status.
func (a *Agent) Status() web.Status {
	sn := a.pipe.Stats()
	thresh, classes, paused := a.pipe.controlState()
	st := web.Status{
		Version: Version, Backend: a.cfg.Backend, Bitstream: a.bitInfo, Model: a.modelInfo,
		Source: RedactURL(a.cfg.SourceInput()), SourceError: a.pipe.SourceFailure(), Paused: paused, Ready: a.Ready(), Healthy: true,
		FPSIn: sn.FPSIn, FPSOut: sn.FPSOut, StagesMS: web.StageTimes(sn.StagesMS),
		LatencyMS: sn.LatencyMS, Dropped: sn.Dropped, UptimeS: time.Since(a.start).Seconds(),
		Thresh: thresh, Classes: classes,
		Extra: map[string]any{
			"frames_in": sn.FramesIn, "frames_out": sn.FramesOut, "frame_errors": sn.Errors,
			"paused_frames": sn.Paused, "detections": sn.Detections,
			"source_state": sn.SourceState, "source_error": sn.SourceError, "source_errors": sn.SourceErrors,
			"stages_last_ms": sn.LastMS, "latency_last_ms": sn.LastLatencyMS,
		},
	}
	if err := a.Health(); err != nil {
		st.Healthy, st.Health = false, err.Error()
	}
	if a.tel != nil {
		st.Extra["telemetry"] = a.tel.StatusExtra()
	}
	if a.engine != nil {
		st.Extra["verification"] = a.verifyStatus()
		st.Extra["recovery"] = a.engine.Counts()
		if d := a.engine.Driver(); d != nil {
			est, hz := d.EngineEstimate()
			st.Extra["engine_model_ms"] = float64(est) / float64(time.Millisecond) // the real engine, from its cycle model
			st.Extra["engine_clock_mhz"] = hz / 1e6
		}
	}
	if a.cfg.Model.Kind == ModelDarknet {
		st.Backend = "cpu"
	}
	if f := a.viewers.Load(); f != nil {
		st.Viewers = (*f)()
	}
	return st
}

// Control validates a change and applies it atomically (all fields or none).
func (a *Agent) Control(c web.Control) error {
	if err := a.pipe.Control(c, a.names); err != nil {
		return err
	}
	a.log.Info("control applied", "thresh", ptrString(c.Thresh), "classes", ptrString(c.Classes), "paused", ptrString(c.Paused))
	return nil
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}
