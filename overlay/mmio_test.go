package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// mustPanicAccess runs f and checks it panics with an *AccessError wrapping want.
func mustPanicAccess(t *testing.T, want error, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		ae, ok := r.(*AccessError)
		if !ok {
			t.Fatalf("panic value %v (%T), want *AccessError", r, r)
		}
		if !errors.Is(ae, want) {
			t.Errorf("access error %v does not wrap %v", ae, want)
		}
	}()
	f()
}

func TestMemRegion(t *testing.T) {
	m := NewMemRegion(16)
	if m.Size() != 16 {
		t.Fatalf("Size = %d", m.Size())
	}
	var writes []string
	m.OnWrite = func(off, v uint32) { writes = append(writes, fmt.Sprintf("%X=%X", off, v)) }
	m.Write32(0xC, 0xDEADBEEF)
	if got := m.Read32(0xC); got != 0xDEADBEEF {
		t.Errorf("Read32 = %#x", got)
	}
	m.Poke(4, 7) // hardware-side change: no hook
	if got := m.Read32(4); got != 7 {
		t.Errorf("Read32 after Poke = %d", got)
	}
	if strings.Join(writes, ",") != "C=DEADBEEF" {
		t.Errorf("writes seen = %v", writes)
	}
	m.OnRead = func(off, stored uint32) uint32 { return stored + 1 }
	if got, peek := m.Read32(4), m.Peek(4); got != 8 || peek != 7 {
		t.Errorf("Read32 with hook = %d, Peek = %d", got, peek)
	}
	mustPanicAccess(t, ErrUnaligned, func() { m.Read32(2) })
	mustPanicAccess(t, errOutOfRange, func() { m.Write32(16, 1) })
	if err := m.Close(); err != nil || !m.Closed() {
		t.Errorf("Close = %v, Closed = %v", err, m.Closed())
	}
}

