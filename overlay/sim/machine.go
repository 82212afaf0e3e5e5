// Package sim is the FPGA simulation: a simulated Zynq physical address space (DDR from
// dma.SimMemory, the SLCR, and the PL's AXI slaves) that implements overlay.Bus, and a
// simulated FPGA manager that "programs" a bitstream by checking the .bit, reading the
// .hwh beside it and instantiating a model for each IP at the address the .hwh assigns:
// BlackBoxJam (the QNN offload engine, [Jam]), axi_dma (dma/simdma, loopback), axi_gpio
// ([GPIO]); other IPs become plain register files. Drivers run unchanged against it.
package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/dma/axidma"
	"github.com/fpgadetector/pynq-agent/dma/simdma"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// MethodSim is the Result.Method of a simulated load.
const MethodSim bitstream.Method = "sim"

// SLCR registers the simulation models (Zynq-7000 TRM, ug585).
const (
	SLCRFPGAResetCtrl = 0x240 // FPGA_RST_CTRL: bit n drives FCLK_RESET<n>_N low (1 = in reset)
	slcrSize          = 0x1000
)

// VLNV prefixes of the IPs the simulation models.
const (
	VLNVJam  = "xilinx.com:hls:BlackBoxJam:"
	VLNVDMA  = "xilinx.com:ip:axi_dma:"
	VLNVGPIO = "xilinx.com:ip:axi_gpio:"
)

// Config shapes a Machine.
type Config struct {
	DDRBase uint64 // physical base of simulated DDR; dma.DefaultSimBase when 0
	DDRSize int    // bytes; 64 MiB when 0
	// WriteBack simulates non-coherent caches in the allocator (see dma.SimConfig).
	WriteBack bool
	Limits    offload.Limits // BlackBoxJam synthesis limits; offload.W1A3 when zero
	Threads   int            // goroutines per engine layer; GOMAXPROCS when <= 0
	// Synchronous runs the engine inside the write that starts it, so the driver's first
	// poll sees done. For counting the driver's instructions (pynqctl bench board): the
	// real engine does not make the CPU poll for as long as the simulation computes.
	Synchronous bool
}

// Machine is a simulated PYNQ board: DDR, the SLCR and whatever PL a bitstream put
// there. It implements overlay.Bus and bitstream.Programmer.
type Machine struct {
	cfg   Config
	mem   *dma.SimMemory
	alloc *dma.SimAllocator
	slcr  *overlay.MemRegion

	mu        sync.Mutex
	design    *overlay.Design
	devices   []*device
	state     bitstream.State
	failNext  bitstream.State // injected: the next load fails ending in this state
	loads     int
	resetHigh bool // FCLK_RESET0 asserted
}

// device is one PL slave at its .hwh address.
type device struct {
	rng   overlay.AddrRange
	regs  *overlay.MemRegion
	model any // *Jam, *simdma.Model, *GPIO or nil (a plain register file)
	reset func()
}

var (
	_ overlay.Bus          = (*Machine)(nil)
	_ bitstream.Programmer = (*Machine)(nil)
)

// New returns a board with unconfigured PL (state "power up": nothing mapped yet).
func New(cfg Config) (*Machine, error) {
	if cfg.DDRBase == 0 {
		cfg.DDRBase = dma.DefaultSimBase
	}
	if cfg.DDRSize == 0 {
		cfg.DDRSize = 64 << 20
	}
	if cfg.Limits == (offload.Limits{}) {
		cfg.Limits = offload.W1A3
	}
	mem, err := dma.NewSimMemory(cfg.DDRBase, cfg.DDRSize)
	if err != nil {
		return nil, err
	}
	alloc, err := dma.NewSimAllocator(mem, dma.SimConfig{WriteBack: cfg.WriteBack})
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, mem: mem, alloc: alloc, slcr: overlay.NewMemRegion(slcrSize), state: bitstream.StatePowerUp}
	m.slcr.OnWrite = m.slcrWrite
	return m, nil
}

// Memory is the simulated DDR.
func (m *Machine) Memory() *dma.SimMemory { return m.mem }

// Allocator hands out buffers in the simulated DDR (the board's zocl / u-dma-buf).
func (m *Machine) Allocator() *dma.SimAllocator { return m.alloc }

// State is the simulated FPGA manager's state.
func (m *Machine) State() bitstream.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Design is the .hwh of the loaded bitstream, nil before a successful load.
func (m *Machine) Design() *overlay.Design {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.design
}

// Loads counts successful loads.
func (m *Machine) Loads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}

