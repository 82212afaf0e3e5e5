package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// This file holds a naive darknet-semantics evaluator of the IR and a hand-built model
// that touches every layer kind and activation the exporter writes, so export and
// import are checked against a computation that shares no code with either.

// smallModel builds a 3x13x13 model with deterministic random parameters: odd sizes
// exercise darknet's asymmetric pool padding, and every export pattern appears once.
func smallModel(tb testing.TB, dialect quant.Dialect) *quant.Model {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	conv := func(in []int, cin, filters, size, stride, groups int, act quant.Activation, bn bool) *quant.Layer {
		c := &quant.Conv{Filters: filters, Size: size, Stride: stride, Pad: size / 2, Groups: groups, Activation: act}
		c.Weights = randSlice(rng, filters*cin/groups*size*size, -0.5, 0.5)
		c.Bias = randSlice(rng, filters, -0.2, 0.2)
		if bn {
			c.BN = &quant.BatchNorm{
				Scale:    randSlice(rng, filters, 0.5, 1.5),
				Mean:     randSlice(rng, filters, -0.3, 0.3),
				Variance: randSlice(rng, filters, 0.01, 2),
			}
			c.BN.Variance[0] = 0 // darknet's epsilon placement matters most here
		}
		return &quant.Layer{Kind: quant.KindConv, Inputs: in, Conv: c}
	}
	pool := func(in, size, stride, pad int) *quant.Layer {
		return &quant.Layer{Kind: quant.KindMaxPool, Inputs: []int{in}, Pool: &quant.Pool{Size: size, Stride: stride, Pad: pad}}
	}
	route := func(groups, id int, in ...int) *quant.Layer {
		return &quant.Layer{Kind: quant.KindRoute, Inputs: in, Route: &quant.Route{Groups: groups, GroupID: id}}
	}
	layers := []*quant.Layer{
		conv([]int{-1}, 3, 8, 3, 1, 1, quant.ActLeaky, true), // 0: 8x13x13
		pool(0, 2, 2, 1), // 1: 8x7x7
		conv([]int{1}, 8, 8, 3, 1, 8, quant.ActMish, true),   // 2: depthwise
		conv([]int{2}, 8, 16, 1, 1, 1, quant.ActSwish, true), // 3: 16x7x7
		pool(3, 2, 1, 1), // 4: 16x7x7, pads right/bottom
		conv([]int{4}, 16, 16, 3, 2, 1, quant.ActLogistic, false), // 5: 16x4x4
		route(2, 1, 4), // 6: 8x7x7
		conv([]int{6}, 8, 16, 1, 1, 1, quant.ActReLU, true),                                                    // 7: 16x7x7
		{Kind: quant.KindShortcut, Inputs: []int{7, 4}, Shortcut: &quant.Shortcut{Activation: quant.ActLeaky}}, // 8
		{Kind: quant.KindDropout, Inputs: []int{8}},                                                            // 9
		pool(9, 5, 1, 4),   // 10: SPP-style
		route(2, 0, 10, 8), // 11: 16x7x7
		route(1, 0, 11, 6), // 12: 24x7x7
		conv([]int{12}, 24, 21, 1, 1, 1, quant.ActLinear, false), // 13
		{Kind: quant.KindYolo, Inputs: []int{13}, Head: &quant.Head{
			Classes: 2, Num: 3, Mask: []int{0, 1, 2}, ScaleXY: 1.05,
			Anchors: []float32{10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319}}}, // 14
		route(1, 0, 5), // 15: 16x4x4
		{Kind: quant.KindUpsample, Inputs: []int{15}, Upsample: &quant.Upsample{Stride: 2, Scale: 0.5}}, // 16: 16x8x8
		{Kind: quant.KindUpsample, Inputs: []int{16}, Upsample: &quant.Upsample{Stride: 1, Scale: 1}},   // 17
		conv([]int{17}, 16, 16, 3, 1, 1, quant.ActLHTan, true),                                          // 18: 2*(5+3)
		{Kind: quant.KindRegion, Inputs: []int{18}, Head: &quant.Head{
			Classes: 3, Coords: 4, Num: 2, Softmax: true, ScaleXY: 1, Anchors: []float32{1.08, 1.19, 3.42, 4.41}}}, // 19
	}
	layers[7].Conv.Binary = true
	for i, l := range layers {
		l.Name = string(l.Kind)[:4] + itoa(i)
	}
	m := &quant.Model{Name: "small-" + string(dialect), Input: quant.Shape{C: 3, H: 13, W: 13}, Dialect: dialect, Layers: layers}
	if dialect == quant.DialectPjreddie {
		m.BNEpsilon, m.BNEpsInside = 1e-6, false
	} else {
		m.BNEpsilon, m.BNEpsInside = 1e-5, true
	}
	if err := m.InferShapes(); err != nil {
		tb.Fatalf("small model: %v", err)
	}
	return m
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func randSlice(rng *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*rng.Float32()
	}
	return s
}

func randomInput(s quant.Shape, seed uint64) []float32 {
	return randSlice(rand.New(rand.NewPCG(seed, 7)), s.Size(), 0, 1)
}

