package floatengine

import (
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
)

// checkActivation reports activations the engine does not know.
func checkActivation(a quant.Activation) error {
	switch a {
	case quant.ActLinear, quant.ActLeaky, quant.ActReLU, quant.ActLogistic, quant.ActMish, quant.ActSwish, quant.ActLHTan:
		return nil
	}
	return fmt.Errorf("activation %q is not supported (use linear, leaky, relu, logistic, lhtan, mish or swish)", a)
}

// Logistic is darknet's logistic_activate: 1/(1+e^-x).
func Logistic(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// softplus is darknet's softplus_activate with its threshold.
func softplus(x, threshold float32) float32 {
	switch {
	case x > threshold:
		return x
	case x < -threshold:
		return float32(math.Exp(float64(x)))
	}
	return float32(math.Log(math.Exp(float64(x)) + 1))
}

// Mish is darknet's mish: x * tanh(softplus(x)) with softplus threshold 20.
func Mish(x float32) float32 {
	sp := float64(softplus(x, 20))
	return x * float32(2/(1+math.Exp(-2*sp))-1)
}

// LHTan is darknet's lhtan_activate (leaky hard tanh): x on [0,1], slope 0.001 outside.
// pjreddie's C multiplies by the double .001 and rounds to float once; so does this.
func LHTan(x float32) float32 {
	switch {
	case x < 0:
		return float32(.001 * float64(x))
	case x > 1:
		return float32(.001*float64(x-1) + 1)
	}
	return x
}

// Activate applies a darknet activation to x in place.
func Activate(x []float32, a quant.Activation) {
	switch a {
	case quant.ActLeaky:
		for i, v := range x {
			if !(v > 0) {
				x[i] = 0.1 * v
			}
		}
	case quant.ActReLU:
		for i, v := range x {
			if !(v > 0) {
				x[i] = 0
			}
		}
	case quant.ActLogistic:
		for i, v := range x {
			x[i] = Logistic(v)
		}
	case quant.ActMish:
		for i, v := range x {
			x[i] = Mish(v)
		}
	case quant.ActSwish:
		for i, v := range x {
			x[i] = v * Logistic(v)
		}
	case quant.ActLHTan:
		for i, v := range x {
			x[i] = LHTan(v)
		}
	}
}

// biasActivate adds bias to x and applies the activation, fused in one pass.
func biasActivate(x []float32, bias float32, a quant.Activation) {
	switch a {
	case quant.ActLinear:
		for i := range x {
			x[i] += bias
		}
	case quant.ActLeaky:
		// max(v, 0.1v) is darknet's v > 0 ? v : 0.1v for every non-NaN v, and has no
		// branch to mispredict on sign-random data.
		for i, v := range x {
			v += bias
			x[i] = max(v, 0.1*v)
		}
	case quant.ActReLU:
		for i, v := range x {
			x[i] = max(v+bias, 0)
		}
	default:
		for i := range x {
			x[i] += bias
		}
		Activate(x, a)
	}
}

// slopeOf returns s such that max(v, s*v) is the activation (linear 1, leaky 0.1, relu 0)
// and ok; ok is false for activations that need [activate1].
func slopeOf(a quant.Activation) (s float32, ok bool) {
	switch a {
	case quant.ActLinear, "":
		return 1, true
	case quant.ActLeaky:
		return 0.1, true
	case quant.ActReLU:
		return 0, true
	}
	return 0, false
}
