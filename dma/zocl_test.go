package dma

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// The request numbers are those the C headers produce; they are the same on arm and
// amd64 except DRM_IOCTL_VERSION, whose struct holds longs and pointers.
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"DRM_IOCTL_ZOCL_CREATE_BO", ioctlZoclCreateBO, 0xC0106440},
		{"DRM_IOCTL_ZOCL_MAP_BO", ioctlZoclMapBO, 0xC0106443},
		{"DRM_IOCTL_ZOCL_SYNC_BO", ioctlZoclSyncBO, 0xC0186444},
		{"DRM_IOCTL_ZOCL_INFO_BO", ioctlZoclInfoBO, 0xC0186445},
		{"DRM_IOCTL_GEM_CLOSE", ioctlGemClose, 0x40086409},
		{"DRM_IOCTL_VERSION", ioctlVersion, map[uintptr]uintptr{4: 0xC0246400, 8: 0xC0406400}[unsafe.Sizeof(uintptr(0))]},
	} {
		if c.got != c.want {
			t.Errorf("%s = 0x%X, want 0x%X", c.name, c.got, c.want)
		}
	}
}

// TestDRMVersionLayout pins struct drm_version to the C layout of this GOARCH: on
// 32-bit ARM every field is 4 bytes (36 in all), on 64-bit the size_t/pointer pairs
// start at 16 after padding (64 in all). `GOARCH=arm go test -exec qemu-arm-static`
// runs the 32-bit case.
func TestDRMVersionLayout(t *testing.T) {
	var v drmVersionArg
	word := unsafe.Sizeof(uintptr(0))
	wantSize, wantName := uintptr(64), uintptr(24) // 12 bytes of ints, 4 of padding, name_len
	if word == 4 {
		wantSize, wantName = 36, 16
	}
	if unsafe.Sizeof(v) != wantSize || unsafe.Offsetof(v.name) != wantName || unsafe.Offsetof(v.desc) != wantSize-word {
		t.Errorf("drm_version: size %d, name at %d, desc at %d; want %d, %d, %d (word %d)",
			unsafe.Sizeof(v), unsafe.Offsetof(v.name), unsafe.Offsetof(v.desc), wantSize, wantName, wantSize-word, word)
	}
}

// TestEncodedBytes checks every argument byte for byte against the C layouts (the
// boards and hosts are little-endian). On 32-bit ARM, u64 fields sit on 8-byte
// offsets in C; the byte arrays make that so regardless of Go's 4-byte alignment.
func TestEncodedBytes(t *testing.T) {
	create := encodeCreateBO(0x0102030405060708, zoclFlagCacheable|3)
	info := encodeInfoBO(0xA1B2C3D4)
	m := encodeMapBO(7)
	sync := encodeSyncBO(9, zoclSyncFromDevice, 0x10, 0x2000)
	gem := encodeGemClose(0x55)
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"create_bo {size, handle=~0, flags}", create[:], "0807060504030201" + "ffffffff" + "03000001"},
		{"info_bo {handle, pad, size, paddr}", info[:], "d4c3b2a1" + "00000000" + "0000000000000000" + "0000000000000000"},
		{"map_bo {handle, pad, offset}", m[:], "07000000" + "00000000" + "0000000000000000"},
		{"sync_bo {handle, dir, offset, size}", sync[:], "09000000" + "01000000" + "1000000000000000" + "0020000000000000"},
		{"gem_close {handle, pad}", gem[:], "55000000" + "00000000"},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	// The driver's answers are read back from the same offsets.
	ne.PutUint32(create[8:], 42)
	ne.PutUint64(info[8:], 4096)
	ne.PutUint64(info[16:], 0x1F000000)
	ne.PutUint64(m[8:], 0x10000000)
	if h := decodeCreateBO(&create); h != 42 {
		t.Errorf("handle %d", h)
	}
	if size, paddr := decodeInfoBO(&info); size != 4096 || paddr != 0x1F000000 {
		t.Errorf("info %d 0x%X", size, paddr)
	}
	if off := decodeMapBO(&m); off != 0x10000000 {
		t.Errorf("map offset 0x%X", off)
	}
}

// fakeZocl is the zocl driver as the allocator sees it through drmDevice.
type fakeZocl struct {
	driver     string
	failCreate error
	next       uint32
	bos        map[uint32]*fakeBO
	syncs      []string
	closes     []uint32
	createArgs [][]byte
	closed     bool
}

type fakeBO struct {
	size, paddr, offset uint64
	data                []byte
}

func newFakeZocl(driver string) *fakeZocl {
	return &fakeZocl{driver: driver, bos: map[uint32]*fakeBO{}}
}

