package imageio

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// TestSTBConstants recomputes stb_image's fixed-point constants the way its macros do
// (stbi__f2f: (int)(x*4096 + 0.5) truncating; stbi__float2fixed in float32).
func TestSTBConstants(t *testing.T) {
	f2f := func(x float32) int32 { return int32(float64(x)*4096 + 0.5) }
	idct := map[float32]int32{
		0.5411961: stbFix0541196100, -1.847759065: stbFixM1847759065, 0.765366865: stbFix0765366865,
		1.175875602: stbFix1175875602, 0.298631336: stbFix0298631336, 2.053119869: stbFix2053119869,
		3.072711026: stbFix3072711026, 1.501321110: stbFix1501321110, -0.899976223: stbFixM0899976223,
		-2.562915447: stbFixM2562915447, -1.961570560: stbFixM1961570560, -0.390180644: stbFixM0390180644,
	}
	for x, want := range idct {
		if got := f2f(x); got != want {
			t.Errorf("f2f(%v) = %d, table has %d", x, got, want)
		}
	}
	fixed := func(x float32) int32 { return int32(x*4096 + 0.5) }
	for x, want := range map[float32]int32{1.402: 5743, 0.71414: 2925, 0.34414: 1410, 1.772: 7258} {
		if got := fixed(x); got != want {
			t.Errorf("float2fixed(%v) = %d<<8, table uses %d", x, got, want)
		}
	}
}

