package onnx

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testmodel"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// yoloFastest loads the shared Yolo-Fastest-1.1 fixture (AlexeyAB: groups, shortcut,
// dropout, SPP maxpools, upsample, two yolo heads), skipping when fixtures are absent.
func yoloFastest(tb testing.TB) *quant.Model {
	tb.Helper()
	cfg := testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.cfg")
	weights := testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.weights")
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		tb.Fatalf("load yolo-fastest: %v", err)
	}
	return m
}

// realModels are the models the ONNX path is checked on beyond the hand-built one.
var realModels = []struct {
	name string
	load func(testing.TB) *quant.Model
}{
	{"yolo-fastest", yoloFastest},
	{"tinier-yolo", func(tb testing.TB) *quant.Model { return testmodel.TinierYOLO(tb) }},
}

func skipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: full-size models are slow under emulation")
	}
}

// engineOutputs runs the Go float engine on input and returns every layer's output.
func engineOutputs(tb testing.TB, m *quant.Model, input []float32) func(layer int) []float32 {
	tb.Helper()
	e, err := floatengine.New(m, floatengine.Options{KeepAll: true})
	if err != nil {
		tb.Fatalf("engine: %v", err)
	}
	if err := e.Forward(input); err != nil {
		tb.Fatalf("engine forward: %v", err)
	}
	return e.Output
}

// TestRealModelsRoundTrip exports each real model, imports it back and checks the
// structure; the folded export must make the engine compute the same heads, the kept-BN
// export must give back the same parameters.
func TestRealModelsRoundTrip(t *testing.T) {
	skipShort(t)
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			m := rm.load(t)
			want := withoutDropout(m)
			imported := map[bool]*quant.Model{}
			for _, keep := range []bool{false, true} {
				got, err := ReadFile(writeTemp(t, mustExport(t, m, ExportOptions{KeepBatchNorm: keep})))
				if err != nil {
					t.Fatalf("keepbn=%v: import: %v", keep, err)
				}
				compareStructure(t, want, got, keep)
				imported[keep] = got
			}
			compareParams(t, want, imported[true])
			input := randomInput(m.Input, 5)
			wantOut, gotOut := engineOutputs(t, want, input), engineOutputs(t, imported[false], input)
			for _, h := range want.Heads() {
				if d := relDiff(wantOut(h), gotOut(h)); d > 1e-5 {
					t.Errorf("head %d: outputs differ by %g after the folded round trip", h, d)
				}
			}
		})
	}
}

// compareParams checks conv weights, biases and batch norm after a kept-BN round trip.
func compareParams(t *testing.T, want, got *quant.Model) {
	t.Helper()
	for i, w := range want.Layers {
		if w.Conv == nil || i >= len(got.Layers) || got.Layers[i].Conv == nil {
			continue
		}
		wc, gc := w.Conv, got.Layers[i].Conv
		ww := wc.Weights
		if wc.Binary {
			ww = binarizeRef(ww, wc.Filters)
		}
		d := max(relDiff(ww, gc.Weights), relDiff(wc.Bias, gc.Bias))
		if wc.BN != nil && gc.BN != nil {
			d = max(d, relDiff(wc.BN.Scale, gc.BN.Scale), relDiff(wc.BN.Mean, gc.BN.Mean), relDiff(wc.BN.Variance, gc.BN.Variance))
		}
		if d > 1e-6 {
			t.Errorf("layer %d (%s): parameters differ by %g after the round trip", i, w.Name, d)
		}
	}
}

func TestRealModelsONNXChecker(t *testing.T) {
	skipShort(t)
	py := onnxPython(t)
	for _, rm := range realModels {
		m := rm.load(t)
		for _, keep := range []bool{false, true} {
			checkONNX(t, py, writeTemp(t, mustExport(t, m, ExportOptions{KeepBatchNorm: keep})))
		}
	}
}
