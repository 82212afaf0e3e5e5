//go:build !amd64 || purego

package sim

// foldLevels computes one pixel's levels for every neuron fold (see foldLevelsGo).
func foldLevels(win *pixelWindow, pes int, w []uint64, thr []int16, lv []uint8) {
	foldLevelsGo(win, pes, w, thr, lv)
}

// recordPlanes reports false: lanePlanes converts the records.
func recordPlanes(dst []uint64, src []byte, pixels, groups, recBytes, dstWords int) bool {
	return false
}
