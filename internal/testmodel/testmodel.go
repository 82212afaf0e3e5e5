// Package testmodel owns the project's synthetic test models: a Tinier-YOLO-shaped float
// model (testdata/tinier-yolo-voc.cfg) with deterministic pseudo-random weights scaled
// so that activations stay in a sane range through every layer.
package testmodel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// TinierYOLOSeed is the seed TinierYOLO uses.
const TinierYOLOSeed = 20180416

// TinierYOLO loads testdata/tinier-yolo-voc.cfg (416x416x3 input, VOC region head, leaky
// activations, batch norm on conv0..conv7) and fills it with RandomizeWeights(m,
// TinierYOLOSeed). Every call returns a fresh, identical model.
func TinierYOLO(tb testing.TB) *quant.Model {
	tb.Helper()
	m, err := darknet.LoadCfg(testutil.Testdata(tb, "tinier-yolo-voc.cfg"), darknet.Options{})
	if err != nil {
		tb.Fatalf("load the Tinier-YOLO test cfg: %v", err)
	}
	RandomizeWeights(m, TinierYOLOSeed)
	return m
}

// RandomizeWeights gives every convolution of m deterministic pseudo-random parameters:
// He-scaled normal weights (variance 2/fan-in before a rectifier, 1/fan-in before a
// linear output), small biases, and batch norm with scales in [0.8, 1.2], means near 0
// and variances in [0.8, 1.25], so that a [0,1] input keeps activations of order one
// through the network. It allocates what is missing and panics if m's shapes do not infer
// (a broken test model).
func RandomizeWeights(m *quant.Model, seed int64) {
	if err := m.InferShapes(); err != nil {
		panic("testmodel: " + err.Error())
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	uniform := func(lo, hi float64) float32 { return float32(lo + (hi-lo)*rng.Float64()) }
	for _, l := range m.Layers {
		c := l.Conv
		if l.Kind != quant.KindConv || c == nil {
			continue
		}
		fanIn := l.In.C / c.Groups * c.Size * c.Size
		gain := 2.0
		if c.Activation == quant.ActLinear || c.Activation == quant.ActLogistic {
			gain = 1
		}
		std := math.Sqrt(gain / float64(fanIn))
		c.Weights = make([]float32, c.Filters*fanIn)
		for i := range c.Weights {
			c.Weights[i] = float32(rng.NormFloat64() * std)
		}
		c.Bias = make([]float32, c.Filters)
		for i := range c.Bias {
			c.Bias[i] = uniform(-0.1, 0.1)
		}
		if c.BN == nil {
			continue
		}
		bn := &quant.BatchNorm{
			Scale:    make([]float32, c.Filters),
			Mean:     make([]float32, c.Filters),
			Variance: make([]float32, c.Filters),
		}
		for i := 0; i < c.Filters; i++ {
			bn.Scale[i] = uniform(0.8, 1.2)
			bn.Mean[i] = uniform(-0.05, 0.05)
			bn.Variance[i] = uniform(0.8, 1.25)
		}
		c.BN = bn
	}
}
