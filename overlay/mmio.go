package overlay

import (
	"errors"
	"fmt"
	"sync"
)

// Bus maps physical address windows. It is the seam between drivers and hardware: the
// board implements it over /dev/mem (DevMem), the FPGA simulation in process, and
// CheckedBus restricts any Bus to the ranges a .hwh declares.
type Bus interface {
	// Map returns a window of size bytes at physical address phys. phys and size must
	// be multiples of 4.
	Map(phys uint64, size int) (Region, error)
}

// Region is a mapped window of 32-bit registers. Offsets are bytes from the start of
// the window. An offset that is not a multiple of 4 or lies outside the window is a
// programming error in the driver and panics with an *AccessError, like an index out of
// range; hardware has no error path either (a bad access is a bus fault).
type Region interface {
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
	// Size is the window's length in bytes.
	Size() int
	// Close unmaps the window; the Region must not be used afterwards.
	Close() error
}

// Errors of the bus layer, for errors.Is.
var (
	ErrUnaligned     = errors.New("address or size is not a multiple of 4")
	ErrOutsideDesign = errors.New("outside the design's address map")
	ErrClosed        = errors.New("region is closed")
)

// AccessError is the panic value of a bad Region access.
type AccessError struct {
	Off  uint32
	Size int
	Err  error
}

func (e *AccessError) Error() string {
	return fmt.Sprintf("register access at offset 0x%X of a 0x%X-byte region: %v", e.Off, e.Size, e.Err)
}

func (e *AccessError) Unwrap() error { return e.Err }

var errOutOfRange = errors.New("offset outside the region")

// checkOffset panics with an *AccessError unless off addresses a whole word in size bytes.
func checkOffset(off uint32, size int) {
	if off%4 != 0 {
		panic(&AccessError{Off: off, Size: size, Err: ErrUnaligned})
	}
	if uint64(off)+4 > uint64(size) {
		panic(&AccessError{Off: off, Size: size, Err: errOutOfRange})
	}
}

// checkWindow validates a Map request.
func checkWindow(phys uint64, size int) error {
	if size <= 0 {
		return fmt.Errorf("map 0x%X: size %d must be positive", phys, size)
	}
	if phys%4 != 0 || size%4 != 0 {
		return fmt.Errorf("map 0x%X+0x%X: %w", phys, size, ErrUnaligned)
	}
	if phys+uint64(size) < phys {
		return fmt.Errorf("map 0x%X+0x%X: window wraps around the address space", phys, size)
	}
	return nil
}

// CheckedBus lets drivers map only windows inside the ranges a design declares, so a
// driver cannot touch what the loaded bitstream does not contain.
type CheckedBus struct {
	bus    Bus
	source string // where the ranges come from, for messages (the .hwh name)
	ranges []AddrRange
}

// NewCheckedBus wraps bus with the address map of d plus extra ranges (for PS blocks
// the .hwh does not list, such as SLCRRange for clock control).
func NewCheckedBus(bus Bus, d *Design, extra ...AddrRange) *CheckedBus {
	ranges := append(append([]AddrRange(nil), d.AddressMap...), extra...)
	return &CheckedBus{bus: bus, source: d.Name, ranges: ranges}
}

// Map maps the window if one declared range contains all of it.
func (c *CheckedBus) Map(phys uint64, size int) (Region, error) {
	if err := checkWindow(phys, size); err != nil {
		return nil, err
	}
	if _, ok := c.Find(phys, uint64(size)); !ok {
		return nil, fmt.Errorf("0x%X+0x%X is %w of %s (the design has no such slave; check the address against `pynqctl hwh info`)",
			phys, size, errOutsideEvery, c.source)
	}
	return c.bus.Map(phys, size)
}

// errOutsideEvery reads well inside the message and still matches ErrOutsideDesign.
var errOutsideEvery = &wordedErr{msg: "outside every address range", is: ErrOutsideDesign}

type wordedErr struct {
	msg string
	is  error
}

func (e *wordedErr) Error() string        { return e.msg }
func (e *wordedErr) Is(target error) bool { return target == e.is }

// Find returns the declared range holding [phys, phys+size).
func (c *CheckedBus) Find(phys, size uint64) (AddrRange, bool) {
	for _, r := range c.ranges {
		if r.Contains(phys, size) {
			return r, true
		}
	}
	return AddrRange{}, false
}

