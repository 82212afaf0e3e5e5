package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// A layer with quantized weights (bipolar, 4 and 8 bits) runs forward and backward as a
// float layer whose weights are the quantized ones: scale_f * level with the scales
// of the quantization flow's weights step (qonnx.WeightScales), levels sign(w) for 1
// bit and signed narrow levels for more; the float (latent) weights get the updates
// (the straight-through estimator).
func TestQuantizedWeightsStraightThrough(t *testing.T) {
	for _, bits := range []int{1, 4, 8} {
		t.Run(fmt.Sprintf("%dbit", bits), func(t *testing.T) { testQuantizedWeights(t, bits) })
	}
}

func testQuantizedWeights(t *testing.T, bits int) {
	rng := rand.New(rand.NewPCG(9, uint64(bits)))
	mq, lq := convModel(3, 6, 6, 4, 3, 1, 1, quant.ActLeaky, true)
	mf, lf := convModel(3, 6, 6, 4, 3, 1, 1, quant.ActLeaky, true)
	lq.Conv.Weights = randSlice(rng, 4*27, .5)
	latent := append([]float32(nil), lq.Conv.Weights...)
	lq.Quant = &quant.LayerQuant{WeightBits: bits}
	for _, m := range []*quant.Model{mq, mf} {
		if err := m.InferShapes(); err != nil {
			t.Fatal(err)
		}
	}
	n := testNet(t, 2, 2)
	cq, err := newConvLayer(mq, lq)
	if err != nil {
		t.Fatal(err)
	}
	in := randSlice(rng, 2*lq.In.Size(), 1)
	outQ := make([]float32, 2*lq.Out.Size())
	cq.forward(n, in, outQ, true)
	if !slices.Equal(lq.Conv.Weights, latent) {
		t.Fatal("the forward pass changed the float weights")
	}
	scales := qonnx.WeightScales(latent, 4, bits)
	if !slices.Equal(lq.Quant.WeightScale, scales) {
		t.Fatalf("recorded weight scales %v, want the weights step's %v", lq.Quant.WeightScale, scales)
	}
	lo, hi := qonnx.LevelRange(bits, true, true)
	if bits == 1 {
		lo, hi = -1, 1
	}
	levels := map[float32]bool{}
	for i, v := range cq.wfwd {
		s := scales[i/27]
		k := qonnx.QuantLevel(latent[i], s, bits, true, true)
		if bits == 1 {
			k = qonnx.BipolarSign(latent[i])
		}
		if v != s*k || k < lo || k > hi || (bits == 1 && k == 0) {
			t.Fatalf("filter %d weight %g (float %g), want level %g x scale %g", i/27, v, latent[i], k, s)
		}
		if bits > 1 && math.Abs(float64(latent[i]-v)) > float64(s)/2*(1+1e-5) {
			t.Fatalf("filter %d weight %g is %g from its float %g: more than half a step %g", i/27, v, v-latent[i], latent[i], s)
		}
		levels[k] = true
	}
	t.Logf("%d bits: %d distinct levels in [%g, %g]", bits, len(levels), lo, hi)
	if bits == 8 && len(levels) < 50 {
		t.Errorf("8-bit weights use only %d levels", len(levels))
	}
	lf.Conv.Weights = append([]float32(nil), cq.wfwd...)
	cf, err := newConvLayer(mf, lf)
	if err != nil {
		t.Fatal(err)
	}
	outF := make([]float32, len(outQ))
	cf.forward(n, in, outF, true)
	r := randSlice(rng, len(outQ), 1)
	dq, df := make([]float32, len(in)), make([]float32, len(in))
	cq.backward(n, in, outQ, append([]float32(nil), r...), dq)
	cf.backward(n, in, outF, append([]float32(nil), r...), df)
	same := func(what string, a, b []float32) {
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-4*math.Max(1, math.Abs(float64(b[i]))) {
				t.Fatalf("%s[%d]: quantized %g, float with the quantized weights %g", what, i, a[i], b[i])
			}
		}
	}
	same("output", outQ, outF)
	same("input delta", dq, df)
	same("weight updates", cq.wUpd, cf.wUpd)
}

