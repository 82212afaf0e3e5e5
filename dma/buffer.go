package dma

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
)

// Buffer is a physically contiguous memory block that both the CPU and a device reach.
type Buffer interface {
	// Bytes is the CPU's view of the whole buffer. It stays valid until Close.
	Bytes() []byte
	// PhysAddr is the bus address a device is programmed with.
	PhysAddr() uint64
	// Size is len(Bytes()).
	Size() int
	// SyncForDevice hands the buffer to the device: dirty CPU cache lines are written
	// back, so the device reads what the CPU wrote. Call it after writing, before a
	// device reads (MM2S) and before a device writes (S2MM, so no dirty line is evicted
	// over the device's data).
	SyncForDevice() error
	// SyncForCPU hands the buffer back to the CPU: its cache lines are invalidated, so
	// the CPU reads what the device wrote. Call it after a device wrote, before reading.
	SyncForCPU() error
	// Close releases the buffer; Bytes must not be used afterwards. Closing twice
	// returns ErrClosed.
	Close() error
}

// Allocator hands out Buffers.
type Allocator interface {
	// Alloc returns a buffer of at least size bytes (Size reports exactly size).
	// Failures for lack of memory match ErrNoMemory and are *AllocError values.
	Alloc(size int) (Buffer, error)
	// Close releases the allocator's resources. Buffers still open stay usable until
	// their own Close, unless the allocator says otherwise.
	Close() error
}

// Errors of the package, for errors.Is.
var (
	// ErrNoMemory: the allocator cannot satisfy the request (CMA or region exhausted).
	ErrNoMemory = errors.New("out of DMA memory")
	// ErrClosed: the buffer or allocator was already closed.
	ErrClosed = errors.New("already closed")
	// ErrNotSupported: the platform or kernel lacks the facility (no zocl, not Linux).
	ErrNotSupported error = unsupported.Error("not supported on this system")
)

// AllocError explains a failed allocation: what was asked and what was free.
type AllocError struct {
	Allocator string // "zocl", "u-dma-buf udmabuf0", "sim"
	Size      int    // bytes asked for
	// Free and Total describe the pool, in bytes; -1 when unknown. For zocl they come
	// from /proc/meminfo CmaFree and CmaTotal.
	Free, Total int64
	// Largest is the largest free contiguous block, -1 when unknown (fragmentation shows
	// as Free >= Size > Largest).
	Largest int64
	Err     error // the underlying cause (ENOMEM from the kernel, ErrNoMemory)
}

func (e *AllocError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: allocate %s", e.Allocator, humanBytes(int64(e.Size)))
	if e.Free >= 0 {
		fmt.Fprintf(&b, " (%s free", humanBytes(e.Free))
		if e.Total >= 0 {
			fmt.Fprintf(&b, " of %s", humanBytes(e.Total))
		}
		if e.Largest >= 0 {
			fmt.Fprintf(&b, ", largest free block %s", humanBytes(e.Largest))
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ": %v (free buffers you no longer need, use smaller ones, or %s)", e.Err, e.enlarge())
	return b.String()
}

// enlarge says how to grow the pool of this allocator.
func (e *AllocError) enlarge() string {
	switch {
	case strings.HasPrefix(e.Allocator, "u-dma-buf"):
		return "load u-dma-buf with a larger udmabufN= size"
	case strings.HasPrefix(e.Allocator, "sim"):
		return "give the simulation more DDR"
	}
	return "enlarge CMA with the kernel's cma= boot argument"
}

func (e *AllocError) Unwrap() error { return e.Err }

// Is makes every AllocError match ErrNoMemory even when Err is a kernel errno.
func (e *AllocError) Is(target error) bool { return target == ErrNoMemory }

// humanBytes prints a byte count the way people read memory sizes.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<10) == 0:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// CMAInfo is the contiguous memory allocator's state from /proc/meminfo.
type CMAInfo struct {
	Total, Free int64 // bytes
}

// DefaultMeminfo is where Linux reports CmaTotal and CmaFree.
const DefaultMeminfo = "/proc/meminfo"

// ReadCMAInfo reads CmaTotal and CmaFree from a meminfo file (DefaultMeminfo on the
// board; tests pass their own).
func ReadCMAInfo(path string) (CMAInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return CMAInfo{}, fmt.Errorf("read CMA state: %w", err)
	}
	defer f.Close()
	return parseCMAInfo(f, path)
}

// parseCMAInfo reads meminfo text; name labels errors (file:line).
func parseCMAInfo(r io.Reader, name string) (CMAInfo, error) {
	info := CMAInfo{Total: -1, Free: -1}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "CmaTotal" && key != "CmaFree") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return CMAInfo{}, fmt.Errorf("%s:%d: %s has no value", name, line, key)
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/1024 {
			return CMAInfo{}, fmt.Errorf("%s:%d: %s value %q is not a size", name, line, key, fields[0])
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		if key == "CmaTotal" {
			info.Total = n
		} else {
			info.Free = n
		}
	}
	if err := sc.Err(); err != nil {
		return CMAInfo{}, fmt.Errorf("read %s: %w", name, err)
	}
	if info.Total < 0 || info.Free < 0 {
		return info, fmt.Errorf("%s has no CmaTotal/CmaFree lines (kernel built without CONFIG_CMA?)", name)
	}
	return info, nil
}

// alignUp rounds n up to a multiple of align (a power of two).
func alignUp(n, align uint64) uint64 { return (n + align - 1) &^ (align - 1) }

func isPowerOfTwo(n uint64) bool { return n != 0 && n&(n-1) == 0 }

// RangeSyncer is a Buffer that can hand over part of itself: cache maintenance costs
// time in proportion to the bytes, and a layer often uses a fraction of its buffer.
type RangeSyncer interface {
	// SyncRangeForDevice is SyncForDevice for bytes [off, off+n).
	SyncRangeForDevice(off, n int) error
	// SyncRangeForCPU is SyncForCPU for bytes [off, off+n).
	SyncRangeForCPU(off, n int) error
}

// SyncRangeForDevice hands bytes [off, off+n) of b to the device; a buffer that cannot
// sync a range hands over all of it.
func SyncRangeForDevice(b Buffer, off, n int) error {
	if err := checkRange(b, off, n); err != nil {
		return err
	}
	if r, ok := b.(RangeSyncer); ok {
		return r.SyncRangeForDevice(off, n)
	}
	return b.SyncForDevice()
}

// SyncRangeForCPU hands bytes [off, off+n) of b back to the CPU; a buffer that cannot
// sync a range hands back all of it.
func SyncRangeForCPU(b Buffer, off, n int) error {
	if err := checkRange(b, off, n); err != nil {
		return err
	}
	if r, ok := b.(RangeSyncer); ok {
		return r.SyncRangeForCPU(off, n)
	}
	return b.SyncForCPU()
}

func checkRange(b Buffer, off, n int) error {
	if off < 0 || n < 0 || off+n > b.Size() {
		return fmt.Errorf("sync bytes %d..%d of a %d-byte buffer at 0x%X: out of range", off, off+n, b.Size(), b.PhysAddr())
	}
	return nil
}
