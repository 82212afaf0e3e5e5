//go:build arm

package agent

import "golang.org/x/sys/cpu"

// haveNEON says whether the NEON YUYV conversions may run (the PYNQ-Z2's Cortex-A9 has
// NEON).
var haveNEON = cpu.ARM.HasNEON

// yuyvPlanarNEON is Planar's loop over 16n pixels of one row (src is 32n bytes).
//
//go:noescape
func yuyvPlanarNEON(rp, gp, bp *float32, src *uint8, n int)

// yuyvYCbCrNEON is YCbCr's loop over 16n pixels of one row (src is 32n bytes).
//
//go:noescape
func yuyvYCbCrNEON(y, cb, cr *uint8, src *uint8, n int)
