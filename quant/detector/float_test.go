package detector_test

import (
	"math"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/internal/headtest"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// fakeEngine returns a fixed head output and records the input it was given.
type fakeEngine struct {
	input []float32
	head  []float32
}

func (f *fakeEngine) Forward(in []float32) error { f.input = in; return nil }
func (f *fakeEngine) Output(int) []float32       { return f.head }

// TestFloatStages runs a float detector over an engine that returns a fixed region
// head: letterbox, forward, decode, NMS and darknet's object list.
func TestFloatStages(t *testing.T) {
	h := &quant.Head{Classes: 2, Coords: 4, Num: 1, Anchors: []float32{4, 4}, Softmax: true}
	m := headtest.Model(quant.KindRegion, h, 32, 4, 4)
	head := make([]float32, m.Layers[0].Out.Size())
	for f, v := range []float32{0.5, 0.5, 0, 0, 0.9, 0.1, 0.9} {
		headtest.SetEntry(head, h, 4, 4, 0, f, 1, 1, v)
	}
	for f, v := range []float32{0.6, 0.5, 0, 0, 0.8, 0.1, 0.9} { // same object, less sure
		headtest.SetEntry(head, h, 4, 4, 0, f, 1, 2, v)
	}
	e := &fakeEngine{head: head}
	im := imageio.NewImage(64, 32, 3)
	d := detector.NewFloatWith(m, e, 0.45)
	objs, err := detector.Objects(d, im, 0.25, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.input) != 3*32*32 {
		t.Fatalf("engine got %d inputs", len(e.input))
	}
	if len(objs) != 1 || objs[0].Name != "b" || !near(float64(objs[0].Score), 0.81, 1e-6) {
		t.Fatalf("objects %+v", objs)
	}
	if _, err := d.Detect(imageio.NewImage(8, 8, 1), 0.25); err == nil {
		t.Error("1-channel image accepted by a 3-channel model")
	}
}
