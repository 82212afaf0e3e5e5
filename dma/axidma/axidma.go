// Package axidma drives a Xilinx AXI DMA (PG021) in simple (register) mode through an
// overlay.Region, moving dma.Buffers; package dma/simdma holds a register-level model of
// that IP for tests and the FPGA simulation. (QNN-MO's engine reads and writes DDR
// itself; overlays with a stream IP behind an AXI DMA use this.)
package axidma

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/overlay"
)

// Xilinx AXI DMA (PG021) register map in simple (direct register) mode. Exported so the
// simulation's register model (package dma/simdma) uses the same facts.
const (
	CRRunStop  = 0x1    // DMACR.RS
	CRReset    = 0x4    // DMACR.Reset (resets the whole core, both channels)
	CRIOCIrqEn = 0x1000 // DMACR.IOC_IrqEn
	CRErrIrqEn = 0x4000 // DMACR.Err_IrqEn

	SRHalted    = 0x1    // DMASR.Halted
	SRIdle      = 0x2    // DMASR.Idle
	SRDMAIntErr = 0x10   // DMASR.DMAIntErr (e.g. a zero LENGTH)
	SRDMASlvErr = 0x20   // DMASR.DMASlvErr (the memory slave answered SLVERR)
	SRDMADecErr = 0x40   // DMASR.DMADecErr (no slave at the address)
	SRIOCIrq    = 0x1000 // DMASR.IOC_Irq (write 1 to clear)
	SRErrIrq    = 0x4000 // DMASR.Err_Irq (write 1 to clear)

	srErrors = SRDMAIntErr | SRDMASlvErr | SRDMADecErr

	// RegisterWindow is how many bytes of the IP's range the driver maps.
	RegisterWindow = 0x100
)

// Direction names a DMA channel.
type Direction int

const (
	MM2S Direction = iota // memory to stream: the device reads the buffer
	S2MM                  // stream to memory: the device writes the buffer
)

func (d Direction) String() string {
	if d == S2MM {
		return "S2MM"
	}
	return "MM2S"
}

// ChannelRegs are one channel's register offsets.
type ChannelRegs struct {
	CR, SR, Addr, AddrMSB, Length uint32
}

// Regs returns the register offsets of a channel: MM2S DMACR 0x00, DMASR 0x04, SA 0x18
// (+4 MSB), LENGTH 0x28; S2MM at 0x30, 0x34, DA 0x48, LENGTH 0x58.
func Regs(d Direction) ChannelRegs {
	if d == S2MM {
		return ChannelRegs{CR: 0x30, SR: 0x34, Addr: 0x48, AddrMSB: 0x4C, Length: 0x58}
	}
	return ChannelRegs{CR: 0x00, SR: 0x04, Addr: 0x18, AddrMSB: 0x1C, Length: 0x28}
}

// Errors of the AXI DMA driver, for errors.Is. A *Error wraps one or more of them.
var (
	ErrTimeout   = errors.New("transfer did not complete in time")
	ErrInternal  = errors.New("DMAIntErr: internal error (zero length, or a stream/length mismatch)")
	ErrSlave     = errors.New("DMASlvErr: the memory slave returned an error")
	ErrDecode    = errors.New("DMADecErr: no slave at the address on the DMA's master interface")
	ErrAborted   = errors.New("transfer aborted by a reset of the DMA core")
	ErrHalted    = errors.New("channel is halted")
	ErrNoChannel = errors.New("channel not present in this DMA (c_include_mm2s/s2mm = 0)")
)

// Config is what the driver must know about one AXI DMA instance; read it from the
// .hwh with ConfigFromModule.
type Config struct {
	// LengthWidth is c_sg_length_width: LENGTH has that many bits, so a transfer
	// moves at most (1<<LengthWidth)-1 bytes. Default 14.
	LengthWidth int
	// AddrWidth is c_addr_width, 32..64; above 32 the driver writes the MSB registers.
	AddrWidth int
	// HasMM2S, HasS2MM are c_include_mm2s, c_include_s2mm.
	HasMM2S, HasS2MM bool
	// MM2SAlign, S2MMAlign are the byte alignments the memory side needs without the
	// data realignment engine (c_m_axi_*_data_width/8); 1 with DRE.
	MM2SAlign, S2MMAlign int
	// Interrupts sets IOC_IrqEn and Err_IrqEn, for a design that routes the DMA's
	// interrupts somewhere that handles them. The driver itself polls.
	Interrupts bool
	// Timeout bounds Wait when its context has no deadline; default 1 s.
	Timeout time.Duration
	// ResetTimeout bounds the wait for DMACR.Reset to clear; default 50 ms.
	ResetTimeout time.Duration
}

