//go:build darknet && cgo

package darknetref

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// diffStats compares two equally sized images: the share of equal samples and the
// largest absolute difference.
func diffStats(tb testing.TB, a, b *imageio.Image) (equal float64, maxDiff float32) {
	tb.Helper()
	if a.W != b.W || a.H != b.H || a.C != b.C {
		tb.Fatalf("image sizes differ: %dx%dx%d vs %dx%dx%d", a.W, a.H, a.C, b.W, b.H, b.C)
	}
	n := 0
	for i := range a.Data {
		d := float32(math.Abs(float64(a.Data[i] - b.Data[i])))
		if d == 0 {
			n++
		}
		maxDiff = max(maxDiff, d)
	}
	return float64(n) / float64(len(a.Data)), maxDiff
}

// TestDecodeMatchesDarknet compares imageio.Load with darknet's load_image_color
// (OpenCV -> libjpeg-turbo in Debian's build) on every fixture photo.
func TestDecodeMatchesDarknet(t *testing.T) {
	var equalSum float64
	var worst float32
	files := testutil.FixturePhotos(t)
	for _, path := range files {
		ours, err := imageio.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := LoadImageColor(path)
		if err != nil {
			t.Fatal(err)
		}
		eq, md := diffStats(t, ours, theirs)
		equalSum += eq
		worst = max(worst, md)
	}
	share := equalSum / float64(len(files))
	t.Logf("decode: %.3f%% of samples equal to darknet's load_image_color, max diff %.0f/255 (%d photos)",
		100*share, worst*255, len(files))
	if share != 1 {
		t.Errorf("decode differs from darknet: %.3f%% equal, max %.1f/255", 100*share, worst*255)
	}
}

// TestLetterboxMatchesDarknet feeds darknet's own decoded pixels to imageio.Resize and
// imageio.Letterbox and requires darknet's results bit for bit, then compares the whole
// path (our decode + letterbox against darknet's).
func TestLetterboxMatchesDarknet(t *testing.T) {
	var worstPipeline float32
	for _, path := range testutil.FixturePhotos(t) {
		src, err := LoadImageColor(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range [][2]int{{320, 320}, {416, 416}, {300, 200}} {
			if eq, md := diffStats(t, imageio.Letterbox(src, size[0], size[1]), Letterbox(src, size[0], size[1])); eq != 1 {
				t.Errorf("%s letterbox %v: %.4f%% equal, max diff %g", filepath.Base(path), size, 100*eq, md)
			}
		}
		if eq, md := diffStats(t, imageio.Resize(src, 211, 97), Resize(src, 211, 97)); eq != 1 {
			t.Errorf("%s resize: %.4f%% equal, max diff %g", filepath.Base(path), 100*eq, md)
		}
		ours, err := imageio.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		_, md := diffStats(t, imageio.Letterbox(ours, 320, 320), Letterbox(src, 320, 320))
		worstPipeline = max(worstPipeline, md)
	}
	t.Logf("decode+letterbox 320: max diff %.2g against darknet", worstPipeline)
	if worstPipeline != 0 {
		t.Errorf("our decode+letterbox differs from darknet's by up to %g", worstPipeline)
	}
}

// TestPNGMatchesDarknet writes PNGs of several colour models and compares imageio.Load
// with darknet's load_image_color (OpenCV's PNG reader: alpha dropped, grey replicated,
// 16-bit truncated to 8).
func TestPNGMatchesDarknet(t *testing.T) {
	src, err := imageio.Load(testutil.FixturePhotos(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	rgba := src.ToRGBA()
	b := rgba.Bounds()
	gray := image.NewGray(b)
	nrgba := image.NewNRGBA(b)
	rgb16 := image.NewNRGBA64(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgba.RGBAAt(x, y)
			gray.SetGray(x, y, color.Gray{Y: c.G})
			nrgba.SetNRGBA(x, y, color.NRGBA{R: c.R, G: c.G, B: c.B, A: uint8(x)})
			rgb16.SetNRGBA64(x, y, color.NRGBA64{R: uint16(c.R)<<8 | uint16(y), G: uint16(c.G) << 8, B: uint16(c.B)<<8 | 0xff, A: 0xffff})
		}
	}
	dir := t.TempDir()
	for name, img := range map[string]image.Image{"rgb": rgba, "gray": gray, "alpha": nrgba, "rgb16": rgb16} {
		path := filepath.Join(dir, name+".png")
		if err := imageio.Save(path, img); err != nil {
			t.Fatal(err)
		}
		ours, err := imageio.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := LoadImageColor(path)
		if err != nil {
			t.Fatal(err)
		}
		if eq, md := diffStats(t, ours, theirs); eq != 1 {
			t.Errorf("%s PNG: %.3f%% equal to darknet, max diff %.0f/255", name, 100*eq, 255*md)
		}
	}
}
