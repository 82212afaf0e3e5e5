package main

import (
	"encoding/json"
	"fmt"
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
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// TestQuantStepsYoloFastest runs the guide's steps convert -> finn -> weights ->
// activations -> calibrate on Yolo-Fastest with 3 chairs calibration images.
func TestQuantStepsYoloFastest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quantization steps on Yolo-Fastest; skipped in -short (tens of seconds under qemu)")
	}
	dir := testutil.Fixture(t, "yolo-fastest")
	cal := testutil.Fixture(t, "chairs", "calibration")
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	run := func(args ...string) string {
		t.Helper()
		out, err := runPynqctl(t, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args[:2], " "), err, out)
		}
		return out
	}
	run("quant", "convert", "--cfg="+filepath.Join(dir, "yolo-fastest-1.1.cfg"),
		"--weights="+filepath.Join(dir, "yolo-fastest-1.1.weights"), "--output="+p("yf.onnx"))
	out := run("quant", "finn", "--input="+p("yf.onnx"), "--output="+p("yf-finn.onnx"))
	if !strings.Contains(out, "leaky    54 layers (-v lists them)") {
		t.Errorf("finn output lacks the 54 leaky layers:\n%s", out)
	}
	toml := p("over.toml")
	if err := os.WriteFile(toml, []byte("keep_bits = 8\n[layers]\nconv1 = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = run("quant", "weights", "--input="+p("yf-finn.onnx"), "--output="+p("yf-w1.onnx"), "--weight-bits=1", "--overrides="+toml, "-v")
	for _, want := range []string{"refused  28:", "conv0        [8-bit] first layer", "conv1        [float] override"} {
		if !strings.Contains(out, want) {
			t.Errorf("weights output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runPynqctl(t, "quant", "activations", "--input="+p("yf-w1.onnx"), "--output="+p("x.onnx"), "--leaky=error"); err == nil {
		t.Error("--leaky=error accepted LeakyRelu layers")
	}
	run("quant", "activations", "--input="+p("yf-w1.onnx"), "--output="+p("yf-w1a3.onnx"), "--activation-bits=3")
	out = run("quant", "calibrate", "--model="+p("yf-w1a3.onnx"), "--dataset="+cal, "--output="+p("yf-w1a3-calibrated.onnx"), "--images=3", "--method=mse")
	if !strings.Contains(out, "calibrated on 3 images") || !strings.Contains(out, "method mse") {
		t.Errorf("calibrate output:\n%s", out)
	}
	m, err := qonnx.ReadFile(p("yf-w1a3-calibrated.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(qonnx.QuantizedLayers(m)); n != 54 {
		t.Errorf("%d quantized layers read back, want 54", n)
	}
	if _, err := qonnx.ReadFile(p("yf-w1a3-calibrated-streamlined.onnx")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p("yf-w1a3-calibrated.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res calib.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != 54 || len(res.Warnings) == 0 {
		t.Errorf("report: %d layers, warnings %v (want 54 and the image-count warning)", len(res.Layers), res.Warnings)
	}
}

// TestQuantStepsQNNExport: the float Tinier-YOLO that export-darknet makes from the
// QNN-MO model, taken through convert (--keep-bn), finn, weights, activations and
// calibrate --scales (its own activation scales), gives back the published model's
// thresholds and the same detections on dog.jpg.
func TestQuantStepsQNNExport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quantization steps on Tinier-YOLO; skipped in -short (tens of seconds under qemu)")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	dog := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	for _, args := range [][]string{
		{"quant", "export-darknet", "--model=" + params, "--output=" + p("ty.cfg")},
		{"quant", "convert", "--cfg=" + p("ty.cfg"), "--weights=" + p("ty.weights"), "--output=" + p("ty.onnx"), "--keep-bn"},
		{"quant", "finn", "--input=" + p("ty.onnx"), "--output=" + p("ty-finn.onnx")},
		{"quant", "weights", "--input=" + p("ty-finn.onnx"), "--output=" + p("ty-w1.onnx"), "--weight-bits=1"},
		{"quant", "activations", "--input=" + p("ty-w1.onnx"), "--output=" + p("ty-w1a3.onnx"), "--activation-bits=3"},
		{"quant", "calibrate", "--model=" + p("ty-w1a3.onnx"), "--scales=" + p("ty.quant.json"), "--output=" + p("ty-w1a3-calibrated.onnx")},
	} {
		if out, err := runPynqctl(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args[:2], " "), err, out)
		}
	}
	orig, err := qnnmo.LoadDir(params)
	if err != nil {
		t.Fatal(err)
	}
	names, err := boxes.LoadNames(testutil.Fixture(t, "qnn-mo-pynq", "voc.names"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := imageio.Load(dog)
	if err != nil {
		t.Fatal(err)
	}
	detections := func(m *quant.Model) string {
		e, err := quantengine.New(m, quantengine.Options{FloatInput: true})
		if err != nil {
			t.Fatal(err)
		}
		objs, err := detector.Objects(detector.NewFloatWith(m, e, 0.45), im, 0.3, names)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, o := range objs {
			s = append(s, fmt.Sprintf("%s %.4f %.0f", o.Name, o.Score, o.Box))
		}
		return strings.Join(s, "; ")
	}
	want := detections(orig)
	for _, file := range []string{"ty-w1a3-calibrated.onnx", "ty-w1a3-calibrated-streamlined.onnx"} {
		m, err := qonnx.ReadFile(p(file))
		if err != nil {
			t.Fatal(err)
		}
		same, total := 0, 0
		for i, l := range orig.Layers {
			if l.Quant == nil || len(l.Quant.Thresholds) == 0 {
				continue
			}
			q := m.Layers[i].Quant
			for o := range l.Quant.Thresholds {
				total++
				if q != nil && o < len(q.Thresholds) && slices.Equal(q.Thresholds[o], l.Quant.Thresholds[o]) && q.Invert[o] == l.Quant.Invert[o] {
					same++
				}
			}
		}
		if same != total || total == 0 {
			t.Errorf("%s: %d of %d channels have the published thresholds", file, same, total)
		}
		if got := detections(m); got != want {
			t.Errorf("%s: detections\n%s\nwant (QNN-MO model)\n%s", file, got, want)
		}
	}
}