// MaxLength is the largest transfer in bytes.
func (c Config) MaxLength() int { return 1<<c.LengthWidth - 1 }

func (c *Config) defaults() {
	if c.LengthWidth == 0 {
		c.LengthWidth = 14
	}
	if c.AddrWidth == 0 {
		c.AddrWidth = 32
	}
	c.MM2SAlign = max(c.MM2SAlign, 1)
	c.S2MMAlign = max(c.S2MMAlign, 1)
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	if c.ResetTimeout == 0 {
		c.ResetTimeout = 50 * time.Millisecond
	}
}

func (c Config) validate() error {
	if c.LengthWidth < 8 || c.LengthWidth > 26 {
		return fmt.Errorf("c_sg_length_width %d is outside PG021's 8..26", c.LengthWidth)
	}
	if c.AddrWidth < 32 || c.AddrWidth > 64 {
		return fmt.Errorf("c_addr_width %d is outside 32..64", c.AddrWidth)
	}
	if !c.HasMM2S && !c.HasS2MM {
		return errors.New("neither channel is included (c_include_mm2s = c_include_s2mm = 0)")
	}
	for _, a := range []int{c.MM2SAlign, c.S2MMAlign} {
		if a <= 0 || a&(a-1) != 0 {
			return fmt.Errorf("alignment %d is not a power of two", a)
		}
	}
	return nil
}

// VLNV prefixes the VLNV of the Xilinx AXI DMA IP.
const VLNV = "xilinx.com:ip:axi_dma:"

// ConfigFromModule reads an axi_dma module's parameters (PG021 names, any case) with
// the IP's defaults for missing ones. It refuses scatter-gather builds: simple mode
// registers do not exist there.
func ConfigFromModule(m *overlay.Module) (Config, error) {
	param := func(name string, def int) (int, error) {
		for _, p := range m.Parameters {
			if strings.EqualFold(p.Name, name) {
				v, err := strconv.Atoi(strings.TrimSpace(p.Value))
				if err != nil {
					return 0, fmt.Errorf("axi dma %s: parameter %s (line %d): %q is not an integer", m.Instance, p.Name, p.Line, p.Value)
				}
				return v, nil
			}
		}
		return def, nil
	}
	var cfg Config
	var sg, mm2s, s2mm, mm2sDRE, s2mmDRE, mm2sWidth, s2mmWidth int
	for _, p := range []struct {
		name string
		def  int
		dst  *int
	}{
		{"c_include_sg", 1, &sg}, {"c_sg_length_width", 14, &cfg.LengthWidth}, {"c_addr_width", 32, &cfg.AddrWidth},
		{"c_include_mm2s", 1, &mm2s}, {"c_include_s2mm", 1, &s2mm},
		{"c_include_mm2s_dre", 0, &mm2sDRE}, {"c_include_s2mm_dre", 0, &s2mmDRE},
		{"c_m_axi_mm2s_data_width", 32, &mm2sWidth}, {"c_m_axi_s2mm_data_width", 32, &s2mmWidth},
	} {
		v, err := param(p.name, p.def)
		if err != nil {
			return Config{}, err
		}
		*p.dst = v
	}
	if sg != 0 {
		return Config{}, fmt.Errorf("axi dma %s is built with scatter-gather (c_include_sg = 1): %w (rebuild with c_include_sg = 0 for simple mode)", m.Instance, dma.ErrNotSupported)
	}
	cfg.HasMM2S, cfg.HasS2MM = mm2s != 0, s2mm != 0
	cfg.MM2SAlign, cfg.S2MMAlign = 1, 1
	if mm2sDRE == 0 {
		cfg.MM2SAlign = max(mm2sWidth/8, 1)
	}
	if s2mmDRE == 0 {
		cfg.S2MMAlign = max(s2mmWidth/8, 1)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("axi dma %s: %w", m.Instance, err)
	}
	return cfg, nil
}

// DMA drives one AXI DMA in simple mode. Its two channels work independently and
// may be used from different goroutines; a reset (Start, or recovery after an error
// or timeout) resets both, because the IP has one reset for the whole core.
type DMA struct {
	name string
	r    overlay.Region
	cfg  Config
	mm2s *Channel
	s2mm *Channel

	resetMu sync.Mutex
	gen     atomic.Uint64 // bumped by every core reset; transfers from older generations are lost
}

