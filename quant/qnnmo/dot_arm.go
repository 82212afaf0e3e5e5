//go:build arm

package qnnmo

import "golang.org/x/sys/cpu"

// haveNEON says whether the NEON kernel may run: the PYNQ-Z2's Cortex-A9 has NEON, some
// ARMv7 cores do not (they take the Go loops).
var haveNEON = cpu.ARM.HasNEON

// levels16NEON is levels16 with NEON: four lanes a register; VMLA.F32 by scalar rounds
// the product before it adds, as Go's s += w*v does, and VCGE.F32 compares as Go's >=,
// so the levels are levels16's exactly (no denormals arise from weights and [0,1]
// pixels; NEON would flush them). n >= 1.
//
//go:noescape
func levels16NEON(w, col *float32, n int, bounds *[7][16]float32, out *[16]int32)

// dot16IdxNEON is dot16Idx with NEON (the same rounding as the Go loop). n >= 0.
//
//go:noescape
func dot16IdxNEON(w *float32, idx *int32, val *float32, n int, out *[16]float32)

// levels16PackNEON is levels16NEON with the levels packed as a record's first six bytes
// want them (see packed16). shifts must hold 0, 3, ..., 21.
//
//go:noescape
func levels16PackNEON(w, col *float32, n int, bounds *[7][16]float32, shifts *[8]int32, out *[2]uint32)

// levels16RowNEON is levels16PackNEON for n 3x3 windows of three planes read in place
// (win the first one's top-left value in plane 0, rows rowBytes and planes planeBytes
// apart, windows winStep bytes apart), writing each pixel's levels as putPacked16 would
// into records dstStride bytes apart from dst (records of at least 8 bytes).
//
//go:noescape
func levels16RowNEON(w, win *float32, rowBytes, planeBytes int, bounds *[7][16]float32, shifts *[8]int32, dst *byte, dstStride, n, winStep int)
