package dma

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drmNode is an open DRM device file.
type drmNode struct{ f *os.File }

func openDRMNode(path string) (drmDevice, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &drmNode{f: f}, nil
}

func (d *drmNode) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR, unix.EAGAIN: // DRM restarts interrupted ioctls this way too
			continue
		}
		return errno
	}
}

func (d *drmNode) mmap(offset int64, size int) ([]byte, error) {
	return unix.Mmap(int(d.f.Fd()), offset, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (d *drmNode) munmap(b []byte) error { return unix.Munmap(b) }

func (d *drmNode) close() error { return d.f.Close() }

// mapDevice maps size bytes of a device (or, in tests, a regular file) shared and
// read-write. uncached adds O_SYNC, which u-dma-buf takes as "map without cache".
func mapDevice(path string, size int, uncached bool) ([]byte, func([]byte) error, error) {
	flags := os.O_RDWR
	if uncached {
		flags |= os.O_SYNC
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return mem, unix.Munmap, nil
}