// New wraps the register window r (at least RegisterWindow bytes) of a DMA.
func New(name string, r overlay.Region, cfg Config) (*DMA, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("axi dma %s: %w", name, err)
	}
	if r.Size() < 0x5C {
		return nil, fmt.Errorf("axi dma %s: register window of %d bytes is too small (need 0x5C)", name, r.Size())
	}
	d := &DMA{name: name, r: r, cfg: cfg}
	d.mm2s = &Channel{d: d, dir: MM2S, regs: Regs(MM2S), present: cfg.HasMM2S, align: cfg.MM2SAlign}
	d.s2mm = &Channel{d: d, dir: S2MM, regs: Regs(S2MM), present: cfg.HasS2MM, align: cfg.S2MMAlign}
	return d, nil
}

// Open finds instance in the design, reads its configuration and maps its
// registers through bus (an overlay.CheckedBus on the board).
func Open(bus overlay.Bus, d *overlay.Design, instance string) (*DMA, error) {
	m, ok := d.Module(instance)
	if !ok {
		return nil, fmt.Errorf("axi dma: %s has no module %q (see `pynqctl hwh info`)", d.Name, instance)
	}
	if !strings.HasPrefix(m.VLNV, VLNV) {
		return nil, fmt.Errorf("axi dma: %s is %s, not an AXI DMA", instance, m.VLNV)
	}
	cfg, err := ConfigFromModule(m)
	if err != nil {
		return nil, err
	}
	rng, ok := d.Range(instance)
	if !ok {
		return nil, fmt.Errorf("axi dma: %s has no address range in %s (is S_AXI_LITE connected to the PS?)", instance, d.Name)
	}
	r, err := bus.Map(rng.Base, int(min(rng.Size(), RegisterWindow)))
	if err != nil {
		return nil, fmt.Errorf("axi dma %s: %w", instance, err)
	}
	dma, err := New(instance, r, cfg)
	if err != nil {
		r.Close()
		return nil, err
	}
	return dma, nil
}

// Name is the instance name used in messages.
func (d *DMA) Name() string { return d.name }

// Config returns the configuration in use (defaults filled in).
func (d *DMA) Config() Config { return d.cfg }

// MM2S is the memory-to-stream channel.
func (d *DMA) MM2S() *Channel { return d.mm2s }

// S2MM is the stream-to-memory channel.
func (d *DMA) S2MM() *Channel { return d.s2mm }

// Close unmaps the registers (the DMA keeps its state).
func (d *DMA) Close() error { return d.r.Close() }

// Start resets the core and sets both present channels running.
func (d *DMA) Start(ctx context.Context) error {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	return d.resetAndRun(ctx)
}

// Reset is Start under another name, for recovery by callers: it aborts whatever
// either channel was doing.
func (d *DMA) Reset(ctx context.Context) error { return d.Start(ctx) }

// resetAndRun soft-resets the core, waits for the reset to finish, and sets RS on the
// present channels. Callers hold resetMu.
func (d *DMA) resetAndRun(ctx context.Context) error {
	d.gen.Add(1)
	first := d.mm2s
	if !first.present {
		first = d.s2mm
	}
	d.r.Write32(first.regs.CR, CRReset)
	err := pollUntil(ctx, d.cfg.ResetTimeout, func() bool { return d.r.Read32(first.regs.CR)&CRReset == 0 })
	if err != nil {
		return fmt.Errorf("axi dma %s: reset did not complete within %v: %w (the core waits for outstanding AXI transfers: check its clocks and that the stream side is not stalled)",
			d.name, d.cfg.ResetTimeout, err)
	}
	cr := uint32(CRRunStop)
	if d.cfg.Interrupts {
		cr |= CRIOCIrqEn | CRErrIrqEn
	}
	for _, c := range []*Channel{d.mm2s, d.s2mm} {
		if !c.present {
			continue
		}
		c.started.Store(true)
		d.r.Write32(c.regs.CR, cr)
	}
	for _, c := range []*Channel{d.mm2s, d.s2mm} {
		if !c.present {
			continue
		}
		err := pollUntil(ctx, d.cfg.ResetTimeout, func() bool { return d.r.Read32(c.regs.SR)&SRHalted == 0 })
		if err != nil {
			return fmt.Errorf("axi dma %s %s: still halted after RS=1 (status 0x%X): %w", d.name, c.dir, d.r.Read32(c.regs.SR), err)
		}
	}
	return nil
}

// recover resets the core after a failed transfer, with a fresh time budget (the
// caller's context may be the one that just expired).
func (d *DMA) recover() error {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*d.cfg.ResetTimeout)
	defer cancel()
	return d.resetAndRun(ctx)
}

