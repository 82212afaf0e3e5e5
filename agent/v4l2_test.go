package agent

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// TestV4L2ABI checks the struct sizes and ioctl numbers against the values the kernel
// headers give on x86-64 (and arm64) and on armv7 (32-bit longs and pointers, 32-bit
// struct timeval).
func TestV4L2ABI(t *testing.T) {
	cases := []struct {
		name                                string
		abi                                 v4l2ABI
		formatSize, bufferSize              int
		querycap, sFmt, reqbufs, querybuf   uintptr
		qbuf, dqbuf, streamon, streamoff    uintptr
		timestampOff, memoryOff, mOff, lenO int
	}{
		{"amd64", v4l2ABI{8}, 208, 88,
			0x80685600, 0xc0d05605, 0xc0145608, 0xc0585609,
			0xc058560f, 0xc0585611, 0x40045612, 0x40045613,
			24, 60, 64, 72},
		{"armv7", v4l2ABI{4}, 204, 68,
			0x80685600, 0xc0cc5605, 0xc0145608, 0xc0445609,
			0xc044560f, 0xc0445611, 0x40045612, 0x40045613,
			20, 48, 52, 56},
	}
	for _, c := range cases {
		a := c.abi
		if a.formatSize() != c.formatSize || a.bufferSize() != c.bufferSize {
			t.Errorf("%s: sizes format %d buffer %d, want %d %d", c.name, a.formatSize(), a.bufferSize(), c.formatSize, c.bufferSize)
		}
		got := []uintptr{a.querycap(), a.sFmt(), a.reqbufs(), a.querybuf(), a.qbuf(), a.dqbuf(), a.streamon(), a.streamoff()}
		want := []uintptr{c.querycap, c.sFmt, c.reqbufs, c.querybuf, c.qbuf, c.dqbuf, c.streamon, c.streamoff}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: ioctl %d is %#x, want %#x", c.name, i, got[i], want[i])
			}
		}
		if a.bufTimestampOff() != c.timestampOff || a.bufMemoryOff() != c.memoryOff || a.bufMOff() != c.mOff || a.bufLengthOff() != c.lenO {
			t.Errorf("%s: v4l2_buffer offsets timestamp %d memory %d m %d length %d", c.name, a.bufTimestampOff(), a.bufMemoryOff(), a.bufMOff(), a.bufLengthOff())
		}
		b := v4l2Buffer{Index: 3, BytesUsed: 1234, Flags: 1, Sequence: 77, Offset: 0x1000, Length: 614400}
		enc := a.encodeBuffer(b)
		if len(enc) != c.bufferSize {
			t.Errorf("%s: encoded buffer %d bytes", c.name, len(enc))
		}
		if got := a.decodeBuffer(enc); got != b {
			t.Errorf("%s: buffer round trip %+v, want %+v", c.name, got, b)
		}
		if le.Uint32(enc[4:]) != v4l2BufTypeVideoCapture || le.Uint32(enc[c.memoryOff:]) != v4l2MemoryMMAP {
			t.Errorf("%s: type/memory not set", c.name)
		}
		pf := v4l2PixFormat{Width: 640, Height: 480, PixelFormat: v4l2PixYUYV, BytesPerLine: 1280, SizeImage: 614400}
		fb := a.encodeFormat(pf)
		if len(fb) != c.formatSize || a.decodeFormat(fb) != pf {
			t.Errorf("%s: format round trip failed", c.name)
		}
	}
	if hostABI.formatSize() != 208 && hostABI.word == 8 {
		t.Error("host ABI")
	}
	if fourcc(v4l2PixMJPEG) != "MJPG" || fourcc(v4l2PixYUYV) != "YUYV" {
		t.Error("fourcc")
	}
}

func TestDecodeCapability(t *testing.T) {
	b := make([]byte, v4l2CapabilitySize)
	copy(b, "uvcvideo")
	copy(b[16:], "HD Webcam")
	copy(b[48:], "usb-ci_hdrc.0-1")
	le.PutUint32(b[84:], v4l2CapDeviceCaps|v4l2CapVideoCapture|v4l2CapStreaming|0x00800000)
	le.PutUint32(b[88:], v4l2CapVideoCapture|v4l2CapStreaming)
	c := decodeCapability(b)
	if c.Driver != "uvcvideo" || c.Card != "HD Webcam" || c.BusInfo != "usb-ci_hdrc.0-1" || c.effective() != v4l2CapVideoCapture|v4l2CapStreaming {
		t.Errorf("%+v", c)
	}
}

