package floatengine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// This file holds naive direct implementations of darknet's layers, written from the
// definitions (no packing, no folding), against which the fast paths are checked.

func randSlice(r *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*r.Float32()
	}
	return s
}

func refActivate(x float64, a quant.Activation) float64 {
	switch a {
	case quant.ActLeaky:
		if x > 0 {
			return x
		}
		return 0.1 * x
	case quant.ActReLU:
		return math.Max(x, 0)
	case quant.ActLogistic:
		return 1 / (1 + math.Exp(-x))
	case quant.ActMish:
		sp := math.Log1p(math.Exp(x))
		if x > 20 {
			sp = x
		} else if x < -20 {
			sp = math.Exp(x)
		}
		return x * math.Tanh(sp)
	case quant.ActSwish:
		return x / (1 + math.Exp(-x))
	case quant.ActLHTan: // darknet activations.h lhtan_activate
		if x < 0 {
			return .001 * x
		}
		if x > 1 {
			return .001*(x-1) + 1
		}
		return x
	}
	return x
}

// refConv is darknet's convolution by definition: per group, sum over input channels
// and kernel taps with zero padding, then batch norm with the model's epsilon rule (or
// just the bias), then the activation.
func refConv(m *quant.Model, l *quant.Layer, in []float32) []float32 {
	c, is, os := l.Conv, l.In, l.Out
	cg, fg := is.C/c.Groups, c.Filters/c.Groups
	out := make([]float32, os.Size())
	for f := 0; f < c.Filters; f++ {
		g := f / fg
		for oy := 0; oy < os.H; oy++ {
			for ox := 0; ox < os.W; ox++ {
				var sum float64
				for ci := 0; ci < cg; ci++ {
					ch := g*cg + ci
					for ky := 0; ky < c.Size; ky++ {
						for kx := 0; kx < c.Size; kx++ {
							iy, ix := oy*c.Stride-c.Pad+ky, ox*c.Stride-c.Pad+kx
							if iy < 0 || iy >= is.H || ix < 0 || ix >= is.W {
								continue
							}
							x := float64(in[(ch*is.H+iy)*is.W+ix])
							if c.XNOR && x > 0 {
								x = 1
							} else if c.XNOR {
								x = -1
							}
							sum += float64(refWeightAt(c, f, ci, ky, kx, cg)) * x
						}
					}
				}
				if bn := c.BN; bn != nil {
					v := float64(bn.Variance[f])
					var sd float64
					if m.BNEpsInside {
						sd = math.Sqrt(v + float64(m.BNEpsilon))
					} else {
						sd = math.Sqrt(v) + float64(m.BNEpsilon)
					}
					sum = (sum-float64(bn.Mean[f]))/sd*float64(bn.Scale[f]) + float64(c.Bias[f])
				} else if c.Bias != nil {
					sum += float64(c.Bias[f])
				}
				out[(f*os.H+oy)*os.W+ox] = float32(refActivate(sum, c.Activation))
			}
		}
	}
	return out
}

// refWeightAt returns weight (f, ci, ky, kx), binarized per filter for binary/xnor.
func refWeightAt(c *quant.Conv, f, ci, ky, kx, cg int) float32 {
	kk := cg * c.Size * c.Size
	w := c.Weights[f*kk+(ci*c.Size+ky)*c.Size+kx]
	if !c.Binary && !c.XNOR {
		return w
	}
	var mean float64
	for _, v := range c.Weights[f*kk : (f+1)*kk] {
		mean += math.Abs(float64(v))
	}
	mean /= float64(kk)
	if w > 0 {
		return float32(mean)
	}
	return float32(-mean)
}