func TestMemBusSharesRegisters(t *testing.T) {
	var bus MemBus
	dev := NewMemRegion(0x1000)
	bus.Add(0x41200000, dev)
	a, err := bus.Map(0x41200000, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Map(0x41200100, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	a.Write32(0x104, 42)
	if got := b.Read32(4); got != 42 {
		t.Errorf("second mapping reads %d, want 42", got)
	}
	mustPanicAccess(t, errOutOfRange, func() { b.Read32(0x10) })
	if _, err := bus.Map(0x41201000, 4); err == nil {
		t.Error("Map past the device succeeded")
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func TestCheckedBus(t *testing.T) {
	d := &Design{Name: "W1A3-pynqZ1-Z2.hwh", AddressMap: []AddrRange{
		{Instance: "BlackBoxJam_0", Base: 0x43C00000, High: 0x43C0FFFF},
	}}
	var raw MemBus
	raw.Add(0x43C00000, NewMemRegion(0x10000))
	raw.Add(SLCRBase, NewMemRegion(slcrSize))
	bus := NewCheckedBus(&raw, d)

	if r, err := bus.Map(0x43C00000, 0x10000); err != nil || r.Size() != 0x10000 {
		t.Fatalf("Map(whole engine range) = %v, %v", r, err)
	}
	if _, err := bus.Map(0x43C0FF00, 0x100); err != nil {
		t.Errorf("Map(last 256 bytes) = %v", err)
	}
	for _, c := range []struct {
		phys uint64
		size int
		want string
		is   error
	}{
		{0x43C10000, 0x100, "0x43C10000+0x100 is outside every address range of W1A3-pynqZ1-Z2.hwh", ErrOutsideDesign},
		{0x43C0FF00, 0x104, "0x43C0FF00+0x104 is outside every address range", ErrOutsideDesign},
		{0x43BFFFFC, 8, "outside every address range", ErrOutsideDesign},
		{SLCRBase, 0x200, "outside every address range", ErrOutsideDesign},
		{0x43C00002, 4, "map 0x43C00002+0x4: address or size is not a multiple of 4", ErrUnaligned},
		{0x43C00000, 6, "not a multiple of 4", ErrUnaligned},
		{0x43C00000, 0, "size 0 must be positive", nil},
		{^uint64(0) - 3, 8, "wraps around", nil},
	} {
		_, err := bus.Map(c.phys, c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Map(0x%X, 0x%X) = %v, want %q", c.phys, c.size, err, c.want)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("Map(0x%X, 0x%X) error %v is not %v", c.phys, c.size, err, c.is)
		}
	}
	// Extra ranges open PS blocks the .hwh does not list.
	withSLCR := NewCheckedBus(&raw, d, SLCRRange)
	if _, err := withSLCR.Map(SLCRBase, slcrSize); err != nil {
		t.Errorf("Map(SLCR) with SLCRRange = %v", err)
	}
}

func TestCheckedBusRealDesign(t *testing.T) {
	d := loadReal(t)
	var raw MemBus
	raw.Add(0x43C00000, NewMemRegion(0x10000))
	bus := NewCheckedBus(&raw, d)
	if _, err := bus.Map(0x43C00000, 0x100); err != nil {
		t.Errorf("Map(engine registers) = %v", err)
	}
	_, err := bus.Map(0x43C10000, 0x100)
	if want := "0x43C10000+0x100 is outside every address range of W1A3-pynqZ1-Z2.hwh"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Map(beyond engine) = %v, want %q", err, want)
	}
}

// fakeView stands in for a pmem.View.
type fakeView struct {
	words  []uint32
	closed bool
}

func (v *fakeView) Uint32() []uint32 { return v.words }
func (v *fakeView) Close() error     { v.closed = true; return nil }

func withOpenPhys(t *testing.T, f func(base uint64, size int) (physView, error)) {
	t.Helper()
	old := openPhys
	openPhys = f
	t.Cleanup(func() { openPhys = old })
}

func TestDevMem(t *testing.T) {
	view := &fakeView{words: make([]uint32, 0x40)}
	var gotBase uint64
	var gotSize int
	withOpenPhys(t, func(base uint64, size int) (physView, error) {
		gotBase, gotSize = base, size
		return view, nil
	})
	r, err := DevMem{}.Map(0x41200000, 0x100)
	if err != nil {
		t.Fatal(err)
	}
	if gotBase != 0x41200000 || gotSize != 0x100 || r.Size() != 0x100 {
		t.Errorf("opened 0x%X+0x%X, region size 0x%X", gotBase, gotSize, r.Size())
	}
	r.Write32(0x8, 0x1234)
	if view.words[2] != 0x1234 || r.Read32(8) != 0x1234 {
		t.Errorf("write did not reach the mapping: %#x", view.words[2])
	}
	mustPanicAccess(t, errOutOfRange, func() { r.Read32(0x100) })
	mustPanicAccess(t, ErrUnaligned, func() { r.Write32(1, 0) })
	if err := r.Close(); err != nil || !view.closed {
		t.Errorf("Close = %v, view closed = %v", err, view.closed)
	}
	if err := r.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	if _, err := (DevMem{}).Map(0x41200001, 4); !errors.Is(err, ErrUnaligned) {
		t.Errorf("unaligned Map = %v", err)
	}
}

func TestDevMemErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		// pmem formats the open error with %v, so only the text survives.
		{errors.New("pmem: failed to open physical memory: open /dev/mem: permission denied"), "(run as root)"},
		{fmt.Errorf("open: %w", fs.ErrPermission), "(run as root)"},
		{errors.New("pmem: mapping at 0xf8000000 failed: operation not permitted"), "CONFIG_STRICT_DEVMEM"},
		{errors.New("pmem: physical memory mapping is not supported on this platform"), "use the simulation backend"},
	} {
		withOpenPhys(t, func(uint64, int) (physView, error) { return nil, c.err })
		_, err := DevMem{}.Map(0x43C00000, 0x10000)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "map 0x43C00000+0x10000 through /dev/mem: ") {
			t.Errorf("Map error = %v, want hint %q", err, c.want)
		}
	}
	withOpenPhys(t, func(uint64, int) (physView, error) { return &fakeView{words: make([]uint32, 1)}, nil })
	if _, err := (DevMem{}).Map(0, 8); err == nil {
		t.Error("Map accepted a short mapping")
	}
}

// TestMemRegionInterrupt checks that Raise ends every wait begun before it, and only
// those.
func TestMemRegionInterrupt(t *testing.T) {
	m := NewMemRegion(16)
	m.Raise() // nobody waits: nothing to do
	a, b := m.Interrupt(), m.Interrupt()
	select {
	case <-a:
		t.Fatal("interrupt before Raise")
	default:
	}
	m.Raise()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("a wait begun before Raise did not end")
		}
	}
	select {
	case <-m.Interrupt():
		t.Fatal("a wait begun after Raise ended")
	default:
	}
}
