package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/flow"
)

// chairsSubset makes a darknet-form dataset of the first n images of chairs/val in a
// temp dir (symlinked images, copied labels and names).
func chairsSubset(t *testing.T, n int) string {
	t.Helper()
	src := testutil.Fixture(t, "chairs", "val")
	imgs, _ := filepath.Glob(filepath.Join(src, "*.jpg"))
	if len(imgs) < n {
		t.Skipf("chairs/val has %d images, want %d", len(imgs), n)
	}
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(filepath.Dir(src), "classes.names"), filepath.Join(dir, "classes.names"))
	for _, img := range imgs[:n] {
		if err := os.Symlink(img, filepath.Join(dir, filepath.Base(img))); err != nil {
			t.Fatal(err)
		}
		lbl := strings.TrimSuffix(img, ".jpg") + ".txt"
		copyFile(lbl, filepath.Join(dir, filepath.Base(lbl)))
	}
	return dir
}

// yoloFastestONNX converts Yolo-Fastest into dir/yf.onnx.
func yoloFastestONNX(t *testing.T, dir string) string {
	t.Helper()
	fx := testutil.Fixture(t, "yolo-fastest")
	out := filepath.Join(dir, "yf.onnx")
	if o, err := runPynqctl(t, "quant", "convert", "--cfg="+filepath.Join(fx, "yolo-fastest-1.1.cfg"),
		"--weights="+filepath.Join(fx, "yolo-fastest-1.1.weights"), "--output="+out); err != nil {
		t.Fatalf("convert: %v\n%s", err, o)
	}
	return out
}

func TestQuantVerifyGate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a model through both engines; skipped in -short")
	}
	data := chairsSubset(t, 1)
	dir := t.TempDir()
	model := yoloFastestONNX(t, dir)
	names := testutil.Fixture(t, "yolo-fastest", "coco.names")
	results := filepath.Join(dir, "out", "quantization_results.json")
	args := []string{"quant", "verify", "--model=" + model, "--float=" + model, "--dataset=" + data,
		"--names=" + names, "--output=" + results}

	out, err := runPynqctl(t, append(args, "--max-drop=100")...)
	if err != nil {
		t.Fatalf("verify --max-drop=100: %v\n%s", err, out)
	}
	var r flow.VerifyResult
	b, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Verdict != "pass" || r.Dataset.Images != 1 || len(r.Classes) == 0 || r.MAP.Float <= 0 {
		t.Errorf("results: %s", b)
	}
	if r.Models.Quantized.Engine == r.Models.Float.Engine || r.Timings.QuantizedImagesPerSec <= 0 {
		t.Errorf("models/timings: %+v %+v", r.Models, r.Timings)
	}
	html, err := os.ReadFile(strings.TrimSuffix(results, ".json") + ".html")
	if err != nil || !strings.Contains(string(html), "<svg") || !strings.Contains(string(html), "<polyline") {
		t.Errorf("report without curves (err %v)", err)
	}

	out, err = runPynqctl(t, append(args, "--max-drop=-1")...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitGateFailed {
		t.Fatalf("verify --max-drop=-1: err %v, want exit status %d\n%s", err, exitGateFailed, out)
	}
	if !strings.Contains(out, "calibration") || !strings.Contains(out, "quantization-aware") {
		t.Errorf("no advice printed:\n%s", out)
	}
	if b, _ := os.ReadFile(results); !strings.Contains(string(b), `"verdict": "fail"`) {
		t.Errorf("results after a failed gate: %s", b)
	}
}