func (f *fakeZocl) ioctl(req uintptr, arg unsafe.Pointer) error {
	b := unsafe.Slice((*byte)(arg), req>>16&0x3FFF)
	switch req {
	case ioctlVersion:
		v := (*drmVersionArg)(arg)
		n := copy(unsafe.Slice(v.name, v.nameLen), f.driver)
		v.nameLen = uintptr(n)
		v.major = 2
	case ioctlZoclCreateBO:
		f.createArgs = append(f.createArgs, slices.Clone(b))
		if f.failCreate != nil {
			return f.failCreate
		}
		f.next++
		size := alignUp(ne.Uint64(b[0:]), 4096)
		f.bos[f.next] = &fakeBO{size: size, paddr: 0x1F000000 + uint64(f.next)<<20, offset: uint64(f.next) << 32, data: make([]byte, size)}
		ne.PutUint32(b[8:], f.next)
	case ioctlZoclInfoBO:
		bo, ok := f.bos[ne.Uint32(b[0:])]
		if !ok {
			return syscall.EINVAL
		}
		ne.PutUint64(b[8:], bo.size)
		ne.PutUint64(b[16:], bo.paddr)
	case ioctlZoclMapBO:
		bo, ok := f.bos[ne.Uint32(b[0:])]
		if !ok {
			return syscall.EINVAL
		}
		ne.PutUint64(b[8:], bo.offset)
	case ioctlZoclSyncBO:
		f.syncs = append(f.syncs, fmt.Sprintf("h%d dir%d off%d size%d", ne.Uint32(b[0:]), ne.Uint32(b[4:]), ne.Uint64(b[8:]), ne.Uint64(b[16:])))
	case ioctlGemClose:
		h := ne.Uint32(b[0:])
		if _, ok := f.bos[h]; !ok {
			return syscall.EINVAL
		}
		delete(f.bos, h)
		f.closes = append(f.closes, h)
	default:
		return syscall.ENOTTY
	}
	return nil
}

func (f *fakeZocl) mmap(offset int64, size int) ([]byte, error) {
	for _, bo := range f.bos {
		if bo.offset == uint64(offset) && uint64(size) <= bo.size {
			return bo.data[:size], nil
		}
	}
	return nil, syscall.EINVAL
}

func (f *fakeZocl) munmap(b []byte) error { return nil }
func (f *fakeZocl) close() error          { f.closed = true; return nil }

// useFakeDRM routes openDRM to fakes by path for the test's duration.
func useFakeDRM(tb testing.TB, devs map[string]*fakeZocl) {
	tb.Helper()
	saved := openDRM
	openDRM = func(path string) (drmDevice, error) {
		if d, ok := devs[path]; ok {
			return d, nil
		}
		return nil, os.ErrNotExist
	}
	tb.Cleanup(func() { openDRM = saved })
}