func TestYUYVToRGBA(t *testing.T) {
	// Two pixel pairs: black/white (Y 16/235, neutral chroma) and pure-ish red.
	src := []byte{16, 128, 235, 128, 81, 90, 81, 240, 0, 0} // stride 10 with 2 bytes of padding
	img, err := yuyvToRGBA(src, 4, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	px := func(x int) [3]uint8 { o := 4 * x; return [3]uint8{img.Pix[o], img.Pix[o+1], img.Pix[o+2]} }
	if px(0) != [3]uint8{0, 0, 0} || px(1) != [3]uint8{255, 255, 255} {
		t.Errorf("black/white %v %v", px(0), px(1))
	}
	if r := px(2); r[0] < 250 || r[1] > 5 || r[2] > 5 {
		t.Errorf("red %v", r)
	}
	if _, err := yuyvToRGBA(src[:6], 4, 1, 8); err == nil {
		t.Error("short frame accepted")
	}
	if _, err := yuyvToRGBA(src, 3, 1, 10); err == nil {
		t.Error("odd width accepted")
	}
}

// stripDHT removes Huffman table segments, as UVC cameras send MJPEG.
func stripDHT(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var out []byte
	out = append(out, 0xFF, 0xD8)
	sos := walkJPEG(data, func(m byte, seg []byte) bool {
		if m != 0xC4 && m != 0xDA {
			out = append(out, seg...)
		}
		return true
	})
	if sos < 0 {
		tb.Fatal("bad test JPEG")
	}
	return append(out, data[sos:]...)
}

func TestHuffmanTablesInserted(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 16))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, nil) // Go writes the standard tables: stripping them loses nothing
	stripped := stripDHT(t, b.Bytes())
	if _, err := jpeg.Decode(bytes.NewReader(stripped)); err == nil {
		t.Fatal("a JPEG without tables decoded: the test proves nothing")
	}
	fixed := withHuffmanTables(stripped)
	got, err := jpeg.Decode(bytes.NewReader(fixed))
	if err != nil {
		t.Fatalf("with standard tables: %v", err)
	}
	want, _ := jpeg.Decode(bytes.NewReader(b.Bytes()))
	if !bytes.Equal(got.(*image.YCbCr).Y, want.(*image.YCbCr).Y) {
		t.Error("decoded pixels differ from the original")
	}
	if again := withHuffmanTables(b.Bytes()); !bytes.Equal(again, b.Bytes()) {
		t.Error("a JPEG with tables was changed")
	}
}

func FuzzWithHuffmanTables(f *testing.F) {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil)
	f.Add(b.Bytes())
	f.Add(stripDHT(f, b.Bytes()))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		out := withHuffmanTables(data)
		if len(out) < len(data) {
			t.Fatal("bytes lost")
		}
	})
}

