package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// testNet is a Net shell for driving single layers.
func testNet(tb testing.TB, batch, threads int) *Net {
	tb.Helper()
	n := &Net{Batch: batch, Threads: threads, Region: DefaultConfig().Region}
	for range min(threads, batch) {
		n.workers = append(n.workers, floatengine.NewWorkers(1))
	}
	return n
}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(scale * rng.NormFloat64())
	}
	return s
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkGrad compares analytic (the delta convention: +d(objective)/dx) with central
// differences of objective over the parameter slice p at a few random positions.
func checkGrad(t *testing.T, what string, p, analytic []float32, objective func() float64, rng *rand.Rand) {
	t.Helper()
	const h = 3e-3
	var worst float64
	for k := 0; k < min(len(p), 40); k++ {
		i := rng.IntN(len(p))
		old := p[i]
		diff := func(h float32) float64 {
			p[i] = old + h
			up := objective()
			p[i] = old - h
			down := objective()
			p[i] = old
			return (up - down) / float64(2*h)
		}
		num, half := diff(h), diff(h/4)
		if math.Abs(num-half) > 1e-2*math.Max(1, math.Abs(num)) {
			continue // a kink (leaky, relu, max) lies within h: not differentiable here
		}
		err := math.Abs(num-float64(analytic[i])) / math.Max(1, math.Abs(num))
		worst = max(worst, err)
		if err > 2e-2 {
			t.Errorf("%s[%d]: analytic %g, numeric %g", what, i, analytic[i], num)
			return
		}
	}
	t.Logf("%s: worst relative error %.2g", what, worst)
}

func convModel(inC, h, w, filters, size, stride, pad int, act quant.Activation, bn bool) (*quant.Model, *quant.Layer) {
	c := &quant.Conv{Filters: filters, Size: size, Stride: stride, Pad: pad, Groups: 1, Activation: act,
		Bias: make([]float32, filters)}
	if bn {
		c.BN = &quant.BatchNorm{Scale: fill(filters, 1), Mean: make([]float32, filters), Variance: fill(filters, 1)}
	}
	l := &quant.Layer{Kind: quant.KindConv, Name: "conv0", Inputs: []int{-1}, Conv: c}
	m := &quant.Model{Input: quant.Shape{C: inC, H: h, W: w}, Layers: []*quant.Layer{l}, BNEpsilon: 1e-6}
	return m, l
}

func TestConvGradient(t *testing.T) {
	cases := []struct {
		name                      string
		inC, h, w, f, size, s, pd int
		act                       quant.Activation
		bn                        bool
		batch, threads            int
	}{
		{"3x3s1p1 leaky", 3, 7, 6, 4, 3, 1, 1, quant.ActLeaky, false, 2, 2},
		{"3x3s1p1 linear", 3, 7, 6, 4, 3, 1, 1, quant.ActLinear, false, 2, 2},
		{"3x3s2p1 linear", 2, 9, 8, 3, 3, 2, 1, quant.ActLinear, false, 1, 1},
		{"1x1 relu", 5, 4, 4, 3, 1, 1, 0, quant.ActReLU, false, 2, 1},
		{"3x3 bn linear", 3, 6, 6, 4, 3, 1, 1, quant.ActLinear, true, 3, 2},
		{"3x3s2 bn leaky", 2, 7, 7, 3, 3, 2, 1, quant.ActLeaky, true, 2, 2},
		{"2x2s2p0 bn logistic", 2, 6, 6, 2, 2, 2, 0, quant.ActLogistic, true, 2, 1},
		{"3x3 bn lhtan", 3, 6, 6, 4, 3, 1, 1, quant.ActLHTan, true, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m, l := convModel(tc.inC, tc.h, tc.w, tc.f, tc.size, tc.s, tc.pd, tc.act, tc.bn)
			l.Conv.Weights = randSlice(rng, tc.f*tc.inC*tc.size*tc.size, .5)
			l.Conv.Bias = randSlice(rng, tc.f, .3)
			if tc.bn {
				l.Conv.BN.Scale = randSlice(rng, tc.f, 1)
			}
			if err := m.InferShapes(); err != nil {
				t.Fatal(err)
			}
			n := testNet(t, tc.batch, tc.threads)
			cl, err := newConvLayer(m, l)
			if err != nil {
				t.Fatal(err)
			}
			in := randSlice(rng, tc.batch*l.In.Size(), 1)
			out := make([]float32, tc.batch*l.Out.Size())
			r := randSlice(rng, len(out), 1)
			objective := func() float64 {
				cl.forward(n, in, out, true)
				return dot64(r, out)
			}
			objective()
			delta := append([]float32(nil), r...)
			inDelta := make([]float32, len(in))
			cl.backward(n, in, out, delta, inDelta)
			checkGrad(t, "input", in, inDelta, objective, rng)
			checkGrad(t, "weights", l.Conv.Weights, cl.wUpd, objective, rng)
			checkGrad(t, "bias", l.Conv.Bias, cl.bUpd, objective, rng)
			if tc.bn {
				checkGrad(t, "scale", l.Conv.BN.Scale, cl.sUpd, objective, rng)
			}
		})
	}
}

