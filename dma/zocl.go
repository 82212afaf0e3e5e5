package dma

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The XRT zocl driver's ioctls (XRT src/runtime_src/core/edge/include/zynq_ioctl.h) and
// the generic DRM ones it needs (linux include/uapi/drm/drm.h).
//
// Every argument is built as a byte array at the C offsets rather than as a Go struct:
// the C structs put their u64 fields on 8-byte boundaries on both amd64 and 32-bit ARM
// (AAPCS), but Go on GOARCH=arm aligns uint64 to 4, so a Go struct {uint32; uint64; ...}
// would be 4 bytes short there and the ioctl number (which encodes the size) would be
// wrong. Only DRM_IOCTL_VERSION, whose fields are C longs and pointers, is a Go struct,
// because its size does follow the word size.

// ioctl number encoding, identical on arm and amd64 (asm-generic/ioctl.h).
const (
	iocWrite = 1
	iocRead  = 2

	drmIoctlBase   = 'd'
	drmCommandBase = 0x40
)

func drmIOC(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | drmIoctlBase<<8 | nr
}

// zocl command indices (enum drm_zocl_ops) and argument sizes.
const (
	zoclCreateBO = 0
	zoclMapBO    = 3
	zoclSyncBO   = 4
	zoclInfoBO   = 5

	createBOSize = 16 // struct drm_zocl_create_bo { u64 size; u32 handle; u32 flags; }
	mapBOSize    = 16 // struct drm_zocl_map_bo { u32 handle; u32 pad; u64 offset; }
	syncBOSize   = 24 // struct drm_zocl_sync_bo { u32 handle; enum dir; u64 offset; u64 size; }
	infoBOSize   = 24 // struct drm_zocl_info_bo { u32 handle; u32 flags|pad; u64 size; u64 paddr; }
	gemCloseSize = 8  // struct drm_gem_close { u32 handle; u32 pad; }

	drmGemClose = 0x09
	drmVersion  = 0x00
)

// The request numbers.
var (
	ioctlZoclCreateBO = drmIOC(iocRead|iocWrite, drmCommandBase+zoclCreateBO, createBOSize) // 0xC0106440
	ioctlZoclMapBO    = drmIOC(iocRead|iocWrite, drmCommandBase+zoclMapBO, mapBOSize)       // 0xC0106443
	ioctlZoclSyncBO   = drmIOC(iocRead|iocWrite, drmCommandBase+zoclSyncBO, syncBOSize)     // 0xC0186444
	ioctlZoclInfoBO   = drmIOC(iocRead|iocWrite, drmCommandBase+zoclInfoBO, infoBOSize)     // 0xC0186445
	ioctlGemClose     = drmIOC(iocWrite, drmGemClose, gemCloseSize)                         // 0x40086409
	ioctlVersion      = drmIOC(iocRead|iocWrite, drmVersion, unsafe.Sizeof(drmVersionArg{}))
)

// Buffer object flags: bits 0..15 are the memory bank index, the rest zocl's
// ZOCL_BO_FLAGS_*. PYNQ passes the bank and, for cacheable buffers, CACHEABLE; zocl adds
// CMA itself for a CMA bank (or for an unknown bank) and COHERENT when not cacheable.
const (
	zoclFlagCacheable = 1 << 24
	zoclBankMask      = 0xFFFF
)

// Sync directions (enum drm_zocl_sync_bo_dir).
const (
	zoclSyncToDevice   = 0
	zoclSyncFromDevice = 1
)

var ne = binary.NativeEndian

func encodeCreateBO(size uint64, flags uint32) (a [createBOSize]byte) {
	ne.PutUint64(a[0:], size)
	ne.PutUint32(a[8:], 0xFFFFFFFF) // handle, filled in by the driver
	ne.PutUint32(a[12:], flags)
	return a
}

func decodeCreateBO(a *[createBOSize]byte) (handle uint32) { return ne.Uint32(a[8:]) }

func encodeMapBO(handle uint32) (a [mapBOSize]byte) {
	ne.PutUint32(a[0:], handle)
	return a
}

func decodeMapBO(a *[mapBOSize]byte) (offset uint64) { return ne.Uint64(a[8:]) }

func encodeInfoBO(handle uint32) (a [infoBOSize]byte) {
	ne.PutUint32(a[0:], handle)
	return a
}

func decodeInfoBO(a *[infoBOSize]byte) (size, paddr uint64) {
	return ne.Uint64(a[8:]), ne.Uint64(a[16:])
}

func encodeSyncBO(handle, dir uint32, offset, size uint64) (a [syncBOSize]byte) {
	ne.PutUint32(a[0:], handle)
	ne.PutUint32(a[4:], dir)
	ne.PutUint64(a[8:], offset)
	ne.PutUint64(a[16:], size)
	return a
}

func encodeGemClose(handle uint32) (a [gemCloseSize]byte) {
	ne.PutUint32(a[0:], handle)
	return a
}

