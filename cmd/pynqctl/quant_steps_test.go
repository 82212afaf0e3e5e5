package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// TestQuantStepsYoloFastest runs the guide's steps convert -> finn -> weights ->
// activations -> calibrate on Yolo-Fastest with 3 chairs calibration images.
func TestQuantStepsYoloFastest(t *testing.T) {
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
	if !strings.Contains(out, "leaky    54:") {
		t.Errorf("finn output lacks the 54 leaky layers:\n%s", out)
	}
	toml := p("over.toml")
	if err := os.WriteFile(toml, []byte("keep_bits = 8\n[layers]\nconv1 = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = run("quant", "weights", "--input="+p("yf-finn.onnx"), "--output="+p("yf-w1.onnx"), "--weight-bits=1", "--overrides="+toml)
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
