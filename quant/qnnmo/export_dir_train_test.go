package qnnmo_test

// An external test: quant/train imports quant/detector, which imports this package.

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

// TestFromQATMatchesTrainingForward: the engine pipeline of the converted model (float
// first layer, integer engine layers, float last layer) computes what quant/train's
// forward pass with the quantizers in the loop computes, up to levels that float
// rounding moves across a threshold.
func TestFromQATMatchesTrainingForward(t *testing.T) {
	src := qnnmo.QATTestModel(t)
	net, err := train.NewNet(src, 1, 1, train.RegionParams{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	img := make([]float32, src.Input.Size())
	for i := range img {
		img[i] = rng.Float32()
	}
	net.Forward(img, nil, false)
	want := net.Output(4) // the last convolution

	m, err := qnnmo.FromQAT(src)
	if err != nil {
		t.Fatal(err)
	}
	first, err := qnnmo.NewFirstLayer(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := qnnmo.NewEngine(m, offload.W1A3, 1)
	if err != nil {
		t.Fatal(err)
	}
	last, err := qnnmo.NewLastLayer(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]byte, eng.InLayout().Size())
	if err := first.Run(in, eng.InLayout(), img); err != nil {
		t.Fatal(err)
	}
	mid, err := eng.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	levels := map[byte]bool{}
	for _, b := range mid {
		levels[b] = true
	}
	if len(levels) < 8 {
		t.Fatalf("engine output has %d distinct bytes: the test model is degenerate", len(levels))
	}
	inverted := 0
	for _, inv := range m.Layers[3].Quant.Invert {
		if inv {
			inverted++
		}
	}
	if inverted == 0 {
		t.Error("no inverted channel in the test model (negative batch-norm scales)")
	}
	got, err := last.Run(mid, eng.OutLayout())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d outputs, training forward %d", len(got), len(want))
	}
	off := 0
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-3*(1+math.Abs(float64(want[i]))) {
			off++
		}
	}
	if off > len(got)/50 {
		t.Errorf("%d of %d outputs differ from the training forward pass", off, len(got))
	}
	t.Logf("%d of %d outputs differ", off, len(got))
}
