//go:build amd64 && !purego

package sim

import "golang.org/x/sys/cpu"

// foldAVX512 runs 32-PE folds in assembly (fold_amd64.s) on CPUs with AVX-512 VPOPCNTQ;
// foldAVX2 on the other CPUs with AVX2. Tests switch them off to compare with Go.
var (
	foldAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ
	foldAVX2   = cpu.X86.HasAVX2
)

// foldLevels sets lv[p] to the level of PE p (len(lv) PEs) of one neuron fold: the
// 16-bit MAC register total - 2 d_p, with d_p = sum over q of sum_b 2^b popcount(x[3q+b] &
// w[q*PEs+p]), against the fold's threshold rows thr (see Jam.tmem).
func foldLevels(x, w []uint64, total int, thr []int16, lv []uint8) {
	n := len(w) / 32
	switch {
	case len(lv) != 32 || n == 0 || len(x) < 3*n || len(thr) < tmemRows*32:
		foldLevelsGo(x, w, total, thr, lv)
	case foldAVX512:
		fold32AVX512(&x[0], &w[0], n, total, &thr[0], &lv[0])
	case foldAVX2:
		fold32AVX2(&x[0], &w[0], n, total, &thr[0], &lv[0])
	default:
		foldLevelsGo(x, w, total, thr, lv)
	}
}

// fold32AVX512 and fold32AVX2 are foldLevels for 32 PEs and n >= 1 window words.
// Implemented in fold_amd64.s.
//
//go:noescape
func fold32AVX512(x, w *uint64, n, total int, thr *int16, lv *uint8)

//go:noescape
func fold32AVX2(x, w *uint64, n, total int, thr *int16, lv *uint8)