func TestParseDecoder(t *testing.T) {
	for _, d := range []Decoder{LibJPEG, STB} {
		var got Decoder = 7
		if err := got.Set(d.String()); err != nil || got != d {
			t.Errorf("Set(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDecoder("gdiplus"); err == nil {
		t.Error("ParseDecoder accepted an unknown name")
	}
	if _, err := DecodeRGBAWith(bytes.NewReader(nil), Decoder(9)); err == nil {
		t.Error("DecodeRGBAWith accepted an unknown decoder")
	}
}

// TestSTBResamplersFlat: every filter reproduces a constant plane, at every width
// including the one- and two-sample edge cases.
func TestSTBResamplersFlat(t *testing.T) {
	for n := 1; n <= 5; n++ {
		in := bytes.Repeat([]byte{77}, n)
		for name, f := range map[string]func(dst []byte){
			"h2": func(d []byte) { stbH2(d, in) }, "v2": func(d []byte) { stbV2(d, in, in) },
			"hv2": func(d []byte) { stbHV2(d, in, in) },
		} {
			dst := make([]byte, 2*n)
			f(dst)
			if name == "v2" {
				dst = dst[:n]
			}
			for i, v := range dst {
				if v != 77 {
					t.Errorf("%s width %d: sample %d = %d", name, n, i, v)
				}
			}
		}
	}
}

// TestSTBHV2Rounding pins stb_image's rounding, which differs from libjpeg's: +8 on both
// phases (libjpeg alternates 8 and 7) and (t+2)>>2 at the right edge (libjpeg +7).
func TestSTBHV2Rounding(t *testing.T) {
	near, far := []byte{0, 1, 3}, []byte{1, 2, 2}
	dst := make([]byte, 6)
	stbHV2(dst, near, far)
	// column sums t = 3*near+far: 1, 5, 11
	want := []byte{(1 + 2) >> 2, (3*1 + 5 + 8) >> 4, (3*5 + 1 + 8) >> 4, (3*5 + 11 + 8) >> 4, (3*11 + 5 + 8) >> 4, (11 + 2) >> 2}
	if !bytes.Equal(dst, want) {
		t.Errorf("hv2 = %v, want %v", dst, want)
	}
}

// TestSTBDiffersFromLibjpeg: on a real photo the two modes give different samples
// (otherwise the option would be pointless) that stay within a few levels.
func TestSTBDiffersFromLibjpeg(t *testing.T) {
	files := testutil.FixturePhotos(t)
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeRGBAWith(bytes.NewReader(data), STB)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeRGBAWith(bytes.NewReader(data), LibJPEG)
	if err != nil {
		t.Fatal(err)
	}
	diff, maxDiff := 0, 0
	for i := range a.Pix {
		if d := absInt(int(a.Pix[i]) - int(b.Pix[i])); d != 0 {
			diff++
			maxDiff = max(maxDiff, d)
		}
	}
	t.Logf("%s: %d of %d samples differ between stb and libjpeg modes, by up to %d", files[0], diff, len(a.Pix)*3/4, maxDiff)
	if diff == 0 || maxDiff > 8 {
		t.Errorf("stb vs libjpeg: %d samples differ, max %d", diff, maxDiff)
	}
}

// TestSTBFallbacks: layouts our decoder leaves to image/jpeg (progressive) and PNG still
// decode in STB mode.
func TestSTBFallbacks(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 9, 7), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(i * 3)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	im, err := DecodeWith(bytes.NewReader(buf.Bytes()), STB)
	if err != nil || im.W != 9 || im.H != 7 || im.C != 3 {
		t.Fatalf("jpeg: %v %v", im, err)
	}
	g := image.NewGray(image.Rect(0, 0, 3, 2))
	g.Pix[4] = 200
	out, ok := stdlibToRGBASTB(g)
	if !ok || out.Pix[4*4] != 200 || out.Pix[4*4+1] != 200 || out.Pix[4*4+2] != 200 || out.Pix[4*4+3] != 255 {
		t.Errorf("grey: ok %v, pixel %v", ok, out.Pix[16:20])
	}
	if _, err := DecodeWith(bytes.NewReader([]byte("junk")), STB); err == nil {
		t.Error("junk decoded")
	}
}

func FuzzDecodeSTB(f *testing.F) {
	for _, size := range []image.Point{{8, 8}, {17, 9}, {1, 5}} {
		var buf bytes.Buffer
		img := image.NewYCbCr(image.Rect(0, 0, size.X, size.Y), image.YCbCrSubsampleRatio422)
		for i := range img.Y {
			img.Y[i] = uint8(i * 13)
		}
		_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 60})
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()*2/3])
	}
	noise := image.NewRGBA(image.Rect(0, 0, 48, 32)) // many coefficients: the fast path's
	for i := range noise.Pix {
		noise.Pix[i] = uint8(i*i*7 + i/5)
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, noise, &jpeg.Options{Quality: 90})
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xd8, 0xff, 0xd9})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The decoder proper, without the header check DecodeWith puts in front; the
		// fast Huffman path must decode exactly what the bit-by-bit one does.
		d, err := parseJPEG(data, true)
		fastHuffman = false
		slow, slowErr := parseJPEG(data, true)
		fastHuffman = true
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("fast Huffman path: %v, bit-by-bit: %v", err, slowErr)
		}
		if err == nil && !tooBig(d.width, d.height) {
			out, ok := d.outputSTB()
			if ok && (out.Bounds().Dx() != d.width || out.Bounds().Dy() != d.height) {
				t.Fatalf("outputSTB gave %v for %dx%d", out.Bounds(), d.width, d.height)
			}
			if want, _ := slow.outputSTB(); ok && !bytes.Equal(out.Pix, want.Pix) {
				t.Fatal("the fast Huffman path decoded other pixels than the bit-by-bit one")
			}
		}
		im, err := DecodeWith(bytes.NewReader(data), STB)
		if err != nil {
			return
		}
		if im.C != 3 || len(im.Data) != im.W*im.H*3 {
			t.Fatalf("bad image %dx%dx%d with %d samples", im.W, im.H, im.C, len(im.Data))
		}
	})
}

// TestDogDigests pins both modes' pixels for dog.jpg by SHA-256, recorded on amd64
// where the stb-tagged and djpeg tests show them equal to stb_image's and libjpeg's.
// Run as an ARM binary (scripts/test-arm.sh) it shows the board decodes identically.
func TestDogDigests(t *testing.T) {
	data, err := os.ReadFile(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[Decoder]string{
		LibJPEG: "83ee9ff6ccb5d9d4f063f1a7ca6c314503dc95c41b57ec4c0110686d706d4b7f",
		STB:     "c51ef266348a277753c93e8b863af79453d08b6021648521551721afdf74d7b6",
	}
	for dec, digest := range want {
		im, err := DecodeRGBAWith(bytes.NewReader(data), dec)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(im.Pix)); got != digest {
			t.Errorf("%v: pixels hash to %s, want %s", dec, got, digest)
		}
	}
}
