//go:build arm

package imageio

import "golang.org/x/sys/cpu"

// haveNEON says whether the NEON row blend may run (the PYNQ-Z2's Cortex-A9 has NEON).
var haveNEON = cpu.ARM.HasNEON

// blendRowsNEON is blendRows for n a multiple of 4: VMUL.F32 then VMLA.F32 by scalar,
// each rounding its product as Go does, so the rows are blendRows's bit for bit.
//
//go:noescape
func blendRowsNEON(dst, top, bottom *float32, n int, a, b float32)

// lerpColsNEON is the horizontal resize pass over n columns (a multiple of 4), as the
// Go loop computes it.
//
//go:noescape
func lerpColsNEON(dst, src *float32, ix *int32, rx, dx *float32, n int)
