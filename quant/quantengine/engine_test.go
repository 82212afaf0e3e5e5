package quantengine_test

import (
	"math"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

func yoloFastest(tb testing.TB) *quant.Model {
	tb.Helper()
	dir := testutil.Fixture(tb, "yolo-fastest")
	m, err := darknet.Load(dir+"/yolo-fastest-1.1.cfg", dir+"/yolo-fastest-1.1.weights", darknet.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func letterboxed(tb testing.TB, m *quant.Model, elem ...string) []float32 {
	tb.Helper()
	im, err := imageio.Load(testutil.Fixture(tb, elem...))
	if err != nil {
		tb.Fatal(err)
	}
	return imageio.Letterbox(im, m.Input.W, m.Input.H).Data
}

// TestFloatMatchesEngine: without quantization, qengine computes what the float engine
// does (Yolo-Fastest: grouped convolutions, route groups, shortcuts, upsample, two yolo
// heads), up to float summation order.
func TestFloatMatchesEngine(t *testing.T) {
	m := yoloFastest(t)
	in := letterboxed(t, m, "qnn-mo-pynq", "images", "dog.jpg")
	fe, err := floatengine.New(m, floatengine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qe, err := quantengine.New(m, quantengine.Options{FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fe.Forward(in); err != nil {
		t.Fatal(err)
	}
	if err := qe.Forward(in); err != nil {
		t.Fatal(err)
	}
	for _, h := range m.Heads() {
		want, got := fe.Output(h), qe.Output(h)
		var worst float64
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("head %d: max |qengine - engine| = %.3g", h, worst)
		if worst > 1e-3 {
			t.Errorf("head %d: qengine differs from the float engine by %.3g", h, worst)
		}
	}
}

func BenchmarkForwardQNNMO(b *testing.B) {
	m, err := qnnmo.LoadDir(testutil.Fixture(b, "qnn-mo-pynq", "params"))
	if err != nil {
		b.Fatal(err)
	}
	in := letterboxed(b, m, "qnn-mo-pynq", "images", "dog.jpg")
	e, err := quantengine.New(m, quantengine.Options{FloatInput: true})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := e.Forward(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkForwardYoloFastest(b *testing.B) {
	m := yoloFastest(b)
	in := letterboxed(b, m, "qnn-mo-pynq", "images", "dog.jpg")
	e, err := quantengine.New(m, quantengine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := e.Forward(in); err != nil {
			b.Fatal(err)
		}
	}
}
