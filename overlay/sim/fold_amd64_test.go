//go:build amd64 && !purego

package sim

import (
	"math/rand/v2"
	"testing"
)

// TestFoldKernelsAgree compares the assembly folds with foldLevelsGo on random windows,
// weights and thresholds, with totals that make the 16-bit MAC value wrap.
func TestFoldKernelsAgree(t *testing.T) {
	kernels := map[string]struct {
		on  bool
		run func(x, w *uint64, n, total int, thr *int16, lv *uint8)
	}{
		"avx512": {foldAVX512, fold32AVX512},
		"avx2":   {foldAVX2, fold32AVX2},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, k := range kernels {
		t.Run(name, func(t *testing.T) {
			if !k.on {
				t.Skipf("the CPU lacks the %s instructions", name)
			}
			for trial := 0; trial < 2000; trial++ {
				n := 1 + rng.IntN(80)
				x, w := make([]uint64, 3*n), make([]uint64, 32*n)
				dense := rng.IntN(4) == 0 // all ones: the largest byte and plane sums
				for i := range x {
					x[i] = rng.Uint64()
					if dense {
						x[i] = ^uint64(0)
					}
				}
				for i := range w {
					w[i] = rng.Uint64()
					if dense {
						w[i] = ^uint64(0)
					}
				}
				thr := make([]int16, tmemRows*32)
				for i := range thr[:7*32] {
					thr[i] = int16(rng.IntN(1<<16) - 1<<15)
					if rng.IntN(2) == 0 {
						thr[i] = int16(rng.IntN(400) - 200)
					}
				}
				total := rng.IntN(1 << 18)
				for p := 0; p < 32; p++ {
					thr[7*32+p] = int16(7 * rng.IntN(2))
					if rng.IntN(2) == 0 { // ties: thresholds at and next to the MAC value
						acc := int16(total - 2*dot(x, w, p, 32))
						for i := 0; i < 7; i++ {
							thr[i*32+p] = acc + int16(rng.IntN(3)-1)
						}
					}
				}
				want, got := make([]uint8, 32), make([]uint8, 32)
				foldLevelsGo(x, w, total, thr, want)
				k.run(&x[0], &w[0], n, total, &thr[0], &got[0])
				if string(got) != string(want) {
					t.Fatalf("trial %d (n %d, total %d): levels\n%v, want\n%v", trial, n, total, got, want)
				}
			}
		})
	}
}
