package dma

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// fakeUdmabuf builds a sysfs tree and a regular file standing in for /dev/udmabuf0
// (mmap of a regular file behaves like the device's mapping for these tests).
type fakeUdmabuf struct {
	root, sys, dev string
}

func newFakeUdmabuf(tb testing.TB, class, phys, size, coherent string) *fakeUdmabuf {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("u-dma-buf maps with Linux mmap")
	}
	root := tb.TempDir()
	f := &fakeUdmabuf{root: root, sys: filepath.Join(root, "sys", "class", class), dev: filepath.Join(root, "dev")}
	attrs := filepath.Join(f.sys, "udmabuf0")
	for _, d := range []string{attrs, f.dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for name, v := range map[string]string{"phys_addr": phys, "size": size, "dma_coherent": coherent, "sync_mode": "1",
		"sync_offset": "0", "sync_size": "0", "sync_direction": "0", "sync_for_cpu": "0", "sync_for_device": "0"} {
		if err := os.WriteFile(filepath.Join(attrs, name), []byte(v+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.dev, "udmabuf0"), make([]byte, max(1<<16, fakeDevSize(size))), 0o644); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fakeUdmabuf) attr(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(f.sys, "udmabuf0", name))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (f *fakeUdmabuf) config() UdmabufConfig {
	return UdmabufConfig{DevDir: f.dev, SysClassDir: f.sys}
}

func TestUdmabufAllocator(t *testing.T) {
	f := newFakeUdmabuf(t, "u-dma-buf", "0x3c000000", "65536", "0")
	u, err := OpenUdmabuf(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if u.PhysAddr() != 0x3C000000 || u.Size() != 65536 || u.Coherent() {
		t.Fatalf("region 0x%X size %d coherent %v", u.PhysAddr(), u.Size(), u.Coherent())
	}
	a, err := u.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	if a.PhysAddr() != 0x3C000000 || b.PhysAddr() != 0x3C000080 || b.Size() != 4096 {
		t.Fatalf("buffers at 0x%X, 0x%X", a.PhysAddr(), b.PhysAddr())
	}
	copy(b.Bytes(), "through the mapping")
	dev, _ := os.ReadFile(filepath.Join(f.dev, "udmabuf0"))
	if !bytes.HasPrefix(dev[0x80:], []byte("through the mapping")) {
		t.Error("write through Bytes did not reach the device file at the buffer's offset")
	}

	if err := b.SyncForDevice(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sync_offset": "128", "sync_size": "4096", "sync_direction": "1", "sync_for_device": "1", "sync_for_cpu": "0"} {
		if got := f.attr(t, name); got != want {
			t.Errorf("after SyncForDevice %s = %q, want %q", name, got, want)
		}
	}
	// A range: the buffer's offset in the region plus the range's.
	if err := SyncRangeForDevice(b, 192, 384); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sync_offset": "320", "sync_size": "384", "sync_direction": "1"} {
		if got := f.attr(t, name); got != want {
			t.Errorf("after SyncRangeForDevice %s = %q, want %q", name, got, want)
		}
	}
	if err := SyncRangeForCPU(b, 4000, 200); err == nil {
		t.Error("a range past the buffer's end was synced")
	}
	if err := a.SyncForCPU(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sync_offset": "0", "sync_size": "100", "sync_direction": "2", "sync_for_cpu": "1"} {
		if got := f.attr(t, name); got != want {
			t.Errorf("after SyncForCPU %s = %q, want %q", name, got, want)
		}
	}

	_, err = u.Alloc(65536)
	var ae *AllocError
	if !errors.As(err, &ae) || ae.Total != 65536 || ae.Free != 65536-128-4096 || !strings.Contains(err.Error(), "u-dma-buf udmabuf0") {
		t.Errorf("too large: %v", err)
	}
	if err := u.Close(); err == nil || !strings.Contains(err.Error(), "2 buffers still open") {
		t.Errorf("Close with live buffers: %v", err)
	}
	a.Close()
	b.Close()
	u2, err := OpenUdmabuf(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := u2.Alloc(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v", err)
	}
}

func TestUdmabufCoherentSkipsSync(t *testing.T) {
	f := newFakeUdmabuf(t, "udmabuf", "3c000000", "4096", "1")
	cfg := f.config()
	cfg.SysClassDir = ""
	saved := udmabufClassDirs
	udmabufClassDirs = []string{filepath.Join(f.root, "sys/class/u-dma-buf"), f.sys} // the old class name is the fallback
	t.Cleanup(func() { udmabufClassDirs = saved })
	u, err := OpenUdmabuf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := u.Alloc(64)
	if err := b.SyncForDevice(); err != nil {
		t.Fatal(err)
	}
	if got := f.attr(t, "sync_for_device"); got != "0" || !u.Coherent() {
		t.Errorf("coherent region was synced (sync_for_device %q)", got)
	}
}

func TestUdmabufOpenErrors(t *testing.T) {
	f := newFakeUdmabuf(t, "u-dma-buf", "0x3c000000", "65536", "0")
	cfg := f.config()
	cfg.Name = "udmabuf7"
	if _, err := OpenUdmabuf(cfg); !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "load the u-dma-buf module") {
		t.Errorf("missing device: %v", err)
	}
	os.WriteFile(filepath.Join(f.sys, "udmabuf0", "phys_addr"), []byte("zz\n"), 0o644)
	if _, err := OpenUdmabuf(f.config()); err == nil || !strings.Contains(err.Error(), `"zz" is not a base-16 number`) {
		t.Errorf("bad phys_addr: %v", err)
	}
	os.WriteFile(filepath.Join(f.sys, "udmabuf0", "phys_addr"), []byte("0x3c000000\n"), 0o644)
	os.WriteFile(filepath.Join(f.sys, "udmabuf0", "size"), []byte("0\n"), 0o644)
	if _, err := OpenUdmabuf(f.config()); err == nil || !strings.Contains(err.Error(), "size 0") {
		t.Errorf("zero size: %v", err)
	}
	os.WriteFile(filepath.Join(f.sys, "udmabuf0", "size"), []byte("4096\n"), 0o644)
	os.Remove(filepath.Join(f.dev, "udmabuf0"))
	if _, err := OpenUdmabuf(f.config()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing device node: %v", err)
	}
}

// fakeDevSize is the byte count in a size attribute, 0 when it is not a number.
func fakeDevSize(size string) int {
	n, err := strconv.Atoi(size)
	if err != nil {
		return 0
	}
	return n
}

// TestUdmabufRealDevice runs where the u-dma-buf module is loaded.
func TestUdmabufRealDevice(t *testing.T) {
	u, err := OpenUdmabuf(UdmabufConfig{})
	if err != nil {
		t.Skipf("no usable u-dma-buf here (not shipped on PYNQ images; load the module to run this): %v", err)
	}
	defer u.Close()
	b, err := u.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Bytes()[100] = 42
	if err := b.SyncForDevice(); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncForCPU(); err != nil {
		t.Fatal(err)
	}
	if b.Bytes()[100] != 42 || b.PhysAddr() != u.PhysAddr() {
		t.Errorf("buffer at 0x%X reads %d", b.PhysAddr(), b.Bytes()[100])
	}
}
