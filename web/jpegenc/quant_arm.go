//go:build arm

package jpegenc

import "golang.org/x/sys/cpu"

// haveNEON says whether quantizeNEON may run (the PYNQ-Z2's Cortex-A9 has NEON).
var haveNEON = cpu.ARM.HasNEON

// quantizeNEON is quantizeBlock four coefficients at a time, with the same integer
// arithmetic.
//
//go:noescape
func quantizeNEON(blk, recip *[64]int32)
