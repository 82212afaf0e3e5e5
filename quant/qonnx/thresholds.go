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

// levelFunc is F(acc) of one output channel: the level the float QONNX graph computes
// for a binary convolution whose integer accumulator is acc.
type levelFunc struct {
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

func (f *levelFunc) level(acc int) float32 {
	p := float64(acc) * f.alpha
	p *= f.sIn
	x := float32(p + f.bias)
	if f.bn {
		x = BNApply(x, f.scale, f.beta, f.mean, f.sd)
	}
	return QuantLevel(Activate(x, f.act), f.sOut, f.bits, false, false)
}

// channelLevelFunc builds F for output channel o of conv layer l reading levels of
// scale sIn.
func channelLevelFunc(m *quant.Model, l *quant.Layer, o int, sIn float32) *levelFunc {
	c, q := l.Conv, l.Quant
	f := &levelFunc{alpha: 1, sIn: float64(sIn), act: WrittenActivation(l), sOut: q.ActScale, bits: q.ActBits}
	if q.WeightScale != nil {
		f.alpha = float64(q.WeightScale[o])
	}
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

// deriveThresholds computes the integer thresholds of layer i (see [SetThresholds]).
// constant counts channels whose level does not depend on acc.
func deriveThresholds(m *quant.Model, i, src int) (t [][]int32, inv []bool, constant int) {
	l := m.Layers[i]
	q := l.Quant
	sIn := m.Layers[src].Quant.ActScale
	lo, hi := LevelRange(m.Layers[src].Quant.ActBits, m.Layers[src].Quant.ActSigned, false)
	fanIn := l.In.C * l.Conv.Size * l.Conv.Size
	r := int(max(-lo, hi)) * fanIn
	n := 1<<q.ActBits - 1
	t = make([][]int32, l.Conv.Filters)
	inv = make([]bool, l.Conv.Filters)
	for o := range t {
		f := channelLevelFunc(m, l, o, sIn)
		t[o] = make([]int32, n)
		first, last := f.level(-r), f.level(r)
		switch {
		case last > first: // nondecreasing: T_k = min{acc : F(acc) >= k}
			for k := 1; k <= n; k++ {
				t[o][k-1] = int32(searchFirst(-r, r+1, func(a int) bool { return f.level(a) >= float32(k) }))
			}
		case last < first: // nonincreasing: level >= k iff acc <= U_k; store U_k+1, inverted
			inv[o] = true
			for k := 1; k <= n; k++ {
				// first acc with F(acc) < k is U_k + 1
				t[o][k-1] = int32(searchFirst(-r, r+1, func(a int) bool { return f.level(a) < float32(k) }))
			}
		default:
			constant++
			for k := 1; k <= n; k++ {
				t[o][k-1] = int32(r + 1)
				if float32(k) <= first {
					t[o][k-1] = int32(-r)
				}
			}
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
// Invert, with acc = sum(sign(W) * input level) as quant/qnn defines them): level =
// count(acc >= T_k), or for inverted channels count(acc < T_k). T_k is found by
// evaluating the float graph's level function F(acc) (conv scale alpha*s_in, bias or
// batch norm, activation, quantizer; see the package doc) at integer acc, so the
// integer engine and the float QONNX graph agree exactly; it equals DESIGN's
// T_k = ceil(((k-1/2)*s - B)/A) except at exact ties. Thresholds lie in [-R, R+1] with
// R = max|level| * fan-in, so they fit int16 for fan-ins up to 4681 at 3 bits.
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
