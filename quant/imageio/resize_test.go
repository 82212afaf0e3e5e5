package imageio

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestResizeIdentityAndCorners(t *testing.T) {
	im := NewImage(5, 4, 2)
	for i := range im.Data {
		im.Data[i] = float32(i%17) / 16
	}
	same := Resize(im, 5, 4)
	for i := range im.Data {
		if same.Data[i] != im.Data[i] {
			t.Fatalf("identity resize changed sample %d: %v -> %v", i, im.Data[i], same.Data[i])
		}
	}
	big := Resize(im, 9, 7)
	for k := 0; k < 2; k++ { // corners map onto corners
		for _, p := range [][4]int{{0, 0, 0, 0}, {8, 0, 4, 0}, {0, 6, 0, 3}, {8, 6, 4, 3}} {
			if got, want := big.At(p[0], p[1], k), im.At(p[2], p[3], k); got != want {
				t.Errorf("corner (%d,%d) channel %d = %v, want %v", p[0], p[1], k, got, want)
			}
		}
	}
}

func TestResizeBilinearHandComputed(t *testing.T) {
	// 2x2 -> 3x3: the centre is the mean of the four, edge midpoints the mean of two.
	im := &Image{W: 2, H: 2, C: 1, Data: []float32{0, 1, 2, 3}}
	got := Resize(im, 3, 3).Data
	want := []float32{0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	for _, size := range [][2]int{{1, 1}, {1, 3}, {3, 1}} { // degenerate targets do not panic
		out := Resize(im, size[0], size[1])
		if len(out.Data) != size[0]*size[1] {
			t.Errorf("resize to %v: %d samples", size, len(out.Data))
		}
	}
}

func TestLetterboxGeometry(t *testing.T) {
	cases := []struct{ sw, sh, w, h, nw, nh, dx, dy int }{
		{768, 576, 416, 416, 416, 312, 0, 52},
		{640, 424, 416, 416, 416, 275, 0, 70},
		{500, 375, 320, 320, 320, 240, 0, 40},
		{375, 500, 320, 320, 240, 320, 40, 0},
		{416, 416, 416, 416, 416, 416, 0, 0},
		{773, 512, 320, 320, 320, 211, 0, 54},
	}
	for _, c := range cases {
		nw, nh, dx, dy := LetterboxGeometry(c.sw, c.sh, c.w, c.h)
		if nw != c.nw || nh != c.nh || dx != c.dx || dy != c.dy {
			t.Errorf("%dx%d in %dx%d: got %d %d %d %d, want %d %d %d %d", c.sw, c.sh, c.w, c.h, nw, nh, dx, dy, c.nw, c.nh, c.dx, c.dy)
		}
	}
}

func TestLetterboxFillsBorders(t *testing.T) {
	im := NewImage(8, 4, 3)
	im.Fill(1)
	box := Letterbox(im, 6, 6) // resized to 6x3 at offset (0,1)
	for y := 0; y < 6; y++ {
		want := float32(1)
		if y == 0 || y >= 4 {
			want = 0.5
		}
		for k := 0; k < 3; k++ {
			if got := box.At(3, y, k); got != want {
				t.Errorf("row %d channel %d = %v, want %v", y, k, got, want)
			}
		}
	}
}

func TestDrawAndSave(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	Draw(img, []Label{
		{Box: [4]float32{10, 30, 60, 70}, Text: "chair 77%", Class: 56},
		{Box: [4]float32{-20, -5, 500, 500}, Text: "dog", Class: 16}, // clipped, caption inside
	})
	c := ClassColor(56, 80)
	if got := img.RGBAAt(10, 50); got != c {
		t.Errorf("left edge pixel = %v, want class colour %v", got, c)
	}
	if got := img.RGBAAt(35, 50); got.A != 0 {
		t.Errorf("box interior was painted: %v", got)
	}
	dir := t.TempDir()
	for _, name := range []string{"a.png", "a.jpg"} {
		if err := Save(filepath.Join(dir, name), img); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "a.png"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := png.Decode(bytes.NewReader(data))
	if err != nil || back.Bounds() != img.Bounds() {
		t.Fatalf("png round trip: %v %v", err, back)
	}
	if err := Save(filepath.Join(dir, "a.bmp"), img); err == nil {
		t.Error("saving .bmp succeeded")
	}
}

func TestClassColorMatchesDarknet(t *testing.T) {
	// Class 0 of 80 has offset 0: palette entry 0 (magenta).
	if got := ClassColor(0, 80); got.R != 255 || got.G != 0 || got.B != 255 {
		t.Errorf("class 0 colour %v, want magenta", got)
	}
}

// On ARM the NEON blend gives the Go loop's rows bit for bit.
func TestBlendRowsNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{4, 8, 416, 419} {
		top, bottom := make([]float32, n), make([]float32, n)
		for i := range top {
			top[i], bottom[i] = rng.Float32(), rng.Float32()
		}
		a := rng.Float32()
		got, want := make([]float32, n), make([]float32, n)
		blendRows(got, top, bottom, 1-a, a)
		for i := range want {
			want[i] = float32((1-a)*top[i]) + float32(a*bottom[i])
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n %d, value %d: NEON %v, Go %v", n, i, got[i], want[i])
			}
		}
	}
}

// On ARM, Resize with the NEON passes equals the Go loops bit for bit.
func TestResizeNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernels run under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(6, 6))
	for _, sz := range [][4]int{{640, 480, 416, 312}, {101, 57, 37, 29}, {9, 9, 5, 3}} {
		im := NewImage(sz[0], sz[1], 3)
		for i := range im.Data {
			im.Data[i] = float32(rng.IntN(256)) / 255
		}
		neon := Resize(im, sz[2], sz[3])
		haveNEON = false
		plain := Resize(im, sz[2], sz[3])
		haveNEON = true
		for i := range neon.Data {
			if math.Float32bits(neon.Data[i]) != math.Float32bits(plain.Data[i]) {
				t.Fatalf("%v: value %d: NEON %v, Go %v", sz, i, neon.Data[i], plain.Data[i])
			}
		}
	}
}
