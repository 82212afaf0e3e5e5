//go:build cgo

package onnx

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/ort"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// requireORT skips when onnxruntime's library is not installed.
func requireORT(tb testing.TB) {
	tb.Helper()
	if err := ort.Init(); err != nil {
		if errors.Is(err, ort.ErrNoLibrary) {
			tb.Skipf("onnxruntime unavailable: %v", err)
		}
		tb.Fatalf("onnxruntime: %v", err)
	}
}

// tolerance bounds relDiff (max|a-b| / max(1, max|a|)) between onnxruntime and Go.
const tolerance = 1e-4

// compareHeads runs the export of m in onnxruntime and compares every head output with
// want(layer feeding the head).
func compareHeads(t *testing.T, m *quant.Model, opt ExportOptions, input []float32, want func(layer int) []float32) {
	t.Helper()
	path := writeTemp(t, mustExport(t, m, opt))
	got, err := ort.RunFile(path, input, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range m.Heads() {
		name := HeadOutputName(h)
		out, ok := got[name]
		if !ok {
			t.Errorf("onnxruntime returned no %s", name)
			continue
		}
		w := want(m.Layers[h].Inputs[0])
		d := relDiff(w, out.Data)
		t.Logf("%s (%s, %v): max|ort-go|/max(1,max|go|) = %.3g", name, m.Layers[h].Kind, out.Shape, d)
		if d > tolerance {
			t.Errorf("%s: onnxruntime and Go differ by %.3g (tolerance %g)", name, d, tolerance)
		}
	}
}

// TestORTSmallModel runs the hand-built model through onnxruntime against the naive
// darknet-semantics reference: every layer kind, both batch-norm formulas, folded and
// kept.
func TestORTSmallModel(t *testing.T) {
	requireORT(t)
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			m := smallModel(t, v.dialect)
			input := randomInput(m.Input, 11)
			ref := refForward(m, input)
			compareHeads(t, m, ExportOptions{KeepBatchNorm: v.keepBN}, input, func(i int) []float32 { return ref[i] })
		})
	}
}

// TestORTRealModels compares onnxruntime with the Go float engine on the real models:
// every head's raw input tensor, folded and kept batch norm.
func TestORTRealModels(t *testing.T) {
	skipShort(t)
	requireORT(t)
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			m := rm.load(t)
			input := randomInput(m.Input, 9)
			want := engineOutputs(t, m, input)
			for _, keep := range []bool{false, true} {
				compareHeads(t, m, ExportOptions{KeepBatchNorm: keep}, input, want)
			}
		})
	}
}

// BenchmarkInference puts onnxruntime (intra-op threads 1 and 2) beside the Go float
// engine (1 and 2 worker goroutines) on the real models; images/s is reported per run.
//
//	go test -run='^$' -bench=Inference -benchtime=20x ./quant/onnx
func BenchmarkInference(b *testing.B) {
	requireORT(b)
	for _, rm := range realModels {
		m := rm.load(b)
		path := writeTemp(b, mustExport(b, m, ExportOptions{}))
		input := randomInput(m.Input, 1)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/onnxruntime/threads=%d", rm.name, threads), func(b *testing.B) {
				s, err := ort.Open(path, ort.Options{IntraOpThreads: threads})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if err := s.RunInPlace(input); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if err := s.RunInPlace(input); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
			})
			b.Run(fmt.Sprintf("%s/engine/threads=%d", rm.name, threads), func(b *testing.B) {
				e, err := floatengine.New(m, floatengine.Options{Threads: threads})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Forward(input); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if err := e.Forward(input); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}

// TestORTLHTan checks the exported lhtan, Min(LeakyRelu(x, 0.001), 0.001x + 0.999), in
// onnxruntime against darknet's lhtan_activate on a dense range with the kinks and the
// unit interval: exact on [0, 0.9999] (where a 3-bit quantizer with scale 1/7 reads it),
// within float32 rounding elsewhere. The model is one 1x1 identity convolution (six
// copies of the input) feeding a one-anchor region head.
func TestORTLHTan(t *testing.T) {
	requireORT(t)
	var xs []float32
	for x := -3.0; x <= 3; x += 1.0 / 256 {
		xs = append(xs, float32(x))
	}
	for _, x := range []float32{0, 1, 0.5, 0.9999, -1e-30, 1e-30, math.Nextafter32(1, 2), math.Nextafter32(1, 0), -1e6, 1e6} {
		xs = append(xs, x)
	}
	c := &quant.Conv{Filters: 6, Size: 1, Stride: 1, Groups: 1, Activation: quant.ActLHTan,
		Weights: []float32{1, 1, 1, 1, 1, 1}, Bias: make([]float32, 6)}
	m := &quant.Model{Name: "lhtan", Input: quant.Shape{C: 1, H: 1, W: len(xs)}, Layers: []*quant.Layer{
		{Name: "conv0", Kind: quant.KindConv, Inputs: []int{-1}, Conv: c},
		{Name: "region1", Kind: quant.KindRegion, Inputs: []int{0}, Head: &quant.Head{Classes: 1, Coords: 4, Num: 1, Softmax: true, ScaleXY: 1, Anchors: []float32{1, 1}}},
	}}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	got, err := ort.RunFile(writeTemp(t, mustExport(t, m, ExportOptions{})), xs, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, ok := got[HeadOutputName(1)]
	if !ok || len(out.Data) != 6*len(xs) {
		t.Fatalf("onnxruntime output %v", out)
	}
	for ch := range 6 {
		for i, x := range xs {
			g, w := out.Data[ch*len(xs)+i], floatengine.LHTan(x)
			tol := 2e-7 * math.Max(1, math.Abs(float64(w)))
			if x >= 0 && x <= 0.9999 {
				tol = 0
			}
			if d := math.Abs(float64(g) - float64(w)); d > tol {
				t.Fatalf("lhtan(%g): onnxruntime %g, darknet %g", x, g, w)
			}
		}
	}
}
