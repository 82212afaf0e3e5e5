package qnnmo

import (
	"bytes"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

func TestWriteNpyRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{5}, {3, 3, 3, 16}, {1, 1, 64, 30}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i)*0.25 - 3
		}
		var b bytes.Buffer
		if err := WriteNpy(&b, shape, data); err != nil {
			t.Fatal(err)
		}
		if hdr := 10 + int(b.Bytes()[8]) + int(b.Bytes()[9])<<8; hdr%64 != 0 {
			t.Errorf("shape %v: data starts at %d, not 64-aligned", shape, hdr)
		}
		a, err := ParseNpy(b.Bytes())
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if !reflect.DeepEqual(a.Shape, shape) || !reflect.DeepEqual(a.Data, data) {
			t.Errorf("shape %v: read back %v", shape, a.Shape)
		}
	}
	if err := WriteNpy(&bytes.Buffer{}, []int{2, 2}, make([]float32, 3)); err == nil {
		t.Error("a shape that disagrees with the data was accepted")
	}
}

// qatTestModel is a small W1A3 model as quant/train's QAT leaves it: batch-normalized
// convolutions with trained activation scales.
func qatTestModel(t testing.TB) *quant.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	randn := func(n int, sd float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * sd)
		}
		return v
	}
	bn := func(n int) *quant.BatchNorm {
		b := &quant.BatchNorm{Scale: randn(n, 1), Mean: randn(n, 1), Variance: make([]float32, n)}
		for i := range b.Variance {
			b.Variance[i] = 0.5 + rng.Float32()
		}
		return b
	}
	conv := func(name string, in, out, k, stride int, a quant.Activation, q *quant.LayerQuant, withBN bool) *quant.Layer {
		c := &quant.Conv{Filters: out, Size: k, Stride: stride, Pad: k / 2, Groups: 1, Activation: a,
			Weights: randn(out*in*k*k, 0.3), Bias: randn(out, 0.2)}
		if withBN {
			c.BN = bn(out)
		}
		return &quant.Layer{Kind: quant.KindConv, Name: name, Conv: c, Quant: q}
	}
	m := &quant.Model{Name: "qat-test", Input: quant.Shape{C: 3, H: 32, W: 32}, Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6}
	m.Layers = []*quant.Layer{
		conv("conv0", 3, 16, 3, 2, quant.ActReLU, &quant.LayerQuant{ActBits: 3, ActScale: 0.3}, true),
		conv("conv1", 16, 32, 3, 1, quant.ActReLU, &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 0.7}, true),
		{Kind: quant.KindMaxPool, Name: "pool2", Pool: &quant.Pool{Size: 2, Stride: 2, Pad: 1}},
		conv("conv3", 32, 64, 3, 1, quant.ActReLU, &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 0.4}, true),
		conv("conv4", 64, 12, 1, 1, quant.ActLinear, nil, false),
		{Kind: quant.KindRegion, Name: "region", Head: &quant.Head{Classes: 1, Coords: 4, Num: 2, Anchors: []float32{1, 1, 2, 3}, Softmax: true}},
	}
	for i, l := range m.Layers {
		l.Inputs = []int{i - 1}
	}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFromQATWriteDirLoad(t *testing.T) {
	src := qatTestModel(t)
	m, err := FromQAT(src)
	if err != nil {
		t.Fatal(err)
	}
	// The first layer's fixed quantizer gives the trained levels.
	c0 := src.Layers[0].Conv
	if c0.BN == nil || m.Layers[0].Conv.BN != nil || m.Layers[0].Quant.ActScale != FirstActScale {
		t.Fatalf("first layer not folded: %+v", m.Layers[0].Quant)
	}
	dir := t.TempDir()
	if err := WriteDir(m, dir, offload.W1A3); err != nil {
		t.Fatal(err)
	}
	fromDir, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fromFS, err := LoadFS(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*quant.Model{fromDir, fromFS} {
		if len(got.Layers) != len(m.Layers) {
			t.Fatalf("%d layers read back, wrote %d", len(got.Layers), len(m.Layers))
		}
		for i, l := range m.Layers {
			g := got.Layers[i]
			if g.Kind != l.Kind || g.Out != l.Out {
				t.Fatalf("layer %d: %s %v read back as %s %v", i, l.Kind, l.Out, g.Kind, g.Out)
			}
			if l.Kind != quant.KindConv {
				continue
			}
			if !reflect.DeepEqual(g.Conv.Weights, l.Conv.Weights) {
				t.Errorf("layer %d: weights differ", i)
			}
			if offload.IsEngineConv(l) && (!reflect.DeepEqual(g.Quant.Thresholds, l.Quant.Thresholds) || !reflect.DeepEqual(g.Quant.Invert, l.Quant.Invert)) {
				t.Errorf("layer %d: thresholds differ", i)
			}
			if !offload.IsEngineConv(l) && !reflect.DeepEqual(g.Conv.Bias, l.Conv.Bias) {
				t.Errorf("layer %d: bias differs", i)
			}
		}
	}
	if _, err := LoadFS(os.DirFS(dir), "/abs"); err == nil {
		t.Error("LoadFS accepted an absolute path")
	}
}

// TestQNNDirAndCalibrateAgree: quant qnn-dir (FromQAT) and quant calibrate
// (qonnx.SetThresholds on the model with the batch norms kept, binary weight scales as
// quant weights rounds them and the trained activation scales) derive the same
// thresholds from one model, inverted and constant channels included.
func TestQNNDirAndCalibrateAgree(t *testing.T) {
	src := qatTestModel(t)
	// A channel whose batch norm scale is 0 has a constant level.
	src.Layers[3].Conv.BN.Scale[5] = 0
	m, err := FromQAT(src)
	if err != nil {
		t.Fatal(err)
	}
	flow := qatTestModel(t)
	flow.Layers[3].Conv.BN.Scale[5] = 0
	for _, l := range flow.Layers {
		if q := l.Quant; q != nil && q.WeightBits == 1 {
			q.WeightScale = qonnx.WeightScales(l.Conv.Weights, l.Conv.Filters, 1)
		}
	}
	rep, err := qonnx.SetThresholds(flow)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Layers) != 2 || rep.Inverted == 0 || rep.Constant == 0 {
		t.Fatalf("calibrate's thresholds: %+v, want two layers with inverted and constant channels", rep)
	}
	for _, i := range []int{1, 3} {
		got, want := m.Layers[i].Quant, flow.Layers[i].Quant
		if !reflect.DeepEqual(got.Thresholds, want.Thresholds) || !reflect.DeepEqual(got.Invert, want.Invert) {
			t.Errorf("layer %d: qnn-dir and calibrate derive different thresholds", i)
		}
	}
}

// TestWriteDirRefusesWideThresholds: a threshold outside the engine's int16 stops the
// parameter files with its layer and channel; nothing clamps it.
func TestWriteDirRefusesWideThresholds(t *testing.T) {
	m, err := FromQAT(qatTestModel(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Layers[3].Quant.Thresholds[9][6] = 40000
	err = WriteDir(m, t.TempDir(), offload.W1A3)
	if err == nil || !strings.Contains(err.Error(), "conv3") || !strings.Contains(err.Error(), "channel 9") || !strings.Contains(err.Error(), "int16") {
		t.Fatalf("WriteDir: %v, want an int16 error naming conv3 and channel 9", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

func TestFromQATRefusesFloatModels(t *testing.T) {
	m := qatTestModel(t)
	m.Layers[1].Quant = nil
	if _, err := FromQAT(m); err == nil {
		t.Error("a hidden layer without quantizers was accepted")
	}
}