// drmVersionArg is struct drm_version: three ints, then (size_t, char *) pairs for
// the name, date and description. uintptr and pointers have the C widths and
// alignments on every Linux GOARCH, so this Go struct matches (36 bytes on arm, 64 on
// amd64).
type drmVersionArg struct {
	major, minor, patch int32
	nameLen             uintptr
	name                *byte
	dateLen             uintptr
	date                *byte
	descLen             uintptr
	desc                *byte
}

// drmDevice is an open DRM node: the seam between the allocator and the kernel, so
// tests substitute a fake driver.
type drmDevice interface {
	ioctl(req uintptr, arg unsafe.Pointer) error
	mmap(offset int64, size int) ([]byte, error)
	munmap(b []byte) error
	close() error
}

// openDRM opens a DRM node read-write (drm_linux.go; ErrNotSupported elsewhere).
var openDRM func(path string) (drmDevice, error) = openDRMNode

// driverName asks a DRM node which kernel driver serves it.
func driverName(dev drmDevice) (string, error) {
	name := make([]byte, 64)
	v := drmVersionArg{nameLen: uintptr(len(name)), name: &name[0]}
	if err := dev.ioctl(ioctlVersion, unsafe.Pointer(&v)); err != nil {
		return "", fmt.Errorf("DRM_IOCTL_VERSION: %w", err)
	}
	n := min(int(v.nameLen), len(name))
	return string(name[:n]), nil
}

// DefaultDRIDir holds the DRM nodes.
const DefaultDRIDir = "/dev/dri"

// FindZoclNode returns the first render node (renderD*) in dir served by zocl. The
// error matches ErrNotSupported when there is none.
func FindZoclNode(dir string) (string, error) {
	nodes, _ := filepath.Glob(filepath.Join(dir, "renderD*"))
	slices.Sort(nodes)
	var seen []string
	for _, p := range nodes {
		dev, err := openDRM(p)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s: %v", filepath.Base(p), err))
			continue
		}
		name, err := driverName(dev)
		dev.close()
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s: %v", filepath.Base(p), err))
			continue
		}
		if name == "zocl" {
			return p, nil
		}
		seen = append(seen, fmt.Sprintf("%s: driver %s", filepath.Base(p), name))
	}
	detail := "no render nodes"
	if len(seen) > 0 {
		detail = strings.Join(seen, "; ")
	}
	return "", fmt.Errorf("no zocl render node in %s (%s): %w (PYNQ images >= 2.7 load zocl with the overlay; use u-dma-buf or the simulation elsewhere)",
		dir, detail, ErrNotSupported)
}

// ZoclConfig configures a ZoclAllocator.
type ZoclConfig struct {
	// Device is the render node; empty means FindZoclNode(DefaultDRIDir).
	Device string
	// Meminfo is read for CmaFree/CmaTotal when an allocation fails; default
	// DefaultMeminfo.
	Meminfo string
	// Uncached allocates coherent (uncached) buffers, PYNQ's allocate() default; the
	// Sync calls then cost little. The default, cacheable, makes CPU access fast and
	// relies on the Sync calls, which the drivers here always make.
	Uncached bool
	// Bank is the memory bank index (the xclbin memory topology); 0 is CMA on PYNQ.
	Bank uint16
}

// ZoclAllocator allocates CMA buffer objects from the XRT zocl driver.
type ZoclAllocator struct {
	dev     drmDevice
	path    string
	meminfo string
	flags   uint32
	live    atomic.Int64
	closed  atomic.Bool
}

// OpenZocl opens the zocl render node and checks that zocl serves it.
func OpenZocl(cfg ZoclConfig) (*ZoclAllocator, error) {
	if cfg.Device == "" {
		p, err := FindZoclNode(DefaultDRIDir)
		if err != nil {
			return nil, err
		}
		cfg.Device = p
	}
	if cfg.Meminfo == "" {
		cfg.Meminfo = DefaultMeminfo
	}
	dev, err := openDRM(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("zocl: open %s: %w%s", cfg.Device, err, permissionHint(err))
	}
	name, err := driverName(dev)
	if err != nil {
		dev.close()
		return nil, fmt.Errorf("zocl: %s: %w", cfg.Device, err)
	}
	if name != "zocl" {
		dev.close()
		return nil, fmt.Errorf("zocl: %s is served by %q, not zocl: %w (pick the zocl node, see FindZoclNode)", cfg.Device, name, ErrNotSupported)
	}
	flags := uint32(cfg.Bank) & zoclBankMask
	if !cfg.Uncached {
		flags |= zoclFlagCacheable
	}
	return &ZoclAllocator{dev: dev, path: cfg.Device, meminfo: cfg.Meminfo, flags: flags}, nil
}

