//go:build amd64 && !purego && !goexperiment.simd

package floatengine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// withGoKernels runs f with the assembly kernels switched off (the path of CPUs without
// AVX2/FMA) and restores them.
func withGoKernels(tb testing.TB, f func()) {
	tb.Helper()
	saved := useAVX2
	useAVX2 = false
	tb.Cleanup(func() { useAVX2 = saved })
	defer func() { useAVX2 = saved }()
	f()
}

// TestWinogradWithAsmKernel runs the convolution tests with Winograd switched back on:
// the assembly build skips it, but it must stay correct for the other builds and CPUs.
func TestWinogradWithAsmKernel(t *testing.T) {
	saved := winogradPays
	winogradPays = true
	defer func() { winogradPays = saved }()
	t.Run("chosen", TestWinogradChosen)
	t.Run("convolutions", TestConvolutions)
	t.Run("random", TestRandomConvolutions)
}

// TestAsmKernelMatchesGo runs the packed GEMM with the epilogue on shapes that are not
// multiples of the 4x24 tile (k=1, tiny, k spanning several kcBlock blocks so that the
// kernel accumulates into C, columns spanning several ncBlock blocks) and compares the
// assembly kernel with the Go fallback and a float64 reference.
func TestAsmKernelMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("this CPU has no AVX2+FMA: only the Go kernel runs")
	}
	r := rand.New(rand.NewPCG(21, 22))
	shapes := [][3]int{{1, 1, 1}, {4, 24, 1}, {3, 23, 1}, {5, 25, 2}, {4, 48, 7}, {7, 49, 3},
		{8, 24, 256}, {9, 71, 257}, {13, 250, 513}, {64, 241, 64}, {33, 500, 300}, {255, 100, 96}, {2, 1000, 5}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		a, b, bias := randSlice(r, m*k, -1, 1), randSlice(r, k*n, -1, 1), randSlice(r, m, -1, 1)
		pa := PackA(m, k, a, k)
		for _, act := range []quant.Activation{quant.ActLinear, quant.ActLeaky, quant.ActReLU, quant.ActLogistic} {
			for _, withBias := range []bool{false, true} {
				ep := &Epilogue{Activation: act}
				if withBias {
					ep.Bias = bias
				}
				want := make([]float32, m*n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var sum float64
						for p := 0; p < k; p++ {
							sum += float64(a[i*k+p]) * float64(b[p*n+j])
						}
						if withBias {
							sum += float64(bias[i])
						}
						want[i*n+j] = float32(refActivate(sum, act))
					}
				}
				for _, threads := range []int{1, 2} {
					what := fmt.Sprintf("%v %s bias=%v threads=%d", s, act, withBias, threads)
					got := randSlice(r, m*n, 5, 6) // overwritten
					SgemmEpilogue(pa, n, b, got, ep, NewWorkers(threads))
					closeEnough(t, "asm "+what, got, want, 1e-5)
					scalar := randSlice(r, m*n, 5, 6)
					withGoKernels(t, func() { SgemmEpilogue(pa, n, b, scalar, ep, NewWorkers(threads)) })
					closeEnough(t, "asm vs go "+what, got, scalar, 1e-5)
				}
			}
		}
	}
}

// TestAsmKernelLeavesNeighbours checks that a full tile's store writes its 4x24 block
// only: C is a window of a larger matrix whose other values must survive.
func TestAsmKernelLeavesNeighbours(t *testing.T) {
	if !useAVX2 {
		t.Skip("this CPU has no AVX2+FMA")
	}
	r := rand.New(rand.NewPCG(23, 24))
	const kc, ldc = 5, 30
	a, b := randSlice(r, kc*mr, -1, 1), randSlice(r, kc*nr, -1, 1)
	c := randSlice(r, 6*ldc, 5, 6)
	before := append([]float32(nil), c...)
	bias := [mr]float32{1, 2, 3, 4}
	gemmKernel4x24(kc, &a[0], &b[0], &c[ldc+2], ldc, kernAccumulate|kernBias|kernSlope, &bias[0], 0.1)
	var want [mr * nr]float32
	kernel4x24Go(a, b, &want)
	for i := range c {
		row, col := i/ldc, i%ldc
		inside := row >= 1 && row < 1+mr && col >= 2 && col < 2+nr
		if !inside {
			if c[i] != before[i] {
				t.Errorf("c[%d] (row %d col %d) outside the tile changed", i, row, col)
			}
			continue
		}
		v := want[(row-1)*nr+col-2] + before[i] + bias[row-1]
		v = max(v, 0.1*v)
		if d := c[i] - v; d > 1e-5 || d < -1e-5 {
			t.Errorf("c[%d] = %g, want %g", i, c[i], v)
		}
	}
}