func TestActivationQuantizer(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	m, l := convModel(2, 5, 5, 3, 3, 1, 1, quant.ActReLU, false)
	l.Conv.Weights = randSlice(rng, 3*18, .5)
	l.Quant = &quant.LayerQuant{ActBits: 3, ActScale: .1}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	n := testNet(t, 1, 1)
	cl, err := newConvLayer(m, l)
	if err != nil {
		t.Fatal(err)
	}
	in := randSlice(rng, l.In.Size(), 1)
	out := make([]float32, l.Out.Size())
	cl.forward(n, in, out, true)
	clipped := 0
	for i, v := range out {
		k := v / .1
		if k < 0 || k > 7 || math.Abs(float64(k)-math.Round(float64(k))) > 1e-4 {
			t.Fatalf("out[%d] = %g is not a 3-bit level of .1", i, v)
		}
		if cl.q.preq[i] >= .7 {
			clipped++
		}
	}
	delta := fill(len(out), 1)
	cl.backward(n, in, out, delta, make([]float32, len(in)))
	for i, d := range delta {
		pre := cl.q.preq[i]
		if want := pre > 0 && pre < .7; (d != 0) != want {
			t.Fatalf("delta[%d] = %g for activation %g; want it passed only inside (0, .7)", i, d, pre)
		}
	}
	if want := float64(7*clipped) / math.Sqrt(float64(len(out)*7)); clipped == 0 || math.Abs(cl.q.clipUp-want) > 1e-9 {
		t.Errorf("PACT update %g from %d clipped activations, want %g", cl.q.clipUp, clipped, float64(7*clipped)/math.Sqrt(float64(len(out)*7)))
	}
}

func TestQATLossDecreases(t *testing.T) {
	if testing.Short() {
		t.Skip("100 training iterations; skipped in -short (qemu)")
	}
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 6, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	var first, last float64
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"),
		OutDir: filepath.Join(dir, "out"), CheckpointEvery: 100, Seed: 7, QAT: true, LearnClip: true,
		Progress: func(p Progress) {
			if p.Iteration == 1 {
				first = p.AvgLoss
			}
			last = p.AvgLoss
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !(last < first/2) {
		t.Errorf("QAT avg loss went from %g to %g; want it at least halved", first, last)
	}
	var q []string
	for _, l := range res.Model.Layers {
		if l.Quant != nil {
			q = append(q, l.Name)
			if l.Quant.ActBits == 3 && l.Quant.ActScale <= 0 {
				t.Errorf("%s: activation scale %g not calibrated", l.Name, l.Quant.ActScale)
			}
		}
	}
	t.Logf("avg loss %.2f -> %.2f with quantized layers %v", first, last, q)
}

// An unset activation scale is set on the first forward pass to the scale calib would
// choose for that batch with the Net's clipInit method ("" is MSE, as in Run), and
// kept afterwards. On a ReLU layer MSE clips below the maximum.
func TestClipInit(t *testing.T) {
	scales := map[string]float32{}
	for _, method := range []string{calib.MSE, calib.Percentile, calib.MinMax, ""} {
		rng := rand.New(rand.NewPCG(5, 5))
		m, l := convModel(4, 12, 12, 8, 3, 1, 1, quant.ActReLU, false)
		l.Conv.Weights = randSlice(rng, 8*36, .5)
		l.Conv.Bias = randSlice(rng, 8, .2)
		l.Quant = &quant.LayerQuant{ActBits: 3}
		if err := m.InferShapes(); err != nil {
			t.Fatal(err)
		}
		n := testNet(t, 2, 1)
		n.clipInit = method
		cl, err := newConvLayer(m, l)
		if err != nil {
			t.Fatal(err)
		}
		in := randSlice(rng, 2*l.In.Size(), 1)
		out := make([]float32, 2*l.Out.Size())
		cl.forward(n, in, out, true)
		calibMethod := method
		if method == "" {
			calibMethod = calib.MSE
		}
		want, err := calib.ScaleOf(cl.q.preq, 3, false, calib.Options{Method: calibMethod})
		if err != nil {
			t.Fatal(err)
		}
		got := l.Quant.ActScale
		if got != qonnx.RoundActScale(want, 3) || got <= 0 {
			t.Errorf("clip init %q: scale %g, want calib's %g", method, got, want)
		}
		for i, v := range out {
			if k := v / got; k != float32(math.Round(float64(k))) || k < 0 || k > 7 {
				t.Fatalf("clip init %q: out[%d] = %g is not a 3-bit level of %g", method, i, v, got)
			}
		}
		cl.forward(n, randSlice(rng, len(in), 3), out, true)
		if l.Quant.ActScale != got {
			t.Errorf("clip init %q: the second batch moved the scale from %g to %g", method, got, l.Quant.ActScale)
		}
		scales[method] = got
	}
	t.Logf("first-batch scales: %v", scales)
	if scales[""] != scales[calib.MSE] {
		t.Errorf("clip init \"\" gave %g, MSE %g", scales[""], scales[calib.MSE])
	}
	if !(scales[calib.MSE] < scales[calib.MinMax]) {
		t.Errorf("MSE scale %g not below the min-max scale %g on a ReLU layer", scales[calib.MSE], scales[calib.MinMax])
	}
}

func TestRunRejectsBadClipInit(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 2, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	out := filepath.Join(dir, "out")
	_, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), OutDir: out,
		MaxBatches: 1, QAT: true, ClipInit: "entropy"})
	if err == nil || !strings.Contains(err.Error(), "clip init") || !strings.Contains(err.Error(), `"entropy"`) ||
		!strings.Contains(err.Error(), "mse") {
		t.Fatalf("Run with clip init entropy: error %v, want one naming the option, the value and the methods", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed run created its output directory (%v)", err)
	}
	t.Log(err)
}

