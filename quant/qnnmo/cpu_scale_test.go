package qnnmo

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// TestCPULayersHonourActScale checks that the CPU layers take their scales from the IR,
// not QNN-MO's constants: the published model rewritten as the quantization flow's
// lhtan export writes it (first layer: weights and bias /4 with ActScale 1/7, clip 1;
// engine output: ActScale 1/7 with the last layer's weights x7) gives the same first
// layer levels and the same last layer outputs up to float rounding.
func TestCPULayersHonourActScale(t *testing.T) {
	ref := loadModel(t)
	m, err := LoadDir(paramsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	c0 := m.Layers[0].Conv
	for i := range c0.Weights {
		c0.Weights[i] /= 4
	}
	for i := range c0.Bias {
		c0.Bias[i] /= 4
	}
	m.Layers[0].Quant.ActScale = float32(1.0 / 7)
	_, last, err := offload.EngineLayers(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers[:last+1] {
		if offload.IsEngineConv(l) {
			l.Quant.ActScale = float32(1.0 / 7)
		}
	}
	for i := range m.Layers[last+1].Conv.Weights {
		m.Layers[last+1].Conv.Weights[i] *= 7
	}

	img := randomImage(3*416*416, 7)
	fr, err := NewFirstLayer(ref, 2)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := NewFirstLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fr.Levels(img)
	got, _ := fm.Levels(img)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("first layer level %d: %d with ActScale 1/7, %d with QNN-MO's 4/7", i, got[i], want[i])
		}
	}

	lr, err := NewLastLayer(ref, 2)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := NewLastLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	if lm.scale != float32(1.0/7) || lr.scale != 1 {
		t.Fatalf("last layer input scales %g and %g, want 1/7 and 1", lm.scale, lr.scale)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	levels := make([]uint8, 512*13*13)
	for i := range levels {
		levels[i] = uint8(rng.IntN(8))
	}
	l := offload.DDRLayout(512, 13)
	packed, err := offload.Pack(levels, l)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lr.Run(packed, l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lm.Run(packed, l)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]-b[i])) / max(1, math.Abs(float64(a[i])))
		worst = max(worst, d)
	}
	if worst > 1e-5 {
		t.Errorf("last layer outputs differ by %g (relative) between ActScale 1/7 with 7x weights and raw levels", worst)
	}
	t.Logf("last layer: max relative difference %.2g", worst)
}
