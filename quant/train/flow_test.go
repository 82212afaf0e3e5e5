package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// The point of QAT: a model trained with its quantizers in the loop computes, after the
// quantization flow (weights step, activations step, the trained activation scales,
// integer thresholds) in the quantized engine, the activation levels it trained with.
// The two sides round differently (the trainer sums float32 GEMMs and normalizes with
// float32 batch norm; the engine sums in float64 and its threshold layers fold batch
// norm into integer thresholds), so levels may differ where a value lies on a rounding
// boundary, nowhere else.
func TestQATModelThroughQuantizationFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("200 QAT iterations and two engines per case; skipped in -short (qemu)")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeDataset(t, data, 8, 4)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	for _, tc := range []struct {
		name     string
		leaky    string // the flow's (and Prepare's) LeakyRelu choice
		keepBits int    // weight bits of the first and last convolutions
		prepare  bool   // annotate as pynqctl quant qat does, else MarkW1A3
	}{
		// MarkW1A3 trains leaky layers with unsigned quantizers, the flow runs them as
		// ReLU: the same levels (negative values quantize to 0 either way).
		{"MarkW1A3", "relu", 0, false},
		{"prepare-relu", "relu", 0, true},
		{"prepare-keep-leaky", "keep", 0, true},
		{"prepare-8bit-edges", "relu", 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			weights := qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true, KeepBits: tc.keepBits}
			act := qonnx.ActOptions{Bits: 3, Leaky: tc.leaky}
			opt := Options{Cfg: cfg, Data: data, OutDir: filepath.Join(dir, tc.name),
				MaxBatches: 200, Seed: 11, Threads: 1, QAT: true, LearnClip: true}
			if tc.prepare {
				opt.Prepare = func(m *quant.Model) error { return flowSteps(m, weights, act, true) }
			}
			res, err := Run(context.Background(), opt)
			if err != nil {
				t.Fatal(err)
			}
			testFlowLevels(t, cfg, data, res, weights, act)
		})
	}
}

// flowSteps runs the quantization flow's weights and activations steps; for QAT
// (clear) the activation scales are cleared, to be set on the first batch.
func flowSteps(m *quant.Model, w qonnx.WeightOptions, act qonnx.ActOptions, clear bool) error {
	if _, err := qonnx.QuantizeWeights(m, w); err != nil {
		return err
	}
	if _, err := qonnx.QuantizeActivations(m, act); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if q := l.Quant; clear && q != nil && q.ActBits > 0 {
			q.ActScale = 0
		}
	}
	return nil
}

