package agent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
	"github.com/fpgadetector/pynq-agent/web/jpegenc"
)

// V4L2 facts (linux/videodev2.h): the ioctls the capture path uses, encoded with the
// kernel's _IOC scheme, and the structs they take. The structs hold pointers and a
// struct timeval, so their size differs between 64-bit hosts and armv7; they are
// encoded by hand for a given word size instead of relying on Go struct layout.

// ErrNotSupported is returned where the system lacks a feature (V4L2 off Linux).
var ErrNotSupported error = unsupported.Error("not supported on this system")

// V4L2Options choose the capture format.
type V4L2Options struct {
	Width, Height int    // 0: 640x480
	Format        string // "mjpeg" (default) or "yuyv"
	Buffers       int    // mmap buffers; 0: 4
}

// Pixel formats and constants.
const (
	v4l2PixMJPEG = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	v4l2PixYUYV  = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24

	v4l2BufTypeVideoCapture = 1
	v4l2MemoryMMAP          = 1
	v4l2FieldAny            = 0

	v4l2CapVideoCapture = 0x00000001
	v4l2CapStreaming    = 0x04000000
	v4l2CapDeviceCaps   = 0x80000000

	v4l2CapabilitySize  = 104
	v4l2ReqBuffersSize  = 20
	v4l2FmtUnionSize    = 200
	v4l2TimecodeSize    = 16
	v4l2PixFormatFields = 12 // u32 fields of struct v4l2_pix_format
)

