package dma

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleMeminfo = `MemTotal:         505856 kB
MemFree:          301232 kB
CmaTotal:         131072 kB
CmaFree:          126976 kB
HugePages_Total:       0
`

func TestReadCMAInfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte(sampleMeminfo), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCMAInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := (CMAInfo{Total: 128 << 20, Free: 124 << 20}); got != want {
		t.Errorf("ReadCMAInfo = %+v, want %+v", got, want)
	}
	if _, err := ReadCMAInfo(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestParseCMAInfoErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"MemTotal: 1 kB\n", "no CmaTotal/CmaFree"},
		{"CmaTotal: 1 kB\n", "no CmaTotal/CmaFree"},
		{"CmaTotal:\nCmaFree: 1 kB\n", "m:1: CmaTotal has no value"},
		{"CmaTotal: 1 kB\nCmaFree: lots kB\n", `m:2: CmaFree value "lots" is not a size`},
		{"CmaTotal: -4 kB\nCmaFree: 1 kB\n", `m:1: CmaTotal value "-4"`},
		{"CmaTotal: 99999999999999999 kB\nCmaFree: 1 kB\n", "is not a size"},
	} {
		_, err := parseCMAInfo(strings.NewReader(c.in), "m")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse %q: %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzParseCMAInfo(f *testing.F) {
	f.Add([]byte(sampleMeminfo))
	f.Add([]byte("CmaTotal: 1\nCmaFree: 2 kB"))
	f.Add([]byte("CmaTotal: x kB\n"))
	f.Add([]byte{0, ':', 0xFF, '\n'})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseCMAInfo(bytes.NewReader(b), "fuzz")
		if err == nil && (info.Total < 0 || info.Free < 0) {
			t.Fatalf("no error but negative sizes: %+v", info)
		}
	})
}

func TestAllocErrorMessage(t *testing.T) {
	e := &AllocError{Allocator: "zocl", Size: 8 << 20, Free: 3 << 20, Total: 128 << 20, Largest: -1, Err: ErrNoMemory}
	msg := e.Error()
	for _, want := range []string{"zocl: allocate 8.0 MiB (8388608 bytes)", "3.0 MiB (3145728 bytes) free of 128.0 MiB", "cma="} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !errors.Is(e, ErrNoMemory) {
		t.Error("AllocError does not match ErrNoMemory")
	}
	unknown := (&AllocError{Allocator: "zocl", Size: 100, Free: -1, Total: -1, Largest: -1, Err: errors.New("boom")}).Error()
	if strings.Contains(unknown, "free") && !strings.Contains(unknown, "free buffers") {
		t.Errorf("unknown pool state printed: %q", unknown)
	}
}

func TestArena(t *testing.T) {
	a, err := newArena(1024, 64)
	if err != nil {
		t.Fatal(err)
	}
	off1, ok1 := a.alloc(1)   // 0..63
	off2, ok2 := a.alloc(100) // 64..191
	off3, ok3 := a.alloc(64)  // 192..255
	if !ok1 || !ok2 || !ok3 || off1 != 0 || off2 != 64 || off3 != 192 {
		t.Fatalf("offsets %d %d %d (%v %v %v), want 0 64 192", off1, off2, off3, ok1, ok2, ok3)
	}
	if free, largest := a.stats(); free != 768 || largest != 768 {
		t.Errorf("stats = %d, %d; want 768, 768", free, largest)
	}
	if _, ok := a.alloc(769); ok {
		t.Error("allocated more than is free")
	}
	// Free the middle block: a hole of 128 that a small request reuses first-fit.
	if err := a.release(off2); err != nil {
		t.Fatal(err)
	}
	if off, _ := a.alloc(128); off != 64 {
		t.Errorf("hole not reused: got offset %d, want 64", off)
	}
	if err := a.release(off2); err != nil {
		t.Fatal(err)
	}
	if err := a.release(off2); !errors.Is(err, ErrClosed) {
		t.Errorf("double release: %v, want ErrClosed", err)
	}
	// Freeing everything merges back into one block.
	a.release(off1)
	a.release(off3)
	if free, largest := a.stats(); free != 1024 || largest != 1024 || len(a.free) != 1 || a.inUse() != 0 {
		t.Errorf("after freeing all: free %d largest %d blocks %d used %d", free, largest, len(a.free), a.inUse())
	}
	if _, err := newArena(1024, 48); err == nil {
		t.Error("alignment 48 accepted")
	}
	if _, ok := a.alloc(^uint64(0) - 10); ok {
		t.Error("overflowing request succeeded")
	}
}

