package qnn

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// widthModel builds a random W1A3 model on a 16-channel input with the given output
// channels per conv (3x3, pad 1; multiples of 32 as the engine's PEs need), a 2/2 pool
// after the first conv, thresholds in ascending or shuffled order and some inverted
// channels, so the kernel paths (dense first layer, one or more 64-channel groups,
// 32-channel vector blocks at either half of a group) are exercised.
func widthModel(tb testing.TB, seed uint64, dim int, widths ...int) *quant.Model {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	m := &quant.Model{Name: "widths", Input: quant.Shape{C: 16, H: dim, W: dim}}
	in := 16
	for i, out := range widths {
		l := &quant.Layer{Kind: quant.KindConv, Name: "conv", Inputs: []int{len(m.Layers) - 1},
			Conv:  &quant.Conv{Filters: out, Size: 3, Stride: 1, Pad: 1, Groups: 1, Activation: quant.ActReLU, Binary: true},
			Quant: &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 1}}
		l.Conv.Weights = make([]float32, out*in*9)
		for j := range l.Conv.Weights {
			l.Conv.Weights[j] = float32(1 - 2*rng.IntN(2))
		}
		spread := 3 * in
		for o := 0; o < out; o++ {
			base := rng.IntN(2*spread) - spread
			t := make([]int32, 7)
			for j := range t {
				base += rng.IntN(spread / 2)
				t[j] = int32(base)
			}
			if o%5 == 0 {
				rng.Shuffle(len(t), func(a, b int) { t[a], t[b] = t[b], t[a] })
			}
			l.Quant.Thresholds = append(l.Quant.Thresholds, t)
			l.Quant.Invert = append(l.Quant.Invert, rng.IntN(4) == 0)
		}
		m.Layers = append(m.Layers, l)
		if i == 0 {
			m.Layers = append(m.Layers, &quant.Layer{Kind: quant.KindMaxPool, Name: "pool", Inputs: []int{len(m.Layers) - 1},
				Pool: &quant.Pool{Size: 2, Stride: 2}})
		}
		in = out
	}
	if err := m.InferShapes(); err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestEngineKernelsAgree runs models of several widths on
// the default kernels and on the scalar Go kernels and checks both against the IR
// reference.
func TestEngineKernelsAgree(t *testing.T) {
	for _, widths := range [][]int{{32, 96, 64}, {64, 320, 32}, {96, 32, 160}} {
		m := widthModel(t, uint64(widths[0]), 10, widths...)
		in := randomLevels(m.Input.Size(), 6)
		packed, err := Pack(in, DDRLayout(16, 10))
		if err != nil {
			t.Fatal(err)
		}
		run := func() []byte {
			t.Helper()
			e, err := NewEngine(m, W1A3, 2)
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.Run(packed)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		fast := run()
		restore := scalarKernels()
		slow := run()
		restore()
		if !bytes.Equal(fast, slow) {
			t.Errorf("widths %v: default and scalar kernels differ", widths)
		}
		got, err := Unpack(fast, DDRLayout(widths[len(widths)-1], 5))
		if err != nil {
			t.Fatal(err)
		}
		want := refHidden(t, m, in)
		diff := 0
		for i := range want {
			if got[i] != want[i] {
				diff++
			}
		}
		if diff != 0 {
			t.Errorf("widths %v: %d of %d levels differ from the IR reference", widths, diff, len(want))
		}
	}
}