func TestMaxPoolGradient(t *testing.T) {
	for _, tc := range []struct{ size, stride, pad, h, w int }{
		{2, 2, 1, 6, 6}, {2, 2, 1, 7, 5}, {2, 1, 1, 5, 5}, {3, 2, 2, 7, 7},
	} {
		rng := rand.New(rand.NewPCG(3, 4))
		l := &quant.Layer{Kind: quant.KindMaxPool, Inputs: []int{-1}, Pool: &quant.Pool{Size: tc.size, Stride: tc.stride, Pad: tc.pad}}
		m := &quant.Model{Input: quant.Shape{C: 2, H: tc.h, W: tc.w}, Layers: []*quant.Layer{l}}
		if err := m.InferShapes(); err != nil {
			t.Fatal(err)
		}
		n := testNet(t, 2, 2)
		p := &poolLayer{l: l}
		in := randSlice(rng, 2*l.In.Size(), 1)
		out := make([]float32, 2*l.Out.Size())
		// Compare with the engine's inference max pool.
		p.forward(n, in, out, true)
		want := make([]float32, l.Out.Size())
		floatengine.MaxPool(in[:l.In.Size()], 2, tc.h, tc.w, tc.size, tc.stride, tc.pad, want, l.Out.H, l.Out.W)
		for i := range want {
			if want[i] != out[i] {
				t.Fatalf("pool %+v: out[%d] = %g, engine %g", tc, i, out[i], want[i])
			}
		}
		r := randSlice(rng, len(out), 1)
		inDelta := make([]float32, len(in))
		p.backward(n, in, out, append([]float32(nil), r...), inDelta)
		checkGrad(t, "pool input", in, inDelta, func() float64 { p.forward(n, in, out, true); return dot64(r, out) }, rng)
	}
}

// regionObjective is the loss whose negative gradient the region deltas are, written
// independently: logistic cross-entropy on x, y, objectness, half squared error on
// w, h, softmax cross-entropy on classes, with the targets of the base point.
func TestRegionGradient(t *testing.T) {
	for _, seen := range []uint64{0, 20000} {
		rng := rand.New(rand.NewPCG(5, 6))
		const W, H, num, classes = 3, 3, 2, 3
		hd := &quant.Head{Classes: classes, Coords: 4, Num: num, Anchors: []float32{1, 1.5, 2.5, 2}, Softmax: true}
		l := &quant.Layer{Kind: quant.KindRegion, Inputs: []int{-1}, Head: hd}
		m := &quant.Model{Input: quant.Shape{C: num * (5 + classes), H: H, W: W}, Layers: []*quant.Layer{l}}
		if err := m.InferShapes(); err != nil {
			t.Fatal(err)
		}
		rp := RegionParams{CoordScale: 1, ObjectScale: 5, NoObjectScale: 1, ClassScale: 1, Thresh: 2, MaxBoxes: 30, BiasMatch: true}
		truths := [][]Box{{{X: .4, Y: .55, W: .3, H: .5, Class: 2}}, {{X: .8, Y: .2, W: .6, H: .3, Class: 0}, {X: .1, Y: .9, W: .1, H: .1, Class: 1}}}
		z := randSlice(rng, 2*l.Out.Size(), .5)
		out := make([]float32, len(z))
		delta := make([]float32, len(z))
		activate := func() {
			copy(out, z)
			for b := 0; b < 2; b++ {
				floatengine.RegionActivate(out[b*l.Out.Size():(b+1)*l.Out.Size()], hd, W*H)
			}
		}
		activate()
		regionDeltas(l, rp, out, delta, truths, 2, seen)
		// Recover each entry's target from the delta at the base point: for logistic and
		// softmax entries delta = s*(t - out), for w/h delta = s*(t - z). The scale of
		// each entry is known from the assignment rules, tested here through the loss.
		hw := W * H
		per := 5 + classes
		target := make([]float64, len(z))
		scale := make([]float64, len(z))
		for i := range z {
			e := (i % l.Out.Size()) / hw % per
			b, loc, n := i/l.Out.Size(), i%hw, (i%l.Out.Size())/hw/per
			s := entryScale(rp, truths[b], hd, W, H, n, loc, e, seen)
			scale[i] = s
			if s == 0 {
				continue
			}
			base := float64(out[i])
			if e == 2 || e == 3 {
				base = float64(z[i])
			}
			target[i] = base + float64(delta[i])/s
		}
		loss := func() float64 {
			activate()
			var L float64
			for i := range z {
				if scale[i] == 0 {
					continue
				}
				e := (i % l.Out.Size()) / hw % per
				switch {
				case e == 2 || e == 3:
					d := target[i] - float64(z[i])
					L += scale[i] * .5 * d * d
				case e >= 5:
					L += -scale[i] * target[i] * math.Log(float64(out[i]))
				default:
					p := float64(out[i])
					L += -scale[i] * (target[i]*math.Log(p) + (1-target[i])*math.Log(1-p))
				}
			}
			return -L
		}
		checkGrad(t, "region", z, delta, loss, rng)
	}
}

