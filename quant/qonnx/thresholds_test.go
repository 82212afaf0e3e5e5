package qonnx_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// engineLevel is the integer engine's level: count(acc >= t_k), or count(acc < t_k)
// for an inverted channel.
func engineLevel(t []int32, invert bool, acc int) float32 {
	n := 0
	for _, v := range t {
		if (acc >= int(v)) != invert {
			n++
		}
	}
	return float32(n)
}

// TestThresholdsGiveTheFloatLevel: on random channels (bias or batch norm, positive,
// negative and zero gains, every activation thresholds take, 1 to 4 bits) the engine's
// level from the derived thresholds is the float graph's level at every reachable acc.
func TestThresholdsGiveTheFloatLevel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := &quant.Model{BNEpsilon: 1e-6}
	acts := []quant.Activation{quant.ActReLU, quant.ActLeaky, quant.ActLinear, quant.ActLHTan}
	const reach = 7 * 9 * 8
	for trial := range 400 {
		c := &quant.Conv{Bias: []float32{float32(rng.NormFloat64())}}
		if trial%2 == 0 {
			c.BN = &quant.BatchNorm{Scale: []float32{float32(rng.NormFloat64())}, Mean: []float32{float32(rng.NormFloat64())},
				Variance: []float32{0.1 + rng.Float32()}}
			if trial%40 == 0 {
				c.BN.Scale[0] = 0
			}
		}
		alpha := rng.Float64() * 0.1
		if trial%40 == 1 {
			alpha = 0
		}
		bits := 1 + trial%4
		scale := float32(0.05 + rng.Float64())
		act := acts[trial%len(acts)]
		f := qonnx.ChannelLevel(m, c, 0, alpha, float64(1+rng.IntN(3))/7, act, scale, bits)
		th, inv := f.Thresholds(reach)
		if len(th) != 1<<bits-1 {
			t.Fatalf("%d thresholds for %d bits", len(th), bits)
		}
		for acc := -reach; acc <= reach; acc++ {
			if got, want := engineLevel(th, inv, acc), f.Level(acc); got != want {
				t.Fatalf("trial %d (%s, %d bits) acc %d: engine level %g, float graph %g (thresholds %v invert %v)", trial, act, bits, acc, got, want, th, inv)
			}
		}
		if slices.ContainsFunc(th, func(v int32) bool { return v < -reach || v > reach+1 }) {
			t.Fatalf("trial %d: thresholds %v outside [-%d, %d]", trial, th, reach, reach+1)
		}
	}
}

// TestThresholdsAtExactTies: where y/s lands exactly on k-1/2 the graph's quantizer
// rounds half to even, so level k starts one acc later than the closed form
// ceil(((k-1/2)*s - B)/A) (which counts every tie up) says for odd k. The closed forms
// quant/qnnmo and quant/todarknet used would have given those accs one level too many;
// the derivation follows the graph.
func TestThresholdsAtExactTies(t *testing.T) {
	m := &quant.Model{BNEpsInside: true} // epsilon 0: sd = sqrt(variance) exactly
	for _, c := range []struct {
		name   string
		conv   *quant.Conv
		alpha  float64
		scale  float32
		want   []int32
		invert bool
		closed func(acc int) int // the closed form's level, counting ties up
	}{{
		// y = acc/2: ties at odd acc.
		name: "bias", conv: &quant.Conv{Bias: []float32{0}}, alpha: 0.5, scale: 1,
		want:   []int32{2, 3, 6, 7, 10, 11, 14},
		closed: func(acc int) int { return int(math.Floor(float64(acc)/2 + 0.5)) },
	}, {
		// y = -acc/2, inverted: level >= k iff acc < t_k.
		name: "inverted", conv: &quant.Conv{Bias: []float32{0}}, alpha: -0.5, scale: 1,
		want: []int32{-1, -2, -5, -6, -9, -10, -13}, invert: true,
		closed: func(acc int) int { return int(math.Floor(-float64(acc)/2 + 0.5)) },
	}, {
		// Batch norm y = 0.25*acc + 0.125 with s = 0.25: y/s = acc + 1/2 at every acc.
		name:  "batch norm",
		conv:  &quant.Conv{Bias: []float32{0.125}, BN: &quant.BatchNorm{Scale: []float32{0.25}, Mean: []float32{0}, Variance: []float32{1}}},
		alpha: 1, scale: 0.25,
		want:   []int32{1, 1, 3, 3, 5, 5, 7},
		closed: func(acc int) int { return acc + 1 },
	}} {
		t.Run(c.name, func(t *testing.T) {
			const reach = 100
			f := qonnx.ChannelLevel(m, c.conv, 0, c.alpha, 1, quant.ActReLU, c.scale, 3)
			th, inv := f.Thresholds(reach)
			if !slices.Equal(th, c.want) || inv != c.invert {
				t.Fatalf("thresholds %v invert %v, want %v invert %v", th, inv, c.want, c.invert)
			}
			ties := 0
			for acc := -reach; acc <= reach; acc++ {
				level := f.Level(acc)
				if got := engineLevel(th, inv, acc); got != level {
					t.Errorf("acc %d: engine level %g, float graph %g", acc, got, level)
				}
				if closed := float32(min(max(c.closed(acc), 0), 7)); closed != level {
					ties++
					if closed != level+1 {
						t.Errorf("acc %d: closed form %g, float graph %g: not a tie counted up", acc, closed, level)
					}
				}
			}
			if ties == 0 {
				t.Error("no tie where the closed form and the float graph differ")
			}
		})
	}
}
