package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/flow"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// TestQuantRunTinierYOLOLHTan is issue 4's real-data run (a) on the lhtan export: the
// float Tinier-YOLO that export-darknet --float-activation=lhtan makes from the QNN-MO
// model goes through the whole guide with its own activation scales (--scales); the
// calibrated model must carry the published model's 2048 thresholds, find the same
// objects, and the verify gate must compare a float model that detects (mAP > 5 %).
// Image-based calibration of the same model must keep lhtan's clip at most 1.
func TestQuantRunTinierYOLOLHTan(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole quantization flow on Tinier-YOLO; skipped in -short")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	names := testutil.Fixture(t, "qnn-mo-pynq", "voc.names")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tinier-yolo.cfg")
	if out, err := runPynqctl(t, "quant", "export-darknet", "--model", params, "--output="+cfg, "--float-activation=lhtan"); err != nil {
		t.Fatalf("export-darknet: %v\n%s", err, out)
	}
	weights := strings.TrimSuffix(cfg, ".cfg") + ".weights"
	sidecar := strings.TrimSuffix(cfg, ".cfg") + ".quant.json"
	val := chairsSubset(t, 6)
	outdir := filepath.Join(dir, "run")
	out, err := runPynqctl(t, "quant", "run", "--cfg="+cfg, "--weights="+weights, "--calibration="+val, "--val="+val,
		"--outdir="+outdir, "--scales="+sidecar, "--names="+names, "-v")
	if err != nil {
		t.Fatalf("quant run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "written as Relu + Quant") {
		t.Errorf("activations does not report how lhtan is written:\n%s", out)
	}
	var res flow.VerifyResult
	b, _ := os.ReadFile(filepath.Join(outdir, "quantization_results.json"))
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("6 val images: float mAP %.2f %%, quantized %.2f %%, drop %.2f points, %s", 100*res.MAP.Float, 100*res.MAP.Quantized, res.Drop.Points, res.Verdict)
	if res.MAP.Float <= 0.05 || res.MAP.Quantized <= 0.05 || !res.Passed {
		t.Errorf("verify: float mAP %.4f, quantized %.4f, verdict %s: want both above 5 %% and a pass", res.MAP.Float, res.MAP.Quantized, res.Verdict)
	}
	m, err := qonnx.ReadFile(filepath.Join(outdir, "tinier-yolo-w1a3-calibrated.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := qnnmo.LoadDir(params)
	if err != nil {
		t.Fatal(err)
	}
	if same, channels := sameThresholds(t, orig, m); channels != 2048 || same != channels {
		t.Errorf("%d of %d threshold channels identical to the published model, want 2048 of 2048", same, channels)
	}
	imgs, _ := filepath.Glob(filepath.Join(val, "*.jpg"))
	sameDetections(t, orig, m, append(imgs, testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")), names)

	// Image-based calibration: lhtan's clip never exceeds its saturation at 1, so the
	// files keep Relu + Quant (exact) and the thresholds exist.
	report := filepath.Join(dir, "minmax.json")
	if out, err := runPynqctl(t, "quant", "calibrate", "--model="+filepath.Join(outdir, "tinier-yolo-w1a3.onnx"),
		"--dataset="+val, "--images=3", "--method=minmax", "--output="+filepath.Join(dir, "minmax.onnx"), "--report="+report); err != nil {
		t.Fatalf("calibrate --method=minmax: %v\n%s", err, out)
	}
	var cr calib.Result
	b, _ = os.ReadFile(report)
	if err := json.Unmarshal(b, &cr); err != nil {
		t.Fatal(err)
	}
	for _, l := range cr.Layers {
		if l.Clip > 1.0000005 || !qonnx.LHTanAsReLU(&quant.LayerQuant{ActBits: l.Bits, ActScale: l.Scale}) {
			t.Errorf("minmax: %s clip %g scale %g (lhtan saturates at 1)", l.Layer, l.Clip, l.Scale)
		}
	}
	if n := len(cr.Thresholds.Layers); n != 7 {
		t.Errorf("minmax: thresholds for %d layers, want 7", n)
	}
}

// sameThresholds counts the channels whose thresholds and invert flags in m equal
// orig's (layer by layer index: the export keeps the layer order).
func sameThresholds(t *testing.T, orig, m *quant.Model) (same, channels int) {
	t.Helper()
	for i, l := range orig.Layers {
		q := l.Quant
		if q == nil || len(q.Thresholds) == 0 {
			continue
		}
		bq := m.Layers[i].Quant
		if bq == nil || len(bq.Thresholds) != len(q.Thresholds) {
			t.Fatalf("layer %d (%s): no thresholds in the calibrated model", i, l.Name)
		}
		for o := range q.Thresholds {
			channels++
			if slices.Equal(q.Thresholds[o], bq.Thresholds[o]) && q.Invert[o] == bq.Invert[o] {
				same++
			}
		}
	}
	return same, channels
}

// sameDetections runs both models through qengine on float input (the QNN-MO path) and
// wants the same objects with the same scores and boxes up to float rounding (the last
// layer's weights went through the darknet and ONNX files: boxes differ in the last
// bits, 1e-5 px).
func sameDetections(t *testing.T, orig, m *quant.Model, imgs []string, namesFile string) {
	t.Helper()
	names, err := boxes.LoadNames(namesFile)
	if err != nil {
		t.Fatal(err)
	}
	eo, err := quantengine.New(orig, quantengine.Options{FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	em, err := quantengine.New(m, quantengine.Options{FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	total, maxScore, maxBox := 0, 0.0, 0.0
	for _, p := range imgs {
		im, err := imageio.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := detector.Objects(detector.NewFloatWith(orig, eo, 0.45), im, 0.3, names)
		if err != nil {
			t.Fatal(err)
		}
		got, err := detector.Objects(detector.NewFloatWith(m, em, 0.45), im, 0.3, names)
		if err != nil {
			t.Fatal(err)
		}
		total += len(want)
		if len(got) != len(want) {
			t.Errorf("%s: %d objects, the QNN-MO model %d", filepath.Base(p), len(got), len(want))
			continue
		}
		for k := range want {
			w, g := want[k], got[k]
			ds := math.Abs(float64(w.Score - g.Score))
			db := 0.0
			for j := range w.Box {
				db = max(db, math.Abs(float64(w.Box[j]-g.Box[j])))
			}
			maxScore, maxBox = max(maxScore, ds), max(maxBox, db)
			if w.Name != g.Name || ds > 1e-5 || db > 1e-3 {
				t.Errorf("%s: object %d %s %.4f %v, the QNN-MO model %s %.4f %v", filepath.Base(p), k, g.Name, g.Score, g.Box, w.Name, w.Score, w.Box)
			}
		}
	}
	t.Logf("%d objects on %d images, the same as the QNN-MO model's (max score difference %.2g, max box difference %.2g px)", total, len(imgs), maxScore, maxBox)
}