// Channel is one direction of an AXI DMA.
type Channel struct {
	d       *DMA
	dir     Direction
	regs    ChannelRegs
	present bool
	align   int

	mu      sync.Mutex
	started atomic.Bool // set by the first Start
	pending *transfer   // the transfer in flight, nil when none
	lastLen int
}

type transfer struct {
	buf  dma.Buffer
	addr uint64
	n    int
	gen  uint64
}

// Present reports whether the DMA includes this channel.
func (c *Channel) Present() bool { return c.present }

// Direction returns the channel's direction.
func (c *Channel) Direction() Direction { return c.dir }

// Transfer starts moving n bytes at offset off of buf: MM2S reads them from memory into
// the stream, S2MM writes up to n bytes from the stream into memory. The buffer is
// synced for the device first (MM2S: the device reads what the CPU wrote; S2MM: no dirty
// line is evicted over the device's data). Call Wait before the next Transfer.
func (c *Channel) Transfer(buf dma.Buffer, off, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.present {
		return c.errorf("transfer: %w", ErrNoChannel)
	}
	if c.pending != nil {
		return c.errorf("transfer: the previous transfer of %d bytes at 0x%X was not waited for (call Wait first)", c.pending.n, c.pending.addr)
	}
	addr, err := c.check(buf, off, n)
	if err != nil {
		return err
	}
	if sr := c.d.r.Read32(c.regs.SR); !c.started.Load() || sr&SRHalted != 0 {
		return c.errorf("transfer: %w (status 0x%X; call Start after programming the bitstream)", ErrHalted, sr)
	}
	if err := buf.SyncForDevice(); err != nil {
		return c.errorf("transfer: %w", err)
	}
	c.d.r.Write32(c.regs.SR, SRIOCIrq|SRErrIrq) // clear the previous completion
	c.d.r.Write32(c.regs.Addr, uint32(addr))
	if c.d.cfg.AddrWidth > 32 {
		c.d.r.Write32(c.regs.AddrMSB, uint32(addr>>32))
	}
	c.pending = &transfer{buf: buf, addr: addr, n: n, gen: c.d.gen.Load()}
	c.d.r.Write32(c.regs.Length, uint32(n)) // starts the transfer
	return nil
}

// check validates a transfer request and returns the bus address.
func (c *Channel) check(buf dma.Buffer, off, n int) (uint64, error) {
	maxLen := c.d.cfg.MaxLength()
	switch {
	case n <= 0:
		return 0, c.errorf("transfer: length %d must be positive", n)
	case n > maxLen:
		return 0, c.errorf("transfer: %d bytes exceed the maximum of %d (c_sg_length_width = %d; split the transfer or rebuild the DMA with a wider length register)",
			n, maxLen, c.d.cfg.LengthWidth)
	case off < 0 || off > buf.Size() || n > buf.Size()-off:
		return 0, c.errorf("transfer: bytes %d..%d are outside the %d-byte buffer", off, off+n, buf.Size())
	}
	addr := buf.PhysAddr() + uint64(off)
	if c.d.cfg.AddrWidth < 64 && addr+uint64(n)-1 >= 1<<c.d.cfg.AddrWidth {
		return 0, c.errorf("transfer: buffer 0x%X+%d is beyond the DMA's %d-bit address space", addr, n, c.d.cfg.AddrWidth)
	}
	if addr%uint64(c.align) != 0 {
		return 0, c.errorf("transfer: address 0x%X is not aligned to %d bytes (the DMA has no realignment engine: align the offset, or enable c_include_%s_dre)",
			addr, c.align, strings.ToLower(c.dir.String()))
	}
	return addr, nil
}

// Wait waits for the transfer in flight. It returns nil when none is. On success an
// S2MM buffer is synced for the CPU. On an error bit or a timeout it returns a *Error
// and resets the core so the next Transfer can work (the reset aborts the other
// channel's transfer too). Without a deadline in ctx, the configured Timeout applies.
func (c *Channel) Wait(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	if p == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.d.cfg.Timeout)
		defer cancel()
	}
	var sr uint32
	err := pollUntil(ctx, 0, func() bool {
		sr = c.d.r.Read32(c.regs.SR)
		return c.d.gen.Load() != p.gen || sr&(srErrors|SRIdle|SRIOCIrq|SRHalted) != 0
	})
	c.pending = nil
	switch {
	case c.d.gen.Load() != p.gen:
		return c.failure(p, sr, ErrAborted, false)
	case err != nil:
		return c.failure(p, sr, errors.Join(ErrTimeout, err), true)
	case sr&srErrors != 0:
		return c.failure(p, sr, statusErrors(sr), true)
	case sr&(SRIdle|SRIOCIrq) == 0: // halted with no error bit: stopped under us
		return c.failure(p, sr, ErrHalted, true)
	}
	c.d.r.Write32(c.regs.SR, SRIOCIrq)
	c.lastLen = p.n
	if c.dir == S2MM {
		// LENGTH reads back the bytes actually written when the stream ended early.
		c.lastLen = int(c.d.r.Read32(c.regs.Length))
		if err := p.buf.SyncForCPU(); err != nil {
			return c.errorf("wait: %w", err)
		}
	}
	return nil
}