// refMaxPool takes the maximum over every window position that lies inside the input,
// windows starting at -pad/2.
func refMaxPool(l *quant.Layer, in []float32) []float32 {
	p, is, os := l.Pool, l.In, l.Out
	out := make([]float32, os.Size())
	for c := 0; c < is.C; c++ {
		for oy := 0; oy < os.H; oy++ {
			for ox := 0; ox < os.W; ox++ {
				best := float32(math.Inf(-1))
				for ky := 0; ky < p.Size; ky++ {
					for kx := 0; kx < p.Size; kx++ {
						y, x := oy*p.Stride-p.Pad/2+ky, ox*p.Stride-p.Pad/2+kx
						if y >= 0 && y < is.H && x >= 0 && x < is.W {
							best = max(best, in[(c*is.H+y)*is.W+x])
						}
					}
				}
				out[(c*os.H+oy)*os.W+ox] = best
			}
		}
	}
	return out
}

// refForward runs a whole model with the reference layers.
func refForward(t testing.TB, m *quant.Model, input []float32) [][]float32 {
	t.Helper()
	outs := make([][]float32, len(m.Layers))
	get := func(k int) []float32 {
		if k < 0 {
			return input
		}
		return outs[k]
	}
	for i, l := range m.Layers {
		in := get(l.Inputs[0])
		var out []float32
		switch l.Kind {
		case quant.KindConv:
			out = refConv(m, l, in)
		case quant.KindMaxPool:
			out = refMaxPool(l, in)
		case quant.KindRoute:
			for _, k := range l.Inputs {
				s := m.OutputShape(k)
				part := s.C / l.Route.Groups * s.H * s.W
				out = append(out, get(k)[l.Route.GroupID*part:(l.Route.GroupID+1)*part]...)
			}
		case quant.KindShortcut:
			add := get(l.Inputs[1])
			for j := range in {
				out = append(out, float32(refActivate(float64(in[j]+add[j]), l.Shortcut.Activation)))
			}
		case quant.KindUpsample:
			s, st := l.In, l.Upsample.Stride
			out = make([]float32, l.Out.Size())
			for c := 0; c < s.C; c++ {
				for y := 0; y < s.H*st; y++ {
					for x := 0; x < s.W*st; x++ {
						out[(c*s.H*st+y)*s.W*st+x] = l.Upsample.Scale * in[(c*s.H+y/st)*s.W+x/st]
					}
				}
			}
		case quant.KindDropout:
			out = append(out, in...)
		case quant.KindRegion, quant.KindYolo:
			out = refHead(l, in)
		default:
			t.Fatalf("reference has no layer kind %s", l.Kind)
		}
		outs[i] = out
	}
	return outs
}

// refHead applies the head activations element by element from the definitions.
func refHead(l *quant.Layer, in []float32) []float32 {
	h := l.Head
	hw := l.In.H * l.In.W
	per := 5 + h.Classes
	out := append([]float32(nil), in...)
	sig := func(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }
	for n := 0; n < h.Num; n++ {
		for p := 0; p < hw; p++ {
			at := func(e int) int { return (n*per+e)*hw + p }
			for _, e := range []int{0, 1, 4} {
				out[at(e)] = sig(in[at(e)])
			}
			if l.Kind == quant.KindYolo {
				for e := 5; e < per; e++ {
					out[at(e)] = sig(in[at(e)])
				}
				if s := h.ScaleXY; s != 0 {
					out[at(0)] = out[at(0)]*s - (s-1)/2
					out[at(1)] = out[at(1)]*s - (s-1)/2
				}
				continue
			}
			if !h.Softmax {
				for e := 5; e < per; e++ {
					out[at(e)] = sig(in[at(e)])
				}
				continue
			}
			var sum float64
			for e := 5; e < per; e++ {
				sum += math.Exp(float64(in[at(e)]))
			}
			for e := 5; e < per; e++ {
				out[at(e)] = float32(math.Exp(float64(in[at(e)])) / sum)
			}
		}
	}
	return out
}

// closeEnough compares with relative tolerance tol and an absolute floor scaled by the
// magnitude of the data (sums of many products lose absolute precision).
func closeEnough(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	bad := 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > tol*math.Abs(float64(want[i]))+tol*scale*0.1+1e-6 || math.IsNaN(float64(got[i])) {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}