// FailNextLoad makes the next Program fail, leaving the manager in state (for example
// bitstream.StateWriteError) and the PL unconfigured, as a failed load on the board does.
func (m *Machine) FailNextLoad(state bitstream.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = state
}

// Program implements bitstream.Programmer: the .bit is parsed and part-checked like the
// real manager does, then the .hwh beside it (same base name) decides which models
// appear at which addresses. The previous PL disappears first, as it does on the device.
func (m *Machine) Program(ctx context.Context, bitPath string, opt bitstream.Options) (*bitstream.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bitPath)
	if err != nil {
		return nil, fmt.Errorf("sim program: %w", err)
	}
	bit, err := bitstream.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bitPath, err)
	}
	if err := bit.CheckPart(opt.Part, opt.Force); err != nil {
		return nil, fmt.Errorf("%s: %w", bitPath, err)
	}
	if _, err := bitstream.BinFromPayload(bit.Payload); err != nil {
		return nil, fmt.Errorf("%s: %w", bitPath, err)
	}
	hwhPath := strings.TrimSuffix(bitPath, filepath.Ext(bitPath)) + ".hwh"
	design, err := overlay.LoadHWH(hwhPath)
	if err != nil {
		return nil, fmt.Errorf("sim program %s: the simulation needs the .hwh beside the .bit: %w", filepath.Base(bitPath), err)
	}
	res := &bitstream.Result{Method: MethodSim, Firmware: bitstream.BinName(bitPath), Header: &bit.Header}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.design, m.devices = nil, nil // reconfiguration removes the old PL
	if m.failNext != "" {
		m.state, m.failNext = m.failNext, ""
		res.State = m.state
		return res, &bitstream.LoadError{Method: MethodSim, Firmware: res.Firmware, State: m.state, Err: errors.New("injected load failure")}
	}
	devices, err := m.instantiate(design)
	if err != nil {
		m.state = bitstream.StateWriteCompleteError
		res.State = m.state
		return res, &bitstream.LoadError{Method: MethodSim, Firmware: res.Firmware, State: m.state, Err: err}
	}
	m.design, m.devices, m.state = design, devices, bitstream.StateOperating
	m.loads++
	res.State = m.state
	return res, nil
}

