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

// TestQuantRunYoloFastest runs the whole guide on Yolo-Fastest with two calibration
// images and one validation image. Binarizing Yolo-Fastest loses its detections, so
// with --max-drop=-1 the gate must fail (exit 3) after writing every file.
func TestQuantRunYoloFastest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole quantization flow; skipped in -short")
	}
	fx := testutil.Fixture(t, "yolo-fastest")
	calDir := t.TempDir()
	cal, _ := filepath.Glob(filepath.Join(testutil.Fixture(t, "chairs", "calibration"), "*.jpg"))
	for _, p := range cal[:2] {
		if err := os.Symlink(p, filepath.Join(calDir, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	val := chairsSubset(t, 1)
	outdir := filepath.Join(t.TempDir(), "out")
	out, err := runPynqctl(t, "quant", "run",
		"--cfg="+filepath.Join(fx, "yolo-fastest-1.1.cfg"), "--weights="+filepath.Join(fx, "yolo-fastest-1.1.weights"),
		"--calibration="+calDir, "--val="+val, "--outdir="+outdir, "--name=yf",
		"--names="+filepath.Join(fx, "coco.names"), "--max-drop=-1")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitGateFailed {
		t.Fatalf("quant run --max-drop=-1: err %v, want exit status %d\n%s", err, exitGateFailed, out)
	}
	for _, f := range []string{"yf.onnx", "yf-finn.onnx", "yf-w1.onnx", "yf-w1a3.onnx", "yf-w1a3-calibrated.onnx",
		"quantization_results.json", "quantization_results.html", "quant_run.json"} {
		if st, err := os.Stat(filepath.Join(outdir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	for _, step := range []string{"convert", "finn", "weights", "activations", "calibrate", "verify", "total"} {
		if !strings.Contains(out, "\n"+step+" ") {
			t.Errorf("summary lacks %s:\n%s", step, out)
		}
	}
	var timings struct {
		Steps []flow.Step `json:"steps"`
	}
	b, _ := os.ReadFile(filepath.Join(outdir, "quant_run.json"))
	if err := json.Unmarshal(b, &timings); err != nil || len(timings.Steps) != 6 || timings.Steps[5].Seconds <= 0 {
		t.Errorf("quant_run.json: %v %s", err, b)
	}
	var res flow.VerifyResult
	b, _ = os.ReadFile(filepath.Join(outdir, "quantization_results.json"))
	if err := json.Unmarshal(b, &res); err != nil || res.Verdict != "fail" || res.Calibration == nil || len(res.Layers) == 0 {
		t.Errorf("quantization_results.json: %v %s", err, b)
	}
}

func TestQuantRunStepFailure(t *testing.T) {
	dir := t.TempDir()
	_, err := runPynqctl(t, "quant", "run", "--cfg="+filepath.Join(dir, "missing.cfg"), "--weights="+filepath.Join(dir, "missing.weights"),
		"--calibration="+dir, "--val="+dir, "--outdir="+filepath.Join(dir, "out"))
	if err == nil || !strings.Contains(err.Error(), "missing.cfg") || !strings.Contains(err.Error(), "nothing written") || exitCode(err) != 1 {
		t.Errorf("missing cfg: err %v (exit %d), want the input check's failure with exit 1", err, exitCode(err))
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the output directory was made before the inputs were checked (%v)", err)
	}
}

// Inputs that would stop a later step are refused before any file is written: here the
// validation set's classes cannot be matched (a names file shorter than the model's 80
// classes), and an empty calibration folder.
func TestQuantRunChecksInputsFirst(t *testing.T) {
	fx := testutil.Fixture(t, "yolo-fastest")
	dir := t.TempDir()
	names := filepath.Join(dir, "three.names")
	if err := os.WriteFile(names, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cal := testutil.Fixture(t, "chairs", "calibration")
	args := func(calib, names string) []string {
		return []string{"quant", "run", "--cfg=" + filepath.Join(fx, "yolo-fastest-1.1.cfg"),
			"--weights=" + filepath.Join(fx, "yolo-fastest-1.1.weights"), "--calibration=" + calib,
			"--val=" + chairsSubset(t, 1), "--outdir=" + filepath.Join(dir, "out"), "--names=" + names}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{args(cal, names), "three.names has 3 names, the model has 80 classes"},
		{args(t.TempDir(), filepath.Join(fx, "coco.names")), "calibration set"},
	} {
		_, err := runPynqctl(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "nothing written") {
			t.Errorf("err %v, want %q before any step", err, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
			t.Errorf("the output directory exists after a refused run (%v)", err)
		}
	}
}