// Options.Prepare replaces MarkW1A3: its annotations are the ones that train, and its
// error stops the run.
func TestRunPrepare(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 4, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	calls := 0
	prepare := func(m *quant.Model) error {
		calls++
		if m.Layers[0].Conv == nil || m.Layers[0].Conv.Weights == nil {
			return errors.New("prepare saw a model without weights")
		}
		m.Layers[0].Quant = &quant.LayerQuant{WeightBits: 8, ActBits: 4}
		return nil
	}
	// One iteration; the result's weight scales are those of the final weights.
	const seed = 2
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), OutDir: filepath.Join(dir, "out"),
		MaxBatches: 1, Seed: seed, Threads: 1, QAT: true, ClipInit: calib.MinMax, Prepare: prepare})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("prepare called %d times, want once", calls)
	}
	for i, l := range res.Model.Layers[1:] {
		if l.Quant != nil {
			t.Errorf("layer %d (%s) got quantizers %+v the hook did not set (MarkW1A3 ran too?)", i+1, l.Name, *l.Quant)
		}
	}
	l := res.Model.Layers[0]
	q := l.Quant
	if q == nil || q.WeightBits != 8 || q.ActBits != 4 || !(q.ActScale > 0) {
		t.Fatalf("first layer's quantizers after training: %+v; want the hook's 8-bit weights and 4-bit activations, calibrated", q)
	}
	if want := qonnx.WeightScales(l.Conv.Weights, l.Conv.Filters, 8); !slices.Equal(q.WeightScale, want) {
		t.Errorf("weight scales %v, want the 8-bit scales of the trained weights %v", q.WeightScale, want)
	}

	hookErr := errors.New("no such layer")
	_, err = Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), OutDir: filepath.Join(dir, "out2"),
		MaxBatches: 1, QAT: true, Prepare: func(*quant.Model) error { return hookErr }})
	if !errors.Is(err, hookErr) {
		t.Errorf("Run with a failing Prepare: error %v, want it wrapping the hook's", err)
	}
}

// QAT progress reports mAP at the validation iterations, the mAP EvalMAP gives the
// quantized result model (through qengine).
func TestQATValidationRunsQuantized(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeDataset(t, data, 4, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	var maps []float64
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: data, Val: data, ValEvery: 1, OutDir: filepath.Join(dir, "out"),
		MaxBatches: 2, Seed: 3, QAT: true, Progress: func(p Progress) {
			if p.MAP >= 0 {
				maps = append(maps, p.MAP)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 2 {
		t.Fatalf("mAP reported %d times in 2 iterations with ValEvery 1, want 2", len(maps))
	}
	q, err := EvalMAP(res.Model, data, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if q.MAP != maps[1] {
		t.Errorf("last progress mAP %g, EvalMAP of the result %g", maps[1], q.MAP)
	}
}