// ioctl direction bits (asm-generic/ioctl.h).
const (
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

// v4l2ABI is the struct layout for one word size (4: armv7 and other 32-bit; 8: amd64,
// arm64).
type v4l2ABI struct{ word int }

func alignTo(n, a int) int { return (n + a - 1) / a * a }

// formatSize: __u32 type, then a union of 200 bytes that contains pointers (struct
// v4l2_window), so it is aligned to the word.
func (a v4l2ABI) formatUnionOff() int { return alignTo(4, a.word) }
func (a v4l2ABI) formatSize() int     { return a.formatUnionOff() + v4l2FmtUnionSize }

// struct v4l2_buffer: index, type, bytesused, flags, field (5 x u32), struct timeval
// (2 longs), struct v4l2_timecode (16), sequence, memory, union m (offset / userptr /
// planes / fd: a long), length, reserved2, request_fd.
func (a v4l2ABI) bufTimestampOff() int { return alignTo(20, a.word) }
func (a v4l2ABI) bufSequenceOff() int  { return a.bufTimestampOff() + 2*a.word + v4l2TimecodeSize }
func (a v4l2ABI) bufMemoryOff() int    { return a.bufSequenceOff() + 4 }
func (a v4l2ABI) bufMOff() int         { return alignTo(a.bufMemoryOff()+4, a.word) }
func (a v4l2ABI) bufLengthOff() int    { return a.bufMOff() + a.word }
func (a v4l2ABI) bufferSize() int      { return alignTo(a.bufLengthOff()+12, a.word) }

// The ioctl request numbers for this ABI.
func (a v4l2ABI) querycap() uintptr {
	return ioc(iocRead, 'V', 0, v4l2CapabilitySize)
}
func (a v4l2ABI) sFmt() uintptr { return ioc(iocRead|iocWrite, 'V', 5, uintptr(a.formatSize())) }
func (a v4l2ABI) reqbufs() uintptr {
	return ioc(iocRead|iocWrite, 'V', 8, v4l2ReqBuffersSize)
}
func (a v4l2ABI) querybuf() uintptr { return ioc(iocRead|iocWrite, 'V', 9, uintptr(a.bufferSize())) }
func (a v4l2ABI) qbuf() uintptr     { return ioc(iocRead|iocWrite, 'V', 15, uintptr(a.bufferSize())) }
func (a v4l2ABI) dqbuf() uintptr    { return ioc(iocRead|iocWrite, 'V', 17, uintptr(a.bufferSize())) }
func (a v4l2ABI) streamon() uintptr { return ioc(iocWrite, 'V', 18, 4) }
func (a v4l2ABI) streamoff() uintptr {
	return ioc(iocWrite, 'V', 19, 4)
}

var le = binary.LittleEndian // both targets are little-endian

// v4l2Capability is the decoded part of struct v4l2_capability.
type v4l2Capability struct {
	Driver, Card, BusInfo string
	Caps, DeviceCaps      uint32
}

func decodeCapability(b []byte) v4l2Capability {
	cstr := func(s []byte) string { return strings.TrimRight(string(s), "\x00") }
	return v4l2Capability{
		Driver: cstr(b[0:16]), Card: cstr(b[16:48]), BusInfo: cstr(b[48:80]),
		Caps: le.Uint32(b[84:]), DeviceCaps: le.Uint32(b[88:]),
	}
}

// effective returns the capabilities of this device node.
func (c v4l2Capability) effective() uint32 {
	if c.Caps&v4l2CapDeviceCaps != 0 {
		return c.DeviceCaps
	}
	return c.Caps
}

// v4l2PixFormat is struct v4l2_pix_format's leading fields.
type v4l2PixFormat struct {
	Width, Height, PixelFormat, Field, BytesPerLine, SizeImage uint32
}

func (a v4l2ABI) encodeFormat(p v4l2PixFormat) []byte {
	b := make([]byte, a.formatSize())
	le.PutUint32(b, v4l2BufTypeVideoCapture)
	o := a.formatUnionOff()
	for i, v := range []uint32{p.Width, p.Height, p.PixelFormat, p.Field, p.BytesPerLine, p.SizeImage} {
		le.PutUint32(b[o+4*i:], v)
	}
	return b
}

func (a v4l2ABI) decodeFormat(b []byte) v4l2PixFormat {
	o := a.formatUnionOff()
	u := func(i int) uint32 { return le.Uint32(b[o+4*i:]) }
	return v4l2PixFormat{u(0), u(1), u(2), u(3), u(4), u(5)}
}

func encodeReqBufs(count uint32) []byte {
	b := make([]byte, v4l2ReqBuffersSize)
	le.PutUint32(b[0:], count)
	le.PutUint32(b[4:], v4l2BufTypeVideoCapture)
	le.PutUint32(b[8:], v4l2MemoryMMAP)
	return b
}

// v4l2Buffer is the part of struct v4l2_buffer the mmap capture path uses.
type v4l2Buffer struct {
	Index, BytesUsed, Flags, Sequence, Offset, Length uint32
}

func (a v4l2ABI) encodeBuffer(v v4l2Buffer) []byte {
	b := make([]byte, a.bufferSize())
	le.PutUint32(b[0:], v.Index)
	le.PutUint32(b[4:], v4l2BufTypeVideoCapture)
	le.PutUint32(b[8:], v.BytesUsed)
	le.PutUint32(b[12:], v.Flags)
	le.PutUint32(b[a.bufSequenceOff():], v.Sequence)
	le.PutUint32(b[a.bufMemoryOff():], v4l2MemoryMMAP)
	le.PutUint32(b[a.bufMOff():], v.Offset) // union m.offset: the low 32 bits on little-endian
	le.PutUint32(b[a.bufLengthOff():], v.Length)
	return b
}

func (a v4l2ABI) decodeBuffer(b []byte) v4l2Buffer {
	return v4l2Buffer{
		Index: le.Uint32(b[0:]), BytesUsed: le.Uint32(b[8:]), Flags: le.Uint32(b[12:]),
		Sequence: le.Uint32(b[a.bufSequenceOff():]), Offset: le.Uint32(b[a.bufMOff():]),
		Length: le.Uint32(b[a.bufLengthOff():]),
	}
}

// pixelFormat maps the config's format name to a fourcc.
func pixelFormat(name string) (uint32, error) {
	switch strings.ToLower(name) {
	case "", "mjpeg", "mjpg":
		return v4l2PixMJPEG, nil
	case "yuyv", "yuy2":
		return v4l2PixYUYV, nil
	}
	return 0, fmt.Errorf("v4l2: format %q not supported (want mjpeg or yuyv)", name)
}

func fourcc(v uint32) string {
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

// yuvTab holds the terms of the BT.601 limited-range conversion in 16.16 fixed point
// (by table; the tests hold it to the per-pixel formula): each channel is clip8((c(y) + chroma + 32768) >> 16),
// with the rounding constant and a bias of 512 << 16 folded into the tables so that the
// index into clip (512 + value, value in -277..534) is never negative.
var yuvTab = func() (t struct {
	c, rv, gu, gv, bu [256]int32
	clip              [2048]uint8
	unit              [2048]float32 // clip's byte as the network's float, byte / 255
	fullY, fullC      [256]uint8    // limited to full range: (Y-16)*255/219, (C-128)*255/224+128
}) {
	const bias = 512<<16 + 32768
	for i := 0; i < 256; i++ {
		t.c[i] = int32((i-16)*76309 + bias) // 1.164 * 65536
		t.rv[i] = int32(104597 * (i - 128))
		t.gu[i] = int32(-25675 * (i - 128))
		t.gv[i] = int32(-53279 * (i - 128))
		t.bu[i] = int32(132201 * (i - 128))
	}
	for i := range t.clip {
		t.clip[i] = clip8(i - 512)
		t.unit[i] = float32(t.clip[i]) / 255 // imageio.FromRGBA's value of that byte
	}
	for i := 0; i < 256; i++ {
		t.fullY[i], t.fullC[i] = fullY(i), fullC(i)
	}
	return t
}()

// fullY stretches limited-range luma to full range, round((y-16) * 255/219) clipped, in
// the fixed point the NEON loop computes (TestFullRangeFormulas holds it to the quotient).
func fullY(y int) uint8 { return clip8((y*2385 - 37174) >> 11) }

// fullC stretches limited-range chroma, 128 + (c-128) * 255/224 rounded half away from
// zero and clipped, likewise.
func fullC(c int) uint8 { return clip8((c*4663 - 70553) >> 12) }

func clip8(v int) uint8 { return uint8(max(0, min(255, v))) }

// UVC cameras often send MJPEG frames without Huffman tables (DHT), relying on the
// standard tables of the JPEG spec (ITU T.81 K.3), which decoders must then insert: the
// feed's encoder holds them (image/jpeg's own).
func stdDHT() []byte { return jpegenc.StandardHuffmanTables() }

// walkJPEG calls f with each marker segment (marker and its bytes, including FF xx and
// the length) up to and including SOS; f returns false to stop. It stops quietly at the
// first malformed segment.
func walkJPEG(b []byte, f func(marker byte, seg []byte) bool) (sos int) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return -1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return -1
		}
		m := b[i+1]
		if m == 0xFF { // fill byte
			i++
			continue
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return -1
		}
		if !f(m, b[i:i+2+n]) || m == 0xDA {
			return i
		}
		i += 2 + n
	}
	return -1
}

// feedAsIs says a captured frame's bytes can go to the feed's viewers without a new
// encode: a JPEG (an MJPEG camera's or stream's frame: the encode would cost the board
// more than the detection's CPU stages) without an Exif segment, whose orientation a
// browser would apply to the picture but not to the boxes.
func feedAsIs(data []byte) bool {
	exif := false
	sos := walkJPEG(data, func(marker byte, seg []byte) bool {
		exif = marker == 0xE1 && len(seg) >= 10 && string(seg[4:10]) == "Exif\x00\x00"
		return !exif
	})
	return sos >= 0 && !exif
}

// withHuffmanTables returns the JPEG with the standard tables inserted before its scan
// when it has none, else the bytes unchanged (copied: the caller's buffer is reused).
func withHuffmanTables(frame []byte) []byte {
	has := false
	sos := walkJPEG(frame, func(marker byte, _ []byte) bool {
		if marker == 0xC4 {
			has = true
		}
		return !has
	})
	if has || sos < 0 || len(stdDHT()) == 0 {
		return bytes.Clone(frame)
	}
	out := make([]byte, 0, len(frame)+len(stdDHT()))
	out = append(out, frame[:sos]...)
	out = append(out, stdDHT()...)
	return append(out, frame[sos:]...)
}
