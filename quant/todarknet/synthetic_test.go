package todarknet

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// smallModel is a W1A3 model in the QNN-MO form: a float first layer quantized to 3 bits
// (scale 0.5), a binary layer with thresholds (scale 1) whose channels are evenly spaced,
// inverted, constant, beyond the reachable range and unevenly spaced, a max pool, and a
// float 1x1 layer on the levels.
func smallModel(tb testing.TB) *quant.Model {
	tb.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	randw := func(n int, bipolar bool) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = r.Float32()*2 - 1
			if bipolar {
				w[i] = 1
				if r.IntN(2) == 0 {
					w[i] = -1
				}
			}
		}
		return w
	}
	// t_k is level k's threshold: an inverted channel's descend.
	thr := [][]int32{
		{-30, -20, -10, 0, 10, 20, 30},         // even
		{12, 9, 6, 3, 0, -3, -6},               // even, inverted
		{-999, -999, -999, 999, 999, 999, 999}, // constant 3
		{900, 650, 400, 150, -100, -999, -999}, // inverted, spacing 250, beyond the range at both ends
		{0, 1, 2, 50, 100, 150, 200},           // no line fits
		{4, 9, 13, 18, 22, 27, 31},             // rounded line, spacing 4.5
	}
	m := &quant.Model{Name: "small", Input: quant.Shape{C: 3, H: 8, W: 8}, Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6}
	m.Layers = []*quant.Layer{
		{Kind: quant.KindConv, Name: "first", Inputs: []int{-1},
			Conv:  &quant.Conv{Filters: 4, Size: 3, Stride: 1, Pad: 1, Groups: 1, Activation: quant.ActReLU, Weights: randw(4*3*9, false), Bias: randw(4, false)},
			Quant: &quant.LayerQuant{ActBits: 3, ActScale: 0.5}},
		{Kind: quant.KindConv, Name: "hidden", Inputs: []int{0},
			Conv:  &quant.Conv{Filters: 6, Size: 3, Stride: 1, Pad: 1, Groups: 1, Activation: quant.ActReLU, Weights: randw(6*4*9, true), Binary: true},
			Quant: &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 1, Thresholds: thr, Invert: []bool{false, true, false, true, false, false}}},
		{Kind: quant.KindMaxPool, Name: "pool", Inputs: []int{1}, Pool: &quant.Pool{Size: 2, Stride: 2, Pad: 0}},
		{Kind: quant.KindConv, Name: "last", Inputs: []int{2},
			Conv: &quant.Conv{Filters: 2, Size: 1, Stride: 1, Groups: 1, Activation: quant.ActLinear, Weights: randw(2*6, false), Bias: randw(2, false)}},
	}
	if err := m.InferShapes(); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestSyntheticRoundTrip(t *testing.T) {
	m := smallModel(t)
	res, err := Export(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != 1 {
		t.Fatalf("%d threshold layers reported, want 1", len(res.Layers))
	}
	rep := res.Layers[0]
	if rep.Exact != 4 || rep.Constant != 1 || rep.Approx != 1 || rep.Inverted != 2 || !reflect.DeepEqual(rep.ApproxChannels, []int{4}) || rep.MaxLevelError == 0 {
		t.Fatalf("report %+v: want 4 exact, 1 constant, channel 4 approximate, 2 inverted", rep)
	}
	if m.Layers[1].Conv.BN != nil || m.Layers[1].Quant == nil {
		t.Fatal("Export changed its input model")
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "small.cfg"), filepath.Join(dir, "small.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	ck, err := CheckFiles(m, cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Channels != 6 || ck.Same != 5 || ck.Identical != 3 || len(ck.Changed) != 0 {
		t.Errorf("check %+v: want 6 channels, 5 with the same levels (one approximate), 3 identical (two clamped), no changes", ck)
	}
	back, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ReadSidecar(SidecarPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := Requantize(back, sc); err != nil {
		t.Fatal(err)
	}
	q, bq := m.Layers[1].Quant, back.Layers[1].Quant
	const reach = 7 * 4 * 9
	for o := range q.Thresholds {
		same := SameLevels(q.Thresholds[o], q.Invert[o], bq.Thresholds[o], bq.Invert[o], reach)
		if same == (o == 4) {
			t.Errorf("channel %d: %v invert %v back as %v invert %v (same levels %v)", o, q.Thresholds[o], q.Invert[o], bq.Thresholds[o], bq.Invert[o], same)
		}
	}
	// In-range thresholds come back as they were, inverted channels as inverted.
	for _, o := range []int{0, 1, 5} {
		if !reflect.DeepEqual(q.Thresholds[o], bq.Thresholds[o]) || q.Invert[o] != bq.Invert[o] {
			t.Errorf("channel %d: %v invert %v back as %v invert %v", o, q.Thresholds[o], q.Invert[o], bq.Thresholds[o], bq.Invert[o])
		}
	}
	// Out-of-range ones come back clamped to the reachable range.
	if want := []int32{-reach, -reach, -reach, reach + 1, reach + 1, reach + 1, reach + 1}; !reflect.DeepEqual(bq.Thresholds[2], want) {
		t.Errorf("constant channel back as %v, want %v", bq.Thresholds[2], want)
	}
	for i := range m.Layers {
		if a, b := m.Layers[i].Conv, back.Layers[i].Conv; a != nil && !reflect.DeepEqual(a.Weights, b.Weights) {
			t.Errorf("layer %d: weights differ", i)
		}
	}
	if !reflect.DeepEqual(back.Layers[0].Quant, m.Layers[0].Quant) || !reflect.DeepEqual(back.Layers[0].Conv.Bias, m.Layers[0].Conv.Bias) || back.Layers[3].Quant != nil {
		t.Errorf("float layers changed: first %+v, last %+v", back.Layers[0].Quant, back.Layers[3].Quant)
	}
}

func TestExportErrors(t *testing.T) {
	cases := map[string]func(m *quant.Model){
		"quantized input levels": func(m *quant.Model) { m.Layers[0].Quant = nil },
		"integer weights":        func(m *quant.Model) { m.Layers[1].Conv.Weights[0] = 0.5 },
		"thresholds":             func(m *quant.Model) { m.Layers[1].Quant.Thresholds[0] = []int32{1, 2} },
		"invert flags":           func(m *quant.Model) { m.Layers[1].Quant.Invert = []bool{true} },
	}
	for want, breakIt := range cases {
		m := smallModel(t)
		breakIt(m)
		if _, err := Export(m); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v", want, err)
		}
	}
}

func TestRequantizeErrors(t *testing.T) {
	res, err := Export(smallModel(t))
	if err != nil {
		t.Fatal(err)
	}
	sc := *res.Sidecar
	sc.Layers = append([]SidecarLayer(nil), sc.Layers...)
	sc.Layers[1].InputScale = 0.25
	if err := Requantize(res.Model, &sc); err == nil || !strings.Contains(err.Error(), "sidecar says") {
		t.Errorf("wrong input scale: %v", err)
	}
	sc.Layers[1].Index = 2
	if err := Requantize(res.Model, &sc); err == nil || !strings.Contains(err.Error(), "another cfg") {
		t.Errorf("sidecar for another cfg: %v", err)
	}
}
