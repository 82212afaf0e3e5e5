package todarknet

import (
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// The three places a model's batch norms become integer thresholds, each on its own
// copy of the model (the darknet layers, without quantizers) with the sidecar's
// quantizers: quant calibrate (quant/qonnx's steps with the batch norms kept and the
// sidecar's scales), quant qnn-dir (quant/qnnmo.FromQAT) and the export's way back
// ([Requantize]). Each returns the quantized model, layers in the input's order.
var thresholdSites = []struct {
	name   string
	derive func(tb testing.TB, m *quant.Model, sc *Sidecar) *quant.Model
}{
	{"calibrate", func(tb testing.TB, m *quant.Model, sc *Sidecar) *quant.Model {
		tb.Helper()
		if _, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true}); err != nil {
			tb.Fatal(err)
		}
		if _, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3}); err != nil {
			tb.Fatal(err)
		}
		if _, err := ApplyScales(m, sc); err != nil {
			tb.Fatal(err)
		}
		if _, err := qonnx.SetThresholds(m); err != nil {
			tb.Fatal(err)
		}
		return m
	}},
	{"qnn-dir", func(tb testing.TB, m *quant.Model, sc *Sidecar) *quant.Model {
		tb.Helper()
		for _, sl := range sc.Layers {
			m.Layers[sl.Index].Quant = &quant.LayerQuant{WeightBits: sl.WeightBits, ActBits: sl.ActBits, ActScale: sl.ActScale}
		}
		out, err := qnnmo.FromQAT(m)
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}},
	{"requantize", func(tb testing.TB, m *quant.Model, sc *Sidecar) *quant.Model {
		tb.Helper()
		if err := Requantize(m, sc); err != nil {
			tb.Fatal(err)
		}
		return m
	}},
}

// checkSitesAgree runs every site on a fresh model from load and wants identical
// thresholds and invert flags in every threshold layer of the sidecar; it returns the
// first site's model.
func checkSitesAgree(t *testing.T, load func(testing.TB) *quant.Model, sc *Sidecar) *quant.Model {
	t.Helper()
	var first *quant.Model
	for _, site := range thresholdSites {
		m := site.derive(t, load(t), sc)
		if first == nil {
			first = m
			continue
		}
		channels, differ := 0, 0
		for _, sl := range sc.Layers {
			if !sl.Thresholds {
				continue
			}
			want, got := first.Layers[sl.Index].Quant, m.Layers[sl.Index].Quant
			for o := range want.Thresholds {
				channels++
				if !slices.Equal(want.Thresholds[o], got.Thresholds[o]) || want.Invert[o] != got.Invert[o] {
					if differ++; differ <= 3 {
						t.Errorf("layer %d channel %d: %s gives %v invert %v, %s %v invert %v", sl.Index, o, thresholdSites[0].name,
							want.Thresholds[o], want.Invert[o], site.name, got.Thresholds[o], got.Invert[o])
					}
				}
			}
		}
		if channels == 0 || differ > 0 {
			t.Errorf("%s: %d of %d channels differ from %s", site.name, differ, channels, thresholdSites[0].name)
		}
	}
	return first
}

