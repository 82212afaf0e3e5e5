package dma

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
)

// SimMemory is simulated DDR: a byte array standing for the physical addresses
// [Base, Base+Size). Simulated IP models read and write it by physical address
// (ReadPhys, WritePhys, Slice); the SimAllocator carves driver buffers out of it.
//
// Like real DDR it has no locking: ordering between the CPU side and a model comes from
// the register accesses in between (a model reacts to a register write the driver made
// after filling the buffer).
type SimMemory struct {
	base uint64
	data []byte
}

// ErrOutsideMemory: a physical access falls outside the simulated DDR (on hardware, an
// AXI decode error).
var ErrOutsideMemory = errors.New("outside simulated DDR")

// DefaultSimBase is where simulated DDR starts by default: inside the PYNQ-Z2's 512 MB
// of DDR (0x0000_0000..0x1FFF_FFFF), where the CMA pool usually lives.
const DefaultSimBase = 0x1000_0000

// NewSimMemory returns size zeroed bytes of simulated DDR at physical address base.
func NewSimMemory(base uint64, size int) (*SimMemory, error) {
	if size <= 0 {
		return nil, fmt.Errorf("simulated DDR: size %d must be positive", size)
	}
	if base+uint64(size) < base {
		return nil, fmt.Errorf("simulated DDR 0x%X+0x%X wraps around the address space", base, size)
	}
	return &SimMemory{base: base, data: make([]byte, size)}, nil
}

// Base is the first physical address.
func (m *SimMemory) Base() uint64 { return m.base }

// Size is the number of bytes.
func (m *SimMemory) Size() int { return len(m.data) }

// Contains reports whether [phys, phys+n) lies inside the memory.
func (m *SimMemory) Contains(phys uint64, n int) bool {
	if n < 0 || phys < m.base {
		return false
	}
	off := phys - m.base
	return off <= uint64(len(m.data)) && uint64(n) <= uint64(len(m.data))-off
}

// Slice returns the n bytes at phys, aliasing the memory (writes through it are
// writes to DDR).
func (m *SimMemory) Slice(phys uint64, n int) ([]byte, error) {
	if !m.Contains(phys, n) {
		return nil, fmt.Errorf("access 0x%X+0x%X: %w 0x%X..0x%X", phys, n, ErrOutsideMemory, m.base, m.base+uint64(len(m.data))-1)
	}
	off := phys - m.base
	return m.data[off : off+uint64(n) : off+uint64(n)], nil
}

// ReadPhys copies len(p) bytes at phys into p.
func (m *SimMemory) ReadPhys(p []byte, phys uint64) error {
	s, err := m.Slice(phys, len(p))
	if err != nil {
		return err
	}
	copy(p, s)
	return nil
}

// WritePhys copies p to phys.
func (m *SimMemory) WritePhys(p []byte, phys uint64) error {
	s, err := m.Slice(phys, len(p))
	if err != nil {
		return err
	}
	copy(s, p)
	return nil
}

// SimConfig configures a SimAllocator.
type SimConfig struct {
	// Align is the start and size granule of buffers: a power of two, default 64 (the
	// Cortex-A9's 32-byte lines, and the engine's 64-bit words, with room to spare).
	Align int
	// WriteBack simulates a non-coherent write-back cache: Bytes is a CPU-side copy that
	// reaches DDR only at SyncForDevice, and DDR reaches it only at SyncForCPU. A driver
	// that forgets a sync then reads or sends stale data, as it would on the board. With
	// WriteBack false, Bytes aliases DDR directly (a coherent, uncached mapping).
	WriteBack bool
	// Base and Size restrict the allocator to part of the memory (a CMA pool inside
	// DDR); zero means all of it.
	Base uint64
	Size int
}

// SimAllocator hands out buffers carved from a SimMemory.
type SimAllocator struct {
	mem   *SimMemory
	pool  []byte // the part of mem.data the allocator hands out
	base  uint64 // physical address of pool[0]
	cfg   SimConfig
	arena *arena
	// counters over all buffers, for tests asserting the sync protocol
	toDevice, toCPU atomic.Int64
	syncedBytes     atomic.Int64 // bytes handed over either way (the board's cache maintenance)
	closed          atomic.Bool
}

// NewSimAllocator carves buffers out of mem (or the part cfg names).
func NewSimAllocator(mem *SimMemory, cfg SimConfig) (*SimAllocator, error) {
	if cfg.Align == 0 {
		cfg.Align = 64
	}
	if cfg.Base == 0 && cfg.Size == 0 {
		cfg.Base, cfg.Size = mem.base, len(mem.data)
	}
	pool, err := mem.Slice(cfg.Base, cfg.Size)
	if err != nil || cfg.Size <= 0 {
		return nil, fmt.Errorf("sim allocator: pool 0x%X+0x%X is not inside the simulated DDR 0x%X+0x%X", cfg.Base, cfg.Size, mem.base, len(mem.data))
	}
	if cfg.Align < 0 || cfg.Base%uint64(cfg.Align) != 0 {
		return nil, fmt.Errorf("sim allocator: alignment %d must be positive and divide the base 0x%X", cfg.Align, cfg.Base)
	}
	a, err := newArena(uint64(cfg.Size), uint64(cfg.Align))
	if err != nil {
		return nil, fmt.Errorf("sim allocator: %w", err)
	}
	return &SimAllocator{mem: mem, pool: pool, base: cfg.Base, cfg: cfg, arena: a}, nil
}