// Alloc implements Allocator: create a buffer object, look up its physical address
// and mmap offset, and map it.
func (z *ZoclAllocator) Alloc(size int) (Buffer, error) {
	if z.closed.Load() {
		return nil, fmt.Errorf("zocl: %w", ErrClosed)
	}
	if size <= 0 {
		return nil, fmt.Errorf("zocl: buffer size %d must be positive", size)
	}
	create := encodeCreateBO(uint64(size), z.flags)
	if err := z.dev.ioctl(ioctlZoclCreateBO, unsafe.Pointer(&create)); err != nil {
		return nil, z.allocError(size, err)
	}
	handle := decodeCreateBO(&create)
	b, err := z.setup(handle, size)
	if err != nil {
		z.gemClose(handle)
		return nil, err
	}
	z.live.Add(1)
	return b, nil
}

func (z *ZoclAllocator) setup(handle uint32, size int) (*zoclBuffer, error) {
	info := encodeInfoBO(handle)
	if err := z.dev.ioctl(ioctlZoclInfoBO, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("zocl: DRM_IOCTL_ZOCL_INFO_BO handle %d: %w", handle, err)
	}
	boSize, paddr := decodeInfoBO(&info)
	if boSize < uint64(size) || paddr == 0 {
		return nil, fmt.Errorf("zocl: buffer object %d reports size %d at 0x%X for a %d-byte request (not a CMA buffer?)", handle, boSize, paddr, size)
	}
	m := encodeMapBO(handle)
	if err := z.dev.ioctl(ioctlZoclMapBO, unsafe.Pointer(&m)); err != nil {
		return nil, fmt.Errorf("zocl: DRM_IOCTL_ZOCL_MAP_BO handle %d: %w", handle, err)
	}
	mem, err := z.dev.mmap(int64(decodeMapBO(&m)), size)
	if err != nil {
		return nil, fmt.Errorf("zocl: mmap buffer object %d (%d bytes): %w", handle, size, err)
	}
	return &zoclBuffer{z: z, handle: handle, paddr: paddr, data: mem}, nil
}

// allocError explains a failed CREATE_BO with the CMA state.
func (z *ZoclAllocator) allocError(size int, err error) error {
	if !errors.Is(err, syscall.ENOMEM) {
		return fmt.Errorf("zocl: DRM_IOCTL_ZOCL_CREATE_BO %d bytes: %w", size, err)
	}
	e := &AllocError{Allocator: "zocl", Size: size, Free: -1, Total: -1, Largest: -1, Err: err}
	if cma, cerr := ReadCMAInfo(z.meminfo); cerr == nil {
		e.Free, e.Total = cma.Free, cma.Total
	}
	return e
}

func (z *ZoclAllocator) gemClose(handle uint32) error {
	a := encodeGemClose(handle)
	if err := z.dev.ioctl(ioctlGemClose, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("zocl: DRM_IOCTL_GEM_CLOSE handle %d: %w", handle, err)
	}
	return nil
}

// Device is the render node in use.
func (z *ZoclAllocator) Device() string { return z.path }

// Close closes the render node. Every buffer must be closed first: closing the node
// frees their buffer objects.
func (z *ZoclAllocator) Close() error {
	if z.closed.Swap(true) {
		return fmt.Errorf("zocl: %w", ErrClosed)
	}
	if n := z.live.Load(); n > 0 {
		return fmt.Errorf("zocl: %d buffers still open; close them before the allocator", n)
	}
	return z.dev.close()
}

type zoclBuffer struct {
	z      *ZoclAllocator
	handle uint32
	paddr  uint64
	data   []byte
	closed atomic.Bool
}

func (b *zoclBuffer) Bytes() []byte    { return b.data }
func (b *zoclBuffer) PhysAddr() uint64 { return b.paddr }
func (b *zoclBuffer) Size() int        { return len(b.data) }

func (b *zoclBuffer) SyncForDevice() error { return b.sync(zoclSyncToDevice, 0, len(b.data)) }
func (b *zoclBuffer) SyncForCPU() error    { return b.sync(zoclSyncFromDevice, 0, len(b.data)) }

func (b *zoclBuffer) SyncRangeForDevice(off, n int) error { return b.sync(zoclSyncToDevice, off, n) }
func (b *zoclBuffer) SyncRangeForCPU(off, n int) error    { return b.sync(zoclSyncFromDevice, off, n) }

func (b *zoclBuffer) sync(dir uint32, off, n int) error {
	if b.closed.Load() {
		return fmt.Errorf("zocl: sync buffer 0x%X: %w", b.paddr, ErrClosed)
	}
	a := encodeSyncBO(b.handle, dir, uint64(off), uint64(n))
	if err := b.z.dev.ioctl(ioctlZoclSyncBO, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("zocl: DRM_IOCTL_ZOCL_SYNC_BO handle %d: %w", b.handle, err)
	}
	return nil
}

func (b *zoclBuffer) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("zocl: close buffer 0x%X: %w", b.paddr, ErrClosed)
	}
	err := b.z.dev.munmap(b.data)
	b.data = nil
	err = errors.Join(err, b.z.gemClose(b.handle))
	b.z.live.Add(-1)
	return err
}
