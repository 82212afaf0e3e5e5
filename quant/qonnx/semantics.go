package qonnx

import (
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
)

// Scalar semantics shared by the writer, the executor and the quantized engine. Every
// float32 operation is written with an explicit conversion so that no compiler may fuse
// a multiply and an add (the Go spec allows fusion without one), which would change the
// rounding and break bit-exactness between the paths.

// LevelRange is the integer range of a Quant node: unsigned [0, 2^b-1]; signed
// [-2^(b-1), 2^(b-1)-1], narrow [-(2^(b-1)-1), 2^(b-1)-1].
func LevelRange(bits int, signed, narrow bool) (lo, hi float32) {
	if !signed {
		hi = float32(int64(1)<<bits - 1)
		if narrow {
			hi--
		}
		return 0, hi
	}
	hi = float32(int64(1)<<(bits-1) - 1)
	lo = -hi - 1
	if narrow {
		lo = -hi
	}
	return lo, hi
}

// QuantLevel is QONNX Quant's integer with zero point 0 and rounding_mode ROUND:
// clip(round_half_even(x/scale), lo, hi), the division in float32.
func QuantLevel(x, scale float32, bits int, signed, narrow bool) float32 {
	lo, hi := LevelRange(bits, signed, narrow)
	v := float32(math.RoundToEven(float64(float32(x / scale))))
	return max(lo, min(v, hi))
}

// BipolarSign is BipolarQuant's value before its scale: +1 for x >= 0, else -1.
func BipolarSign(x float32) float32 {
	if x >= 0 {
		return 1
	}
	return -1
}

// roundSig rounds s to n significant bits (round half to even on the mantissa).
func roundSig(s float32, n int) float32 {
	if s == 0 || math.IsInf(float64(s), 0) || math.IsNaN(float64(s)) {
		return s
	}
	frac, exp := math.Frexp(float64(s)) // s = frac * 2^exp, 0.5 <= |frac| < 1
	f := math.RoundToEven(math.Ldexp(frac, n))
	return float32(math.Ldexp(f, exp-n))
}

// RoundActScale rounds an activation scale to 24-bits significant bits (21 for 3-bit
// activations, a relative change below 5e-7) so that every level*scale is exact in
// float32.
func RoundActScale(s float32, bits int) float32 {
	return roundSig(s, max(1, 24-bits))
}

// WeightScaleBits is the number of significant bits binary weight scales keep.
const WeightScaleBits = 12

// RoundWeightScale rounds a binary weight scale (alpha) to [WeightScaleBits]
// significant bits (relative change below 1.3e-4), so that a binary convolution over
// quantized inputs sums exactly in float64.
func RoundWeightScale(s float32) float32 { return roundSig(s, WeightScaleBits) }

// BNStd is the float32 standard deviation the files and engines divide by: darknet's
// sqrt(var+eps) (AlexeyAB, BNEpsInside) or sqrt(var)+eps (pjreddie CPU), computed in
// float64 and rounded once. Files store variance = BNStd^2 and epsilon 0; sqrt of that
// float32 square gives BNStd back exactly.
func BNStd(m *quant.Model, variance float32) float32 {
	v := float64(variance)
	if m.BNEpsInside {
		return float32(math.Sqrt(v + float64(m.BNEpsilon)))
	}
	return float32(math.Sqrt(v) + float64(m.BNEpsilon))
}

// BNApply is BatchNormalization on one value, in this order of float32 operations:
// ((x - mean) / sd) * scale + bias.
func BNApply(x, scale, bias, mean, sd float32) float32 {
	d := float32(x - mean)
	q := float32(d / sd)
	p := float32(q * scale)
	return float32(p + bias)
}

// LeakySlope is darknet's leaky slope (LeakyRelu alpha).
const LeakySlope = float32(0.1)

// Activate applies an activation to one value as the QONNX graph does (Relu,
// LeakyRelu, Sigmoid; linear is the identity; lhtan is quant/onnx's op chain
// Min(LeakyRelu(x, 0.001), Add(Mul(x, 0.001), 0.999)), each op rounded to float32).
// Other activations return NaN.
func Activate(x float32, a quant.Activation) float32 {
	switch a {
	case quant.ActLinear, "":
		return x
	case quant.ActReLU:
		if x > 0 {
			return x
		}
		return 0
	case quant.ActLeaky:
		if x >= 0 {
			return x
		}
		return float32(LeakySlope * x)
	case quant.ActLogistic:
		return float32(1 / (1 + math.Exp(-float64(x))))
	case quant.ActLHTan:
		low := x
		if x < 0 {
			low = float32(onnx.LHTanSlope * x)
		}
		mul := float32(x * onnx.LHTanSlope)
		return min(low, float32(mul+onnx.LHTanTop))
	}
	return float32(math.NaN())
}

// lhtanReLUBound bounds the top rounding boundary (2^b - 1.5)*scale of a quantizer
// after lhtan that [WrittenActivation] writes as Relu.
const lhtanReLUBound = 0.999

// LHTanAsReLU says whether an lhtan followed by quantizer q may be written as Relu:
// q is unsigned and its top rounding boundary (2^b - 1.5)*scale lies below 0.999.
// Then both give the same level for every input: below 0 both give level 0; on
// [0, 0.9999] lhtan's op chain is exactly x (the line 0.001x + 0.999 is 1e-4 above);
// beyond, both values are at least 0.9999, past the top boundary: the top level. It
// holds for scale 1/(2^b-1) (clip [0, 1], lhtan's saturation; QNN-MO's levels).
func LHTanAsReLU(q *quant.LayerQuant) bool {
	if q == nil || q.ActBits <= 0 || q.ActSigned || !(q.ActScale > 0) {
		return false
	}
	_, hi := LevelRange(q.ActBits, false, false)
	return (float64(hi)-0.5)*float64(q.ActScale) <= lhtanReLUBound
}

// WrittenActivation is the activation conv layer l's graph applies (and the engines
// and thresholds use): Relu for lhtan followed by a quantizer [LHTanAsReLU] accepts
// (FINN turns BN + Relu + Quant into a MultiThreshold; it has no handler for the op
// chain), else the layer's own.
func WrittenActivation(l *quant.Layer) quant.Activation {
	if l.Conv == nil {
		return ""
	}
	if l.Conv.Activation == quant.ActLHTan && LHTanAsReLU(l.Quant) {
		return quant.ActReLU
	}
	return l.Conv.Activation
}

// ActivationSupported reports whether [Activate] (and the files) handle a.
func ActivationSupported(a quant.Activation) bool {
	switch a {
	case quant.ActLinear, "", quant.ActReLU, quant.ActLeaky, quant.ActLogistic, quant.ActLHTan:
		return true
	}
	return false
}

// InvPixel is the float32 constant of the graph's input Mul (1/255).
const InvPixel = float32(1.0 / 255)

// PixelLevels turns [0,1] pixel values (darknet's input) into the UINT8 values the
// QONNX graph input holds: round_half_even(x*255) clipped to [0, 255].
func PixelLevels(dst, x []float32) {
	for i, v := range x {
		q := float32(math.RoundToEven(float64(float32(v * 255))))
		dst[i] = max(0, min(q, 255))
	}
}
