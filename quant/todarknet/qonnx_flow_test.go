package todarknet

import (
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// TestQNNExportThroughQuantFlow is issue 4's requirement on the export: the float
// Tinier-YOLO that export-darknet makes, quantized by quant/qonnx's steps (binary
// weights, 3-bit activations) with the sidecar's activation scales instead of
// calibrated ones, gives back the published model's thresholds channel by channel.
// The flow's first step, quant convert, folds batch norm into the weights by default
// (then the weight scale alpha carries the batch norm's gain and is rounded to 12
// significant bits) or keeps it (--keep-bn): both must work.
func TestQNNExportThroughQuantFlow(t *testing.T) {
	for _, fold := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept-bn", true: "folded-bn"}[fold], func(t *testing.T) { quantFlow(t, fold) })
	}
}

func quantFlow(t *testing.T, fold bool) {
	orig := qnnModel(t)
	_, cfg, weights := exportFiles(t, qnnModel(t))
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fold {
		mp, err := onnx.Export(m, onnx.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m, err = onnx.Import(mp); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := ReadSidecar(SidecarPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3}); err != nil {
		t.Fatal(err)
	}
	applied, err := ApplyScales(m, sc)
	if err != nil {
		t.Fatal(err)
	}
	if got := qonnx.QuantizedLayers(m); !slices.Equal(got, applied) {
		t.Fatalf("the flow quantizes layers %v, the sidecar lists %v", got, applied)
	}
	if _, err := qonnx.SetThresholds(m); err != nil {
		t.Fatal(err)
	}
	channels, same := 0, 0
	for i, l := range orig.Layers {
		q := l.Quant
		if q == nil || len(q.Thresholds) == 0 {
			continue
		}
		bq := m.Layers[i].Quant
		if bq == nil || len(bq.Thresholds) != len(q.Thresholds) {
			t.Fatalf("layer %d (%s): no thresholds from the flow", i, l.Name)
		}
		for o := range q.Thresholds {
			channels++
			if slices.Equal(q.Thresholds[o], bq.Thresholds[o]) && q.Invert[o] == bq.Invert[o] {
				same++
			} else if channels-same <= 3 {
				t.Errorf("layer %d (%s) channel %d: %v invert %v, the flow derives %v invert %v", i, l.Name, o, q.Thresholds[o], q.Invert[o], bq.Thresholds[o], bq.Invert[o])
			}
		}
	}
	t.Logf("quant/qonnx's thresholds with the sidecar's scales: %d of %d channels identical to the published model", same, channels)
	if channels != 2048 || same != channels {
		t.Errorf("%d of %d channels identical, want all 2048", same, channels)
	}
}
