// Package simdma is a register-level model of the Xilinx AXI DMA (PG021) in simple mode,
// for tests and the FPGA simulation: its registers live in an overlay.MemRegion, and a
// write to a LENGTH register moves bytes between simulated DDR (by physical address)
// and the stream side. The stream side is a loopback (MM2S packets feed S2MM) unless
// Sink / Source connect it to an IP model. Faults (hang, slave error, decode error,
// internal error, a reset that never finishes) are injected per transfer.
package simdma

import (
	"sync"

	"github.com/fpgadetector/pynq-agent/dma/axidma"
	"github.com/fpgadetector/pynq-agent/overlay"
)

// Memory is what the DMA's master ports reach: dma.SimMemory implements it. An error
// from it (an address outside the memory) becomes a decode error, as on the bus.
type Memory interface {
	ReadPhys(p []byte, phys uint64) error
	WritePhys(p []byte, phys uint64) error
}

// Fault is an injected failure of one transfer.
type Fault int

const (
	NoFault       Fault = iota
	Hang                // the transfer never completes (Idle never sets) until a reset
	SlaveError          // DMASlvErr: the memory answered SLVERR
	DecodeError         // DMADecErr: as if nothing were mapped at the address
	InternalError       // DMAIntErr
)

// Config shapes the model like the .hwh's axi_dma parameters.
type Config struct {
	LengthWidth int // c_sg_length_width, default 14; LENGTH keeps only these bits
	AddrWidth   int // c_addr_width, default 32; above 32 the MSB registers count
	// Sink receives every MM2S packet (TLAST at its end) instead of the loopback.
	// It runs with the model locked: it must not touch the DMA's registers.
	Sink func(packet []byte) error
	// Source supplies S2MM data: it returns the next packet (at most max bytes are
	// taken) and false when none is ready yet, in which case the transfer waits and
	// Source is asked again at every status read. Nil means the loopback.
	Source func(max int) (packet []byte, ok bool)
	// BusyReads is how many DMASR reads a transfer stays busy before it completes, so
	// the driver's polling is exercised; 0 completes at the LENGTH write.
	BusyReads int
	// ResetReads is how many DMACR reads the Reset bit stays set after a reset.
	ResetReads int
	// RegionSize is the register file's size in bytes, default 0x10000 (the usual
	// 64 KiB range of the IP in the .hwh).
	RegionSize int
}

// ConfigFromModule shapes the model like an axi_dma module of a .hwh.
func ConfigFromModule(m *overlay.Module) (Config, error) {
	c, err := axidma.ConfigFromModule(m)
	if err != nil {
		return Config{}, err
	}
	return Config{LengthWidth: c.LengthWidth, AddrWidth: c.AddrWidth}, nil
}

// Model is one simulated AXI DMA. It is safe for concurrent use.
type Model struct {
	cfg  Config
	mem  Memory
	regs *overlay.MemRegion

	mu         sync.Mutex
	ch         [2]channel
	resetLeft  int
	resetStuck bool
	loopback   [][]byte // MM2S packets not yet taken by S2MM
	resets     int
}

type channel struct {
	dir               axidma.Direction
	regs              axidma.ChannelRegs
	cr, sr            uint32
	addr, addrMSB     uint32
	length            uint32
	busy              bool  // a transfer is in flight
	busyLeft          int   // status reads until it completes
	hang              bool  // the transfer in flight never completes
	next              Fault // fault for the next transfer
	transfers, errors int
	bytes             int64
}

// New returns a model over mem with its register file (map it on a bus at the DMA's
// base address: bus.Add(base, m.Region())).
func New(mem Memory, cfg Config) *Model {
	if cfg.LengthWidth == 0 {
		cfg.LengthWidth = 14
	}
	if cfg.AddrWidth == 0 {
		cfg.AddrWidth = 32
	}
	if cfg.RegionSize < axidma.RegisterWindow {
		cfg.RegionSize = 0x10000
	}
	m := &Model{cfg: cfg, mem: mem, regs: overlay.NewMemRegion(cfg.RegionSize)}
	for i, d := range []axidma.Direction{axidma.MM2S, axidma.S2MM} {
		m.ch[i] = channel{dir: d, regs: axidma.Regs(d)}
	}
	m.hardReset()
	m.regs.OnWrite = m.write
	m.regs.OnRead = m.read
	return m
}

// Region is the register file.
func (m *Model) Region() *overlay.MemRegion { return m.regs }

// InjectFault makes the next transfer on channel d fail with f.
func (m *Model) InjectFault(d axidma.Direction, f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ch[d].next = f
}

// SetResetStuck makes soft resets never finish (DMACR.Reset stays set).
func (m *Model) SetResetStuck(stuck bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetStuck = stuck
	if !stuck && m.resetLeft < 0 {
		m.resetLeft = 0
	}
}

// Stats are counters of one channel.
type Stats struct {
	Transfers int   // completed without error
	Errors    int   // ended with an error bit
	Bytes     int64 // moved by completed transfers
	Busy      bool  // a transfer is in flight
}

// Stats returns the counters of channel d.
func (m *Model) Stats(d axidma.Direction) Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.ch[d]
	return Stats{Transfers: c.transfers, Errors: c.errors, Bytes: c.bytes, Busy: c.busy}
}

// Resets is the number of soft resets seen.
func (m *Model) Resets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resets
}

// hardReset puts both channels in their reset state: halted, not running.
func (m *Model) hardReset() {
	for i := range m.ch {
		c := &m.ch[i]
		c.cr = 0x00010002 // IRQThreshold 1; bit 1 reads as 1
		c.sr = axidma.SRHalted
		c.addr, c.addrMSB, c.length = 0, 0, 0
		c.busy, c.hang, c.busyLeft = false, false, 0
	}
	m.loopback = nil
}

