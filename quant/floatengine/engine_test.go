package floatengine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// convSpec describes one test convolution.
type convSpec struct {
	c, h, w                            int
	filters, size, stride, pad, groups int
	act                                quant.Activation
	bn                                 bool
	binary, xnor                       bool
}

func newConv(r *rand.Rand, in int, s convSpec) *quant.Layer {
	kk := s.c / s.groups * s.size * s.size
	c := &quant.Conv{Filters: s.filters, Size: s.size, Stride: s.stride, Pad: s.pad, Groups: s.groups,
		Activation: s.act, Binary: s.binary, XNOR: s.xnor,
		Weights: randSlice(r, s.filters*kk, -1, 1), Bias: randSlice(r, s.filters, -0.5, 0.5)}
	if s.bn {
		c.BN = &quant.BatchNorm{Scale: randSlice(r, s.filters, 0.5, 1.5), Mean: randSlice(r, s.filters, -0.3, 0.3),
			Variance: randSlice(r, s.filters, 0.1, 2)}
	}
	return &quant.Layer{Kind: quant.KindConv, Inputs: []int{in}, Conv: c}
}

func buildModel(t testing.TB, input quant.Shape, layers ...*quant.Layer) *quant.Model {
	t.Helper()
	m := &quant.Model{Name: "test", Input: input, Layers: layers, Dialect: quant.DialectAlexeyAB,
		BNEpsilon: 1e-5, BNEpsInside: true}
	for i, l := range layers {
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s%d", l.Kind, i)
		}
	}
	if err := m.InferShapes(); err != nil {
		t.Fatalf("InferShapes: %v", err)
	}
	return m
}

// checkModel runs m on random input with 1 and 2 threads, with and without KeepAll, and
// compares every available output with the reference.
func checkModel(t *testing.T, r *rand.Rand, m *quant.Model, tol float64) {
	t.Helper()
	input := randSlice(r, m.Input.Size(), 0, 1)
	want := refForward(t, m, input)
	for _, threads := range []int{1, 2, 3} {
		for _, keep := range []bool{true, false} {
			e, err := New(m, Options{Threads: threads, KeepAll: keep})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for range 2 { // buffers are reused: a second run must give the same
				if err := e.Forward(input); err != nil {
					t.Fatalf("Forward: %v", err)
				}
			}
			for i := range m.Layers {
				got := e.Output(i)
				l := m.Layers[i]
				isHead := l.Kind == quant.KindRegion || l.Kind == quant.KindYolo
				if got == nil {
					if keep || isHead {
						t.Fatalf("Output(%d) is nil", i)
					}
					continue
				}
				closeEnough(t, fmt.Sprintf("threads %d keep %v layer %d %s", threads, keep, i, l.Name), got, want[i], tol)
			}
		}
	}
}