// testFlowLevels compares the levels of QAT's result with the flow's on a few inputs.
func testFlowLevels(t *testing.T, cfg, data string, res *Result, w qonnx.WeightOptions, act qonnx.ActOptions) {
	t.Helper()
	flow := quantizationFlow(t, cfg, res, w, act)

	// On the UINT8 pixel grid the QONNX input holds, the engine's float input loses
	// nothing and both sides see the same values.
	raw := flowInputs(t, data, res.Model.Input)
	inputs := onPixelGrid(raw)
	net, err := NewNet(res.Model, len(inputs), 1, RegionParams{})
	if err != nil {
		t.Fatal(err)
	}
	net.Forward(slices.Concat(inputs...), nil, false)
	for i, l := range flow.Layers {
		if q := l.Quant; q != nil && q.WeightBits > 0 && !slices.Equal(res.Model.Layers[i].Quant.WeightScale, q.WeightScale) {
			t.Errorf("%s: trained weight scales %v, the flow's %v", l.Name, res.Model.Layers[i].Quant.WeightScale, q.WeightScale)
		}
	}
	e, err := quantengine.New(flow, quantengine.Options{Threads: 1, FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	cmp := map[int]*levelAgreement{}
	head := len(flow.Layers) - 1
	var headDiff float64
	for b, in := range inputs {
		if err := e.Forward(in); err != nil {
			t.Fatal(err)
		}
		for _, i := range qonnx.QuantizedLayers(flow) {
			if cmp[i] == nil {
				cmp[i] = &levelAgreement{}
			}
			cl := net.layers[i].(*convLayer)
			sz := flow.Layers[i].Out.Size()
			cmp[i].add(net.Output(i)[b*sz:(b+1)*sz], cl.q.preq[b*sz:(b+1)*sz], e.Levels(i), cl.q.q)
		}
		sz := flow.Layers[head].Out.Size()
		for k, v := range e.Output(head) {
			headDiff = max(headDiff, math.Abs(float64(v-net.Output(head)[b*sz+k])))
		}
	}
	var inner, total int
	for _, i := range qonnx.QuantizedLayers(flow) {
		a := cmp[i]
		kind := "float conv"
		if len(flow.Layers[i].Quant.Thresholds) > 0 {
			kind = "thresholds"
		}
		t.Logf("%s (%s): %s", flow.Layers[i].Name, kind, a)
		if a.fraction() < .999 {
			t.Errorf("%s: levels agree on %.5f of values, want >= 0.999", flow.Layers[i].Name, a.fraction())
		}
		if a.used() < 2 {
			t.Errorf("%s: only %d level in use (%v): the comparison says little", flow.Layers[i].Name, a.used(), a.hist)
		}
		inner += a.inner()
		total += a.n
	}
	// Levels strictly inside the range are where rounding boundaries lie.
	if inner*10 < total {
		t.Errorf("only %d of %d levels lie strictly inside the range: the comparison says little", inner, total)
	}
	t.Logf("region head: largest difference %.3g over %d images", headDiff, len(inputs))
	if headDiff > 1e-3 {
		t.Errorf("region head outputs differ by up to %g", headDiff)
	}
	logPixelRounding(t, net, flow, raw)
}

// logPixelRounding reports (no assertion) what the deployed model's UINT8 input costs a
// model that QAT trained on float pixels: the trainer's first-layer levels on the raw
// inputs against the engine's, which rounds them to the pixel grid.
func logPixelRounding(t *testing.T, net *Net, flow *quant.Model, raw [][]float32) {
	t.Helper()
	e, err := quantengine.New(flow, quantengine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	net.Forward(slices.Concat(raw...), nil, false)
	i := qonnx.QuantizedLayers(flow)[0]
	cl := net.layers[i].(*convLayer)
	sz := flow.Layers[i].Out.Size()
	a := &levelAgreement{}
	for b, in := range raw {
		if err := e.Forward(in); err != nil {
			t.Fatal(err)
		}
		a.add(net.Output(i)[b*sz:(b+1)*sz], cl.q.preq[b*sz:(b+1)*sz], e.Levels(i), cl.q.q)
	}
	t.Logf("float pixels in training, UINT8 pixels deployed: %s levels %d/%d agree (%.5f)", flow.Layers[i].Name, a.same, a.n, a.fraction())
}

// quantizationFlow runs the written weights of a QAT result through the quantization
// flow as `pynqctl quant` does, with the trained activation scales in place of
// calibrated ones (a sidecar applied as todarknet.ApplyScales does for an export), and
// checks that the flow quantizes the layers QAT trained quantized.
func quantizationFlow(t *testing.T, cfg string, res *Result, w qonnx.WeightOptions, act qonnx.ActOptions) *quant.Model {
	t.Helper()
	m, err := darknet.Load(cfg, res.Final, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := flowSteps(m, w, act, false); err != nil {
		t.Fatal(err)
	}
	sc := &todarknet.Sidecar{Format: todarknet.SidecarFormat, Model: m.Name}
	for i, l := range res.Model.Layers {
		q := l.Quant
		switch {
		case q == nil || q.ActBits == 0:
		case q.WeightBits > 1:
			// The sidecar format knows float and bipolar weights only (it refuses
			// weight_bits 2..8): set the scale directly.
			m.Layers[i].Quant.ActScale = q.ActScale
		default:
			sc.Layers = append(sc.Layers, todarknet.SidecarLayer{Index: i, Name: l.Name, Filters: l.Conv.Filters,
				WeightBits: q.WeightBits, ActBits: q.ActBits, ActScale: q.ActScale})
		}
	}
	if _, err := todarknet.ApplyScales(m, sc); err != nil {
		t.Fatal(err)
	}
	tr, err := qonnx.SetThresholds(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("thresholds on %v; skipped %v", tr.Layers, tr.Skipped)
	for i, l := range m.Layers {
		var got, want quant.LayerQuant
		if l.Quant != nil {
			got = *l.Quant
		}
		if q := res.Model.Layers[i].Quant; q != nil {
			want = *q
		}
		if got.WeightBits != want.WeightBits || got.ActBits != want.ActBits || got.ActSigned != want.ActSigned || got.ActScale != want.ActScale {
			t.Fatalf("%s: the flow quantizes %s, QAT trained %s", l.Name, quantString(got), quantString(want))
		}
		if l.Conv != nil && l.Conv.Activation != res.Model.Layers[i].Conv.Activation {
			t.Logf("%s: the flow runs %s, QAT trained %s", l.Name, l.Conv.Activation, res.Model.Layers[i].Conv.Activation)
		}
		if got.WeightBits == 1 && got.ActBits > 0 && !got.ActSigned && len(got.Thresholds) == 0 {
			t.Errorf("%s: bipolar layer without thresholds", l.Name)
		}
	}
	return m
}

func quantString(q quant.LayerQuant) string {
	return fmt.Sprintf("W%dA%d (signed %v, scale %g)", q.WeightBits, q.ActBits, q.ActSigned, q.ActScale)
}

// flowInputs are the dataset's images letterboxed to the network input (resampled:
// off the pixel grid, as the trainer's inputs), and two noise images.
func flowInputs(t *testing.T, data string, in quant.Shape) [][]float32 {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(data, "*.png"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("dataset images: %v (%d)", err, len(paths))
	}
	var out [][]float32
	for _, p := range paths {
		im, err := imageio.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, imageio.Letterbox(im, in.W, in.H).Data)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 {
		x := make([]float32, in.Size())
		for k := range x {
			x[k] = rng.Float32()
		}
		out = append(out, x)
	}
	return out
}

// onPixelGrid returns the inputs rounded to UINT8 pixel levels, as the quantized
// engine rounds its input.
func onPixelGrid(inputs [][]float32) [][]float32 {
	var out [][]float32
	for _, in := range inputs {
		x := make([]float32, len(in))
		qonnx.PixelLevels(x, in)
		for k, v := range x {
			x[k] = v * qonnx.InvPixel
		}
		out = append(out, x)
	}
	return out
}

// levelAgreement counts how often the trainer's levels equal the engine's, and for the
// values where they differ, how far the trainer's pre-quantization value lay from a
// rounding boundary (in steps).
type levelAgreement struct {
	n, same  int
	maxDiff  float32
	maxEdge  float64 // largest distance from a rounding boundary among differing values
	hist     map[float32]int
	examples []string
}

func (a *levelAgreement) add(trained, preq, levels []float32, q *quant.LayerQuant) {
	if a.hist == nil {
		a.hist = map[float32]int{}
	}
	for k, v := range trained {
		lt := qonnx.QuantLevel(v, q.ActScale, q.ActBits, q.ActSigned, false)
		a.n++
		a.hist[levels[k]]++
		if lt == levels[k] {
			a.same++
			continue
		}
		a.maxDiff = max(a.maxDiff, float32(math.Abs(float64(lt-levels[k]))))
		x := float64(preq[k]) / float64(q.ActScale)
		edge := math.Abs(x - math.Floor(x) - .5)
		a.maxEdge = max(a.maxEdge, edge)
		if len(a.examples) < 3 {
			a.examples = append(a.examples, fmt.Sprintf("trainer %g (pre %g = %.6f steps), engine %g", lt, preq[k], x, levels[k]))
		}
	}
}

func (a *levelAgreement) fraction() float64 { return float64(a.same) / float64(a.n) }

func (a *levelAgreement) used() int {
	n := 0
	for _, c := range a.hist {
		if c*100 >= a.n {
			n++
		}
	}
	return n
}

// inner counts the engine's levels strictly between the lowest and the highest.
func (a *levelAgreement) inner() int {
	n, lo, hi := 0, float32(0), float32(0)
	for k := range a.hist {
		lo, hi = min(lo, k), max(hi, k)
	}
	for k, c := range a.hist {
		if k > lo && k < hi {
			n += c
		}
	}
	return n
}

func (a *levelAgreement) String() string {
	s := fmt.Sprintf("%d/%d levels agree (%.5f); level histogram %v", a.same, a.n, a.fraction(), a.hist)
	if a.same < a.n {
		s += fmt.Sprintf("; differing by up to %g levels, at most %.3g steps from a rounding boundary; e.g. %v", a.maxDiff, a.maxEdge, a.examples)
	}
	return s
}
