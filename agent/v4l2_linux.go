package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hostABI is the V4L2 struct layout of this process.
var hostABI = v4l2ABI{word: strconv.IntSize / 8}

// v4l2Source captures from a V4L2 device with mmap streaming I/O.
type v4l2Source struct {
	path   string
	card   string // the device's name (VIDIOC_QUERYCAP), for logs
	fd     int
	abi    v4l2ABI
	format v4l2PixFormat
	bufs   [][]byte
	on     bool
}

// OpenV4L2 opens a capture device (e.g. /dev/video0), sets the format and starts
// streaming into mmap'ed buffers.
func OpenV4L2(path string, opt V4L2Options) (Source, error) {
	pf, err := pixelFormat(opt.Format)
	if err != nil {
		return nil, err
	}
	if opt.Width == 0 || opt.Height == 0 {
		opt.Width, opt.Height = 640, 480
	}
	if opt.Buffers <= 0 {
		opt.Buffers = 4
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		hint := ""
		if errors.Is(err, unix.EACCES) {
			hint = " (add the user to the video group, or run as root)"
		}
		return nil, fmt.Errorf("v4l2: open %s: %w%s", path, err, hint)
	}
	s := &v4l2Source{path: path, fd: fd, abi: hostABI}
	if err := s.setup(opt, pf); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *v4l2Source) ioctl(req uintptr, arg []byte) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), req, uintptr(unsafe.Pointer(&arg[0])))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func (s *v4l2Source) setup(opt V4L2Options, pf uint32) error {
	capb := make([]byte, v4l2CapabilitySize)
	if err := s.ioctl(s.abi.querycap(), capb); err != nil {
		return fmt.Errorf("v4l2: %s: VIDIOC_QUERYCAP: %w (not a V4L2 device?)", s.path, err)
	}
	c := decodeCapability(capb)
	s.card = c.Card
	if caps := c.effective(); caps&v4l2CapVideoCapture == 0 || caps&v4l2CapStreaming == 0 {
		return fmt.Errorf("v4l2: %s (%s, %s) cannot capture with streaming I/O (caps %#x; try another /dev/videoN)", s.path, c.Card, c.Driver, caps)
	}
	fmtb := s.abi.encodeFormat(v4l2PixFormat{Width: uint32(opt.Width), Height: uint32(opt.Height), PixelFormat: pf, Field: v4l2FieldAny})
	if err := s.ioctl(s.abi.sFmt(), fmtb); err != nil {
		return fmt.Errorf("v4l2: %s: VIDIOC_S_FMT %dx%d %s: %w", s.path, opt.Width, opt.Height, fourcc(pf), err)
	}
	s.format = s.abi.decodeFormat(fmtb)
	if s.format.PixelFormat != pf {
		return fmt.Errorf("v4l2: %s offers %s, not %s (set source.format to the other one)", s.path, fourcc(s.format.PixelFormat), fourcc(pf))
	}
	req := encodeReqBufs(uint32(opt.Buffers))
	if err := s.ioctl(s.abi.reqbufs(), req); err != nil {
		return fmt.Errorf("v4l2: %s: VIDIOC_REQBUFS: %w", s.path, err)
	}
	n := le.Uint32(req)
	if n == 0 {
		return fmt.Errorf("v4l2: %s: the driver granted no buffers", s.path)
	}
	for i := uint32(0); i < n; i++ {
		b := s.abi.encodeBuffer(v4l2Buffer{Index: i})
		if err := s.ioctl(s.abi.querybuf(), b); err != nil {
			return fmt.Errorf("v4l2: %s: VIDIOC_QUERYBUF %d: %w", s.path, i, err)
		}
		qb := s.abi.decodeBuffer(b)
		m, err := unix.Mmap(s.fd, int64(qb.Offset), int(qb.Length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("v4l2: %s: mmap buffer %d: %w", s.path, i, err)
		}
		s.bufs = append(s.bufs, m)
		if err := s.ioctl(s.abi.qbuf(), s.abi.encodeBuffer(v4l2Buffer{Index: i})); err != nil {
			return fmt.Errorf("v4l2: %s: VIDIOC_QBUF %d: %w", s.path, i, err)
		}
	}
	typ := make([]byte, 4)
	le.PutUint32(typ, v4l2BufTypeVideoCapture)
	if err := s.ioctl(s.abi.streamon(), typ); err != nil {
		return fmt.Errorf("v4l2: %s: VIDIOC_STREAMON: %w", s.path, err)
	}
	s.on = true
	return nil
}

// Next waits for a filled buffer, copies the frame out and gives the buffer back.
func (s *v4l2Source) Next(ctx context.Context) (*Capture, error) {
	b := make([]byte, s.abi.bufferSize())
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 200); err != nil && err != unix.EINTR {
			return nil, fmt.Errorf("v4l2: %s: poll: %w", s.path, err)
		}
		le.PutUint32(b[4:], v4l2BufTypeVideoCapture)
		le.PutUint32(b[s.abi.bufMemoryOff():], v4l2MemoryMMAP)
		err := s.ioctl(s.abi.dqbuf(), b)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("v4l2: %s: VIDIOC_DQBUF: %w (camera unplugged?)", s.path, err)
		}
		qb := s.abi.decodeBuffer(b)
		if int(qb.Index) >= len(s.bufs) {
			return nil, fmt.Errorf("v4l2: %s: driver returned buffer %d of %d", s.path, qb.Index, len(s.bufs))
		}
		frame := s.bufs[qb.Index][:min(int(qb.BytesUsed), len(s.bufs[qb.Index]))]
		c, cerr := s.convert(frame)
		if err := s.ioctl(s.abi.qbuf(), s.abi.encodeBuffer(v4l2Buffer{Index: qb.Index})); err != nil {
			return nil, fmt.Errorf("v4l2: %s: VIDIOC_QBUF: %w", s.path, err)
		}
		if cerr != nil {
			return nil, cerr
		}
		return c, nil
	}
}

func (s *v4l2Source) convert(frame []byte) (*Capture, error) {
	now := time.Now()
	if s.format.PixelFormat == v4l2PixMJPEG {
		return &Capture{Data: withHuffmanTables(frame), Time: now}, nil
	}
	stride := int(s.format.BytesPerLine)
	if stride == 0 {
		stride = 2 * int(s.format.Width)
	}
	// A copy: the driver's buffer is queued again.
	f := &YUYVFrame{Data: slices.Clone(frame), W: int(s.format.Width), H: int(s.format.Height), Stride: stride}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("v4l2: %s: %w", s.path, err)
	}
	return &Capture{YUYV: f, Time: now}, nil
}

func (s *v4l2Source) Live() bool { return true }

// String names the device and the format the driver agreed to, e.g.
// "/dev/video0 (vivid, 640x480 YUYV)".
func (s *v4l2Source) String() string {
	return fmt.Sprintf("%s (%s, %dx%d %s)", s.path, s.card, s.format.Width, s.format.Height, fourcc(s.format.PixelFormat))
}

func (s *v4l2Source) Close() error {
	if s.on {
		typ := make([]byte, 4)
		le.PutUint32(typ, v4l2BufTypeVideoCapture)
		s.ioctl(s.abi.streamoff(), typ)
		s.on = false
	}
	for _, b := range s.bufs {
		unix.Munmap(b)
	}
	s.bufs = nil
	if s.fd >= 0 {
		err := unix.Close(s.fd)
		s.fd = -1
		return err
	}
	return nil
}