func TestConvolutions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	acts := []quant.Activation{quant.ActLinear, quant.ActLeaky, quant.ActReLU, quant.ActLogistic, quant.ActMish, quant.ActSwish, quant.ActLHTan}
	specs := []convSpec{
		{c: 3, h: 13, w: 11, filters: 16, size: 3, stride: 2, pad: 1, groups: 1, bn: true},
		{c: 3, h: 9, w: 9, filters: 5, size: 3, stride: 1, pad: 1, groups: 1},
		{c: 8, h: 7, w: 5, filters: 7, size: 1, stride: 1, pad: 0, groups: 1, bn: true},
		{c: 8, h: 7, w: 5, filters: 6, size: 1, stride: 2, pad: 0, groups: 2},
		{c: 12, h: 10, w: 9, filters: 12, size: 3, stride: 1, pad: 1, groups: 12, bn: true}, // depthwise
		{c: 12, h: 11, w: 10, filters: 12, size: 3, stride: 2, pad: 1, groups: 12},          // depthwise stride 2
		{c: 6, h: 8, w: 8, filters: 6, size: 5, stride: 1, pad: 2, groups: 6, bn: true},     // depthwise 5x5
		{c: 4, h: 3, w: 2, filters: 4, size: 5, stride: 1, pad: 2, groups: 4},               // kernel wider than the image
		{c: 8, h: 9, w: 7, filters: 12, size: 3, stride: 1, pad: 1, groups: 4, bn: true},    // grouped
		{c: 6, h: 10, w: 10, filters: 6, size: 3, stride: 1, pad: 0, groups: 1},             // no padding
		{c: 40, h: 23, w: 21, filters: 37, size: 3, stride: 1, pad: 1, groups: 1, bn: true}, // K > kcBlock, N > ncBlock
		{c: 300, h: 3, w: 3, filters: 9, size: 1, stride: 1, pad: 0, groups: 1},             // tiny N: row split
		{c: 5, h: 6, w: 6, filters: 4, size: 3, stride: 1, pad: 1, groups: 1, binary: true, bn: true},
		{c: 5, h: 6, w: 6, filters: 4, size: 3, stride: 1, pad: 1, groups: 1, xnor: true},
		{c: 3, h: 4, w: 4, filters: 3, size: 3, stride: 1, pad: 1, groups: 3, xnor: true},
		{c: 4, h: 5, w: 37, filters: 4, size: 3, stride: 1, pad: 1, groups: 4, bn: true}, // long depthwise rows (vector path)
		{c: 4, h: 5, w: 37, filters: 4, size: 3, stride: 2, pad: 1, groups: 4},           // long depthwise rows, stride 2
		// Winograd path: odd output sizes, no padding, 1x1 images, groups, many tiles.
		{c: 16, h: 7, w: 9, filters: 8, size: 3, stride: 1, pad: 0, groups: 1, bn: true},
		{c: 16, h: 1, w: 1, filters: 9, size: 3, stride: 1, pad: 1, groups: 1},
		{c: 32, h: 6, w: 5, filters: 16, size: 3, stride: 1, pad: 1, groups: 2, bn: true},
		{c: 64, h: 13, w: 13, filters: 301, size: 3, stride: 1, pad: 1, groups: 1, bn: true},
		{c: 8, h: 40, w: 37, filters: 8, size: 3, stride: 1, pad: 1, groups: 1},
	}
	for i, s := range specs {
		s.act = acts[i%len(acts)]
		for _, inside := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d_%+v_inside%v", i, s, inside), func(t *testing.T) {
				m := buildModel(t, quant.Shape{C: s.c, H: s.h, W: s.w}, newConv(r, -1, s))
				m.BNEpsInside = inside
				if !inside {
					m.BNEpsilon = 1e-6
				}
				checkModel(t, r, m, 1e-4)
			})
		}
	}
}

func TestWinogradChosen(t *testing.T) {
	if !winogradPays {
		t.Skip("this build's GEMM is faster than Winograd; TestWinogradWithAsmKernel covers it")
	}
	r := rand.New(rand.NewPCG(1, 1))
	m := buildModel(t, quant.Shape{C: 16, H: 5, W: 5}, newConv(r, -1, convSpec{c: 16, filters: 8, size: 3, stride: 1, pad: 1, groups: 1, act: quant.ActLeaky}))
	e, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.convs[0].wino == nil {
		t.Fatal("a 16->8 3x3 stride 1 convolution does not take the Winograd path; the tests above would not cover it")
	}
}

func TestRandomConvolutions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 40 {
		s := convSpec{c: 1 + r.IntN(20), h: 1 + r.IntN(17), w: 1 + r.IntN(17), filters: 1 + r.IntN(20),
			size: 1 + 2*r.IntN(3), stride: 1 + r.IntN(2), groups: 1, act: quant.ActLeaky, bn: r.IntN(2) == 0}
		s.pad = r.IntN(s.size/2 + 1)
		switch r.IntN(3) {
		case 0:
			s.groups, s.filters = s.c, s.c
		case 1:
			g := 1 + r.IntN(3)
			s.c, s.filters, s.groups = s.c*g, s.filters*g, g
		}
		if s.h+2*s.pad < s.size || s.w+2*s.pad < s.size {
			s.h, s.w = s.h+s.size, s.w+s.size
		}
		t.Run(fmt.Sprintf("%d_%+v", i, s), func(t *testing.T) {
			checkModel(t, r, buildModel(t, quant.Shape{C: s.c, H: s.h, W: s.w}, newConv(r, -1, s)), 1e-4)
		})
	}
}