// Interrupter is implemented by a Region whose device has an interrupt line to the
// CPU: Interrupt returns a channel that is closed at the device's next interrupt.
// Drivers still read the status registers; the channel only ends a wait early, so a
// lost or spurious interrupt costs time, never a wrong answer. Regions mapped through
// /dev/mem have none (the published overlay leaves the engine's interrupt output
// unconnected); the simulation's devices have one.
type Interrupter interface {
	Interrupt() <-chan struct{}
}

// MemRegion is an in-memory register file: a Region backed by []uint32, for tests and as
// the base of simulated devices. It is safe for concurrent use.
type MemRegion struct {
	mu     sync.Mutex
	words  []uint32
	closed bool
	// OnWrite, when set, runs after every Write32 (without the lock held), so a test or
	// a device model can react to register writes.
	OnWrite func(off, v uint32)
	// OnRead, when set, supplies the value of a read instead of the stored word.
	OnRead func(off uint32, stored uint32) uint32

	irq chan struct{} // closed by Raise; nil until someone waits
}

// Interrupt implements Interrupter: the channel is closed at the next Raise.
func (m *MemRegion) Interrupt() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.irq == nil {
		m.irq = make(chan struct{})
	}
	return m.irq
}

// Raise signals an interrupt to everyone waiting on Interrupt (a device model calls it
// when its status changes).
func (m *MemRegion) Raise() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.irq != nil {
		close(m.irq)
		m.irq = nil
	}
}

// NewMemRegion returns a zeroed register file of size bytes (rounded up to a word).
func NewMemRegion(size int) *MemRegion {
	return &MemRegion{words: make([]uint32, (max(size, 0)+3)/4)}
}

// Read32 implements Region.
func (m *MemRegion) Read32(off uint32) uint32 {
	checkOffset(off, len(m.words)*4) // words never changes length: no lock needed
	m.mu.Lock()
	v := m.words[off/4]
	hook := m.OnRead
	m.mu.Unlock()
	if hook != nil {
		v = hook(off, v)
	}
	return v
}

// Write32 implements Region.
func (m *MemRegion) Write32(off, v uint32) {
	checkOffset(off, len(m.words)*4) // words never changes length: no lock needed
	m.mu.Lock()
	m.words[off/4] = v
	hook := m.OnWrite
	m.mu.Unlock()
	if hook != nil {
		hook(off, v)
	}
}

// Peek reads a word without running OnRead (a test's view of the register).
func (m *MemRegion) Peek(off uint32) uint32 {
	checkOffset(off, len(m.words)*4)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.words[off/4]
}

// Poke stores a word without running OnWrite (hardware changing a status register).
func (m *MemRegion) Poke(off, v uint32) {
	checkOffset(off, len(m.words)*4)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.words[off/4] = v
}

// Size implements Region.
func (m *MemRegion) Size() int { return len(m.words) * 4 }

// Close implements Region; the register file stays readable through Peek.
func (m *MemRegion) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Closed reports whether Close was called.
func (m *MemRegion) Closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// MemBus is a Bus over MemRegions placed at physical addresses, for tests. Mapping a
// window returns a view into the region holding it, so two mappings share registers.
type MemBus struct {
	mu      sync.Mutex
	devices []memDevice
}

type memDevice struct {
	base uint64
	mem  *MemRegion
}

// Add places r at physical address base.
func (b *MemBus) Add(base uint64, r *MemRegion) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.devices = append(b.devices, memDevice{base: base, mem: r})
}

// Map implements Bus.
func (b *MemBus) Map(phys uint64, size int) (Region, error) {
	if err := checkWindow(phys, size); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range b.devices {
		r := AddrRange{Base: d.base, High: d.base + uint64(d.mem.Size()) - 1}
		if r.Contains(phys, uint64(size)) {
			return &subRegion{mem: d.mem, off: uint32(phys - d.base), size: size}, nil
		}
	}
	return nil, fmt.Errorf("map 0x%X+0x%X: nothing is mapped there on this bus", phys, size)
}

// subRegion is a window into a MemRegion.
type subRegion struct {
	mem    *MemRegion
	off    uint32
	size   int
	closed bool
}

func (s *subRegion) Read32(off uint32) uint32 {
	checkOffset(off, s.size)
	return s.mem.Read32(s.off + off)
}

func (s *subRegion) Write32(off, v uint32) {
	checkOffset(off, s.size)
	s.mem.Write32(s.off+off, v)
}

func (s *subRegion) Size() int { return s.size }

func (s *subRegion) Close() error {
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	return nil
}
