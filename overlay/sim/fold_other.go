//go:build !amd64 || purego

package sim

// foldLevels sets lv[p] to the level of PE p (len(lv) PEs) of one neuron fold: the
// 16-bit MAC register total - 2 d_p, with d_p = sum over q of sum_b 2^b popcount(x[3q+b] &
// w[q*PEs+p]), against the fold's threshold rows thr (see Jam.tmem).
func foldLevels(x, w []uint64, total int, thr []int16, lv []uint8) {
	foldLevelsGo(x, w, total, thr, lv)
}
