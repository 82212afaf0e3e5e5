//go:build arm

package jpegenc

import "golang.org/x/sys/cpu"

// haveNEON says whether the NEON kernels may run (the PYNQ-Z2's Cortex-A9 has NEON).
var haveNEON = cpu.ARM.HasNEON

// quantizeNEON is quantizeBlock four coefficients at a time, with the same integer
// arithmetic.
//
//go:noescape
func quantizeNEON(blk, recip *[64]int32)

// fdctNEON is fdct (fdctGo: rows then columns) four lanes at a time, with the same integer
// arithmetic.
//
//go:noescape
func fdctNEON(d *[64]int32)

// loadNEON is load for a block inside its plane (no edge to repeat): p is its first
// sample.
//
//go:noescape
func loadNEON(blk *[64]int32, p *uint8, stride int)
