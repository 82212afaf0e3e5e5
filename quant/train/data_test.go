package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// The augmented boxes follow the pixels: after jitter, scaling, offset and flip, the
// box's inside is the red rectangle and a margin around it is not.
func TestAugmentMovesBoxesWithPixels(t *testing.T) {
	const W, H = 60, 40
	im := imageio.NewImage(W, H, 3)
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			red := x >= 10 && x < 40 && y >= 8 && y < 28
			v := float32(.2)
			if red {
				v = 1
			}
			im.Set(x, y, 0, v)
			im.Set(x, y, 1, .2)
			im.Set(x, y, 2, .2)
		}
	}
	box := Box{X: 25. / W, Y: 18. / H, W: 30. / W, H: 20. / H}
	const S = 64
	for seed := uint64(0); seed < 40; seed++ {
		dst := make([]float32, 3*S*S)
		a := Augment{Jitter: .3, Flip: true, Saturation: 1, Exposure: 1}
		out := augment(im, []Box{box}, S, S, a, rand.New(rand.NewPCG(seed, 1)), dst)
		again := make([]float32, len(dst))
		augment(im, []Box{box}, S, S, a, rand.New(rand.NewPCG(seed, 1)), again)
		if !slices.Equal(dst, again) {
			t.Fatalf("seed %d: augmentation is not deterministic", seed)
		}
		if len(out) != 1 {
			continue // pushed (almost) off the canvas
		}
		b := out[0]
		x0, x1 := int((b.X-b.W/2)*S), int((b.X+b.W/2)*S)
		y0, y1 := int((b.Y-b.H/2)*S), int((b.Y+b.H/2)*S)
		if x1-x0 < 6 || y1-y0 < 6 {
			continue
		}
		red := func(x, y int) bool { return dst[y*S+x] > .6 }
		// Inside, away from the resampled edges: red.
		for _, p := range [][2]int{{(x0 + x1) / 2, (y0 + y1) / 2}, {x0 + 2, y0 + 2}, {x1 - 3, y1 - 3}} {
			if !red(p[0], p[1]) {
				t.Errorf("seed %d: box %+v: pixel %v inside is not red", seed, b, p)
			}
		}
		// Just outside (when on the canvas): not red.
		for _, p := range [][2]int{{x0 - 3, (y0 + y1) / 2}, {x1 + 2, (y0 + y1) / 2}, {(x0 + x1) / 2, y0 - 3}, {(x0 + x1) / 2, y1 + 2}} {
			if p[0] >= 0 && p[0] < S && p[1] >= 0 && p[1] < S && red(p[0], p[1]) {
				t.Errorf("seed %d: box %+v: pixel %v outside is red", seed, b, p)
			}
		}
	}
}

func TestHSVRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		r, g, b := rng.Float64(), rng.Float64(), rng.Float64()
		h, s, v := rgbToHSV(r, g, b)
		r2, g2, b2 := hsvToRGB(h, s, v)
		if d := max(abs(r-r2), abs(g-g2), abs(b-b2)); d > 1e-9 {
			t.Fatalf("rgb %v %v %v -> hsv %v %v %v -> %v %v %v", r, g, b, h, s, v, r2, g2, b2)
		}
	}
}

func abs(v float64) float64 { return max(v, -v) }

func TestSubdivisions(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 4, 5)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", strings.Replace(tinyCfg, "subdivisions=1", "subdivisions=2", 1))
	var iters []int
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), OutDir: filepath.Join(dir, "out"),
		MaxBatches: 3, Progress: func(p Progress) { iters = append(iters, p.Iteration) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seen != 12 || !slices.Equal(iters, []int{1, 2, 3}) {
		t.Errorf("seen %d iterations %v, want 12 images in iterations 1 2 3 (batch 4 in 2 passes of 2)", res.Seen, iters)
	}
}