// Memory is the simulated DDR the buffers live in.
func (s *SimAllocator) Memory() *SimMemory { return s.mem }

// Alloc implements Allocator. New buffers are zeroed.
func (s *SimAllocator) Alloc(size int) (Buffer, error) {
	return s.AllocSim(size)
}

// AllocSim is Alloc returning the concrete type (for its sync counters).
func (s *SimAllocator) AllocSim(size int) (*SimBuffer, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sim allocator: %w", ErrClosed)
	}
	if size <= 0 {
		return nil, fmt.Errorf("sim allocator: buffer size %d must be positive", size)
	}
	off, ok := s.arena.alloc(uint64(size))
	if !ok {
		free, largest := s.arena.stats()
		return nil, &AllocError{Allocator: "sim", Size: size, Free: int64(free), Total: int64(len(s.pool)),
			Largest: int64(largest), Err: ErrNoMemory}
	}
	ddr := s.pool[off : off+uint64(size) : off+uint64(size)]
	clear(ddr)
	b := &SimBuffer{alloc: s, off: off, phys: s.base + off, ddr: ddr, cpu: ddr}
	if s.cfg.WriteBack {
		b.cpu = make([]byte, size)
	}
	return b, nil
}

// SyncCounts returns how many SyncForDevice and SyncForCPU calls all buffers got.
// SyncedBytes is how many bytes all syncs so far handed over, either way.
func (s *SimAllocator) SyncedBytes() int64 { return s.syncedBytes.Load() }

func (s *SimAllocator) SyncCounts() (forDevice, forCPU int) {
	return int(s.toDevice.Load()), int(s.toCPU.Load())
}

// Free returns the free bytes, the largest free block and the number of live buffers.
func (s *SimAllocator) Free() (free, largest int, live int) {
	f, l := s.arena.stats()
	return int(f), int(l), s.arena.inUse()
}

// Close implements Allocator. Later Allocs fail; live buffers stay usable.
func (s *SimAllocator) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("sim allocator: %w", ErrClosed)
	}
	return nil
}

// SimBuffer is a buffer in simulated DDR.
type SimBuffer struct {
	alloc           *SimAllocator
	off, phys       uint64
	ddr, cpu        []byte // the same slice unless the allocator simulates a cache
	toDevice, toCPU atomic.Int64
	closed          atomic.Bool
}

// Bytes implements Buffer.
func (b *SimBuffer) Bytes() []byte { return b.cpu }

// PhysAddr implements Buffer.
func (b *SimBuffer) PhysAddr() uint64 { return b.phys }

// Size implements Buffer.
func (b *SimBuffer) Size() int { return len(b.ddr) }

// SyncForDevice implements Buffer: with a simulated cache, the CPU copy is written back.
func (b *SimBuffer) SyncForDevice() error { return b.SyncRangeForDevice(0, len(b.ddr)) }

// SyncForCPU implements Buffer: with a simulated cache, the CPU copy is refetched.
func (b *SimBuffer) SyncForCPU() error { return b.SyncRangeForCPU(0, len(b.ddr)) }

// SyncRangeForDevice implements RangeSyncer: only those bytes are written back, so a
// range too short leaves the device reading stale data, as on the board.
func (b *SimBuffer) SyncRangeForDevice(off, n int) error {
	if b.closed.Load() {
		return fmt.Errorf("sync sim buffer 0x%X: %w", b.phys, ErrClosed)
	}
	b.toDevice.Add(1)
	b.alloc.toDevice.Add(1)
	b.alloc.syncedBytes.Add(int64(n))
	if b.alloc.cfg.WriteBack {
		b.mirror(b.ddr[off:off+n], b.cpu[off:off+n])
	}
	return nil
}

// SyncRangeForCPU implements RangeSyncer: only those bytes are refetched.
func (b *SimBuffer) SyncRangeForCPU(off, n int) error {
	if b.closed.Load() {
		return fmt.Errorf("sync sim buffer 0x%X: %w", b.phys, ErrClosed)
	}
	b.toCPU.Add(1)
	b.alloc.toCPU.Add(1)
	b.alloc.syncedBytes.Add(int64(n))
	if b.alloc.cfg.WriteBack {
		b.mirror(b.cpu[off:off+n], b.ddr[off:off+n])
	}
	return nil
}

// mirror copies src to dst for the simulated cache's write-back or refetch. It is a
// loop of this package, not the builtin copy (runtime.memmove), so that an instruction
// count of the board's work (scripts/board-cost.sh) leaves it with the simulation: on
// the board this is the kernel's cache maintenance, not the agent's instructions.
func (b *SimBuffer) mirror(dst, src []byte) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:]))
	}
	for ; i < len(src); i++ {
		dst[i] = src[i]
	}
}

// SyncCounts returns how many SyncForDevice and SyncForCPU calls this buffer got.
func (b *SimBuffer) SyncCounts() (forDevice, forCPU int) {
	return int(b.toDevice.Load()), int(b.toCPU.Load())
}

// Close implements Buffer; the block returns to the allocator for reuse.
func (b *SimBuffer) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("close sim buffer 0x%X: %w", b.phys, ErrClosed)
	}
	return b.alloc.arena.release(b.off)
}
