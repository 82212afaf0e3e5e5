package train

import (
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// Quantization-aware training. A convolution whose layer carries a [quant.LayerQuant]
// trains with its quantizers in the loop:
//
//   - WeightBits 1: the forward and backward passes use bipolar weights
//     alpha_f * sign(w) (sign(0) = +1, as QONNX's BipolarQuant; alpha_f = mean |w| of
//     output channel f, as darknet's binarize_weights), while the float weights are the
//     ones updated: the straight-through estimator (the gradient by the bipolar weights
//     is applied to the float ones). WeightBits 2..8: signed narrow levels times
//     max |w| / (2^(b-1)-1) per channel, the same way. The scales are exactly those of
//     the quantization flow's weights step (qonnx.WeightScales).
//   - ActBits n > 0 with ActScale s: the activation output is quantized to levels
//     k*s, k = 0 .. 2^n-1 (unsigned; signed: -2^(n-1) .. 2^(n-1)-1), rounding half to
//     even; the backward pass lets the delta through where the activation lies inside
//     the clipping range (straight-through, clipped). With ActScale 0 the scale is
//     calibrated on the first training batch by the calib method Options.ClipInit
//     (MSE by default: max/levels, which minmax gives, leaves 3-bit levels too coarse).
//     With Net.LearnClip the scale then learns by PACT's gradient (the delta summed
//     over the clipped activations), scaled as LSQ scales its step-size gradient, and
//     moves at most 10% per update. Scales stay rounded as qonnx.RoundActScale rounds
//     them, so the flow given the trained scales computes the same levels.
//
// The .weights written keep the float (latent) weights; quantized thresholds come
// from the normal calibrate/verify steps (calibrate --scales with the trained scales).

// layerQuant is one convolution's quantizers.
type layerQuant struct {
	q      *quant.LayerQuant
	wq     []float32 // bipolar weights of the last forward pass
	preq   []float32 // activations before quantization
	clipUp float64   // PACT update of ActScale, accumulated like the other deltas
}

func newLayerQuant(l *quant.Layer) *layerQuant {
	if l.Quant == nil || (l.Quant.WeightBits < 1 && l.Quant.ActBits <= 0) {
		return nil
	}
	return &layerQuant{q: l.Quant}
}

// quantizeWeights returns the quantized weights of the forward pass, with the
// per-output-channel scales the quantization flow's weights step computes (recorded in
// LayerQuant.WeightScale): bipolar alpha_f * sign(w) for 1 bit, alpha_f * level for
// 2..8 bits (signed narrow levels, rounding half to even). Other layers keep w.
func (lq *layerQuant) quantizeWeights(w []float32, filters int) []float32 {
	bits := lq.q.WeightBits
	if bits < 1 {
		return w
	}
	if len(lq.wq) != len(w) {
		lq.wq = make([]float32, len(w))
	}
	lq.q.WeightScale = qonnx.WeightScales(w, filters, bits)
	per := len(w) / filters
	for i, v := range w {
		s := lq.q.WeightScale[i/per]
		if bits == 1 {
			lq.wq[i] = s * qonnx.BipolarSign(v)
		} else {
			lq.wq[i] = s * qonnx.QuantLevel(v, s, bits, true, true)
		}
	}
	return lq.wq
}

func (lq *layerQuant) levels() (lo, hi float32) {
	return qonnx.LevelRange(lq.q.ActBits, lq.q.ActSigned, false)
}

// quantizeActivations keeps the activations and replaces them by their levels. An
// unset scale is calibrated on these activations with the calib method clipInit.
func (lq *layerQuant) quantizeActivations(out []float32, clipInit string) {
	q := lq.q
	if q.ActBits <= 0 {
		return
	}
	if q.ActScale <= 0 { // calibrate the clipping on this batch
		if clipInit == "" {
			clipInit = calib.MSE
		}
		// Run checked the method (Options.ClipInit).
		s, _ := calib.ScaleOf(out, q.ActBits, q.ActSigned, calib.Options{Method: clipInit})
		q.ActScale = qonnx.RoundActScale(max(s, 1e-6), q.ActBits)
	}
	if len(lq.preq) != len(out) {
		lq.preq = make([]float32, len(out))
	}
	copy(lq.preq, out)
	for i, v := range out {
		out[i] = qonnx.QuantLevel(v, q.ActScale, q.ActBits, q.ActSigned, false) * q.ActScale
	}
}

// activationBackward is the straight-through backward pass of activation and
// quantizer: the activation's gradient at the kept value, zero outside the clipping
// range; the delta at clipped values feeds the PACT clip update.
func (lq *layerQuant) activationBackward(delta []float32, a quant.Activation) {
	activateBackward(lq.preq, delta, a)
	lo, hi := lq.levels()
	s := lq.q.ActScale
	var clip float64
	for i, v := range lq.preq {
		if v >= hi*s {
			clip += float64(delta[i]) * float64(hi)
			delta[i] = 0
		} else if v < lo*s {
			clip += float64(delta[i]) * float64(lo)
			delta[i] = 0
		}
	}
	// LSQ's gradient scale 1/sqrt(N*levels) keeps the scale's steps commensurate with
	// the weights' (a plain sum over N activations makes the clip run away).
	lq.clipUp += clip / math.Sqrt(float64(len(lq.preq))*float64(hi))
}

// refreshWeightScales sets the weight scales of m's quantized convolutions from their
// current weights (a forward pass records them before the last update).
func refreshWeightScales(m *quant.Model) {
	for _, l := range m.Layers {
		if q := l.Quant; l.Kind == quant.KindConv && q != nil && q.WeightBits > 0 {
			q.WeightScale = qonnx.WeightScales(l.Conv.Weights, l.Conv.Filters, q.WeightBits)
		}
	}
}

// MarkW1A3 annotates m for binary-weight, 3-bit-activation training as the QNN engine
// runs it: every convolution but the first and the last gets WeightBits 1 and unsigned
// 3-bit activations (scale calibrated on the first batch unless already set); the
// first gets 3-bit activations only (its weights stay float on the CPU). Existing
// annotations are kept.
func MarkW1A3(m *quant.Model) {
	var convs []*quant.Layer
	for _, l := range m.Layers {
		if l.Kind == quant.KindConv {
			convs = append(convs, l)
		}
	}
	for i, l := range convs {
		if l.Quant != nil || i == len(convs)-1 {
			continue
		}
		l.Quant = &quant.LayerQuant{ActBits: 3}
		if i > 0 {
			l.Quant.WeightBits = 1
		}
	}
}