// entryScale says which scale the rules give output entry e of anchor n at loc.
func entryScale(rp RegionParams, ts []Box, hd *quant.Head, W, H, n, loc, e int, seen uint64) float64 {
	for _, tb := range ts {
		i, j := int(tb.X*float32(W)), int(tb.Y*float32(H))
		if j*W+i != loc {
			continue
		}
		best, bestN := float32(0), 0
		for k := 0; k < hd.Num; k++ {
			iou := boxIoU(rbox{0, 0, hd.Anchors[2*k] / float32(W), hd.Anchors[2*k+1] / float32(H)}, rbox{0, 0, tb.W, tb.H})
			if iou > best {
				best, bestN = iou, k
			}
		}
		if bestN == n {
			switch {
			case e < 4:
				return rp.CoordScale * float64(2-tb.W*tb.H)
			case e == 4:
				return rp.ObjectScale
			default:
				return rp.ClassScale
			}
		}
	}
	switch {
	case e < 4 && seen < 12800:
		return .01
	case e == 4:
		return rp.NoObjectScale
	}
	return 0
}

// TestFixedBNGradient: with fixed batch-norm statistics the layer is a convolution
// followed by constants; its gradients by input, weights, bias and scale match
// central differences, and the rolling statistics do not move.
func TestFixedBNGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, l := convModel(3, 6, 6, 4, 3, 1, 1, quant.ActLHTan, true)
	l.Conv.Weights = randSlice(rng, 4*3*9, .5)
	l.Conv.Bias = randSlice(rng, 4, .3)
	l.Conv.BN.Scale = randSlice(rng, 4, 1)
	for c := range 4 {
		l.Conv.BN.Mean[c], l.Conv.BN.Variance[c] = float32(rng.NormFloat64()), float32(.5+rng.Float64())
	}
	mean, vr := slices.Clone(l.Conv.BN.Mean), slices.Clone(l.Conv.BN.Variance)
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	n := testNet(t, 2, 2)
	cl, err := newConvLayer(m, l)
	if err != nil {
		t.Fatal(err)
	}
	cl.fixedBN = true
	in := randSlice(rng, 2*l.In.Size(), 1)
	out := make([]float32, 2*l.Out.Size())
	r := randSlice(rng, len(out), 1)
	objective := func() float64 {
		cl.forward(n, in, out, true)
		return dot64(r, out)
	}
	objective()
	inference := make([]float32, len(out))
	cl.forward(n, in, inference, false)
	cl.forward(n, in, out, true)
	if !slices.Equal(out, inference) {
		t.Error("training with fixed statistics computes something else than inference")
	}
	delta := append([]float32(nil), r...)
	inDelta := make([]float32, len(in))
	cl.backward(n, in, out, delta, inDelta)
	checkGrad(t, "input", in, inDelta, objective, rng)
	checkGrad(t, "weights", l.Conv.Weights, cl.wUpd, objective, rng)
	checkGrad(t, "bias", l.Conv.Bias, cl.bUpd, objective, rng)
	checkGrad(t, "scale", l.Conv.BN.Scale, cl.sUpd, objective, rng)
	if !slices.Equal(mean, l.Conv.BN.Mean) || !slices.Equal(vr, l.Conv.BN.Variance) {
		t.Error("fixed statistics moved")
	}
}

// TestPriorImages: the prior-matching term moves the coordinates of anchors without an
// object while seen is below the period (darknet's 12800 by default), and never with
// a negative period.
func TestPriorImages(t *testing.T) {
	hd := &quant.Head{Classes: 1, Coords: 4, Num: 1, Anchors: []float32{1, 1}, Softmax: true}
	l := &quant.Layer{Kind: quant.KindRegion, Inputs: []int{-1}, Head: hd}
	m := &quant.Model{Input: quant.Shape{C: 6, H: 2, W: 2}, Layers: []*quant.Layer{l}}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	coordDeltas := func(prior int, seen uint64) bool {
		out := make([]float32, l.Out.Size())
		for i := range out {
			out[i] = .3
		}
		delta := make([]float32, len(out))
		rp := RegionParams{CoordScale: 1, ObjectScale: 5, NoObjectScale: 1, ClassScale: 1, Thresh: .6, MaxBoxes: 30, PriorImages: prior}
		regionDeltas(l, rp, out, delta, [][]Box{nil}, 1, seen)
		for _, d := range delta[:4*4] { // x, y, w, h planes of the 2x2 grid
			if d != 0 {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		prior int
		seen  uint64
		want  bool
	}{{0, 0, true}, {0, 12800, false}, {-1, 0, false}, {100, 50, true}, {100, 100, false}} {
		if got := coordDeltas(c.prior, c.seen); got != c.want {
			t.Errorf("prior images %d, seen %d: coordinate deltas %v, want %v", c.prior, c.seen, got, c.want)
		}
	}
}