func (m *Model) channelAt(off uint32) (*channel, uint32, bool) {
	for i := range m.ch {
		c := &m.ch[i]
		switch off {
		case c.regs.CR, c.regs.SR, c.regs.Addr, c.regs.AddrMSB, c.regs.Length:
			return c, off, true
		}
	}
	return nil, 0, false
}

func (m *Model) read(off, stored uint32) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, reg, ok := m.channelAt(off)
	if !ok {
		return stored
	}
	switch reg {
	case c.regs.CR:
		if m.resetLeft != 0 {
			if m.resetLeft > 0 {
				m.resetLeft--
			}
			return c.cr | axidma.CRReset
		}
		return c.cr
	case c.regs.SR:
		m.progress(c)
		return c.sr
	case c.regs.Addr:
		return c.addr
	case c.regs.AddrMSB:
		return c.addrMSB
	}
	return c.length
}

func (m *Model) write(off, v uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, reg, ok := m.channelAt(off)
	if !ok {
		return
	}
	switch reg {
	case c.regs.CR:
		m.writeCR(c, v)
	case c.regs.SR:
		c.sr &^= v & (axidma.SRIOCIrq | 0x2000 | axidma.SRErrIrq) // write 1 to clear
	case c.regs.Addr:
		c.addr = v
	case c.regs.AddrMSB:
		c.addrMSB = v
	case c.regs.Length:
		c.length = v & (1<<m.cfg.LengthWidth - 1)
		m.start(c)
	}
}

func (m *Model) writeCR(c *channel, v uint32) {
	if v&axidma.CRReset != 0 {
		m.resets++
		m.hardReset()
		m.resetLeft = m.cfg.ResetReads
		if m.resetStuck {
			m.resetLeft = -1
		}
		return
	}
	if m.resetLeft != 0 {
		return // registers ignore writes while the reset runs
	}
	c.cr = v | 0x2
	switch {
	case v&axidma.CRRunStop != 0:
		c.sr &^= axidma.SRHalted
	case !c.busy:
		c.sr |= axidma.SRHalted
	}
}

// start begins the transfer a LENGTH write asks for.
func (m *Model) start(c *channel) {
	if c.sr&axidma.SRHalted != 0 || c.busy || m.resetLeft != 0 {
		return // ignored, as by the IP
	}
	c.sr &^= axidma.SRIdle
	c.busy, c.busyLeft, c.hang = true, m.cfg.BusyReads, false
	fault := c.next
	c.next = NoFault
	switch {
	case fault == Hang:
		c.hang = true
	case fault == SlaveError:
		m.fail(c, axidma.SRDMASlvErr)
	case fault == DecodeError:
		m.fail(c, axidma.SRDMADecErr)
	case fault == InternalError || c.length == 0:
		m.fail(c, axidma.SRDMAIntErr)
	}
	if c.busyLeft == 0 {
		m.progress(c)
	}
}

// progress completes the channel's transfer when its time has come.
func (m *Model) progress(c *channel) {
	if !c.busy || c.hang {
		return
	}
	if c.busyLeft > 0 {
		c.busyLeft--
		return
	}
	if c.dir == axidma.MM2S {
		m.runMM2S(c)
	} else {
		m.runS2MM(c)
	}
	// S2MM without data yet stays busy and retries at the next status read; an MM2S
	// packet may be what it was waiting for.
	if s := &m.ch[axidma.S2MM]; c.dir == axidma.MM2S && s.busy && !s.hang && s.busyLeft == 0 {
		m.runS2MM(s)
	}
}

func (m *Model) address(c *channel) uint64 {
	a := uint64(c.addr)
	if m.cfg.AddrWidth > 32 {
		a |= uint64(c.addrMSB) << 32
	}
	return a
}

func (m *Model) runMM2S(c *channel) {
	p := make([]byte, c.length)
	if err := m.mem.ReadPhys(p, m.address(c)); err != nil {
		m.fail(c, axidma.SRDMADecErr)
		return
	}
	if m.cfg.Sink != nil {
		if err := m.cfg.Sink(p); err != nil {
			m.fail(c, axidma.SRDMASlvErr)
			return
		}
	} else {
		m.loopback = append(m.loopback, p)
	}
	m.complete(c, len(p))
}

func (m *Model) runS2MM(c *channel) {
	var p []byte
	switch {
	case m.cfg.Source != nil:
		var ok bool
		if p, ok = m.cfg.Source(int(c.length)); !ok {
			return
		}
	case len(m.loopback) > 0:
		p = m.loopback[0]
		m.loopback = m.loopback[1:]
	default:
		return // no packet yet
	}
	n := min(len(p), int(c.length))
	if err := m.mem.WritePhys(p[:n], m.address(c)); err != nil {
		m.fail(c, axidma.SRDMADecErr)
		return
	}
	if len(p) > int(c.length) {
		// The packet did not fit: the model treats the missing TLAST as an internal
		// error, so drivers notice a buffer that is too small.
		m.fail(c, axidma.SRDMAIntErr)
		return
	}
	c.length = uint32(n) // LENGTH reads back the bytes received
	m.complete(c, n)
}

func (m *Model) complete(c *channel, n int) {
	c.busy = false
	c.sr |= axidma.SRIdle | axidma.SRIOCIrq
	c.transfers++
	c.bytes += int64(n)
}

// fail ends the transfer with error bits; the channel halts, as PG021 describes.
func (m *Model) fail(c *channel, bits uint32) {
	c.busy, c.hang = false, false
	c.sr |= bits | axidma.SRErrIrq | axidma.SRHalted
	c.cr &^= axidma.CRRunStop
	c.errors++
}