// TestThresholdSitesAgree: on the published QNN-MO model exported as darknet, the three
// sites derive identical thresholds, the published ones; with every other channel's
// batch-norm gain negated (inverted channels, thresholds in the reachable range) they
// still agree.
func TestThresholdSitesAgree(t *testing.T) {
	orig := qnnModel(t)
	_, cfg, weights := exportFiles(t, qnnModel(t))
	sc, err := ReadSidecar(SidecarPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	load := func(tb testing.TB) *quant.Model {
		tb.Helper()
		m, err := darknet.Load(cfg, weights, darknet.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		return m
	}
	m := checkSitesAgree(t, load, sc)
	channels := 0
	for i, l := range orig.Layers {
		q := l.Quant
		if q == nil || len(q.Thresholds) == 0 {
			continue
		}
		for o := range q.Thresholds {
			channels++
			if got := m.Layers[i].Quant; !slices.Equal(q.Thresholds[o], got.Thresholds[o]) || q.Invert[o] != got.Invert[o] {
				t.Fatalf("layer %d channel %d: published %v, derived %v", i, o, q.Thresholds[o], got.Thresholds[o])
			}
		}
	}
	if channels != 2048 {
		t.Fatalf("%d threshold channels, Tinier-YOLO has 2048", channels)
	}

	negated := func(tb testing.TB) *quant.Model {
		tb.Helper()
		m := load(tb)
		for _, sl := range sc.Layers {
			if bn := m.Layers[sl.Index].Conv.BN; sl.Thresholds && bn != nil {
				for o := 0; o < len(bn.Scale); o += 2 {
					bn.Scale[o] = -bn.Scale[o]
				}
			}
		}
		return m
	}
	m = checkSitesAgree(t, negated, sc)
	inverted := 0
	for _, sl := range sc.Layers {
		if sl.Thresholds {
			for _, inv := range m.Layers[sl.Index].Quant.Invert {
				if inv {
					inverted++
				}
			}
		}
	}
	if inverted != 1024 {
		t.Errorf("%d inverted channels with every other gain negated, want 1024", inverted)
	}
}

// TestThresholdSitesAtExactTies: batch norms whose y/s lands exactly on k-1/2 (the
// graph's quantizer rounds those half to even, where the closed form
// ceil(((k-1/2)*s - B)/A) counted every tie up): the three sites agree, on the graph's
// levels.
func TestThresholdSitesAtExactTies(t *testing.T) {
	// conv0 gives 3-bit levels of scale 1/2 to conv1 (1x1, ±1 weights, 4 inputs: acc in
	// [-28, 28]), whose batch norm (epsilon 0, variance 1: sigma 1) gives
	// y = gamma*acc/2 + beta, quantized with scale 1/4.
	load := func(tb testing.TB) *quant.Model {
		tb.Helper()
		m := &quant.Model{Name: "ties", Input: quant.Shape{C: 3, H: 2, W: 2}, Dialect: quant.DialectAlexeyAB, BNEpsInside: true}
		ones := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(1 - 2*(i%3%2)) // +1 and -1
			}
			return v
		}
		m.Layers = []*quant.Layer{
			{Kind: quant.KindConv, Name: "conv0", Inputs: []int{-1}, Conv: &quant.Conv{Filters: 4, Size: 1, Stride: 1, Groups: 1,
				Activation: quant.ActReLU, Weights: ones(12), Bias: make([]float32, 4)}},
			{Kind: quant.KindConv, Name: "conv1", Inputs: []int{0}, Conv: &quant.Conv{Filters: 4, Size: 1, Stride: 1, Groups: 1,
				Activation: quant.ActReLU, Binary: true, Weights: ones(16),
				Bias: []float32{0.125, 0.125, 0.625, 0.1},
				BN:   &quant.BatchNorm{Scale: []float32{0.5, -0.5, 0, 0.3}, Mean: make([]float32, 4), Variance: []float32{1, 1, 1, 1}}}},
			{Kind: quant.KindConv, Name: "conv2", Inputs: []int{1}, Conv: &quant.Conv{Filters: 2, Size: 1, Stride: 1, Groups: 1,
				Activation: quant.ActLinear, Weights: ones(8), Bias: make([]float32, 2)}},
		}
		if err := m.InferShapes(); err != nil {
			tb.Fatal(err)
		}
		return m
	}
	sc := &Sidecar{Format: SidecarFormat, Layers: []SidecarLayer{
		{Index: 0, Name: "conv0", Filters: 4, ActBits: 3, ActScale: 0.5},
		{Index: 1, Name: "conv1", Filters: 4, WeightBits: 1, ActBits: 3, ActScale: 0.25, Thresholds: true, InputBits: 3, InputScale: 0.5},
	}}
	m := checkSitesAgree(t, load, sc)
	q := m.Layers[1].Quant
	for o, want := range []struct {
		t      []int32
		invert bool
	}{
		{[]int32{1, 1, 3, 3, 5, 5, 7}, false},          // y/s = acc + 1/2: level 2j at acc 2j-1 and 2j
		{[]int32{0, 0, -2, -2, -4, -4, -6}, true},      // y/s = 1/2 - acc
		{[]int32{-28, -28, 29, 29, 29, 29, 29}, false}, // y/s = 2.5 everywhere: level 2
		{[]int32{1, 2, 4, 6, 7, 9, 11}, false},         // y/s = 0.6*acc + 0.4: no tie
	} {
		if !slices.Equal(q.Thresholds[o], want.t) || q.Invert[o] != want.invert {
			t.Errorf("channel %d: %v invert %v, want the graph's %v invert %v", o, q.Thresholds[o], q.Invert[o], want.t, want.invert)
		}
	}
}
