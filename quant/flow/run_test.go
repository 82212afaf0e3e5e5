package flow

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// TestRunTypedResult runs the guide on Yolo-Fastest (two calibration images, one
// validation image) through the library: every step's result is returned, and a
// failed gate (binarizing Yolo-Fastest loses its detections) is a result, not an error.
func TestRunTypedResult(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole quantization flow; skipped in -short")
	}
	fx := testutil.Fixture(t, "yolo-fastest")
	chairs := testutil.Fixture(t, "chairs")
	val := t.TempDir()
	imgs, _ := filepath.Glob(filepath.Join(chairs, "val", "*.jpg"))
	if len(imgs) == 0 {
		t.Skip("no chairs/val images")
	}
	for _, p := range []string{imgs[0], strings.TrimSuffix(imgs[0], ".jpg") + ".txt", filepath.Join(chairs, "classes.names")} {
		if err := os.Symlink(p, filepath.Join(val, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	o := RunOptions{Cfg: filepath.Join(fx, "yolo-fastest-1.1.cfg"), Weights: filepath.Join(fx, "yolo-fastest-1.1.weights"),
		Calibration: filepath.Join(chairs, "calibration"), CalibrationImages: 2, Val: val, Dir: filepath.Join(t.TempDir(), "out"),
		Name: "yf", Precision: DefaultPrecision(), Verify: DefaultVerifyOptions()}
	o.Verify.Names, o.Verify.MaxDrop = filepath.Join(fx, "coco.names"), -1
	var out strings.Builder
	o.Out = &out
	res, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if len(res.Steps) != 6 || res.Convert == nil || res.Finn == nil || res.Weights == nil || res.Activations == nil || res.Calibrate == nil {
		t.Fatalf("result %+v", res)
	}
	if res.Verify.Passed || res.Verify.GateError() == nil || len(res.Calibrate.Images) != 2 {
		t.Errorf("verify %+v, calibrated on %d images", res.Verify, len(res.Calibrate.Images))
	}
	if !strings.Contains(out.String(), "== step 6/6: verify") || !strings.Contains(out.String(), "accuracy gate failed") {
		t.Errorf("progress:\n%s", out.String())
	}

	// The same run with an unreadable validation set is refused before any file.
	o.Val, o.Dir = filepath.Join(t.TempDir(), "none"), filepath.Join(t.TempDir(), "out")
	if _, err := Run(context.Background(), o, nil); err == nil || !strings.Contains(err.Error(), "nothing written") {
		t.Errorf("missing validation set: %v", err)
	}
	if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
		t.Errorf("output directory made before the inputs were checked (%v)", err)
	}
}
