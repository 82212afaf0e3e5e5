package agent

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cBuffer mirrors struct v4l2_buffer with this platform's C types (long/pointer =
// uintptr, struct timeval = unix.Timeval), so the compiler computes the kernel's layout
// for the architecture the test runs on (amd64 here; armv7 under qemu-arm-static:
// GOARCH=arm GOARM=7 go test -exec qemu-arm-static -run V4L2 ./agent).
type cBuffer struct {
	index, typ, bytesused, flags, field uint32
	timestamp                           unix.Timeval
	timecode                            struct{ typ, flags, frames uint32 }
	pad                                 [4]byte // rest of struct v4l2_timecode (4 x u8)
	sequence, memory                    uint32
	m                                   uintptr
	length, reserved2, requestFD        uint32
}

// cFormat mirrors struct v4l2_format: the union holds pointers, so it is pointer-aligned.
type cFormat struct {
	typ uint32
	fmt struct {
		_   [0]uintptr
		raw [200]byte
	}
}

func TestV4L2HostLayout(t *testing.T) {
	var b cBuffer
	var f cFormat
	a := hostABI
	checks := []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof v4l2_buffer", unsafe.Sizeof(b), uintptr(a.bufferSize())},
		{"timestamp", unsafe.Offsetof(b.timestamp), uintptr(a.bufTimestampOff())},
		{"sequence", unsafe.Offsetof(b.sequence), uintptr(a.bufSequenceOff())},
		{"memory", unsafe.Offsetof(b.memory), uintptr(a.bufMemoryOff())},
		{"m", unsafe.Offsetof(b.m), uintptr(a.bufMOff())},
		{"length", unsafe.Offsetof(b.length), uintptr(a.bufLengthOff())},
		{"sizeof v4l2_format", unsafe.Sizeof(f), uintptr(a.formatSize())},
		{"format union", unsafe.Offsetof(f.fmt), uintptr(a.formatUnionOff())},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: compiler says %d, encoder uses %d", c.what, c.got, c.want)
		}
	}
	t.Logf("word %d: v4l2_buffer %d bytes, v4l2_format %d bytes, VIDIOC_DQBUF %#x", a.word, a.bufferSize(), a.formatSize(), a.dqbuf())
}
