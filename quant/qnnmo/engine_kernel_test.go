package qnnmo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// widthModel builds a random W1A3 model on an inC-channel input with the given output
// channels per conv (3x3, pad 1; multiples of 32 as the engine's PEs need), a 2/2 pool
// after the first conv, thresholds in ascending or shuffled order and some inverted
// channels, so the kernel paths (dense first layers of 16 channels (sliding window) and
// other widths, one or more 64-channel groups, 32-channel vector blocks at either half
// of a group) are exercised.
func widthModel(tb testing.TB, seed uint64, dim, inC int, widths ...int) *quant.Model {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	m := &quant.Model{Name: "widths", Input: quant.Shape{C: inC, H: dim, W: dim}}
	in := inC
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

// TestEngineKernelsAgree runs models of several widths on the default kernels, the
// scalar (POPCNT) kernel and the Go kernels, and checks them against the IR reference.
func TestEngineKernelsAgree(t *testing.T) {
	for _, c := range []struct {
		inC    int
		widths []int
	}{{16, []int{32, 96, 64}}, {16, []int{64, 320, 32}}, {8, []int{96, 32, 160}}, {32, []int{64, 64}}} {
		widths := c.widths
		m := widthModel(t, uint64(widths[0]+c.inC), 10, c.inC, widths...)
		in := randomLevels(m.Input.Size(), 6)
		packed, err := offload.Pack(in, offload.DDRLayout(c.inC, 10))
		if err != nil {
			t.Fatal(err)
		}
		run := func() []byte {
			t.Helper()
			e, err := NewEngine(m, offload.W1A3, 2)
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
		scalar := run()
		restore()
		restore = goKernels()
		pure := run()
		restore()
		if !bytes.Equal(fast, scalar) || !bytes.Equal(fast, pure) {
			t.Errorf("widths %v: default, scalar and Go kernels differ", widths)
		}
		for _, k := range extraKernels {
			restore, ok := k.use()
			if !ok {
				continue
			}
			out := run()
			restore()
			if !bytes.Equal(out, fast) {
				t.Errorf("widths %v: %s and default kernels differ", widths, k.name)
			}
		}
		got, err := offload.Unpack(fast, offload.DDRLayout(widths[len(widths)-1], 5))
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

// extraKernels are the kernels some builds add (the AVX2 kernel on amd64): use makes
// engines built and run until restore use them, ok is false where the CPU lacks them.
var extraKernels []struct {
	name string
	use  func() (restore func(), ok bool)
}

// TestEngineKernelsRealModel runs the real model's engine layers on every kernel and
// checks each against the Go kernels, layer by layer.
func TestEngineKernelsRealModel(t *testing.T) {
	m := loadModel(t)
	in, err := offload.Pack(randomLevels(16*208*208, 7), offload.DDRLayout(16, 208))
	if err != nil {
		t.Fatal(err)
	}
	trace := func() [][]byte {
		t.Helper()
		e, err := NewEngine(m, offload.W1A3, 2)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := e.RunTrace(in)
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	restore := goKernels()
	want := trace()
	restore()
	kernels := append([]struct {
		name string
		use  func() (restore func(), ok bool)
	}{
		{"default", func() (func(), bool) { return func() {}, true }},
		{"scalar", func() (func(), bool) { return scalarKernels(), true }},
	}, extraKernels...)
	for _, k := range kernels {
		restore, ok := k.use()
		if !ok {
			continue
		}
		got := trace()
		restore()
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("%s kernel: engine layer %d differs from the Go kernels", k.name, i)
			}
		}
	}
}

// TestEngineCSAKernel runs the 32-bit carry-save kernel (the default on 32-bit CPUs)
// against the IR reference, on windows long enough to flush its byte counters.
func TestEngineCSAKernel(t *testing.T) {
	restore := goKernels()
	defer restore()
	old := use32
	use32 = true
	defer func() { use32 = old }()
	m := widthModel(t, 3, 8, 16, 64, 256, 64) // 3 (dense), 9 and 36 words per channel
	in := randomLevels(m.Input.Size(), 8)
	packed, err := offload.Pack(in, offload.DDRLayout(16, 8))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m, offload.W1A3, 1)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Run(packed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := offload.Unpack(out, offload.DDRLayout(64, 4))
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
		t.Errorf("%d of %d levels differ from the IR reference", diff, len(want))
	}
}

// TestDotCSA checks the carry-save dot product against popcounts on random and
// all-ones words, for window lengths around the byte-counter flush.
func TestDotCSA(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, sf := range []int{1, 3, 30, 31, 32, 62, 63, 72, 200} {
		for trial := 0; trial < 3; trial++ {
			x, w := make([]uint64, 3*sf), make([]uint64, sf)
			for i := range x {
				x[i] = rng.Uint64()
				if trial == 2 {
					x[i] = ^uint64(0)
				}
			}
			for i := range w {
				w[i] = rng.Uint64()
				if trial == 2 {
					w[i] = ^uint64(0)
				}
			}
			want := 0
			for q := range w {
				for b := 0; b < 3; b++ {
					want += bitCount(x[3*q+b]&w[q]) << b
				}
			}
			if got := dotCSA(x, w); got != want {
				t.Errorf("sf %d trial %d: dotCSA %d, want %d", sf, trial, got, want)
			}
			if sf == 3 {
				if got := dotCSA3((*[9]uint64)(x), (*[3]uint64)(w)); got != want {
					t.Errorf("trial %d: dotCSA3 %d, want %d", trial, got, want)
				}
			}
		}
	}
}

// bitCount counts bits one by one (independent of math/bits).
func bitCount(v uint64) int {
	n := 0
	for ; v != 0; v >>= 1 {
		n += int(v & 1)
	}
	return n
}

// BenchmarkDotKernels compares the scalar dot kernels on a 72-word window (a 512-channel
// 3x3 layer) and a 3-word window (the dense 16-channel first layer) for 4 output
// channels; run it under qemu-arm-static for a relative armv7 figure.
func BenchmarkDotKernels(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sf := range []int{72, 3} {
		x, w := make([]uint64, 3*sf), make([]uint64, 4*sf)
		for i := range x {
			x[i] = rng.Uint64()
		}
		for i := range w {
			w[i] = rng.Uint64()
		}
		sink := 0
		b.Run(fmt.Sprintf("popcount64/sf=%d", sf), func(b *testing.B) {
			for b.Loop() {
				d0, d1, d2, d3 := dotMasked4(x, w, sf)
				sink += d0 + d1 + d2 + d3
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*sf), "ns/channel-word")
		})
		b.Run(fmt.Sprintf("csa32/sf=%d", sf), func(b *testing.B) {
			for b.Loop() {
				for o := 0; o < 4; o++ {
					if sf == 3 {
						sink += dotCSA3((*[9]uint64)(x), (*[3]uint64)(w[o*3:]))
					} else {
						sink += dotCSA(x, w[o*sf:(o+1)*sf])
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*sf), "ns/channel-word")
		})
		_ = sink
	}
}

// BenchmarkEngineKernels runs the real model's engine layers (threads=1) on each kernel
// this build has: the default (AVX-512 where the CPU has it), the scalar POPCNT
// assembly kernel, the Go popcount kernel, the 32-bit carry-save kernel that 32-bit
// CPUs run and the extraKernels (AVX2 on amd64).
func BenchmarkEngineKernels(b *testing.B) {
	m := loadModel(b)
	in, _ := offload.Pack(randomLevels(16*208*208, 5), offload.DDRLayout(16, 208))
	kernels := []string{"default", "scalar", "go", "csa32"}
	for _, k := range extraKernels {
		kernels = append(kernels, k.name)
	}
	for _, kern := range kernels {
		b.Run(kern, func(b *testing.B) {
			restore := func() {}
			switch kern {
			case "default":
			case "scalar":
				restore = scalarKernels()
			case "go", "csa32":
				restore = goKernels()
			default:
				for _, k := range extraKernels {
					if k.name == kern {
						var ok bool
						if restore, ok = k.use(); !ok {
							b.Skipf("CPU lacks the %s kernel", kern)
						}
					}
				}
			}
			old := use32
			use32 = kern == "csa32"
			e, err := NewEngine(m, offload.W1A3, 1)
			defer func() { restore(); use32 = old }()
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := e.Run(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/frame")
		})
	}
}
