//go:build amd64 && !purego

package sim

import "golang.org/x/sys/cpu"

// foldAVX512 runs 32-PE folds in assembly (fold_amd64.s) on CPUs with AVX-512 VPOPCNTQ;
// foldAVX2 on the other CPUs with AVX2 (and POPCNT, which all of them have). Tests
// switch them off to compare with Go.
var (
	foldAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ
	foldAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT
)

// planesAVX512 turns records into planes with VPERMB and VPSHUFBITQMB
// (recordPlanes512) on CPUs with AVX-512 VBMI and BITALG.
var planesAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI && cpu.X86.HasAVX512BITALG

// recordPlanes sets, for pixels records of src (recBytes apart) and their first groups
// 64-lane groups, the three plane words of each group at dst (dstWords words apart per
// pixel), as lanePlanes does, and reports whether it did (false: use lanePlanes).
func recordPlanes(dst []uint64, src []byte, pixels, groups, recBytes, dstWords int) bool {
	if !planesAVX512 || pixels <= 0 || groups <= 0 || 24*groups > recBytes ||
		len(src) < (pixels-1)*recBytes+24*groups || len(dst) < (pixels-1)*dstWords+3*groups {
		return false
	}
	recordPlanes512(&dst[0], &src[0], pixels, groups, recBytes, 8*dstWords)
	return true
}

// recordPlanes512 is recordPlanes with valid arguments (dstStride in bytes).
// Implemented in fold_amd64.s.
//
//go:noescape
func recordPlanes512(dst *uint64, src *byte, pixels, groups, srcStride, dstStride int)

// foldLevels computes one pixel's levels for every neuron fold (see foldLevelsGo).
func foldLevels(win *pixelWindow, pes int, w []uint64, thr []int16, lv []uint8) {
	folds := len(lv) / 32
	switch {
	case pes != 32 || len(lv)%32 != 0 || !win.valid() || len(w) < folds*win.triples()*32 || len(thr) < folds*tmemRows*32:
		foldLevelsGo(win, pes, w, thr, lv)
	case foldAVX512:
		fold32AVX512(&win.x[0], win.seg, win.segs, 8*win.stride, &w[0], folds, &thr[0], &lv[0])
	case foldAVX2:
		fold32AVX2(&win.x[0], win.seg, win.segs, 8*win.stride, &w[0], folds, &thr[0], &lv[0])
	default:
		foldLevelsGo(win, pes, w, thr, lv)
	}
}

// fold32AVX512 and fold32AVX2 are foldLevels for 32 PEs, folds >= 1 and a valid window
// whose segments start stride bytes apart. Implemented in fold_amd64.s.
//
//go:noescape
func fold32AVX512(x *uint64, seg, segs, stride int, w *uint64, folds int, thr *int16, lv *uint8)

//go:noescape
func fold32AVX2(x *uint64, seg, segs, stride int, w *uint64, folds int, thr *int16, lv *uint8)
