// Package quantengine owns the quantized inference engine: it runs a [quant.Model] whose
// layers carry quantization facts ([quant.LayerQuant]) as the QONNX files of
// quant/qonnx define them: float layers in float, quantized weights (bipolar times a
// per-channel scale, or multi-bit) fake-quantized, activations quantized to ActBits
// levels, and convolutions with integer thresholds computed in integers
// (acc = sum(sign(W) * input level), level = count(acc >= T_k), inverted channels
// count(acc < T_k)), bit-exactly as quant/qnnmo's engine computes QNN-MO's hidden layers.
//
// Float arithmetic follows quant/qonnx's executor exactly so that both give the same
// levels: a convolution sums w*x in float64 in input order (channel, kernel row, kernel
// column), adds the bias, rounds to float32; batch norm, activations and quantizers are
// the float32 operations of quant/qonnx's scalar semantics.
package quantengine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// Options tune an [Engine].
type Options struct {
	Threads int // goroutines; 0 = GOMAXPROCS
	// FloatInput feeds the [0,1] input as it is; by default it is quantized to UINT8
	// levels (round(x*255)/255) as the QONNX files' UINT8 input annotation says.
	FloatInput bool
}

// Engine runs a quantized model. Not safe for concurrent Forward calls.
type Engine struct {
	m       *quant.Model
	opt     Options
	threads int
	workers *floatengine.Workers
	layers  []*layer
	input   []float32
	vals    [][]float32 // every layer's output values (kept: models here are small)
	lvs     [][]float32 // levels of quantized layers (and pools of them), else nil
}

// layer is a prepared layer.
type layer struct {
	l *quant.Layer
	// convolution
	w       []float32 // effective float weights (float path) or ±1 signs (threshold path)
	bias    []float32 // nil or Filters
	bn      bool
	bnScale []float32
	bnBeta  []float32
	bnMean  []float32
	bnSD    []float32
	thr     bool
	packed  *floatengine.PackedA
	col     []float32 // im2col buffer (threshold path)
	acc     []float32
	// quantizer
	bits   int
	signed bool
	scale  float32
}

