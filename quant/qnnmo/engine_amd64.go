//go:build amd64 && !purego

package qnnmo

import "golang.org/x/sys/cpu"

// On amd64 CPUs with AVX-512 VPOPCNTQ the engine's dot products run in assembly
// (engine_amd64.s): eight output channels per vector, 32 per call, each window word
// broadcast once for the 32 channels. CPUs with AVX2 but not AVX-512 run the same
// three functions, which jump to AVX2 versions (VPSHUFB nibble popcounts, 16 channels
// per pass). Other CPUs run the scalar POPCNT kernel or the Go kernels.

// useVPOPCNT selects the AVX-512 kernel, useAVX2 the AVX2 kernel where useVPOPCNT is
// off (levels32, levels32s and levelsRow32 read useVPOPCNT at every call to pick one),
// usePOPCNT the scalar POPCNT kernel for the other CPUs (Go's bits.OnesCount64 checks the CPU feature at every call unless built
// with GOAMD64=v2 or later; the checks' call paths make the compiler spill the
// accumulators). usePEXT selects PEXT for records to planes only where AVX-512 is
// there too: AMD before Zen 3 has BMI2 but microcodes PEXT (hundreds of cycles), and
// every CPU with AVX-512 runs it in one cycle; the lookup table is the fallback. Tests
// switch them off to check the Go paths.
var (
	useVPOPCNT = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ
	useAVX2    = cpu.X86.HasAVX2 && !useVPOPCNT
	usePOPCNT  = cpu.X86.HasPOPCNT
	usePEXT    = cpu.X86.HasBMI2 && cpu.X86.HasAVX512F
)

// levels32 computes the levels of 32 output channels of one pixel and returns their
// plane bits (channel j at bit j of p0, p1, p2): d_j = sum over q < sf of
// sum_b 2^b popcount(x[3q+b] & w[32q+j]), acc = int16(total - 2 d_j), level =
// count(acc >= thr[32i+j], i < 7) ^ inv[j]. The weights are interleaved (word q of
// channel j at w[32q+j]), thresholds and invert masks laid out by thresholds32. sf must
// be at least 1. Implemented in engine_amd64.s.
//
//go:noescape
func levels32(x *uint64, w *uint64, sf int, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)

// levels32s is levels32 over a window given as nseg segments of plane words read in
// place (see seg32). Implemented in engine_amd64.s.
//
//go:noescape
func levels32s(segs *seg32, nseg int, w *uint64, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)

// levelsRow32 is levels32 for n pixels of a 3-word window (the dense first layer): x
// holds 9 words per pixel, tot their level totals, w the 32 channels' 3 weight words
// interleaved by interleaveRow; each pixel's plane bits go to the 32-bit half (half 0
// low, 1 high) of its three plane words at dst, the pixels dstStride bytes apart.
// Implemented in engine_amd64.s.
//
//go:noescape
func levelsRow32(x *uint64, tot *int, n int, w *uint64, thr *int16, inv *int16, dst *uint64, dstStride int, half int)

// levels32AVX2, levels32sAVX2 and levelsRow32AVX2 are levels32, levels32s and
// levelsRow32 with AVX2 only, which those jump to when useVPOPCNT is false.
// Implemented in engine_amd64.s.
//
//go:noescape
func levels32AVX2(x *uint64, w *uint64, sf int, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)

//go:noescape
func levels32sAVX2(segs *seg32, nseg int, w *uint64, total int, thr *int16, inv *int16) (p0, p1, p2 uint64)

//go:noescape
func levelsRow32AVX2(x *uint64, tot *int, n int, w *uint64, thr *int16, inv *int16, dst *uint64, dstStride int, half int)

// dotPopcnt4 sets d[j] = sum over q < sf of sum_b 2^b popcount(x[3q+b] & w[4q+j]) for 4
// output channels with interleaved weights (word q of channel j at w[4q+j]). sf must be
// at least 1. Implemented in engine_amd64.s.
//
//go:noescape
func dotPopcnt4(x *uint64, w *uint64, sf int, d *[4]int64)

// popcntDot reports whether this build and CPU run dotPopcnt4.
func popcntDot() bool { return usePOPCNT }

// vectorDot reports whether this build and CPU run levels32 (AVX-512 or AVX2).
func vectorDot() bool { return useVPOPCNT || useAVX2 }

// recordPlanesPEXT converts n 64-channel record chunks (24 bytes each, the first at src,
// srcStride bytes apart) into their three plane words (at dst, dstStride bytes apart)
// with BMI2 PEXT: plane b of channel c is bit 3c+b of the chunk. Implemented in
// engine_amd64.s.
//
//go:noescape
func recordPlanesPEXT(dst *uint64, dstStride int, src *byte, srcStride int, n int)

// pextPlanes reports whether this build and CPU run recordPlanesPEXT.
func pextPlanes() bool { return usePEXT }