func TestSimMemory(t *testing.T) {
	m, err := NewSimMemory(DefaultSimBase, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WritePhys([]byte{1, 2, 3}, DefaultSimBase+10); err != nil {
		t.Fatal(err)
	}
	s, err := m.Slice(DefaultSimBase+10, 3)
	if err != nil || !bytes.Equal(s, []byte{1, 2, 3}) {
		t.Fatalf("Slice = %v, %v", s, err)
	}
	got := make([]byte, 3)
	if err := m.ReadPhys(got, DefaultSimBase+10); err != nil || !bytes.Equal(got, s) {
		t.Fatalf("ReadPhys = %v, %v", got, err)
	}
	for _, c := range []struct {
		phys uint64
		n    int
	}{{DefaultSimBase - 1, 1}, {DefaultSimBase + 4095, 2}, {DefaultSimBase + 4096, 1}, {0, 1}, {DefaultSimBase, -1}, {^uint64(0), 2}} {
		if _, err := m.Slice(c.phys, c.n); !errors.Is(err, ErrOutsideMemory) {
			t.Errorf("Slice(0x%X, %d) = %v, want ErrOutsideMemory", c.phys, c.n, err)
		}
	}
	if _, err := m.Slice(DefaultSimBase+4096, 0); err != nil {
		t.Errorf("empty slice at the end: %v", err)
	}
	if _, err := NewSimMemory(^uint64(0)-10, 100); err == nil {
		t.Error("wrapping memory accepted")
	}
}

func newSim(tb testing.TB, size int, cfg SimConfig) *SimAllocator {
	tb.Helper()
	m, err := NewSimMemory(DefaultSimBase, size)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := NewSimAllocator(m, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// TestSimAllocatorPhysView checks the point of the simulated allocator: a model that
// reads DDR at the buffer's physical address sees what the driver wrote.
func TestSimAllocatorPhysView(t *testing.T) {
	a := newSim(t, 1<<16, SimConfig{})
	b1, err := a.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := a.Alloc(10)
	if err != nil {
		t.Fatal(err)
	}
	if b1.PhysAddr() != DefaultSimBase || b2.PhysAddr() != DefaultSimBase+128 || b1.Size() != 100 || len(b1.Bytes()) != 100 {
		t.Fatalf("b1 at 0x%X size %d, b2 at 0x%X", b1.PhysAddr(), b1.Size(), b2.PhysAddr())
	}
	copy(b2.Bytes(), "chair")
	got := make([]byte, 5)
	a.Memory().ReadPhys(got, b2.PhysAddr())
	if string(got) != "chair" {
		t.Errorf("DDR at the buffer's address holds %q", got)
	}
	a.Memory().WritePhys([]byte("dog"), b1.PhysAddr()+1)
	if string(b1.Bytes()[1:4]) != "dog" {
		t.Errorf("buffer does not see the model's write: %q", b1.Bytes()[:4])
	}
}

func TestSimAllocatorReuseAndExhaustion(t *testing.T) {
	a := newSim(t, 4096, SimConfig{Align: 256})
	var bufs []Buffer
	for range 16 {
		b, err := a.Alloc(200)
		if err != nil {
			t.Fatal(err)
		}
		if b.PhysAddr()%256 != 0 {
			t.Errorf("buffer at 0x%X is not 256-aligned", b.PhysAddr())
		}
		b.Bytes()[0] = 0xAA
		bufs = append(bufs, b)
	}
	_, err := a.Alloc(1)
	var ae *AllocError
	if !errors.As(err, &ae) || !errors.Is(err, ErrNoMemory) || ae.Free != 0 || ae.Total != 4096 || ae.Size != 1 {
		t.Fatalf("exhausted: %v", err)
	}
	phys := bufs[5].PhysAddr()
	if err := bufs[5].Close(); err != nil {
		t.Fatal(err)
	}
	if err := bufs[5].Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("double close: %v", err)
	}
	if err := bufs[5].SyncForDevice(); !errors.Is(err, ErrClosed) {
		t.Errorf("sync after close: %v", err)
	}
	b, err := a.Alloc(256)
	if err != nil || b.PhysAddr() != phys || b.Bytes()[0] != 0 {
		t.Fatalf("reuse: %v at 0x%X (want 0x%X), first byte %d (want zeroed)", err, b.PhysAddr(), phys, b.Bytes()[0])
	}
	_, err = a.Alloc(257)
	if !errors.As(err, &ae) || ae.Largest != 0 {
		t.Errorf("fragmented: %v", err)
	}
	if _, err := a.Alloc(0); err == nil {
		t.Error("zero-size buffer allocated")
	}
	a.Close()
	if _, err := a.Alloc(1); !errors.Is(err, ErrClosed) {
		t.Errorf("alloc after close: %v", err)
	}
	if _, err := NewSimAllocator(a.Memory(), SimConfig{Align: 3}); err == nil {
		t.Error("alignment 3 accepted")
	}
}

// TestSimWriteBack checks the simulated cache: data crosses between CPU and device only
// through the sync calls, which the counters record.
func TestSimWriteBack(t *testing.T) {
	a := newSim(t, 4096, SimConfig{WriteBack: true})
	buf, err := a.AllocSim(64)
	if err != nil {
		t.Fatal(err)
	}
	ddr, _ := a.Memory().Slice(buf.PhysAddr(), 64)
	copy(buf.Bytes(), "frame")
	if ddr[0] != 0 {
		t.Fatal("CPU write reached DDR without SyncForDevice")
	}
	buf.SyncForDevice()
	if string(ddr[:5]) != "frame" {
		t.Fatalf("after SyncForDevice DDR holds %q", ddr[:5])
	}
	copy(ddr, "boxes")
	if string(buf.Bytes()[:5]) != "frame" {
		t.Fatal("device write visible to the CPU without SyncForCPU")
	}
	buf.SyncForCPU()
	if string(buf.Bytes()[:5]) != "boxes" {
		t.Fatalf("after SyncForCPU the CPU sees %q", buf.Bytes()[:5])
	}
	if d, c := buf.SyncCounts(); d != 1 || c != 1 {
		t.Errorf("buffer counts %d, %d; want 1, 1", d, c)
	}
	if d, c := a.SyncCounts(); d != 1 || c != 1 {
		t.Errorf("allocator counts %d, %d; want 1, 1", d, c)
	}
	if free, largest, live := a.Free(); free != 4096-64 || largest != 4096-64 || live != 1 {
		t.Errorf("Free = %d, %d, %d", free, largest, live)
	}
}

func TestSimAllocatorPool(t *testing.T) {
	m, _ := NewSimMemory(0x1000_0000, 1<<16)
	a, err := NewSimAllocator(m, SimConfig{Base: 0x1000_8000, Size: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Alloc(0x1000)
	if err != nil || b.PhysAddr() != 0x1000_8000 {
		t.Fatalf("pool buffer: %v at 0x%X", err, b.PhysAddr())
	}
	copy(b.Bytes(), "pool")
	if s, _ := m.Slice(0x1000_8000, 4); string(s) != "pool" {
		t.Errorf("DDR at the pool holds %q", s)
	}
	if _, err := a.Alloc(1); !errors.Is(err, ErrNoMemory) || !strings.Contains(err.Error(), "of 4.0 KiB") {
		t.Errorf("pool exhausted: %v", err)
	}
	for _, cfg := range []SimConfig{{Base: 0x1000_F000, Size: 0x2000}, {Base: 0x0F00_0000, Size: 16}, {Base: 0x1000_0020, Size: 64}} {
		if _, err := NewSimAllocator(m, cfg); err == nil {
			t.Errorf("pool %+v accepted", cfg)
		}
	}
}

// A range sync moves only its bytes through the simulated cache: a range too short
// leaves the rest stale, as on the board.
func TestSimRangeSync(t *testing.T) {
	a := newSim(t, 4096, SimConfig{WriteBack: true})
	buf, err := a.AllocSim(256)
	if err != nil {
		t.Fatal(err)
	}
	ddr, _ := a.Memory().Slice(buf.PhysAddr(), 256)
	copy(buf.Bytes(), "0123456789")
	if err := SyncRangeForDevice(buf, 2, 3); err != nil {
		t.Fatal(err)
	}
	if string(ddr[:6]) != "\x00\x00234\x00" {
		t.Errorf("DDR after syncing bytes 2..4: %q", ddr[:6])
	}
	copy(ddr[100:], "device")
	if err := SyncRangeForCPU(buf, 100, 3); err != nil {
		t.Fatal(err)
	}
	if got := string(buf.Bytes()[100:106]); got != "dev\x00\x00\x00" {
		t.Errorf("CPU after refetching bytes 100..102: %q", got)
	}
	if a.SyncedBytes() != 6 {
		t.Errorf("synced bytes %d, want 6", a.SyncedBytes())
	}
	if err := SyncRangeForDevice(buf, 250, 10); err == nil {
		t.Error("a range past the end was synced")
	}
}