// New prepares an engine for m (shapes inferred, weights loaded).
func New(m *quant.Model, opt Options) (*Engine, error) {
	if m == nil || len(m.Layers) == 0 {
		return nil, errors.New("qengine: empty model")
	}
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("qengine: %w", err)
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	e := &Engine{m: m, opt: opt, threads: threads, workers: floatengine.NewWorkers(threads), input: make([]float32, m.Input.Size()),
		vals: make([][]float32, len(m.Layers)), lvs: make([][]float32, len(m.Layers))}
	for i, l := range m.Layers {
		pl, err := e.prepare(i, l)
		if err != nil {
			return nil, fmt.Errorf("qengine: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		e.layers = append(e.layers, pl)
		e.vals[i] = make([]float32, l.Out.Size())
		if e.producesLevels(i) {
			e.lvs[i] = make([]float32, l.Out.Size())
		}
	}
	return e, nil
}

// producesLevels: quantized convolutions and max pools / dropouts of them.
func (e *Engine) producesLevels(i int) bool {
	l := e.m.Layers[i]
	switch {
	case l.Quant != nil && l.Quant.ActBits > 0:
		return true
	case l.Kind == quant.KindMaxPool || l.Kind == quant.KindDropout:
		return l.Inputs[0] >= 0 && e.lvs[l.Inputs[0]] != nil
	}
	return false
}

func (e *Engine) prepare(i int, l *quant.Layer) (*layer, error) {
	pl := &layer{l: l}
	if q := l.Quant; q != nil && q.ActBits > 0 {
		if q.ActBits > 16 || !(q.ActScale > 0) {
			return nil, fmt.Errorf("activation quantizer %d bits, scale %g", q.ActBits, q.ActScale)
		}
		pl.bits, pl.signed, pl.scale = q.ActBits, q.ActSigned, q.ActScale
	}
	switch l.Kind {
	case quant.KindConv:
		return pl, e.prepareConv(pl)
	case quant.KindShortcut:
		if !qonnx.ActivationSupported(l.Shortcut.Activation) {
			return nil, fmt.Errorf("activation %q is not supported", l.Shortcut.Activation)
		}
	case quant.KindMaxPool, quant.KindRoute, quant.KindUpsample, quant.KindDropout, quant.KindRegion, quant.KindYolo:
	default:
		return nil, fmt.Errorf("layer kind %q is not supported", l.Kind)
	}
	return pl, nil
}

func (e *Engine) prepareConv(pl *layer) error {
	l := pl.l
	c, q := l.Conv, l.Quant
	per := l.In.C / c.Groups * c.Size * c.Size
	if len(c.Weights) != c.Filters*per {
		return fmt.Errorf("%d weights, want %d", len(c.Weights), c.Filters*per)
	}
	if c.XNOR {
		return errors.New("xnor (binarized input) convolutions are not supported")
	}
	if !qonnx.ActivationSupported(c.Activation) {
		return fmt.Errorf("activation %q is not supported (linear, relu, leaky, logistic, lhtan)", c.Activation)
	}
	if q != nil && len(q.Thresholds) > 0 {
		return e.prepareThresholds(pl, per)
	}
	pl.w = effectiveWeights(l, per)
	pl.bias = c.Bias
	if bn := c.BN; bn != nil {
		pl.bn = true
		pl.bnScale, pl.bnMean = bn.Scale, bn.Mean
		pl.bnBeta = c.Bias
		if pl.bnBeta == nil {
			pl.bnBeta = make([]float32, c.Filters)
		}
		pl.bias = nil
		pl.bnSD = make([]float32, c.Filters)
		for o := range pl.bnSD {
			pl.bnSD[o] = qonnx.BNStd(e.m, bn.Variance[o])
		}
	}
	return nil
}

// effectiveWeights are the fake-quantized weights: float, bipolar sign * alpha, or
// multi-bit level * scale (darknet binary=1 layers without quantization binarize as
// darknet does: sign * mean |w|).
func effectiveWeights(l *quant.Layer, per int) []float32 {
	c, q := l.Conv, l.Quant
	w := make([]float32, len(c.Weights))
	copy(w, c.Weights)
	switch {
	case q != nil && q.WeightBits == 1:
		for o := range c.Filters {
			a := float32(1)
			if q.WeightScale != nil {
				a = q.WeightScale[o]
			}
			for k := o * per; k < (o+1)*per; k++ {
				w[k] = float32(qonnx.BipolarSign(w[k]) * a)
			}
		}
	case q != nil && q.WeightBits > 1:
		for o := range c.Filters {
			s := q.WeightScale[o]
			for k := o * per; k < (o+1)*per; k++ {
				w[k] = float32(qonnx.QuantLevel(w[k], s, q.WeightBits, true, true) * s)
			}
		}
	case c.Binary:
		for o := range c.Filters {
			var sum float32
			for _, v := range w[o*per : (o+1)*per] {
				sum += float32(math.Abs(float64(v)))
			}
			mean := sum / float32(per)
			for k := o * per; k < (o+1)*per; k++ {
				if w[k] > 0 {
					w[k] = mean
				} else {
					w[k] = -mean
				}
			}
		}
	}
	return w
}

func (e *Engine) prepareThresholds(pl *layer, per int) error {
	l := pl.l
	c, q := l.Conv, l.Quant
	if c.Groups != 1 || q.WeightBits != 1 || q.ActSigned {
		return errors.New("integer thresholds need an ungrouped bipolar convolution with an unsigned quantizer")
	}
	if l.Inputs[0] < 0 || e.lvs[l.Inputs[0]] == nil {
		return errors.New("integer thresholds need a quantized input (a quantized layer or a pool of one)")
	}
	n := 1<<q.ActBits - 1
	if len(q.Thresholds) != c.Filters || len(q.Invert) != c.Filters {
		return fmt.Errorf("%d threshold rows / %d invert flags for %d filters", len(q.Thresholds), len(q.Invert), c.Filters)
	}
	for o, t := range q.Thresholds {
		if len(t) != n {
			return fmt.Errorf("channel %d has %d thresholds, want %d", o, len(t), n)
		}
	}
	// Levels and ±1 weights are small integers: the float32 GEMM sums them exactly
	// (|acc| <= 2^ActBits * fan-in < 2^24).
	if float64(int(1)<<q.ActBits)*float64(per) >= 1<<24 {
		return fmt.Errorf("fan-in %d too large for exact float32 accumulation", per)
	}
	pl.thr = true
	signs := make([]float32, len(c.Weights))
	for k, v := range c.Weights {
		signs[k] = qonnx.BipolarSign(v)
	}
	pl.packed = floatengine.PackA(c.Filters, per, signs, per)
	hw := l.Out.H * l.Out.W
	if !(c.Size == 1 && c.Stride == 1 && c.Pad == 0) {
		pl.col = make([]float32, per*hw)
	}
	pl.acc = make([]float32, c.Filters*hw)
	return nil
}

// Model returns the model the engine runs.
func (e *Engine) Model() *quant.Model { return e.m }

// Output returns layer i's output values after Forward (heads after darknet's head
// activation, as the float engine's), or nil for a bad index. Overwritten by the next
// Forward.
func (e *Engine) Output(i int) []float32 {
	if i < 0 || i >= len(e.vals) {
		return nil
	}
	return e.vals[i]
}

// Levels returns the integer levels of a quantized layer's output (or of a max pool of
// one) after Forward, else nil.
func (e *Engine) Levels(i int) []float32 {
	if i < 0 || i >= len(e.lvs) {
		return nil
	}
	return e.lvs[i]
}

// Forward runs the model on one input: m.Input.Size() values, CHW, in [0,1].
func (e *Engine) Forward(input []float32) error {
	if len(input) != e.m.Input.Size() {
		return fmt.Errorf("qengine: input has %d values, model %s needs %d (%v)", len(input), e.m.Name, e.m.Input.Size(), e.m.Input)
	}
	if e.opt.FloatInput {
		copy(e.input, input)
	} else {
		qonnx.PixelLevels(e.input, input)
		for k, v := range e.input {
			e.input[k] = float32(v * qonnx.InvPixel)
		}
	}
	for i, pl := range e.layers {
		e.forward(i, pl)
	}
	return nil
}

func (e *Engine) get(k int) []float32 {
	if k < 0 {
		return e.input
	}
	return e.vals[k]
}

func (e *Engine) forward(i int, pl *layer) {
	l := pl.l
	out := e.vals[i]
	switch l.Kind {
	case quant.KindConv:
		if pl.thr {
			e.thresholdConv(i, pl)
			return
		}
		e.floatConv(pl, e.get(l.Inputs[0]), out)
		if pl.bits > 0 {
			lv := e.lvs[i]
			for k, v := range out {
				q := qonnx.QuantLevel(v, pl.scale, pl.bits, pl.signed, false)
				lv[k] = q
				out[k] = float32(q * pl.scale)
			}
		}
	case quant.KindMaxPool:
		p, s, o := l.Pool, l.In, l.Out
		floatengine.MaxPool(e.get(l.Inputs[0]), s.C, s.H, s.W, p.Size, p.Stride, p.Pad, out, o.H, o.W)
		if lv := e.lvs[i]; lv != nil {
			floatengine.MaxPool(e.lvs[l.Inputs[0]], s.C, s.H, s.W, p.Size, p.Stride, p.Pad, lv, o.H, o.W)
		}
	case quant.KindRoute:
		o := 0
		for _, k := range l.Inputs {
			src := e.get(k)
			part := len(src) / l.Route.Groups
			o += copy(out[o:], src[l.Route.GroupID*part:(l.Route.GroupID+1)*part])
		}
	case quant.KindShortcut:
		a, b := e.get(l.Inputs[0]), e.get(l.Inputs[1])
		for k := range out {
			out[k] = qonnx.Activate(float32(a[k]+b[k]), l.Shortcut.Activation)
		}
	case quant.KindUpsample:
		scale := l.Upsample.Scale
		if scale == 0 {
			scale = 1
		}
		floatengine.Upsample(e.get(l.Inputs[0]), l.In.C, l.In.H, l.In.W, l.Upsample.Stride, scale, out)
	case quant.KindDropout:
		copy(out, e.get(l.Inputs[0]))
		if lv := e.lvs[i]; lv != nil {
			copy(lv, e.lvs[l.Inputs[0]])
		}
	case quant.KindRegion:
		copy(out, e.get(l.Inputs[0]))
		floatengine.RegionActivate(out, l.Head, l.In.H*l.In.W)
	case quant.KindYolo:
		copy(out, e.get(l.Inputs[0]))
		floatengine.YoloActivate(out, l.Head, l.In.H*l.In.W)
	}
}

// parallel splits [0, n) over the engine's goroutines.
func (e *Engine) parallel(n int, f func(lo, hi int)) {
	t := min(e.threads, n)
	if t <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range t {
		lo, hi := n*k/t, n*(k+1)/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// floatConv is the canonical direct convolution (see the package doc), then bias or
// batch norm and the activation. Each output value sums its terms in the order channel,
// kernel row, kernel column (padding terms skipped); the loops run that order over whole
// rows of outputs at once, which keeps every value's order and reads memory in sequence.
func (e *Engine) floatConv(pl *layer, in, out []float32) {
	l := pl.l
	c := l.Conv
	ih, iw, oh, ow := l.In.H, l.In.W, l.Out.H, l.Out.W
	cg := l.In.C / c.Groups
	fg := c.Filters / c.Groups
	k, st, pad := c.Size, c.Stride, c.Pad
	per := cg * k * k
	// Output columns whose tap kx lands inside the input: ox in [lo[kx], hi[kx]).
	lo, hi := make([]int, k), make([]int, k)
	for kx := range k {
		for lo[kx] = 0; lo[kx] < ow && lo[kx]*st+kx-pad < 0; lo[kx]++ {
		}
		for hi[kx] = ow; hi[kx] > lo[kx] && (hi[kx]-1)*st+kx-pad >= iw; hi[kx]-- {
		}
	}
	act := qonnx.WrittenActivation(l) // what the QONNX graph applies (lhtan may be Relu)
	e.parallel(c.Filters, func(o0, o1 int) {
		acc := make([]float64, oh*ow)
		for o := o0; o < o1; o++ {
			g := o / fg
			w := pl.w[o*per : (o+1)*per]
			clear(acc)
			for ch := 0; ch < cg; ch++ {
				plane := in[(g*cg+ch)*ih*iw : (g*cg+ch+1)*ih*iw]
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						wv := float64(w[(ch*k+ky)*k+kx])
						for oy := 0; oy < oh; oy++ {
							y := oy*st + ky - pad
							if y < 0 || y >= ih {
								continue
							}
							row := plane[y*iw : (y+1)*iw]
							a := acc[oy*ow : (oy+1)*ow]
							if st == 1 {
								off := kx - pad
								src := row[lo[kx]+off : hi[kx]+off]
								dst := a[lo[kx]:hi[kx]]
								for j, v := range src {
									dst[j] += wv * float64(v)
								}
								continue
							}
							for ox := lo[kx]; ox < hi[kx]; ox++ {
								a[ox] += wv * float64(row[ox*st+kx-pad])
							}
						}
					}
				}
			}
			dst := out[o*oh*ow : (o+1)*oh*ow]
			for p, s := range acc {
				if pl.bias != nil {
					s += float64(pl.bias[o])
				}
				v := float32(s)
				if pl.bn {
					v = qonnx.BNApply(v, pl.bnScale[o], pl.bnBeta[o], pl.bnMean[o], pl.bnSD[o])
				}
				dst[p] = qonnx.Activate(v, act)
			}
		}
	})
}

// thresholdConv computes acc = sum(sign * level) with the GEMM (exact on small
// integers), then the levels by counting thresholds.
func (e *Engine) thresholdConv(i int, pl *layer) {
	l := pl.l
	c, q := l.Conv, l.Quant
	in := e.lvs[l.Inputs[0]]
	hw := l.Out.H * l.Out.W
	b := in
	if pl.col != nil {
		e.im2col(l, in, pl.col)
		b = pl.col
	}
	floatengine.SgemmPacked(pl.packed, hw, b, pl.acc, e.workers)
	lv, out := e.lvs[i], e.vals[i]
	e.parallel(c.Filters, func(o0, o1 int) {
		for o := o0; o < o1; o++ {
			t := q.Thresholds[o]
			inv := q.Invert[o]
			for p := o * hw; p < (o+1)*hw; p++ {
				a := int32(pl.acc[p])
				n := 0
				for _, v := range t {
					if a >= v {
						n++
					}
				}
				if inv {
					n = len(t) - n
				}
				lv[p] = float32(n)
				out[p] = float32(float32(n) * pl.scale)
			}
		}
	})
}

// im2col writes the column matrix: row (ch, ky, kx), column (oy, ox); 0 outside.
func (e *Engine) im2col(l *quant.Layer, in, col []float32) {
	c := l.Conv
	ih, iw, oh, ow := l.In.H, l.In.W, l.Out.H, l.Out.W
	k := c.Size
	hw := oh * ow
	e.parallel(l.In.C, func(c0, c1 int) {
		for ch := c0; ch < c1; ch++ {
			plane := in[ch*ih*iw : (ch+1)*ih*iw]
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					dst := col[((ch*k+ky)*k+kx)*hw : ((ch*k+ky)*k+kx+1)*hw]
					for oy := 0; oy < oh; oy++ {
						y := oy*c.Stride + ky - c.Pad
						d := dst[oy*ow : (oy+1)*ow]
						if y < 0 || y >= ih {
							clear(d)
							continue
						}
						row := plane[y*iw : (y+1)*iw]
						for ox := range d {
							x := ox*c.Stride + kx - c.Pad
							if x < 0 || x >= iw {
								d[ox] = 0
							} else {
								d[ox] = row[x]
							}
						}
					}
				}
			}
		}
	})
}
