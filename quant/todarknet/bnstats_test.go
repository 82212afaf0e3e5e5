package todarknet

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// TestCalibrateBN measures the batch-norm statistics of the exported Tinier-YOLO on a
// sample photo: the rolling means and variances change, the thresholds read back from
// the files do not (TestCalibrateBNSynthetic checks that the float function stays).
func TestCalibrateBN(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO; skipped in -short")
	}
	orig := qnnModel(t)
	res, err := Export(qnnModel(t))
	if err != nil {
		t.Fatal(err)
	}
	var imgs [][]float32
	for _, name := range []string{"dog.jpg"} {
		im, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", name))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, imageio.Letterbox(im, orig.Input.W, orig.Input.H).Data)
	}
	st, err := res.CalibrateBN(imgs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 1 || st.Layers != 7 {
		t.Errorf("stats %+v, want 1 image and 7 layers", st)
	}
	bn := res.Model.Layers[5].Conv.BN
	t.Logf("conv3 (layer 5) channel 0: rolling mean %g, variance %g, scale %g", bn.Mean[0], bn.Variance[0], bn.Scale[0])
	if bn.Mean[0] == 0 || bn.Variance[0] == BNVariance {
		t.Errorf("layer 5 keeps the default statistics")
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "t.cfg"), filepath.Join(dir, "t.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	ck, err := CheckFiles(orig, cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Identical != 2048 || len(ck.Changed) != 0 {
		t.Errorf("after calibration: %+v, want 2048 identical channels and no changes", ck)
	}
}

func forwardHead(tb testing.TB, res *Result, img []float32, head int) []float32 {
	tb.Helper()
	e, err := floatengine.New(res.Model, floatengine.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Forward(img); err != nil {
		tb.Fatal(err)
	}
	return append([]float32(nil), e.Output(head)...)
}

// TestCalibrateBNSynthetic re-parametrizes the small model's batch norms (inverted,
// constant and approximate channels included) from random images.
func TestCalibrateBNSynthetic(t *testing.T) {
	m := smallModel(t)
	res, err := Export(m)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	imgs := make([][]float32, 4)
	for i := range imgs {
		imgs[i] = make([]float32, m.Input.Size())
		for j := range imgs[i] {
			imgs[i][j] = r.Float32()
		}
	}
	before := forwardHead(t, res, imgs[0], 3)
	if _, err := res.CalibrateBN(imgs, 1); err != nil {
		t.Fatal(err)
	}
	after := forwardHead(t, res, imgs[0], 3)
	for i := range before {
		if math.Abs(float64(before[i]-after[i])) > 1e-4 {
			t.Fatalf("output %d: %g before, %g after calibration", i, before[i], after[i])
		}
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "s.cfg"), filepath.Join(dir, "s.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	ck, err := CheckFiles(m, cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Same != 5 || ck.Identical != 3 || len(ck.Changed) != 0 {
		t.Errorf("after calibration: %+v, want 5 channels with the same levels, 3 identical", ck)
	}
	if _, err := res.CalibrateBN(nil, 1); err == nil {
		t.Error("calibration without images accepted")
	}
}

// TestCalibrateBNLHTan measures statistics of the lhtan export (the layers run one by one
// with lhtan applied between them): thresholds stay, and the statistics differ from
// the relu export's (whose activations are not clipped).
func TestCalibrateBNLHTan(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO; skipped in -short")
	}
	orig := qnnModel(t)
	res, err := ExportWith(qnnModel(t), Options{FloatActivation: FloatLHTan})
	if err != nil {
		t.Fatal(err)
	}
	im, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.CalibrateBN([][]float32{imageio.Letterbox(im, orig.Input.W, orig.Input.H).Data}, 0); err != nil {
		t.Fatal(err)
	}
	bn := res.Model.Layers[12].Conv.BN
	t.Logf("conv7 (layer 12) channel 0: rolling mean %g, variance %g", bn.Mean[0], bn.Variance[0])
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "t.cfg"), filepath.Join(dir, "t.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	ck, err := CheckFiles(orig, cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Identical != 2048 || len(ck.Changed) != 0 {
		t.Errorf("after calibration: %+v, want 2048 identical channels and no changes", ck)
	}
}
