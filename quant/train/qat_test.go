package train

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
)

// A bipolar layer's forward pass and deltas equal a float layer's whose weights are
// the bipolar ones (the straight-through estimator).
func TestBipolarWeightsStraightThrough(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	mq, lq := convModel(3, 6, 6, 4, 3, 1, 1, quant.ActLeaky, true)
	mf, lf := convModel(3, 6, 6, 4, 3, 1, 1, quant.ActLeaky, true)
	lq.Conv.Weights = randSlice(rng, 4*27, .5)
	lq.Quant = &quant.LayerQuant{WeightBits: 1}
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
	lf.Conv.Weights = append([]float32(nil), cq.wfwd...)
	for f := 0; f < 4; f++ {
		a := lq.Quant.WeightScale[f]
		for _, v := range lf.Conv.Weights[f*27 : (f+1)*27] {
			if v != a && v != -a {
				t.Fatalf("filter %d weight %g is not ±%g", f, v, a)
			}
		}
	}
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
				t.Fatalf("%s[%d]: bipolar %g, float with bipolar weights %g", what, i, a[i], b[i])
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
