package todarknet

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
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
// With batch-norm statistics measured on dog.jpg (export-darknet --bn-images) the
// folded bias is the difference of two large numbers: that too must give them back.
func TestQNNExportThroughQuantFlow(t *testing.T) {
	for _, c := range []struct {
		name             string
		fold, calibrated bool
	}{{"kept-bn", false, false}, {"folded-bn", true, false}, {"folded-calibrated-bn", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			if c.calibrated && testing.Short() {
				t.Skip("runs Tinier-YOLO; skipped in -short")
			}
			quantFlow(t, c.fold, c.calibrated)
		})
	}
}

func quantFlow(t *testing.T, fold, calibrated bool) {
	orig := qnnModel(t)
	res, err := Export(qnnModel(t))
	if err != nil {
		t.Fatal(err)
	}
	if calibrated {
		im, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.CalibrateBN([][]float32{imageio.Letterbox(im, orig.Input.W, orig.Input.H).Data}, 0); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "t.cfg"), filepath.Join(dir, "t.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
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