// instantiate builds one device per register range of the CPU's address map.
func (m *Machine) instantiate(d *overlay.Design) ([]*device, error) {
	var devs []*device
	for _, r := range d.AddressMap {
		if r.Type != overlay.MemTypeRegister {
			continue // DDR / OCM ranges are memory, not PL slaves
		}
		if r.Size() > 1<<24 {
			return nil, fmt.Errorf("%s: register range of %d bytes is too large to simulate", r.Instance, r.Size())
		}
		mod, _ := d.Module(r.Instance)
		dev := &device{rng: r}
		switch {
		case mod != nil && strings.HasPrefix(mod.VLNV, VLNVJam):
			j := NewJam(m.mem, m.cfg.Limits, m.cfg.Threads)
			j.synchronous = m.cfg.Synchronous
			dev.regs, dev.model, dev.reset = j.Region(), j, j.Reset
		case mod != nil && strings.HasPrefix(mod.VLNV, VLNVDMA):
			cfg, err := axidma.ConfigFromModule(mod)
			if err != nil {
				return nil, err
			}
			dm := simdma.New(m.mem, simdma.Config{LengthWidth: cfg.LengthWidth, AddrWidth: cfg.AddrWidth})
			dev.regs, dev.model = dm.Region(), dm
			dev.reset = func() { dm.Region().Write32(0x00, 0x4); dm.Region().Write32(0x30, 0x4) }
		case mod != nil && strings.HasPrefix(mod.VLNV, VLNVGPIO):
			g := NewGPIO(int(r.Size()))
			dev.regs, dev.model, dev.reset = g.Region(), g, g.Reset
		default:
			dev.regs = overlay.NewMemRegion(int(r.Size()))
		}
		if dev.regs.Size() < int(r.Size()) {
			dev.regs = overlay.NewMemRegion(int(r.Size())) // a model with a smaller file than the range
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

// Model returns the model of an instance (a *Jam, *simdma.Model, *GPIO, or
// *overlay.MemRegion for a plain register file).
func (m *Machine) Model(instance string) (any, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.devices {
		if d.rng.Instance == instance {
			if d.model == nil {
				return d.regs, true
			}
			return d.model, true
		}
	}
	return nil, false
}

// Jam returns the engine model of an instance.
func (m *Machine) Jam(instance string) (*Jam, bool) {
	v, _ := m.Model(instance)
	j, ok := v.(*Jam)
	return j, ok
}

// DMA returns the AXI DMA model of an instance.
func (m *Machine) DMA(instance string) (*simdma.Model, bool) {
	v, _ := m.Model(instance)
	d, ok := v.(*simdma.Model)
	return d, ok
}

// GPIO returns the AXI GPIO model of an instance.
func (m *Machine) GPIO(instance string) (*GPIO, bool) {
	v, _ := m.Model(instance)
	g, ok := v.(*GPIO)
	return g, ok
}

// ResetPL pulses the PL reset, as writing FPGA_RST_CTRL does: every model returns to
// its reset state.
func (m *Machine) ResetPL() {
	m.mu.Lock()
	devs := slices.Clone(m.devices)
	m.mu.Unlock()
	for _, d := range devs {
		if d.reset != nil {
			d.reset()
		}
	}
}

// slcrWrite models FPGA_RST_CTRL: the design's proc_sys_reset follows FCLK_RESET0_N,
// so asserting bit 0 resets the PL; it stays in reset until the bit is cleared.
func (m *Machine) slcrWrite(off, v uint32) {
	if off != SLCRFPGAResetCtrl {
		return
	}
	m.mu.Lock()
	rising := v&1 == 1 && !m.resetHigh
	m.resetHigh = v&1 == 1
	m.mu.Unlock()
	if rising {
		m.ResetPL()
	}
}

// Map implements overlay.Bus: DDR, the SLCR, or a PL slave of the loaded design.
func (m *Machine) Map(phys uint64, size int) (overlay.Region, error) {
	if size <= 0 || phys%4 != 0 || size%4 != 0 {
		return nil, fmt.Errorf("map 0x%X+0x%X: %w", phys, size, overlay.ErrUnaligned)
	}
	if m.mem.Contains(phys, size) {
		b, _ := m.mem.Slice(phys, size)
		return &ddrRegion{b: b}, nil
	}
	if (overlay.AddrRange{Base: overlay.SLCRBase, High: overlay.SLCRBase + slcrSize - 1}).Contains(phys, uint64(size)) {
		return &window{regs: m.slcr, off: uint32(phys - overlay.SLCRBase), size: size}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.devices {
		if d.rng.Contains(phys, uint64(size)) {
			return &window{regs: d.regs, off: uint32(phys - d.rng.Base), size: size}, nil
		}
	}
	hint := "no PL slave there in the loaded design"
	if m.design == nil {
		hint = "the PL is not configured: program a bitstream first"
	}
	return nil, fmt.Errorf("map 0x%X+0x%X: %s (%w)", phys, size, hint, overlay.ErrOutsideDesign)
}

// window is a view of part of a register file.
type window struct {
	regs   *overlay.MemRegion
	off    uint32
	size   int
	closed bool
}

func (w *window) check(off uint32) {
	if off%4 != 0 || uint64(off)+4 > uint64(w.size) {
		panic(&overlay.AccessError{Off: off, Size: w.size, Err: overlay.ErrUnaligned})
	}
}

func (w *window) Read32(off uint32) uint32 { w.check(off); return w.regs.Read32(w.off + off) }
func (w *window) Write32(off, v uint32)    { w.check(off); w.regs.Write32(w.off+off, v) }
func (w *window) Size() int                { return w.size }

// Interrupt implements overlay.Interrupter with the device's interrupt line.
func (w *window) Interrupt() <-chan struct{} { return w.regs.Interrupt() }
func (w *window) Close() error {
	if w.closed {
		return overlay.ErrClosed
	}
	w.closed = true
	return nil
}

// ddrRegion is a CPU mapping of simulated DDR (little-endian words).
type ddrRegion struct {
	b      []byte
	closed bool
}

func (d *ddrRegion) check(off uint32) {
	if off%4 != 0 || uint64(off)+4 > uint64(len(d.b)) {
		panic(&overlay.AccessError{Off: off, Size: len(d.b), Err: overlay.ErrUnaligned})
	}
}

func (d *ddrRegion) Read32(off uint32) uint32 {
	d.check(off)
	return uint32(d.b[off]) | uint32(d.b[off+1])<<8 | uint32(d.b[off+2])<<16 | uint32(d.b[off+3])<<24
}

func (d *ddrRegion) Write32(off, v uint32) {
	d.check(off)
	d.b[off], d.b[off+1], d.b[off+2], d.b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func (d *ddrRegion) Size() int { return len(d.b) }
func (d *ddrRegion) Close() error {
	if d.closed {
		return overlay.ErrClosed
	}
	d.closed = true
	return nil
}
