package qonnx

import (
	"fmt"
	"slices"

	"github.com/fpgadetector/pynq-agent/quant"
)

// ThresholdReport says what [SetThresholds] did.
type ThresholdReport struct {
	Layers   []string // layers that got integer thresholds
	Inverted int      // channels with a negative combined scale (Invert set)
	Constant int      // channels whose output does not depend on the input
	Skipped  []Note   // quantized layers without thresholds, and why
}

// levelSource follows layer i's input through max pools and dropouts to the quantized
// layer whose levels it reads; -1 when the input is not a level tensor.
func levelSource(m *quant.Model, in int) int {
	for in >= 0 {
		l := m.Layers[in]
		switch {
		case l.Kind == quant.KindMaxPool || l.Kind == quant.KindDropout:
			in = l.Inputs[0]
		case l.Quant != nil && l.Quant.ActBits > 0:
			return in
		default:
			return -1
		}
	}
	return -1
}

// thresholdable says whether layer i can run as integer convolution + thresholds, and
// if so returns the layer whose levels it reads.
func thresholdable(m *quant.Model, i int) (src int, why string) {
	l := m.Layers[i]
	q := l.Quant
	switch {
	case l.Kind != quant.KindConv || q == nil || q.ActBits == 0:
		return -1, "no activation quantizer"
	case q.WeightBits != 1:
		return -1, fmt.Sprintf("weights are %s, not bipolar", bitsName(q.WeightBits))
	case q.ActSigned:
		return -1, "signed (leaky) quantizer"
	case l.Conv.Groups != 1:
		return -1, "grouped convolution"
	case !ActivationSupported(l.Conv.Activation):
		return -1, "activation " + string(l.Conv.Activation)
	}
	src = levelSource(m, l.Inputs[0])
	if src < 0 {
		return -1, "input is not a quantized layer's output"
	}
	return src, ""
}

func bitsName(b int) string {
	if b == 0 {
		return "float"
	}
	return fmt.Sprintf("%d-bit", b)
}

// LevelFunc is F(acc) of one output channel of a binary convolution that reads
// quantized levels: the level the float QONNX graph computes when the integer
// accumulator (sum of weight sign times input level) is acc. See [ChannelLevel].
type LevelFunc struct {
	alpha, sIn float64
	bias       float64 // conv bias (no batch norm)
	bn         bool
	scale      float32
	beta       float32
	mean, sd   float32
	act        quant.Activation
	sOut       float32
	bits       int
}

// ChannelLevel returns F for output channel o of convolution c in model m (whose
// epsilon rule gives the batch norm's divisor, [BNStd]). The float weights are
// sign*alpha and the input levels have scale sIn, so the convolution's output is
// acc*alpha*sIn, exact in float64 for the scales the steps round ([RoundActScale],
// [RoundWeightScale]); then c's bias, or its batch norm with the bias as beta, the
// activation act and the unsigned quantizer of the given scale and bits, each in
// float32 as the graph computes them. c's weights are not read.
func ChannelLevel(m *quant.Model, c *quant.Conv, o int, alpha, sIn float64, act quant.Activation, scale float32, bits int) *LevelFunc {
	f := &LevelFunc{alpha: alpha, sIn: sIn, act: act, sOut: scale, bits: bits}
	var b float32
	if c.Bias != nil {
		b = c.Bias[o]
	}
	if bn := c.BN; bn != nil {
		f.bn, f.scale, f.beta, f.mean, f.sd = true, bn.Scale[o], b, bn.Mean[o], BNStd(m, bn.Variance[o])
	} else {
		f.bias = float64(b)
	}
	return f
}

// Level returns F(acc).
func (f *LevelFunc) Level(acc int) float32 {
	p := float64(acc) * f.alpha
	p *= f.sIn
	x := float32(p + f.bias)
	if f.bn {
		x = BNApply(x, f.scale, f.beta, f.mean, f.sd)
	}
	return QuantLevel(Activate(x, f.act), f.sOut, f.bits, false, false)
}