func writeMeminfo(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte(sampleMeminfo), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestZoclAllocator(t *testing.T) {
	dev := newFakeZocl("zocl")
	useFakeDRM(t, map[string]*fakeZocl{"/dev/dri/renderD128": dev})
	z, err := OpenZocl(ZoclConfig{Device: "/dev/dri/renderD128", Meminfo: writeMeminfo(t)})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := z.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	if buf.PhysAddr() != 0x1F100000 || buf.Size() != 1000 || len(buf.Bytes()) != 1000 {
		t.Fatalf("buffer at 0x%X size %d", buf.PhysAddr(), buf.Size())
	}
	if got := hex.EncodeToString(dev.createArgs[0]); got != "e803000000000000"+"ffffffff"+"00000001" {
		t.Errorf("CREATE_BO argument %s: want size 1000, handle ~0, flags CACHEABLE", got)
	}
	copy(buf.Bytes(), "weights")
	if string(dev.bos[1].data[:7]) != "weights" {
		t.Error("Bytes is not the mapped buffer object")
	}
	if err := buf.SyncForDevice(); err != nil {
		t.Fatal(err)
	}
	if err := buf.SyncForCPU(); err != nil {
		t.Fatal(err)
	}
	if err := SyncRangeForCPU(buf, 192, 384); err != nil {
		t.Fatal(err)
	}
	if want := []string{"h1 dir0 off0 size1000", "h1 dir1 off0 size1000", "h1 dir1 off192 size384"}; !slices.Equal(dev.syncs, want) {
		t.Errorf("syncs %q, want %q", dev.syncs, want)
	}
	if err := z.Close(); err == nil || !strings.Contains(err.Error(), "1 buffers still open") {
		t.Errorf("Close with a live buffer: %v", err)
	}
	if err := buf.Close(); err != nil || !slices.Equal(dev.closes, []uint32{1}) {
		t.Fatalf("buffer Close: %v, GEM closes %v", err, dev.closes)
	}
	if err := buf.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := buf.SyncForCPU(); !errors.Is(err, ErrClosed) {
		t.Errorf("sync after Close: %v", err)
	}

	z2, err := OpenZocl(ZoclConfig{Device: "/dev/dri/renderD128", Uncached: true, Bank: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := z2.Alloc(64); err != nil {
		t.Fatal(err)
	}
	if flags := ne.Uint32(dev.createArgs[1][12:]); flags != 2 {
		t.Errorf("uncached bank 2 flags 0x%X, want 0x2", flags)
	}
}

func TestZoclAllocFailures(t *testing.T) {
	dev := newFakeZocl("zocl")
	useFakeDRM(t, map[string]*fakeZocl{"/r": dev})
	z, err := OpenZocl(ZoclConfig{Device: "/r", Meminfo: writeMeminfo(t)})
	if err != nil {
		t.Fatal(err)
	}
	dev.failCreate = syscall.ENOMEM
	_, err = z.Alloc(200 << 20)
	var ae *AllocError
	if !errors.As(err, &ae) || !errors.Is(err, ErrNoMemory) || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("ENOMEM: %v", err)
	}
	if ae.Size != 200<<20 || ae.Free != 124<<20 || ae.Total != 128<<20 ||
		!strings.Contains(err.Error(), "allocate 200.0 MiB (209715200 bytes) (124.0 MiB (130023424 bytes) free of 128.0 MiB") {
		t.Errorf("message: %v", err)
	}
	dev.failCreate = syscall.EINVAL
	if _, err := z.Alloc(10); err == nil || errors.Is(err, ErrNoMemory) || !strings.Contains(err.Error(), "CREATE_BO") {
		t.Errorf("EINVAL: %v", err)
	}
	// A failure after CREATE_BO closes the object again.
	dev.failCreate = nil
	saved := dev.bos
	dev.bos = map[uint32]*fakeBO{}
	z.dev = &mmapFails{dev}
	if _, err := z.Alloc(10); err == nil || !strings.Contains(err.Error(), "mmap") || len(dev.bos) != 0 {
		t.Errorf("mmap failure: %v, objects left %d", err, len(dev.bos))
	}
	dev.bos = saved
	if _, err := z.Alloc(0); err == nil {
		t.Error("zero-size allocation accepted")
	}
}

type mmapFails struct{ *fakeZocl }

func (m *mmapFails) mmap(int64, int) ([]byte, error) { return nil, syscall.ENOMEM }

func TestOpenZoclWrongDriver(t *testing.T) {
	useFakeDRM(t, map[string]*fakeZocl{"/r": newFakeZocl("vc4")})
	if _, err := OpenZocl(ZoclConfig{Device: "/r"}); !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), `"vc4"`) {
		t.Errorf("vc4 node: %v", err)
	}
	if _, err := OpenZocl(ZoclConfig{Device: "/missing"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing node: %v", err)
	}
}

func TestFindZoclNode(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"card0", "renderD128", "renderD129"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	useFakeDRM(t, map[string]*fakeZocl{
		filepath.Join(dir, "renderD128"): newFakeZocl("v3d"),
		filepath.Join(dir, "renderD129"): newFakeZocl("zocl"),
	})
	got, err := FindZoclNode(dir)
	if err != nil || got != filepath.Join(dir, "renderD129") {
		t.Errorf("FindZoclNode = %q, %v", got, err)
	}
	_, err = FindZoclNode(t.TempDir())
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "no render nodes") {
		t.Errorf("empty dir: %v", err)
	}
	os.Remove(filepath.Join(dir, "renderD129"))
	if _, err := FindZoclNode(dir); err == nil || !strings.Contains(err.Error(), "renderD128: driver v3d") {
		t.Errorf("only v3d: %v", err)
	}
}

// TestZoclRealDevice runs on a PYNQ board only.
func TestZoclRealDevice(t *testing.T) {
	node, err := FindZoclNode(DefaultDRIDir)
	if err != nil {
		t.Skipf("no zocl render node on this machine (a PYNQ >= 2.7 board has one): %v", err)
	}
	z, err := OpenZocl(ZoclConfig{Device: node})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	buf, err := z.Alloc(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	for i := range buf.Bytes() {
		buf.Bytes()[i] = byte(i)
	}
	if err := buf.SyncForDevice(); err != nil {
		t.Fatal(err)
	}
	if err := buf.SyncForCPU(); err != nil {
		t.Fatal(err)
	}
	if buf.PhysAddr() == 0 || buf.Bytes()[300] != byte(300%256) {
		t.Errorf("buffer at 0x%X reads back %d", buf.PhysAddr(), buf.Bytes()[300])
	}
}

func TestOpenBoardWithoutHardware(t *testing.T) {
	a, err := OpenBoard(writeMeminfo(t))
	if err == nil {
		a.Close()
		t.Skip("this machine has a contiguous-memory allocator")
	}
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "zocl") || !strings.Contains(err.Error(), "u-dma-buf") {
		t.Errorf("OpenBoard: %v", err)
	}
}
