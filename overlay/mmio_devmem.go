package overlay

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"periph.io/x/host/v3/pmem"
)

// physView is the part of a periph pmem.View the board bus uses.
type physView interface {
	Uint32() []uint32
	Close() error
}

// openPhys maps physical memory. pmem opens /dev/mem with O_RDWR|O_SYNC, which makes the
// kernel map the window uncached, as registers need. Tests replace it with a fake.
var openPhys = func(base uint64, size int) (physView, error) {
	v, err := pmem.Map(base, size)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// DevMem is the board's Bus: physical memory through /dev/mem (root only). Combine it
// with CheckedBus so drivers stay inside the loaded design.
type DevMem struct{}

// Map implements Bus.
func (DevMem) Map(phys uint64, size int) (Region, error) {
	if err := checkWindow(phys, size); err != nil {
		return nil, err
	}
	v, err := openPhys(phys, size)
	if err != nil {
		return nil, fmt.Errorf("map 0x%X+0x%X through /dev/mem: %w%s", phys, size, err, devMemHint(err))
	}
	words := v.Uint32()
	if len(words)*4 < size {
		v.Close()
		return nil, fmt.Errorf("map 0x%X+0x%X through /dev/mem: got %d bytes", phys, size, len(words)*4)
	}
	return &devMemRegion{view: v, words: words[:size/4]}, nil
}

// devMemHint turns the usual /dev/mem failures into advice. pmem formats the open error
// with %v, so the text is checked as well as the error chain.
func devMemHint(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, os.ErrPermission) || strings.Contains(msg, "permission denied"):
		return " (run as root)"
	case strings.Contains(msg, "operation not permitted"):
		return " (the kernel forbids this range: CONFIG_STRICT_DEVMEM, or the address is not I/O memory)"
	case errors.Is(err, os.ErrNotExist) || strings.Contains(msg, "no such file"):
		return " (no /dev/mem: this is not a Linux board, use the simulation backend)"
	case strings.Contains(msg, "not supported on this platform"):
		return " (use the simulation backend)"
	}
	return ""
}

// devMemRegion accesses mapped registers with atomic loads and stores so that every
// access really happens, in program order (the compiler may not merge or drop them).
type devMemRegion struct {
	view   physView
	words  []uint32
	closed atomic.Bool
}

func (r *devMemRegion) Read32(off uint32) uint32 {
	checkOffset(off, len(r.words)*4)
	return atomic.LoadUint32(&r.words[off/4])
}

func (r *devMemRegion) Write32(off, v uint32) {
	checkOffset(off, len(r.words)*4)
	atomic.StoreUint32(&r.words[off/4], v)
}

func (r *devMemRegion) Size() int { return len(r.words) * 4 }

func (r *devMemRegion) Close() error {
	if r.closed.Swap(true) {
		return ErrClosed
	}
	r.words = nil
	if err := r.view.Close(); err != nil {
		return fmt.Errorf("unmap /dev/mem window: %w", err)
	}
	return nil
}
