package imageio

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// fixtureJPEGs lists the JPEG photos of the shared fixtures.
func fixtureJPEGs(tb testing.TB) []string {
	tb.Helper()
	dir := testutil.FixturesDir(tb)
	var files []string
	for _, pat := range []string{"qnn-mo-pynq/images/*.jpg", "chairs/val/*.jpg", "chairs/calibration/*.jpg"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		tb.Skipf("no JPEG fixtures under %s", dir)
	}
	return files
}

// readPPM parses a binary (P6, maxval 255) PPM as written by djpeg.
func readPPM(data []byte) (w, h int, rgb []byte, err error) {
	r := bufio.NewReader(bytes.NewReader(data))
	var magic string
	var maxval int
	if _, err := fmt.Fscan(r, &magic, &w, &h, &maxval); err != nil {
		return 0, 0, nil, fmt.Errorf("ppm header: %w", err)
	}
	if magic != "P6" || maxval != 255 {
		return 0, 0, nil, fmt.Errorf("ppm %s maxval %d: want P6 255", magic, maxval)
	}
	if _, err := r.ReadByte(); err != nil { // the single whitespace after maxval
		return 0, 0, nil, err
	}
	rgb = make([]byte, 3*w*h)
	if _, err := io.ReadFull(r, rgb); err != nil {
		return 0, 0, nil, fmt.Errorf("ppm pixels: %w", err)
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
	var total, equal, nearest int
	maxDiff := 0
	for _, path := range fixtureJPEGs(t) {
		out, err := exec.Command(djpeg, "-ppm", path).Output()
		if err != nil {
			t.Fatalf("djpeg %s: %v", path, err)
		}
		w, h, want, err := readPPM(out)
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
		std, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		fileMax := 0
		for i := 0; i < w*h; i++ {
			x, y := i%w, i/w
			r, g, b, _ := std.At(x, y).RGBA()
			plain := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
			for c := 0; c < 3; c++ {
				d := absInt(int(got.Pix[4*i+c]) - int(want[3*i+c]))
				total++
				if d == 0 {
					equal++
				}
				if plain[c] == int(want[3*i+c]) {
					nearest++
				}
				fileMax = max(fileMax, d)
			}
		}
		maxDiff = max(maxDiff, fileMax)
	}
	share := float64(equal) / float64(total)
	t.Logf("fancy upsampling: %.4f%% of %d samples equal to libjpeg, max diff %d; image/jpeg At(): %.2f%% equal",
		100*share, total, maxDiff, 100*float64(nearest)/float64(total))
	// The rest of the difference is the inverse DCT: image/jpeg's IDCT rounds
	// differently from libjpeg's default integer IDCT (jidctint), which moves about 2% of
	// luma samples by one level; chroma upsampling and colour conversion are exact.
	if share < 0.98 || maxDiff > 3 {
		t.Errorf("decoded samples differ from libjpeg: %.4f%% equal (want >= 98%%), max diff %d (want <= 3)", 100*share, maxDiff)
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
