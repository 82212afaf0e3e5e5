package dma

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// UdmabufConfig locates one u-dma-buf region (https://github.com/ikwzm/udmabuf).
type UdmabufConfig struct {
	// Name is the device name, default "udmabuf0".
	Name string
	// DevDir holds the device node, default "/dev".
	DevDir string
	// SysClassDir holds the attribute directories, default "/sys/class/u-dma-buf",
	// falling back to "/sys/class/udmabuf" (the driver's name before v2).
	SysClassDir string
	// Align is the start and size granule of sub-buffers, a power of two; default 64
	// (a multiple of the cache line, so syncing one buffer never touches another).
	Align int
	// Uncached opens the device with O_SYNC: the driver maps the region without CPU
	// cache (sync_mode 1) and the Sync methods do nothing.
	Uncached bool
}

func (c *UdmabufConfig) defaults() {
	if c.Name == "" {
		c.Name = "udmabuf0"
	}
	if c.DevDir == "" {
		c.DevDir = "/dev"
	}
	if c.Align == 0 {
		c.Align = 64
	}
}

// udmabufClassDirs are the sysfs class names of the driver, newest first.
var udmabufClassDirs = []string{"/sys/class/u-dma-buf", "/sys/class/udmabuf"}

// UdmabufAllocator carves buffers out of one u-dma-buf region.
type UdmabufAllocator struct {
	name     string
	attrDir  string // sysfs directory of the device
	phys     uint64
	mem      []byte // the whole region, mapped
	coherent bool   // dma_coherent = 1, or opened uncached: no cache maintenance
	arena    *arena
	unmap    func([]byte) error
	syncMu   sync.Mutex // sync_offset/sync_size/sync_direction + trigger is one transaction
	closed   atomic.Bool
}

// sync_direction values (the kernel's enum dma_data_direction).
const (
	udmabufToDevice   = 1
	udmabufFromDevice = 2
)

// OpenUdmabuf maps the region and reads its physical address and size.
func OpenUdmabuf(cfg UdmabufConfig) (*UdmabufAllocator, error) {
	cfg.defaults()
	attrDir, err := findUdmabufAttrs(cfg)
	if err != nil {
		return nil, err
	}
	phys, err := readSysUint(filepath.Join(attrDir, "phys_addr"), 16)
	if err != nil {
		return nil, err
	}
	size, err := readSysUint(filepath.Join(attrDir, "size"), 10)
	if err != nil {
		return nil, err
	}
	if size == 0 || size >= 1<<31 { // int is 32 bits on the board
		return nil, fmt.Errorf("u-dma-buf %s: size %d is not usable", cfg.Name, size)
	}
	coherent := cfg.Uncached
	if v, err := readSysUint(filepath.Join(attrDir, "dma_coherent"), 10); err == nil && v != 0 {
		coherent = true
	}
	if phys%uint64(max(cfg.Align, 1)) != 0 {
		return nil, fmt.Errorf("u-dma-buf %s: physical address 0x%X is not aligned to %d", cfg.Name, phys, cfg.Align)
	}
	a, err := newArena(size, uint64(cfg.Align))
	if err != nil {
		return nil, fmt.Errorf("u-dma-buf %s: %w", cfg.Name, err)
	}
	dev := filepath.Join(cfg.DevDir, cfg.Name)
	mem, unmap, err := mapDevice(dev, int(size), cfg.Uncached)
	if err != nil {
		return nil, fmt.Errorf("u-dma-buf: map %s: %w%s", dev, err, permissionHint(err))
	}
	return &UdmabufAllocator{name: cfg.Name, attrDir: attrDir, phys: phys, mem: mem, coherent: coherent,
		arena: a, unmap: unmap}, nil
}

// findUdmabufAttrs returns the sysfs directory of the device.
func findUdmabufAttrs(cfg UdmabufConfig) (string, error) {
	dirs := udmabufClassDirs
	if cfg.SysClassDir != "" {
		dirs = []string{cfg.SysClassDir}
	}
	for _, d := range dirs {
		p := filepath.Join(d, cfg.Name)
		if _, err := os.Stat(filepath.Join(p, "phys_addr")); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("u-dma-buf %s: no phys_addr under %s: %w (load the u-dma-buf module with e.g. udmabuf0=16777216, or use the zocl allocator)",
		cfg.Name, strings.Join(dirs, " or "), ErrNotSupported)
}

// readSysUint reads a number from a sysfs attribute; base 16 accepts an optional 0x.
func readSysUint(path string, base int) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %w", err)
	}
	s := strings.TrimSpace(string(b))
	if base == 16 {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	}
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a base-%d number", path, strings.TrimSpace(string(b)), base)
	}
	return v, nil
}