// LastLength is the byte count of the last completed transfer (for S2MM, what the
// stream delivered, which may be less than asked when TLAST came early).
func (c *Channel) LastLength() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastLen
}

// Run is Transfer followed by Wait.
func (c *Channel) Run(ctx context.Context, buf dma.Buffer, off, n int) error {
	if err := c.Transfer(buf, off, n); err != nil {
		return err
	}
	return c.Wait(ctx)
}

// failure builds the error of a failed transfer and, when asked, resets the core.
func (c *Channel) failure(p *transfer, sr uint32, cause error, reset bool) error {
	e := &Error{DMA: c.d.name, Channel: c.dir, Status: sr, Addr: p.addr, Length: p.n, Err: cause}
	if reset {
		e.ResetErr = c.d.recover()
		e.Reset = e.ResetErr == nil
	}
	return e
}

func (c *Channel) errorf(format string, args ...any) error {
	return fmt.Errorf("axi dma %s %s: %w", c.d.name, c.dir, fmt.Errorf(format, args...))
}

// statusErrors maps DMASR error bits to the package's errors.
func statusErrors(sr uint32) error {
	var errs []error
	if sr&SRDMAIntErr != 0 {
		errs = append(errs, ErrInternal)
	}
	if sr&SRDMASlvErr != 0 {
		errs = append(errs, ErrSlave)
	}
	if sr&SRDMADecErr != 0 {
		errs = append(errs, ErrDecode)
	}
	return errors.Join(errs...)
}

// Error describes a failed transfer: which DMA and channel, the status register, the
// transfer, and whether the driver reset the core afterwards.
type Error struct {
	DMA      string
	Channel  Direction
	Status   uint32 // DMASR when the failure was seen
	Addr     uint64
	Length   int
	Err      error // ErrTimeout, ErrInternal, ErrSlave, ErrDecode (joined), ErrAborted, ErrHalted
	Reset    bool  // the core was reset and restarted: the next Transfer can go ahead
	ResetErr error // why the reset failed, if it did
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "axi dma %s %s: transfer of %d bytes at 0x%X failed (DMASR 0x%X): %s",
		e.DMA, e.Channel, e.Length, e.Addr, e.Status, strings.ReplaceAll(e.Err.Error(), "\n", "; "))
	if hint := e.hint(); hint != "" {
		b.WriteString(" (" + hint + ")")
	}
	switch {
	case e.ResetErr != nil:
		fmt.Fprintf(&b, "; recovery failed: %v", e.ResetErr)
	case e.Reset:
		b.WriteString("; the core was reset and restarted")
	}
	return b.String()
}

func (e *Error) hint() string {
	switch {
	case errors.Is(e.Err, ErrTimeout) && e.Channel == S2MM:
		return "the stream never delivered enough data or TLAST: check the producer IP is started"
	case errors.Is(e.Err, ErrTimeout):
		return "the stream consumer never accepted the data: check the consumer IP is started"
	case errors.Is(e.Err, ErrDecode):
		return "the buffer's physical address is not reachable from the DMA's master port: check the HP port address map"
	case errors.Is(e.Err, ErrInternal):
		return "zero length, or the stream's TLAST disagrees with LENGTH"
	}
	return ""
}

func (e *Error) Unwrap() error { return e.Err }

// pollUntil calls done until it reports true, spinning briefly and then sleeping with
// a growing backoff (a transfer of a few KiB finishes in microseconds, a frame in
// milliseconds). limit > 0 bounds the wait in addition to ctx.
func pollUntil(ctx context.Context, limit time.Duration, done func() bool) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	const spins = 64
	sleep := 2 * time.Microsecond
	var timer *time.Timer
	for i := 0; ; i++ {
		if done() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			if done() { // the last look after the deadline still counts
				return nil
			}
			return err
		}
		if i < spins {
			runtime.Gosched()
			continue
		}
		if timer == nil {
			timer = time.NewTimer(sleep)
			defer timer.Stop()
		} else {
			timer.Reset(sleep)
		}
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		sleep = min(2*sleep, time.Millisecond)
	}
}
