package imageio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// readPNM parses a binary PPM (P6) or PGM (P5), maxval 255, as written by djpeg,
// returning interleaved RGB (grey replicated).
func readPNM(data []byte) (w, h int, rgb []byte, err error) {
	r := bufio.NewReader(bytes.NewReader(data))
	var magic string
	var maxval int
	if _, err := fmt.Fscan(r, &magic, &w, &h, &maxval); err != nil {
		return 0, 0, nil, fmt.Errorf("pnm header: %w", err)
	}
	if (magic != "P6" && magic != "P5") || maxval != 255 {
		return 0, 0, nil, fmt.Errorf("pnm %s maxval %d: want P5/P6 255", magic, maxval)
	}
	if _, err := r.ReadByte(); err != nil { // the single whitespace after maxval
		return 0, 0, nil, err
	}
	channels := 3
	if magic == "P5" {
		channels = 1
	}
	raw := make([]byte, channels*w*h)
	if _, err := io.ReadFull(r, raw); err != nil {
		return 0, 0, nil, fmt.Errorf("pnm pixels: %w", err)
	}
	if channels == 3 {
		return w, h, raw, nil
	}
	rgb = make([]byte, 3*w*h)
	for i, v := range raw {
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = v, v, v
	}
	return w, h, rgb, nil
}

// TestDecodeMatchesLibjpeg decodes every fixture photo and compares it with Debian's
// libjpeg-turbo (djpeg, the library OpenCV hands darknet its pixels from).
func TestDecodeMatchesLibjpeg(t *testing.T) {
	djpeg, err := exec.LookPath("djpeg")
	if err != nil {
		t.Skip("djpeg not installed (apt-get install libjpeg-turbo-progs)")
	}
	var total, equal int
	maxDiff := 0
	for _, path := range testutil.FixturePhotos(t) {
		out, err := exec.Command(djpeg, "-ppm", path).Output()
		if err != nil {
			t.Fatalf("djpeg %s: %v", path, err)
		}
		w, h, want, err := readPNM(out)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRGBA(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got.Bounds().Dx() != w || got.Bounds().Dy() != h {
			t.Fatalf("%s: decoded %v, djpeg %dx%d", path, got.Bounds(), w, h)
		}
		fileMax := 0
		for i := 0; i < w*h; i++ {
			for c := 0; c < 3; c++ {
				d := absInt(int(got.Pix[4*i+c]) - int(want[3*i+c]))
				total++
				if d == 0 {
					equal++
				}
				fileMax = max(fileMax, d)
			}
		}
		maxDiff = max(maxDiff, fileMax)
	}
	share := float64(equal) / float64(total)
	// For the record: image/jpeg's At() (nearest-neighbour chroma, its own IDCT and
	// colour rounding) matched 68.1% of these samples.
	t.Logf("own decoder: %.4f%% of %d samples equal to libjpeg, max diff %d", 100*share, total, maxDiff)
	// With image/jpeg's IDCT (fancy upsampling and libjpeg colour on its planes) the
	// figures were 98.3% equal, max diff 3; with libjpeg's islow IDCT every sample matches.
	if equal != total {
		t.Errorf("decoded samples differ from libjpeg: %.4f%% equal, max diff %d", 100*share, maxDiff)
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestUpsampleLayouts checks every chroma layout against a direct computation on a
// flat-chroma image (any filter must reproduce a constant) and a grey image.
func TestUpsampleLayouts(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, ratio := range ratios {
		for _, size := range []image.Point{{1, 1}, {2, 3}, {5, 4}, {17, 9}} {
			src := image.NewYCbCr(image.Rect(0, 0, size.X, size.Y), ratio)
			for i := range src.Y {
				src.Y[i] = uint8(i * 7)
			}
			for i := range src.Cb {
				src.Cb[i], src.Cr[i] = 90, 200
			}
			got, err := ToRGBA(src)
			if err != nil {
				t.Fatal(err)
			}
			for y := 0; y < size.Y; y++ {
				for x := 0; x < size.X; x++ {
					yy := int(src.Y[src.YOffset(x, y)])
					want := [3]uint8{clamp8(yy + yccCrR[200]), clamp8(yy + (yccCbG[90]+yccCrG[200])>>16), clamp8(yy + yccCbB[90])}
					o := got.PixOffset(x, y)
					if [3]uint8(got.Pix[o:o+3]) != want {
						t.Fatalf("%v %v at (%d,%d): got %v want %v", ratio, size, x, y, got.Pix[o:o+3], want)
					}
				}
			}
		}
	}
}

func TestFancyH2V2Weights(t *testing.T) {
	// Two chroma columns 0 and 160 in one row: the output between them is a 3:1 blend.
	dst := make([]byte, 6)
	fancyH2V2(dst, []byte{0, 160, 160}, []byte{0, 160, 160})
	want := []byte{0, (0*3*4 + 160*4 + 7) >> 4, (160*4*3 + 0 + 8) >> 4, 160, 160, 160}
	if !bytes.Equal(dst, want) {
		t.Errorf("got %v want %v", dst, want)
	}
}

func TestDecodePNGAndGray(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	src.SetNRGBA(1, 1, color.NRGBA{R: 255, G: 128, B: 0, A: 10}) // alpha is ignored, as in OpenCV
	var buf bytes.Buffer
	if err := png.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	im, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if im.W != 3 || im.H != 2 || im.C != 3 {
		t.Fatalf("got %dx%dx%d", im.W, im.H, im.C)
	}
	if got := [3]float32{im.At(1, 1, 0), im.At(1, 1, 1), im.At(1, 1, 2)}; got != [3]float32{1, 128.0 / 255, 0} {
		t.Errorf("pixel (1,1) = %v", got)
	}
	gray := image.NewGray(image.Rect(0, 0, 2, 2))
	gray.Pix[3] = 51
	rgba, err := ToRGBA(gray)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rgba.Pix[12:16], []byte{51, 51, 51, 255}) {
		t.Errorf("grey pixel = %v", rgba.Pix[12:16])
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("not an image"), {0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0xff, 0xff, 0xff, 0xff, 1}} {
		if _, err := Decode(bytes.NewReader(in)); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	img := image.NewYCbCr(image.Rect(0, 0, 9, 7), image.YCbCrSubsampleRatio420)
	_ = jpeg.Encode(&buf, img, nil)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	buf.Reset()
	_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4)))
	f.Add(buf.Bytes())
	f.Add([]byte("P6 1 1 255 abc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if im.C != 3 || len(im.Data) != im.W*im.H*3 {
			t.Fatalf("bad image %dx%dx%d with %d samples", im.W, im.H, im.C, len(im.Data))
		}
	})
}