func writeSysAttr(path string, v uint64) error {
	// sysfs takes the whole value in one write; O_TRUNC is harmless there and keeps the
	// fake trees in tests readable.
	if err := os.WriteFile(path, []byte(strconv.FormatUint(v, 10)), 0o644); err != nil {
		return fmt.Errorf("write %w%s", err, permissionHint(err))
	}
	return nil
}

func permissionHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return " (run as root, or grant access with a udev rule)"
	}
	return ""
}

// PhysAddr is the physical address of the whole region.
func (u *UdmabufAllocator) PhysAddr() uint64 { return u.phys }

// Size is the region's size in bytes.
func (u *UdmabufAllocator) Size() int { return len(u.mem) }

// Coherent reports whether the Sync methods skip cache maintenance (dma_coherent, or
// opened uncached).
func (u *UdmabufAllocator) Coherent() bool { return u.coherent }

// Alloc implements Allocator with first-fit over the region.
func (u *UdmabufAllocator) Alloc(size int) (Buffer, error) {
	if u.closed.Load() {
		return nil, fmt.Errorf("u-dma-buf %s: %w", u.name, ErrClosed)
	}
	if size <= 0 {
		return nil, fmt.Errorf("u-dma-buf %s: buffer size %d must be positive", u.name, size)
	}
	off, ok := u.arena.alloc(uint64(size))
	if !ok {
		free, largest := u.arena.stats()
		return nil, &AllocError{Allocator: "u-dma-buf " + u.name, Size: size, Free: int64(free),
			Total: int64(len(u.mem)), Largest: int64(largest), Err: ErrNoMemory}
	}
	return &udmabufBuffer{u: u, off: off, data: u.mem[off : off+uint64(size) : off+uint64(size)]}, nil
}

// Close unmaps the region. Every buffer must be closed first: their memory goes away.
func (u *UdmabufAllocator) Close() error {
	if u.closed.Swap(true) {
		return fmt.Errorf("u-dma-buf %s: %w", u.name, ErrClosed)
	}
	if n := u.arena.inUse(); n > 0 {
		return fmt.Errorf("u-dma-buf %s: %d buffers still open; close them before the allocator", u.name, n)
	}
	mem := u.mem
	u.mem = nil
	if err := u.unmap(mem); err != nil {
		return fmt.Errorf("u-dma-buf %s: unmap: %w", u.name, err)
	}
	return nil
}

// sync runs one cache maintenance transaction on [off, off+n) of the region.
func (u *UdmabufAllocator) sync(off uint64, n int, dir uint64, trigger string) error {
	if u.coherent {
		return nil
	}
	u.syncMu.Lock()
	defer u.syncMu.Unlock()
	for _, w := range []struct {
		attr string
		v    uint64
	}{{"sync_offset", off}, {"sync_size", uint64(n)}, {"sync_direction", dir}, {trigger, 1}} {
		if err := writeSysAttr(filepath.Join(u.attrDir, w.attr), w.v); err != nil {
			return fmt.Errorf("u-dma-buf %s: %s: %w", u.name, trigger, err)
		}
	}
	return nil
}

type udmabufBuffer struct {
	u      *UdmabufAllocator
	off    uint64
	data   []byte
	closed atomic.Bool
}

func (b *udmabufBuffer) Bytes() []byte    { return b.data }
func (b *udmabufBuffer) PhysAddr() uint64 { return b.u.phys + b.off }
func (b *udmabufBuffer) Size() int        { return len(b.data) }

func (b *udmabufBuffer) SyncForDevice() error { return b.SyncRangeForDevice(0, len(b.data)) }
func (b *udmabufBuffer) SyncForCPU() error    { return b.SyncRangeForCPU(0, len(b.data)) }

func (b *udmabufBuffer) SyncRangeForDevice(off, n int) error {
	if b.closed.Load() {
		return fmt.Errorf("sync u-dma-buf buffer 0x%X: %w", b.PhysAddr(), ErrClosed)
	}
	return b.u.sync(b.off+uint64(off), n, udmabufToDevice, "sync_for_device")
}

func (b *udmabufBuffer) SyncRangeForCPU(off, n int) error {
	if b.closed.Load() {
		return fmt.Errorf("sync u-dma-buf buffer 0x%X: %w", b.PhysAddr(), ErrClosed)
	}
	return b.u.sync(b.off+uint64(off), n, udmabufFromDevice, "sync_for_cpu")
}

func (b *udmabufBuffer) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("close u-dma-buf buffer 0x%X: %w", b.PhysAddr(), ErrClosed)
	}
	return b.u.arena.release(b.off)
}
