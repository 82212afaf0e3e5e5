//go:build amd64 && !purego

package qnnmo

import (
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// scalarKernels makes engines built until restore use the scalar kernels (the POPCNT
// assembly kernel where the CPU has it).
func scalarKernels() (restore func()) {
	old, oldAVX2 := useVPOPCNT, useAVX2
	useVPOPCNT, useAVX2 = false, false
	return func() { useVPOPCNT, useAVX2 = old, oldAVX2 }
}

// avx2Kernels makes engines built (and run) until restore use the AVX2 vector kernels;
// ok is false where the CPU has no AVX2.
func avx2Kernels() (restore func(), ok bool) {
	if !cpu.X86.HasAVX2 {
		return func() {}, false
	}
	old, oldAVX2 := useVPOPCNT, useAVX2
	useVPOPCNT, useAVX2 = false, true
	return func() { useVPOPCNT, useAVX2 = old, oldAVX2 }, true
}

func init() {
	extraKernels = append(extraKernels, struct {
		name string
		use  func() (restore func(), ok bool)
	}{"avx2", avx2Kernels})
}

// goKernels makes engines built until restore use the Go kernels only.
func goKernels() (restore func()) {
	old, oldAVX2, oldPop, oldPext := useVPOPCNT, useAVX2, usePOPCNT, usePEXT
	useVPOPCNT, useAVX2, usePOPCNT, usePEXT = false, false, false, false
	return func() { useVPOPCNT, useAVX2, usePOPCNT, usePEXT = old, oldAVX2, oldPop, oldPext }
}

// refLevels32 is the Go reference of levels32 over a window of sf words x (3 plane words
// each) and weights interleaved by interleaveRow (wv), with thresholds and invert masks
// laid out by thresholds32.
func refLevels32(x, wv []uint64, sf, total int, thr, inv []int16) (p0, p1, p2 uint64) {
	for c := 0; c < 32; c++ {
		i, j := c%4, c/4
		d := 0
		for q := 0; q < sf; q++ {
			w := wv[32*q+8*i+j]
			for b := 0; b < 3; b++ {
				d += bitCount(x[3*q+b]&w) << b
			}
		}
		acc := int16(total - 2*d)
		level := int16(0)
		for t := 0; t < 7; t++ {
			if acc >= thr[32*t+c] {
				level++
			}
		}
		level ^= inv[c]
		p0 |= uint64(level&1) << c
		p1 |= uint64(level>>1&1) << c
		p2 |= uint64(level>>2&1) << c
	}
	return p0, p1, p2
}

// randomBlock returns a random window of sf words, 32 channels' interleaved weights,
// a total, thresholds near the accumulators and invert masks; ones sets every bit (the
// largest byte counts).
func randomBlock(rng *rand.Rand, sf int, ones bool) (x, wv []uint64, total int, thr, inv []int16) {
	x, wv = make([]uint64, 3*sf), make([]uint64, 32*sf)
	for i := range x {
		x[i] = rng.Uint64()
		if ones {
			x[i] = ^uint64(0)
		}
	}
	for i := range wv {
		wv[i] = rng.Uint64() & rng.Uint64()
		if ones {
			wv[i] = ^uint64(0)
		}
	}
	for q := 0; q < 3*sf; q++ {
		total += bitCount(x[q]) << (q % 3)
	}
	thr, inv = make([]int16, 7*32), make([]int16, 32)
	span := 64 * 7 * sf
	for i := range thr {
		thr[i] = int16(rng.IntN(2*span+1) - span)
	}
	for i := range inv {
		inv[i] = int16(7 * rng.IntN(2))
	}
	return x, wv, total, thr, inv
}

// TestLevelsAVX2 checks the AVX2 kernels against the Go reference (and the AVX-512
// kernels where the CPU has them) on random windows, some long enough to wrap the 16-bit
// accumulators, and on all-ones words.
func TestLevelsAVX2(t *testing.T) {
	if !cpu.X86.HasAVX2 {
		t.Skip("CPU has no AVX2")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, sf := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 36, 72, 150} {
		for trial := 0; trial < 6; trial++ {
			x, wv, total, thr, inv := randomBlock(rng, sf, trial == 5)
			w0, w1, w2 := refLevels32(x, wv, sf, total, thr, inv)
			check := func(kernel string, p0, p1, p2 uint64) {
				t.Helper()
				if p0 != w0 || p1 != w1 || p2 != w2 {
					t.Errorf("sf %d trial %d: %s planes %x %x %x, want %x %x %x", sf, trial, kernel, p0, p1, p2, w0, w1, w2)
				}
			}
			p0, p1, p2 := levels32AVX2(&x[0], &wv[0], sf, total, &thr[0], &inv[0])
			check("levels32AVX2", p0, p1, p2)
			// The window as segments of 1..3 words, weights addressed by offset.
			var segs []seg32
			for q := 0; q < sf; {
				n := min(1+rng.IntN(3), sf-q)
				segs = append(segs, seg32{x: &x[3*q], woff: 256 * q, n: n})
				q += n
			}
			p0, p1, p2 = levels32sAVX2(&segs[0], len(segs), &wv[0], total, &thr[0], &inv[0])
			check("levels32sAVX2", p0, p1, p2)
			if useVPOPCNT {
				p0, p1, p2 = levels32(&x[0], &wv[0], sf, total, &thr[0], &inv[0])
				check("levels32", p0, p1, p2)
			}
		}
	}
	// levelsRow32AVX2 on a row of 3-word windows, into either half of the plane words.
	for _, half := range []int{0, 1} {
		const n = 11
		_, wv, _, thr, inv := randomBlock(rng, 3, false)
		x, tot := make([]uint64, 9*n), make([]int, n)
		for p := range tot {
			for q := 0; q < 9; q++ {
				x[9*p+q] = rng.Uint64()
				tot[p] += bitCount(x[9*p+q]) << (q % 3)
			}
		}
		dst := make([]uint64, 6*n) // 2 groups per pixel: stride 48 bytes
		levelsRow32AVX2(&x[0], &tot[0], n, &wv[0], &thr[0], &inv[0], &dst[0], 48, half)
		for p := 0; p < n; p++ {
			w0, w1, w2 := refLevels32(x[9*p:], wv, 3, tot[p], thr, inv)
			sh := uint(32 * half)
			if dst[6*p] != w0<<sh || dst[6*p+1] != w1<<sh || dst[6*p+2] != w2<<sh || dst[6*p+3]|dst[6*p+4]|dst[6*p+5] != 0 {
				t.Errorf("half %d pixel %d: levelsRow32AVX2 planes %x, want %x %x %x at bit %d", half, p, dst[6*p:6*p+6], w0, w1, w2, sh)
			}
		}
	}
}