// TestDecodeMatchesLibjpegVariants encodes a synthetic picture with cjpeg in every
// sampling layout, with restart markers, greyscale and progressive, and compares our
// decode with djpeg's. Sequential files must match exactly; progressive ones go through
// image/jpeg (its IDCT) and only nearly match.
func TestDecodeMatchesLibjpegVariants(t *testing.T) {
	cjpeg, err1 := exec.LookPath("cjpeg")
	djpeg, err2 := exec.LookPath("djpeg")
	if err1 != nil || err2 != nil {
		t.Skip("cjpeg/djpeg not installed (apt-get install libjpeg-turbo-progs)")
	}
	const w, h = 53, 37 // not multiples of any MCU size
	var ppm bytes.Buffer
	fmt.Fprintf(&ppm, "P6\n%d %d\n255\n", w, h)
	seed := uint32(7)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			seed = seed*1103515245 + 12345
			ppm.Write([]byte{byte(x * 5), byte(y*7 + int(seed>>28)), byte((x * y) ^ int(seed>>24))})
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "in.ppm")
	if err := os.WriteFile(src, ppm.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	variants := map[string][]string{
		"444": {"-sample", "1x1"}, "422": {"-sample", "2x1"}, "420": {"-sample", "2x2"},
		"440": {"-sample", "1x2"}, "411": {"-sample", "4x1"}, "restart": {"-restart", "1B", "-sample", "2x2"},
		"optimize": {"-optimize", "-quality", "97"}, "gray": {"-grayscale"}, "progressive": {"-progressive"},
	}
	for name, args := range variants {
		jpg := filepath.Join(dir, name+".jpg")
		if out, err := exec.Command(cjpeg, append(append(args, "-outfile", jpg), src)...).CombinedOutput(); err != nil {
			t.Fatalf("cjpeg %s: %v %s", name, err, out)
		}
		ref, err := exec.Command(djpeg, "-ppm", jpg).Output()
		if err != nil {
			t.Fatalf("djpeg %s: %v", name, err)
		}
		data, err := os.ReadFile(jpg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRGBA(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, _, want, err := readPNM(ref)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		equal, maxDiff := 0, 0
		for i := 0; i < w*h; i++ {
			for c := 0; c < 3; c++ {
				d := absInt(int(got.Pix[4*i+c]) - int(want[3*i+c]))
				if d == 0 {
					equal++
				}
				maxDiff = max(maxDiff, d)
			}
		}
		_, ownErr := decodeJPEG(data)
		if name == "progressive" {
			if ownErr == nil || maxDiff > 3 {
				t.Errorf("progressive: own decoder error %v, max diff %d", ownErr, maxDiff)
			}
			continue
		}
		if ownErr != nil || equal != 3*w*h {
			t.Errorf("%s: own decoder error %v; %d of %d samples equal to libjpeg, max diff %d", name, ownErr, equal, 3*w*h, maxDiff)
		}
	}
}

func FuzzDecodeJPEG(f *testing.F) {
	for _, size := range []image.Point{{8, 8}, {17, 9}, {33, 40}} {
		var buf bytes.Buffer
		img := image.NewYCbCr(image.Rect(0, 0, size.X, size.Y), image.YCbCrSubsampleRatio420)
		for i := range img.Y {
			img.Y[i] = uint8(i * 13)
		}
		_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 60})
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()*2/3])
		buf.Reset()
		_ = jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, size.X, size.Y)), nil)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xd8, 0xff, 0xd9})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodeJPEG(data)
		if err != nil {
			return
		}
		if b := img.Bounds(); int64(b.Dx()*b.Dy()) > MaxPixels() || b.Empty() {
			t.Fatalf("decoded %v", b)
		}
		if _, err := ToRGBA(img); err != nil {
			t.Fatalf("decoded image does not convert: %v", err)
		}
	})
}

// TestMaxPixels: an image over the limit is refused from its header, naming its size,
// before the decoder allocates its pixels (a PNG bomb: small file, huge image).
func TestMaxPixels(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 1500, 1000))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	prev := SetMaxPixels(1 << 20)
	defer SetMaxPixels(prev)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(bytes.NewReader(buf.Bytes()))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1500x1000 (1.5 megapixels), more than the 1.0 megapixels allowed") {
		t.Fatalf("err %v, want ErrTooLarge naming the size", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(4*buf.Len())+1<<16 {
		t.Errorf("refusing allocated %d bytes for a %d-byte file: the pixels were decoded", grew, buf.Len())
	}
	SetMaxPixels(prev)
	if _, err := Decode(bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("under the default limit: %v", err)
	}
}
