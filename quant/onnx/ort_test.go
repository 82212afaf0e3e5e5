//go:build cgo

package onnx

import (
	"errors"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/ort"
	"github.com/fpgadetector/pynq-agent/quant"
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