func TestMaxPool(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []struct{ h, w, size, stride, pad int }{
		{8, 8, 2, 2, 1},     // darknet default padding size-1
		{13, 13, 2, 1, 1},   // tiny-yolo's size 2 stride 1: pads right and bottom
		{13, 13, 5, 1, 4},   // SPP pools
		{13, 13, 9, 1, 8},   // SPP pools
		{13, 13, 13, 1, 12}, // SPP pools
		{7, 9, 2, 2, 0},     // odd, no padding: last row and column dropped
		{7, 9, 2, 2, 1},     // odd with padding: last window half outside
		{7, 9, 3, 2, 2},
		{5, 5, 3, 3, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			m := buildModel(t, quant.Shape{C: 3, H: c.h, W: c.w},
				&quant.Layer{Kind: quant.KindMaxPool, Inputs: []int{-1}, Pool: &quant.Pool{Size: c.size, Stride: c.stride, Pad: c.pad}})
			// Negative inputs: zero padding would wrongly win at the borders.
			input := randSlice(r, m.Input.Size(), -2, -1)
			e, err := New(m, Options{Threads: 2, KeepAll: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Forward(input); err != nil {
				t.Fatal(err)
			}
			closeEnough(t, "maxpool", e.Output(0), refMaxPool(m.Layers[0], input), 0)
		})
	}
}

func TestSizeTwoStrideOnePadsRightAndBottom(t *testing.T) {
	m := buildModel(t, quant.Shape{C: 1, H: 2, W: 2},
		&quant.Layer{Kind: quant.KindMaxPool, Inputs: []int{-1}, Pool: &quant.Pool{Size: 2, Stride: 1, Pad: 1}})
	e, err := New(m, Options{Threads: 1, KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward([]float32{-1, -2, -3, -4}); err != nil {
		t.Fatal(err)
	}
	want := []float32{-1, -2, -3, -4}
	for i, v := range e.Output(0) {
		if v != want[i] {
			t.Fatalf("size 2 stride 1 pool of [-1 -2; -3 -4] = %v, want %v", e.Output(0), want)
		}
	}
}

// TestNetwork runs a small Yolo-Fastest-like graph: convolutions with groups, shortcut,
// route with groups, maxpool, upsample, dropout, two yolo heads and a region head.
func TestNetwork(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	conv := func(in, c, f, size, stride, groups int, act quant.Activation) *quant.Layer {
		return newConv(r, in, convSpec{c: c, filters: f, size: size, stride: stride, pad: size / 2, groups: groups, act: act, bn: true})
	}
	lin := func(in, c, f int) *quant.Layer {
		l := newConv(r, in, convSpec{c: c, filters: f, size: 1, stride: 1, groups: 1, act: quant.ActLinear})
		return l
	}
	anchors := []float32{10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319}
	layers := []*quant.Layer{
		conv(-1, 3, 8, 3, 2, 1, quant.ActLeaky), // 0: 8x16x16
		conv(0, 8, 8, 1, 1, 1, quant.ActLeaky),  // 1
		conv(1, 8, 8, 3, 1, 8, quant.ActLeaky),  // 2: depthwise
		conv(2, 8, 8, 1, 1, 1, quant.ActLinear), // 3
		{Kind: quant.KindShortcut, Inputs: []int{3, 0}, Shortcut: &quant.Shortcut{Activation: quant.ActLinear}},                                 // 4
		{Kind: quant.KindDropout, Inputs: []int{4}},                                                                                             // 5
		{Kind: quant.KindRoute, Inputs: []int{5}, Route: &quant.Route{Groups: 2, GroupID: 1}},                                                   // 6: 4x16x16
		{Kind: quant.KindMaxPool, Inputs: []int{6}, Pool: &quant.Pool{Size: 2, Stride: 2, Pad: 1}},                                              // 7: 4x8x8
		conv(7, 4, 16, 3, 1, 2, quant.ActMish),                                                                                                  // 8: grouped
		lin(8, 16, 3*(5+2)),                                                                                                                     // 9
		{Kind: quant.KindYolo, Inputs: []int{9}, Head: &quant.Head{Classes: 2, Num: 3, Anchors: anchors, Mask: []int{3, 4, 5}, ScaleXY: 1}},     // 10
		{Kind: quant.KindRoute, Inputs: []int{8}, Route: &quant.Route{Groups: 1}},                                                               // 11
		{Kind: quant.KindUpsample, Inputs: []int{11}, Upsample: &quant.Upsample{Stride: 2, Scale: 1}},                                           // 12: 16x16x16
		{Kind: quant.KindRoute, Inputs: []int{12, 4}, Route: &quant.Route{Groups: 1}},                                                           // 13: 24x16x16
		conv(13, 24, 8, 3, 1, 1, quant.ActSwish),                                                                                                // 14
		lin(14, 8, 3*(5+2)),                                                                                                                     // 15
		{Kind: quant.KindYolo, Inputs: []int{15}, Head: &quant.Head{Classes: 2, Num: 3, Anchors: anchors, Mask: []int{0, 1, 2}, ScaleXY: 1.05}}, // 16
		lin(14, 8, 2*(5+3)), // 17
		{Kind: quant.KindRegion, Inputs: []int{17}, Head: &quant.Head{Classes: 3, Coords: 4, Num: 2, Anchors: anchors[:4], Softmax: true}}, // 18
		lin(14, 8, 2*(5+3)), // 19
		{Kind: quant.KindRegion, Inputs: []int{19}, Head: &quant.Head{Classes: 3, Coords: 4, Num: 2, Anchors: anchors[:4]}}, // 20
		{Kind: quant.KindUpsample, Inputs: []int{20}, Upsample: &quant.Upsample{Stride: 3, Scale: 0.5}},                     // 21: dead end
	}
	m := buildModel(t, quant.Shape{C: 3, H: 32, W: 32}, layers...)
	checkModel(t, r, m, 1e-4)
}

func TestActivations(t *testing.T) {
	for _, a := range []quant.Activation{quant.ActLinear, quant.ActLeaky, quant.ActReLU, quant.ActLogistic, quant.ActMish, quant.ActSwish, quant.ActLHTan} {
		var xs []float32
		for x := -30.0; x <= 30; x += 0.37 {
			xs = append(xs, float32(x))
		}
		xs = append(xs, 0, 1, 0.5, -0.5, 1.5, float32(math.Nextafter32(1, 2)))
		got := append([]float32(nil), xs...)
		Activate(got, a)
		for i, x := range xs {
			want := refActivate(float64(x), a)
			if d := math.Abs(float64(got[i]) - want); d > 1e-6*math.Max(1, math.Abs(want)) {
				t.Errorf("%s(%g) = %g, want %g", a, x, got[i], want)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	shape := quant.Shape{C: 3, H: 4, W: 4}
	noWeights := newConv(r, -1, convSpec{c: 3, filters: 2, size: 3, stride: 1, pad: 1, groups: 1, act: quant.ActLeaky})
	noWeights.Conv.Weights = nil
	badAct := newConv(r, -1, convSpec{c: 3, filters: 2, size: 3, stride: 1, pad: 1, groups: 1, act: "gelu"})
	shortBN := newConv(r, -1, convSpec{c: 3, filters: 2, size: 3, stride: 1, pad: 1, groups: 1, act: quant.ActLeaky, bn: true})
	badGroups := newConv(r, -1, convSpec{c: 3, filters: 2, size: 3, stride: 1, pad: 1, groups: 1, act: quant.ActLeaky})
	for name, tc := range map[string]struct {
		m    *quant.Model
		want string
	}{
		"weights":    {buildModel(t, shape, noWeights), "load the .weights"},
		"activation": {buildModel(t, shape, badAct), "not supported"},
		"bn":         {breakAfter(buildModel(t, shape, shortBN), func() { shortBN.Conv.BN.Variance = shortBN.Conv.BN.Variance[:1] }), "batch norm"},
		"groups":     {breakAfter(buildModel(t, shape, badGroups), func() { badGroups.Conv.Groups = 0 }), "bad convolution"},
		"shapes":     {&quant.Model{Input: shape, Layers: []*quant.Layer{{Kind: quant.KindDropout, Inputs: []int{-1}}}}, "InferShapes"},
	} {
		if _, err := New(tc.m, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want it to mention %q", name, err, tc.want)
		}
	}
	m := buildModel(t, shape, &quant.Layer{Kind: quant.KindDropout, Inputs: []int{-1}})
	e, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(make([]float32, 5)); err == nil {
		t.Error("Forward accepted an input of the wrong size")
	}
	if e.Model() != m {
		t.Error("Model() is not the model given to New")
	}
}

func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range [][3]int{{1, 1, 1}, {4, 2, 1}, {5, 3, 7}, {17, 33, 300}, {64, 513, 600}, {3, 1000, 27}, {130, 7, 2}, {9, 9, 0}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randSlice(r, m*k, -1, 1), randSlice(r, k*n, -1, 1)
		want := make([]float32, m*n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var sum float64
				for p := 0; p < k; p++ {
					sum += float64(a[i*k+p]) * float64(b[p*n+j])
				}
				want[i*n+j] = float32(sum)
			}
		}
		for _, threads := range []int{1, 2, 3} {
			c := randSlice(r, m*n, 5, 6) // overwritten
			Sgemm(m, n, k, a, b, c, threads)
			closeEnough(t, fmt.Sprintf("sgemm %v threads %d", s, threads), c, want, 1e-5)
		}
	}
}

func TestSgemmEpilogue(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, s := range [][3]int{{7, 9, 5}, {64, 301, 300}, {9, 3, 40}, {5, 3, 0}} {
		m, n, k := s[0], s[1], s[2]
		a, b, bias := randSlice(r, m*k, -1, 1), randSlice(r, k*n, -1, 1), randSlice(r, m, -1, 1)
		for _, act := range []quant.Activation{quant.ActLeaky, quant.ActReLU, quant.ActLinear, quant.ActLogistic} {
			want := make([]float32, m*n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var sum float64
					for p := 0; p < k; p++ {
						sum += float64(a[i*k+p]) * float64(b[p*n+j])
					}
					want[i*n+j] = float32(refActivate(sum+float64(bias[i]), act))
				}
			}
			for _, threads := range []int{1, 2} {
				c := make([]float32, m*n)
				SgemmEpilogue(PackA(m, k, a, k), n, b, c, &Epilogue{Bias: bias, Activation: act}, NewWorkers(threads))
				closeEnough(t, fmt.Sprintf("%v %s threads %d", s, act, threads), c, want, 1e-5)
			}
		}
	}
}

// TestForwardAllocations checks that Forward reuses its buffers: what remains is a few
// small closures and goroutines per layer, never a tensor.
func TestForwardAllocations(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	var layers []*quant.Layer
	c := 3
	for i, f := range []int{16, 16, 32} {
		layers = append(layers, newConv(r, i-1, convSpec{c: c, filters: f, size: 3, stride: 1, pad: 1, groups: 1, act: quant.ActLeaky, bn: true}))
		c = f
	}
	m := buildModel(t, quant.Shape{C: 3, H: 40, W: 40}, layers...)
	e, err := New(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	in := randSlice(r, m.Input.Size(), 0, 1)
	allocs := testing.AllocsPerRun(5, func() {
		if err := e.Forward(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > float64(4*len(layers)) {
		t.Errorf("Forward allocates %.0f times for %d layers; buffers should be reused", allocs, len(layers))
	}
}

// breakAfter applies a change to an already shape-checked model.
func breakAfter(m *quant.Model, change func()) *quant.Model {
	change()
	return m
}

// TestYoloFastestMatchesReference runs the real Yolo-Fastest-1.1 weights (AlexeyAB
// batch norm, depthwise and grouped convolutions, shortcut, route groups, upsample, two
// yolo heads) through the engine and through the naive reference, on 1 and 2 threads.
func TestYoloFastestMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("whole model against the naive reference; skipped in -short (qemu)")
	}
	m := loadYoloFastest(t)
	r := rand.New(rand.NewPCG(17, 18))
	input := randSlice(r, m.Input.Size(), 0, 1)
	want := refForward(t, m, input)
	for _, threads := range []int{1, 2} {
		e, err := New(m, Options{Threads: threads, KeepAll: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Forward(input); err != nil {
			t.Fatal(err)
		}
		for i, l := range m.Layers {
			closeEnough(t, fmt.Sprintf("threads %d layer %d %s", threads, i, l.Name), e.Output(i), want[i], 1e-4)
		}
	}
}
