//go:build cgo

package onnx

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/ort"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/engine"
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
				e, err := engine.New(m, engine.Options{Threads: threads})
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