// TestV4L2Device captures from a real webcam when there is one.
func TestV4L2Device(t *testing.T) {
	const dev = "/dev/video0"
	if _, err := os.Stat(dev); err != nil {
		t.Skipf("no webcam at %s: %v", dev, err)
	}
	for _, format := range []string{"mjpeg", "yuyv"} {
		s, err := OpenV4L2(dev, V4L2Options{Format: format})
		if err != nil {
			t.Logf("%s: %v", format, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := s.Next(ctx)
		cancel()
		s.Close()
		if err != nil {
			t.Errorf("%s: %v", format, err)
			continue
		}
		if c.Data == nil && c.Image == nil {
			t.Errorf("%s: empty capture", format)
		}
	}
}

// The table-driven conversion equals putYUV's arithmetic for every Y, U and V.
func TestYUYVTablesEqualPutYUV(t *testing.T) {
	step := 1
	if testing.Short() {
		step = 7 // qemu-user: a sample of the 16.7 M combinations
	}
	src := make([]byte, 4*256)
	want := make([]byte, 4)
	for u := 0; u < 256; u += step {
		for v := 0; v < 256; v += step {
			for y := 0; y < 256; y++ {
				src[4*y], src[4*y+1], src[4*y+2], src[4*y+3] = byte(y), byte(u), byte(y), byte(v)
			}
			img, err := yuyvToRGBA(src, 512, 1, 1024)
			if err != nil {
				t.Fatal(err)
			}
			for y := 0; y < 256; y++ {
				putYUV(want, y, u, v)
				if got := img.Pix[8*y : 8*y+4]; !bytes.Equal(got, want) {
					t.Fatalf("y %d u %d v %d: %v, putYUV %v", y, u, v, got, want)
				}
			}
		}
	}
}

// yuyvToRGBA is the reference conversion the tables must reproduce: packed YUYV 4:2:2 (Y0 U Y1 V per pixel pair, BT.601 limited
// range, as UVC cameras send it) to RGBA. stride is bytes per line (>= 2*w).
func yuyvToRGBA(src []byte, w, h, stride int) (*image.RGBA, error) {
	if w <= 0 || h <= 0 || w%2 != 0 || stride < 2*w || len(src) < stride*(h-1)+2*w {
		return nil, fmt.Errorf("yuyv frame: %d bytes for %dx%d (stride %d)", len(src), w, h, stride)
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	t := &yuvTab
	for y := 0; y < h; y++ {
		row := src[y*stride : y*stride+2*w]
		dst := out.Pix[y*out.Stride : y*out.Stride+4*w]
		for x := 0; x+2 <= w; x += 2 {
			q := row[2*x : 2*x+4 : 2*x+4]
			u, v := q[1], q[3]
			rv, guv, bu := t.rv[v], t.gu[u]+t.gv[v], t.bu[u]
			d := dst[4*x : 4*x+8 : 4*x+8]
			c := t.c[q[0]]
			d[0], d[1], d[2], d[3] = t.clip[(c+rv)>>16&2047], t.clip[(c+guv)>>16&2047], t.clip[(c+bu)>>16&2047], 255
			c = t.c[q[2]]
			d[4], d[5], d[6], d[7] = t.clip[(c+rv)>>16&2047], t.clip[(c+guv)>>16&2047], t.clip[(c+bu)>>16&2047], 255
		}
	}
	return out, nil
}

// putYUV writes one BT.601 limited-range pixel in 16.16 fixed point: the definition
// that yuvTab tabulates.
func putYUV(dst []byte, y, u, v int) {
	c := (y - 16) * 76309 // 1.164 * 65536
	d, e := u-128, v-128
	dst[0] = clip8((c + 104597*e + 32768) >> 16)
	dst[1] = clip8((c - 25675*d - 53279*e + 32768) >> 16)
	dst[2] = clip8((c + 132201*d + 32768) >> 16)
	dst[3] = 255
}

// A YUYV frame's planar image is exactly FromRGBA of the reference RGBA conversion, and
// its feed picture keeps the pixels' colours (JPEG full range).
func TestYUYVFramePlanarAndYCbCr(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h, stride = 64, 10, 132
	data := make([]byte, stride*h)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	f := &YUYVFrame{Data: data, W: w, H: h, Stride: stride}
	legal := slices.Clone(data) // the camera's limited range: Y 16..235, Cb and Cr 16..240
	for i := range legal {
		if i%2 == 0 {
			legal[i] = byte(16 + int(legal[i])%220)
		} else {
			legal[i] = byte(16 + int(legal[i])%225)
		}
	}
	got, err := f.Planar()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := yuyvToRGBA(data, w, h, stride)
	if err != nil {
		t.Fatal(err)
	}
	want := imageio.FromRGBA(ref)
	for i := range want.Data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) {
			t.Fatalf("planar value %d: %v, reference %v", i, got.Data[i], want.Data[i])
		}
	}
	ycc, err := (&YUYVFrame{Data: legal, W: w, H: h, Stride: stride}).YCbCr()
	if err != nil {
		t.Fatal(err)
	}
	if ref, err = yuyvToRGBA(legal, w, h, stride); err != nil {
		t.Fatal(err)
	}
	// Go's JFIF conversion of the full-range picture lands within a few levels of the
	// BT.601 limited-range conversion.
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := ycc.At(x, y).RGBA()
			o := ref.PixOffset(x, y)
			for c, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				if d := int(v) - int(ref.Pix[o+c]); d < -4 || d > 4 {
					t.Fatalf("pixel (%d,%d) channel %d: feed %d, reference %d", x, y, c, v, ref.Pix[o+c])
				}
			}
		}
	}
	// At is the reference conversion of that pixel.
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			want := ref.RGBAAt(x, y)
			if got := (&YUYVFrame{Data: legal, W: w, H: h, Stride: stride}).At(x, y); got != want {
				t.Fatalf("At(%d,%d) %v, reference %v", x, y, got, want)
			}
		}
	}
	if _, err := (&YUYVFrame{Data: data[:10], W: w, H: h, Stride: stride}).Planar(); err == nil {
		t.Error("short frame accepted")
	}
}