// refForward evaluates m on input the way darknet's CPU forward pass does and returns
// every layer's output (heads pass their input through).
func refForward(m *quant.Model, input []float32) [][]float32 {
	outs := make([][]float32, len(m.Layers))
	get := func(i int) []float32 {
		if i < 0 {
			return input
		}
		return outs[i]
	}
	for i, l := range m.Layers {
		x := get(l.Inputs[0])
		switch l.Kind {
		case quant.KindConv:
			outs[i] = refConv(m, l, x)
		case quant.KindMaxPool:
			outs[i] = refPool(l, x)
		case quant.KindRoute:
			var o []float32
			for _, in := range l.Inputs {
				v := get(in)
				per := len(v) / l.Route.Groups
				o = append(o, v[l.Route.GroupID*per:(l.Route.GroupID+1)*per]...)
			}
			outs[i] = o
		case quant.KindShortcut:
			y := get(l.Inputs[1])
			o := make([]float32, len(x))
			for j := range o {
				o[j] = refAct(x[j]+y[j], l.Shortcut.Activation)
			}
			outs[i] = o
		case quant.KindUpsample:
			outs[i] = refUpsample(l, x)
		default: // dropout, heads
			outs[i] = x
		}
	}
	return outs
}

func refAct(x float32, a quant.Activation) float32 {
	v := float64(x)
	switch a {
	case quant.ActLeaky:
		if v < 0 {
			return float32(0.1 * v)
		}
	case quant.ActReLU:
		return float32(math.Max(v, 0))
	case quant.ActLogistic:
		return float32(1 / (1 + math.Exp(-v)))
	case quant.ActMish:
		return float32(v * math.Tanh(math.Log1p(math.Exp(v))))
	case quant.ActSwish:
		return float32(v / (1 + math.Exp(-v)))
	case quant.ActLHTan: // darknet activations.h lhtan_activate
		switch {
		case v < 0:
			return float32(.001 * v)
		case v > 1:
			return float32(.001*(v-1) + 1)
		}
	}
	return x
}

func refConv(m *quant.Model, l *quant.Layer, x []float32) []float32 {
	c, in, out := l.Conv, l.In, l.Out
	w := c.Weights
	if c.Binary {
		w = binarizeRef(w, c.Filters)
	}
	cpg, opg := in.C/c.Groups, c.Filters/c.Groups
	o := make([]float32, out.Size())
	for f := 0; f < c.Filters; f++ {
		g := f / opg
		for oy := 0; oy < out.H; oy++ {
			for ox := 0; ox < out.W; ox++ {
				var sum float64
				for ci := 0; ci < cpg; ci++ {
					for ky := 0; ky < c.Size; ky++ {
						for kx := 0; kx < c.Size; kx++ {
							iy, ix := oy*c.Stride-c.Pad+ky, ox*c.Stride-c.Pad+kx
							if iy < 0 || ix < 0 || iy >= in.H || ix >= in.W {
								continue
							}
							sum += float64(w[((f*cpg+ci)*c.Size+ky)*c.Size+kx]) * float64(x[((g*cpg+ci)*in.H+iy)*in.W+ix])
						}
					}
				}
				if bn := c.BN; bn != nil {
					std := math.Sqrt(float64(bn.Variance[f])) + float64(m.BNEpsilon)
					if m.BNEpsInside {
						std = math.Sqrt(float64(bn.Variance[f]) + float64(m.BNEpsilon))
					}
					sum = (sum-float64(bn.Mean[f]))/std*float64(bn.Scale[f]) + float64(c.Bias[f])
				} else {
					sum += float64(c.Bias[f])
				}
				o[(f*out.H+oy)*out.W+ox] = refAct(float32(sum), c.Activation)
			}
		}
	}
	return o
}

// binarizeRef is darknet's binarize_weights, written out again for the reference.
func binarizeRef(w []float32, filters int) []float32 {
	per := len(w) / filters
	o := make([]float32, len(w))
	for f := 0; f < filters; f++ {
		mean := float32(0)
		for _, v := range w[f*per : (f+1)*per] {
			mean += float32(math.Abs(float64(v)))
		}
		mean /= float32(per)
		for j := f * per; j < (f+1)*per; j++ {
			o[j] = -mean
			if w[j] > 0 {
				o[j] = mean
			}
		}
	}
	return o
}

func refPool(l *quant.Layer, x []float32) []float32 {
	p, in, out := l.Pool, l.In, l.Out
	off := -p.Pad / 2
	o := make([]float32, out.Size())
	for c := 0; c < out.C; c++ {
		for oy := 0; oy < out.H; oy++ {
			for ox := 0; ox < out.W; ox++ {
				best := float32(math.Inf(-1))
				for ky := 0; ky < p.Size; ky++ {
					for kx := 0; kx < p.Size; kx++ {
						iy, ix := oy*p.Stride+off+ky, ox*p.Stride+off+kx
						if iy >= 0 && ix >= 0 && iy < in.H && ix < in.W {
							best = max(best, x[(c*in.H+iy)*in.W+ix])
						}
					}
				}
				o[(c*out.H+oy)*out.W+ox] = best
			}
		}
	}
	return o
}

func refUpsample(l *quant.Layer, x []float32) []float32 {
	u, in, out := l.Upsample, l.In, l.Out
	o := make([]float32, out.Size())
	for c := 0; c < out.C; c++ {
		for y := 0; y < out.H; y++ {
			for xx := 0; xx < out.W; xx++ {
				o[(c*out.H+y)*out.W+xx] = u.Scale * x[(c*in.H+y/u.Stride)*in.W+xx/u.Stride]
			}
		}
	}
	return o
}

// relDiff is max|a-b| / max(1, max|a|): an absolute error for small tensors and a
// relative one for large ones.
func relDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, top float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		top = math.Max(top, math.Abs(float64(a[i])))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d / math.Max(1, top)
}
