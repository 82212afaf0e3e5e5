package train

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// tinyCfg is a very small Tiny-YOLO-shaped detector at 32x32 with a 4x4 grid.
const tinyCfg = `[net]
batch=4
subdivisions=1
width=32
height=32
channels=3
learning_rate=0.01
momentum=0.9
decay=0.0005
max_batches=100
policy=steps
steps=80
scales=.1
burn_in=5
hue=.1
saturation=1.5
exposure=1.5

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear

[region]
anchors=1,1,2.5,2.5
bias_match=1
classes=2
coords=4
num=2
softmax=1
jitter=.1
rescore=1
object_scale=5
noobject_scale=1
class_scale=1
coord_scale=1
thresh=.6
`

// writeDataset writes n 40x40 PNG images each holding one coloured rectangle (class 0
// red, class 1 blue) on grey, with darknet labels and a names file.
func writeDataset(tb testing.TB, dir string, n int, seed uint64) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		const S = 40
		img := image.NewRGBA(image.Rect(0, 0, S, S))
		for p := range img.Pix {
			img.Pix[p] = 128
		}
		cls := i % 2
		w, h := 10+rng.IntN(14), 10+rng.IntN(14)
		x0, y0 := rng.IntN(S-w), rng.IntN(S-h)
		col := color.RGBA{220, 30, 30, 255}
		if cls == 1 {
			col = color.RGBA{30, 30, 220, 255}
		}
		for y := y0; y < y0+h; y++ {
			for x := x0; x < x0+w; x++ {
				img.Set(x, y, col)
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			tb.Fatal(err)
		}
		base := filepath.Join(dir, fmt.Sprintf("im%03d", i))
		if err := os.WriteFile(base+".png", buf.Bytes(), 0o644); err != nil {
			tb.Fatal(err)
		}
		label := fmt.Sprintf("%d %f %f %f %f\n", cls, (float64(x0)+float64(w)/2)/S, (float64(y0)+float64(h)/2)/S, float64(w)/S, float64(h)/S)
		if err := os.WriteFile(base+".txt", []byte(label), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "classes.names"), []byte("red\nblue\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func TestOverfitLossDecreases(t *testing.T) {
	if testing.Short() {
		t.Skip("100 training iterations; skipped in -short (qemu)")
	}
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 6, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	var first, last float64
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), Val: filepath.Join(dir, "data"),
		OutDir: filepath.Join(dir, "out"), CheckpointEvery: 50, Seed: 7,
		Progress: func(p Progress) {
			if p.Iteration == 1 {
				first = p.AvgLoss
			}
			last = p.AvgLoss
			if p.MAP >= 0 || p.Iteration%20 == 0 {
				t.Log(p)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Iterations != 100 || res.Seen != 400 {
		t.Errorf("iterations %d seen %d, want 100 and 400", res.Iterations, res.Seen)
	}
	if !(last < first/2) {
		t.Errorf("avg loss went from %g to %g; want it at least halved", first, last)
	}
	for _, f := range []string{"tiny_50.weights", "tiny_100.weights", "tiny_last.weights", "tiny_last.momentum", "tiny_final.weights"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Error(err)
		}
	}
	// The written weights reload with quant/darknet and run in the float engine.
	m, err := darknet.Load(cfg, filepath.Join(dir, "out", "tiny_final.weights"), darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := floatengine.New(m, floatengine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(make([]float32, m.Input.Size())); err != nil {
		t.Fatal(err)
	}
	h := readHeader(t, filepath.Join(dir, "out", "tiny_final.weights"), m)
	if h.Seen != 400 || h.Major != 0 || h.Minor != 2 {
		t.Errorf("header %+v, want version 0.2 seen 400", h)
	}
}

func readHeader(tb testing.TB, path string, _ any) darknet.Header {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := darknet.ParseCfg(strings.NewReader(tinyCfg), "tiny.cfg", darknet.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := darknet.ReadWeights(bytes.NewReader(data), path, int64(len(data)), m)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func TestResumeMatchesUninterrupted(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 5, 2)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", strings.Replace(tinyCfg, "max_batches=100", "max_batches=8", 1))
	threads := 1
	qat := false
	run := func(out string, max int, resume string) {
		t.Helper()
		_, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), OutDir: out,
			MaxBatches: max, Threads: threads, Resume: resume, Seed: 3, CheckpointEvery: 4, QAT: qat, LearnClip: qat})
		if err != nil {
			t.Fatal(err)
		}
	}
	run(filepath.Join(dir, "a"), 8, "")
	run(filepath.Join(dir, "b"), 4, "")
	run(filepath.Join(dir, "b"), 8, filepath.Join(dir, "b", "tiny_last.weights"))
	a, err := os.ReadFile(filepath.Join(dir, "a", "tiny_final.weights"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "b", "tiny_final.weights"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("resumed run's final weights differ from the uninterrupted run's")
	}
	// Parallel GEMMs sum in the same order: two threads give the same weights.
	threads = 2
	run(filepath.Join(dir, "c"), 8, "")
	c, err := os.ReadFile(filepath.Join(dir, "c", "tiny_final.weights"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Error("two threads give other weights than one")
	}
	// QAT resumes exactly too (activation scales ride in the .momentum sidecar).
	threads, qat = 1, true
	run(filepath.Join(dir, "qa"), 8, "")
	run(filepath.Join(dir, "qb"), 4, "")
	run(filepath.Join(dir, "qb"), 8, filepath.Join(dir, "qb", "tiny_last.weights"))
	qa, err := os.ReadFile(filepath.Join(dir, "qa", "tiny_final.weights"))
	if err != nil {
		t.Fatal(err)
	}
	qb, err := os.ReadFile(filepath.Join(dir, "qb", "tiny_final.weights"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(qa, qb) {
		t.Error("resumed QAT run's final weights differ from the uninterrupted run's")
	}
}

func TestRatePolicies(t *testing.T) {
	c := DefaultConfig()
	c.LearningRate, c.BurnIn, c.Policy = .1, 10, "steps"
	c.Steps, c.Scales = []int{20, 30}, []float64{.1, .5}
	for _, tc := range []struct {
		it   int
		want float64
	}{{0, 0}, {5, .1 * .0625}, {10, .1}, {19, .1}, {20, .01}, {29, .01}, {30, .005}} {
		if got := c.Rate(tc.it); got < tc.want*(1-1e-9) || got > tc.want*(1+1e-9) {
			t.Errorf("steps rate(%d) = %g, want %g", tc.it, got, tc.want)
		}
	}
	c = DefaultConfig()
	c.LearningRate, c.Policy, c.MaxBatches, c.Power = 1, "poly", 100, 2
	if got := c.Rate(50); got != .25 {
		t.Errorf("poly rate(50) = %g, want .25", got)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(tinyCfg), "tiny.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch != 4 || c.LearningRate != .01 || c.BurnIn != 5 || c.Policy != "steps" || c.Steps[0] != 80 ||
		c.Jitter != .1 || !c.Region.Rescore || c.Region.ObjectScale != 5 || c.Region.Thresh != .6 || c.Hue != .1 {
		t.Errorf("parsed %+v", c)
	}
	_, err = ParseConfig(strings.NewReader("[net]\nbatch=x\n"), "bad.cfg")
	if err == nil || !strings.Contains(err.Error(), "bad.cfg:2") {
		t.Errorf("error %v, want bad.cfg:2", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(tinyCfg)
	f.Add("[net]\nsteps=1,2\nscales=.1\npolicy=steps\n")
	f.Add("[region]\nthresh=nan\n")
	f.Add("[net]\nbatch=0\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(strings.NewReader(s), "fuzz.cfg")
		if err == nil {
			for i := 0; i < 3; i++ {
				c.Rate(i * 7)
			}
		}
	})
}