// withExif returns the JPEG with an Exif APP1 segment (orientation 6) after SOI.
func withExif(data []byte) []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	seg := append([]byte{0xFF, 0xE1, 0, 0}, "Exif\x00\x00"...)
	seg = append(seg, tiff...)
	seg[2], seg[3] = byte((len(seg)-2)>>8), byte(len(seg)-2)
	return append(append(append([]byte{}, data[:2]...), seg...), data[2:]...)
}

func TestFeedAsIs(t *testing.T) {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 8)), nil)
	var p bytes.Buffer
	png.Encode(&p, image.NewGray(image.Rect(0, 0, 16, 8)))
	exif := withExif(b.Bytes())
	if _, err := jpeg.Decode(bytes.NewReader(exif)); err != nil {
		t.Fatalf("test JPEG with Exif: %v", err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want bool
	}{
		{"jpeg", b.Bytes(), true}, {"jpeg without tables", stripDHT(t, b.Bytes()), true},
		{"jpeg with exif", exif, false}, {"png", p.Bytes(), false}, {"truncated", b.Bytes()[:3], false},
	} {
		if got := feedAsIs(c.data); got != c.want {
			t.Errorf("%s: feedAsIs %v, want %v", c.name, got, c.want)
		}
	}
}

// The fixed-point range stretches are the rounded quotients they stand for.
func TestFullRangeFormulas(t *testing.T) {
	roundDiv := func(a, b int) int { // half away from zero
		if a < 0 {
			return -((-a*2 + b) / (2 * b))
		}
		return (a*2 + b) / (2 * b)
	}
	for i := 0; i < 256; i++ {
		if got, want := fullY(i), clip8(((i-16)*255*2+219)/(2*219)); got != want {
			t.Errorf("fullY(%d) = %d, want %d", i, got, want)
		}
		if got, want := fullC(i), clip8(128+roundDiv((i-128)*255, 224)); got != want {
			t.Errorf("fullC(%d) = %d, want %d", i, got, want)
		}
	}
}

// The NEON Planar's byte -> float: b repeated in 32 bits plus a sticky bit, converted
// with 32 fraction bits (round to nearest), is float32(b) / 255 for every byte.
func TestByteFloatTrick(t *testing.T) {
	for b := uint32(0); b < 256; b++ {
		x := b * 0x01010101
		x += min(b, 1, 0xffffffff-x) // vqadd.u32: saturating
		if got, want := float32(x)*0x1p-32, float32(b)/255; got != want {
			t.Fatalf("byte %d: %v, want %v", b, got, want)
		}
	}
}

// On ARM the NEON YUYV conversions give the Go loops' values bit for bit, for every
// byte value in every position (the rows' widths leave a tail for the Go loop).
func TestYUYVNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernels run under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(7, 7))
	const w, h, stride = 16*9 + 6, 40, 2*(16*9+6) + 4
	data := make([]byte, stride*h)
	for i := range data {
		data[i] = byte(i*7) ^ byte(rng.IntN(256)) // all values, every lane
	}
	conv := func(neon bool) (*imageio.Image, *image.YCbCr) {
		defer func(v bool) { haveNEON = v }(haveNEON)
		haveNEON = neon
		f := &YUYVFrame{Data: data, W: w, H: h, Stride: stride}
		p, err := f.Planar()
		if err != nil {
			t.Fatal(err)
		}
		y, err := f.YCbCr()
		if err != nil {
			t.Fatal(err)
		}
		return p, y
	}
	p, y := conv(true)
	wp, wy := conv(false)
	for i := range wp.Data {
		if math.Float32bits(p.Data[i]) != math.Float32bits(wp.Data[i]) {
			t.Fatalf("planar value %d: NEON %v, Go %v", i, p.Data[i], wp.Data[i])
		}
	}
	if !bytes.Equal(y.Y, wy.Y) || !bytes.Equal(y.Cb, wy.Cb) || !bytes.Equal(y.Cr, wy.Cr) {
		t.Fatal("YCbCr planes: NEON differs from Go")
	}
}