// Thresholds is the one derivation of a channel's integer thresholds from its batch
// norm (or bias), activation and quantizer: quant calibrate ([SetThresholds]), quant
// qnn-dir (quant/qnnmo.FromQAT) and the darknet export's way back (quant/todarknet) all
// use it, so they agree on every model. For every acc in [-reach, reach] (reach: the
// largest |acc|, max input level * fan-in for ±1 weights) the engine's level,
// count(acc >= t_k) or for an inverted channel count(acc < t_k), equals F(acc).
//
// t_k is the threshold of level k. A nondecreasing F gives t_k = min{acc : F(acc) >=
// k}; a nonincreasing one is inverted, with F(acc) >= k iff acc < t_k, so its
// thresholds descend (the engine counts comparisons, so order means nothing to it, and
// the streamlined file's 1 - t_k ascend as MultiThreshold wants). Each t_k is found by
// bisection on F itself rather than from the closed form ceil(((k-1/2)*s - B)/A): at
// an exact tie the graph's quantizer rounds half to even where the closed form counts
// the tie up, and near one the closed form's float64 can land on the other side of the
// graph's float32. A level reached nowhere in the range gets reach+1
// ("never"), one reached everywhere -reach ("always"); a constant channel gets only
// those and is not inverted. So every threshold lies in [-reach, reach+1].
func (f *LevelFunc) Thresholds(reach int) (t []int32, invert bool) {
	n := 1<<f.bits - 1
	t = make([]int32, n)
	first, last := f.Level(-reach), f.Level(reach)
	switch {
	case last > first: // nondecreasing: T_k = min{acc : F(acc) >= k}
		for k := 1; k <= n; k++ {
			t[k-1] = int32(searchFirst(-reach, reach+1, func(a int) bool { return f.Level(a) >= float32(k) }))
		}
	case last < first: // nonincreasing: level >= k iff acc <= U_k; store U_k+1, inverted
		invert = true
		for k := 1; k <= n; k++ {
			// first acc with F(acc) < k is U_k + 1
			t[k-1] = int32(searchFirst(-reach, reach+1, func(a int) bool { return f.Level(a) < float32(k) }))
		}
	default:
		for k := 1; k <= n; k++ {
			t[k-1] = int32(reach + 1)
			if float32(k) <= first {
				t[k-1] = int32(-reach)
			}
		}
	}
	return t, invert
}

// deriveThresholds computes the integer thresholds of layer i (see [SetThresholds]).
// constant counts channels whose level does not depend on acc.
func deriveThresholds(m *quant.Model, i, src int) (t [][]int32, inv []bool, constant int) {
	l := m.Layers[i]
	q := l.Quant
	sIn := m.Layers[src].Quant.ActScale
	lo, hi := LevelRange(m.Layers[src].Quant.ActBits, m.Layers[src].Quant.ActSigned, false)
	fanIn := l.In.C * l.Conv.Size * l.Conv.Size
	r := int(max(-lo, hi)) * fanIn
	t = make([][]int32, l.Conv.Filters)
	inv = make([]bool, l.Conv.Filters)
	for o := range t {
		alpha := 1.0
		if q.WeightScale != nil {
			alpha = float64(q.WeightScale[o])
		}
		f := ChannelLevel(m, l.Conv, o, alpha, float64(sIn), WrittenActivation(l), q.ActScale, q.ActBits)
		t[o], inv[o] = f.Thresholds(r)
		if f.Level(-r) == f.Level(r) {
			constant++
		}
	}
	return t, inv, constant
}

// searchFirst returns the smallest a in [lo, hi) with pred(a), or hi; pred must be
// monotone (false then true).
func searchFirst(lo, hi int, pred func(int) bool) int {
	for lo < hi {
		mid := lo + (hi-lo)/2
		if pred(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// SetThresholds gives every binary convolution that reads quantized levels and has an
// unsigned activation quantizer its integer thresholds (LayerQuant.Thresholds and
// Invert, with acc = sum(sign(W) * input level) as quant/qnnmo defines them): level =
// count(acc >= T_k), or for inverted channels count(acc < T_k). T_k is found by
// evaluating the float graph's level function F(acc) (conv scale alpha*s_in, bias or
// batch norm, activation, quantizer; see the package doc) at integer acc
// ([LevelFunc.Thresholds]), so the integer engine and the float QONNX graph agree
// exactly; it equals DESIGN's T_k = ceil(((k-1/2)*s - B)/A) except at exact ties.
// Thresholds lie in [-R, R+1] with R = max|level| * fan-in, so they fit int16 for
// fan-ins up to 4681 at 3 bits.
func SetThresholds(m *quant.Model) (*ThresholdReport, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("thresholds: %w", err)
	}
	r := &ThresholdReport{}
	for i, l := range m.Layers {
		if l.Quant == nil || l.Quant.ActBits == 0 {
			continue
		}
		src, why := thresholdable(m, i)
		if src < 0 {
			l.Quant.Thresholds, l.Quant.Invert = nil, nil
			r.Skipped = append(r.Skipped, Note{Layer: l.Name, Reason: why})
			continue
		}
		t, inv, constant := deriveThresholds(m, i, src)
		l.Quant.Thresholds, l.Quant.Invert = t, inv
		r.Layers = append(r.Layers, l.Name)
		r.Constant += constant
		for _, v := range inv {
			if v {
				r.Inverted++
			}
		}
	}
	return r, nil
}

// thresholdsDerived reports whether layer i's stored thresholds are the ones
// [SetThresholds] computes from its parameters (so the float graph means the same).
func thresholdsDerived(m *quant.Model, i int) bool {
	src, _ := thresholdable(m, i)
	if src < 0 {
		return false
	}
	t, inv, _ := deriveThresholds(m, i, src)
	q := m.Layers[i].Quant
	if len(t) != len(q.Thresholds) || !slices.Equal(inv, q.Invert) {
		return false
	}
	for o := range t {
		if !slices.Equal(t[o], q.Thresholds[o]) {
			return false
		}
	}
	return true
}
