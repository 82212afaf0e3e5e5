//go:build stb && cgo

package imageio_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/internal/stbref"
)

// These tests compare imageio's STB mode with stb_image itself (Debian libstb-dev,
// through cgo): go test -tags stb ./quant/imageio/.

func needSTB(tb testing.TB) {
	tb.Helper()
	if !stbref.Available() {
		tb.Skip(stbref.ErrMissing)
	}
}

// compareSTB decodes path with imageio's STB mode and with both stb_image builds
// (SSE2 and plain C) and returns the number of samples and how many differ.
func compareSTB(tb testing.TB, path string) (total, diff, maxDiff int) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := imageio.DecodeRGBAWith(bytes.NewReader(data), imageio.STB)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	for _, ref := range []func(string) (int, int, []byte, error){stbref.LoadRGB, stbref.LoadRGBScalar} {
		w, h, want, err := ref(path)
		if err != nil {
			tb.Fatal(err)
		}
		if got.Bounds().Dx() != w || got.Bounds().Dy() != h {
			tb.Fatalf("%s: decoded %v, stb_image %dx%d", path, got.Bounds(), w, h)
		}
		for i := 0; i < w*h; i++ {
			for c := 0; c < 3; c++ {
				d := int(got.Pix[4*i+c]) - int(want[3*i+c])
				total++
				if d != 0 {
					diff++
					maxDiff = max(maxDiff, d, -d)
				}
			}
		}
	}
	return total, diff, maxDiff
}

// TestSTBMatchesStbImage: every sample of every fixture photo equals stb_image's.
func TestSTBMatchesStbImage(t *testing.T) {
	needSTB(t)
	dir := testutil.FixturesDir(t)
	var files []string
	for _, pat := range []string{"qnn-mo-pynq/images/*.jpg", "chairs/val/*.jpg", "chairs/calibration/*.jpg"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Skipf("no JPEG fixtures under %s", dir)
	}
	var total, diff int
	for _, path := range files {
		n, d, m := compareSTB(t, path)
		total += n
		diff += d
		if d != 0 {
			t.Errorf("%s: %d of %d samples differ from stb_image, by up to %d", path, d, n, m)
		}
	}
	t.Logf("%d photos, %d samples (SSE2 and plain-C stb_image each), %d differ", len(files), total, diff)
}

// TestSTBVariants encodes a synthetic picture with cjpeg in every sampling layout, odd
// sizes, restart markers, greyscale, RGB-coded and progressive, and compares with
// stb_image. Sequential files must match exactly; progressive ones are decoded by
// image/jpeg (its IDCT) and only nearly match.
func TestSTBVariants(t *testing.T) {
	needSTB(t)
	cjpeg, err := exec.LookPath("cjpeg")
	if err != nil {
		t.Skip("cjpeg not installed (apt-get install libjpeg-turbo-progs)")
	}
	dir := t.TempDir()
	variants := map[string][]string{
		"444": {"-sample", "1x1"}, "422": {"-sample", "2x1"}, "420": {"-sample", "2x2"},
		"440": {"-sample", "1x2"}, "411": {"-sample", "4x1"}, "420-q30": {"-quality", "30"},
		"restart": {"-restart", "1B", "-sample", "2x2"}, "optimize": {"-optimize", "-quality", "97"},
		"gray": {"-grayscale"}, "rgb": {"-rgb"}, "progressive": {"-progressive"},
	}
	for _, size := range [][2]int{{53, 37}, {1, 1}, {2, 9}, {3, 17}, {16, 16}} {
		src := filepath.Join(dir, fmt.Sprintf("in%dx%d.ppm", size[0], size[1]))
		if err := os.WriteFile(src, syntheticPPM(size[0], size[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, args := range variants {
			jpg := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.jpg", name, size[0], size[1]))
			if out, err := exec.Command(cjpeg, append(append(args, "-outfile", jpg), src)...).CombinedOutput(); err != nil {
				t.Fatalf("cjpeg %s: %v %s", name, err, out)
			}
			n, d, m := compareSTB(t, jpg)
			switch {
			case name == "progressive" && m > 3:
				t.Errorf("%s %v: %d of %d samples differ, by up to %d", name, size, d, n, m)
			case name != "progressive" && d != 0:
				t.Errorf("%s %v: %d of %d samples differ from stb_image, by up to %d", name, size, d, n, m)
			}
		}
	}
}

func syntheticPPM(w, h int) []byte {
	var ppm bytes.Buffer
	fmt.Fprintf(&ppm, "P6\n%d %d\n255\n", w, h)
	seed := uint32(7)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			seed = seed*1103515245 + 12345
			ppm.Write([]byte{byte(x * 5), byte(y*7 + int(seed>>28)), byte((x * y) ^ int(seed>>24))})
		}
	}
	return ppm.Bytes()
}

// BenchmarkStbImageC is stb_image itself (C, SSE2 kernels) on dog.jpg, for comparison
// with BenchmarkDecodeSTB.
func BenchmarkStbImageC(b *testing.B) {
	needSTB(b)
	path := testutil.Fixture(b, "qnn-mo-pynq", "images", "dog.jpg")
	for i := 0; i < b.N; i++ {
		if _, _, _, err := stbref.LoadRGB(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStbImageCScalar is stb_image without SIMD (what the board's darknet runs).
func BenchmarkStbImageCScalar(b *testing.B) {
	needSTB(b)
	path := testutil.Fixture(b, "qnn-mo-pynq", "images", "dog.jpg")
	for i := 0; i < b.N; i++ {
		if _, _, _, err := stbref.LoadRGBScalar(path); err != nil {
			b.Fatal(err)
		}
	}
}
