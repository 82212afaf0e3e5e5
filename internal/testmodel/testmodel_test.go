package testmodel

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

func TestTinierYOLOShapes(t *testing.T) {
	m := TinierYOLO(t)
	if len(m.Layers) != 15 || m.Input != (quant.Shape{C: 3, H: 416, W: 416}) {
		t.Fatalf("%d layers, input %v; want 15 layers, 3x416x416", len(m.Layers), m.Input)
	}
	if got := m.Layers[0].Out; got != (quant.Shape{C: 16, H: 208, W: 208}) {
		t.Errorf("conv0 out %v, want 16x208x208", got)
	}
	if got := m.Layers[14].In; got != (quant.Shape{C: 125, H: 13, W: 13}) {
		t.Errorf("region in %v, want 125x13x13", got)
	}
	for _, l := range m.Layers {
		if c := l.Conv; c != nil && (c.Binary || c.XNOR || len(c.Weights) != c.Filters*l.In.C*c.Size*c.Size) {
			t.Errorf("%s: binary %v xnor %v, %d weights", l.Name, c.Binary, c.XNOR, len(c.Weights))
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := TinierYOLO(t), TinierYOLO(t)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two TinierYOLO models differ")
	}
	c := TinierYOLO(t)
	RandomizeWeights(c, 7)
	if reflect.DeepEqual(a.Layers[0].Conv.Weights, c.Layers[0].Conv.Weights) {
		t.Fatal("another seed gives the same weights")
	}
	for _, l := range a.Layers {
		if bn := l.Conv; bn != nil && bn.BN != nil {
			for i, v := range bn.BN.Variance {
				if v <= 0 || bn.BN.Scale[i] <= 0 {
					t.Fatalf("%s: variance %g scale %g", l.Name, v, bn.BN.Scale[i])
				}
			}
		}
	}
}

// TestActivationRange runs a naive float forward pass (at 96x96 to stay fast; the weights
// do not depend on the input size) and checks that every layer's output has an RMS of
// order one: neither exploding nor vanishing.
func TestActivationRange(t *testing.T) {
	m := TinierYOLO(t)
	m.Input = quant.Shape{C: 3, H: 96, W: 96}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, m.Input.Size())
	for i := range x {
		x[i] = rng.Float32()
	}
	for _, l := range m.Layers {
		switch l.Kind {
		case quant.KindConv:
			x = conv(m, l, x)
		case quant.KindMaxPool:
			x = maxpool(l, x)
		}
		if len(x) != l.Out.Size() {
			t.Fatalf("%s: %d values, want %v", l.Name, len(x), l.Out)
		}
		var sum, sq float64
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite output", l.Name)
			}
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		rms := math.Sqrt(sq / float64(len(x)))
		t.Logf("%-9s out %-11v mean %8.4f rms %8.4f", l.Name, l.Out, sum/float64(len(x)), rms)
		if rms < 0.05 || rms > 20 {
			t.Errorf("%s: output RMS %g outside [0.05, 20]", l.Name, rms)
		}
	}
}

func conv(m *quant.Model, l *quant.Layer, x []float32) []float32 {
	c, in, out := l.Conv, l.In, l.Out
	cpg := in.C / c.Groups
	opg := c.Filters / c.Groups
	y := make([]float32, out.Size())
	for o := 0; o < c.Filters; o++ {
		g := o / opg
		for oy := 0; oy < out.H; oy++ {
			for ox := 0; ox < out.W; ox++ {
				var acc float32
				for ci := 0; ci < cpg; ci++ {
					for ky := 0; ky < c.Size; ky++ {
						iy := oy*c.Stride + ky - c.Pad
						if iy < 0 || iy >= in.H {
							continue
						}
						for kx := 0; kx < c.Size; kx++ {
							ix := ox*c.Stride + kx - c.Pad
							if ix < 0 || ix >= in.W {
								continue
							}
							w := c.Weights[((o*cpg+ci)*c.Size+ky)*c.Size+kx]
							acc += w * x[((g*cpg+ci)*in.H+iy)*in.W+ix]
						}
					}
				}
				if bn := c.BN; bn != nil {
					sd := float32(math.Sqrt(float64(bn.Variance[o]))) + m.BNEpsilon
					acc = (acc - bn.Mean[o]) / sd * bn.Scale[o]
				}
				acc += c.Bias[o]
				if c.Activation == quant.ActLeaky && acc < 0 {
					acc *= 0.1
				}
				y[(o*out.H+oy)*out.W+ox] = acc
			}
		}
	}
	return y
}

func maxpool(l *quant.Layer, x []float32) []float32 {
	p, in, out := l.Pool, l.In, l.Out
	off := -p.Pad / 2
	y := make([]float32, out.Size())
	for c := 0; c < out.C; c++ {
		for oy := 0; oy < out.H; oy++ {
			for ox := 0; ox < out.W; ox++ {
				best := float32(math.Inf(-1))
				for ky := 0; ky < p.Size; ky++ {
					for kx := 0; kx < p.Size; kx++ {
						iy, ix := oy*p.Stride+ky+off, ox*p.Stride+kx+off
						if iy >= 0 && iy < in.H && ix >= 0 && ix < in.W {
							best = max(best, x[(c*in.H+iy)*in.W+ix])
						}
					}
				}
				y[(c*out.H+oy)*out.W+ox] = best
			}
		}
	}
	return y
}
