//go:build arm

package imageio

import "golang.org/x/sys/cpu"

// haveNEON says whether the NEON kernels may run (the PYNQ-Z2's Cortex-A9 has NEON).
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

// idctSTBNEON is idctSTB for a whole block; coef is scratch. consts is stbIDCTConsts.
//
//go:noescape
func idctSTBNEON(coef, quant *[64]int32, out *uint8, stride int, consts *[12]int32)

// rgbaPlanarNEON is FromRGBA's loop over 8n pixels of a row.
//
//go:noescape
func rgbaPlanarNEON(rp, gp, bp *float32, src *uint8, n int)

// stbYCbCrNEON is stbYCbCrRow over 8n pixels.
//
//go:noescape
func stbYCbCrNEON(o, y, cb, cr *uint8, n int)

// stbHV2NEON is stbHV2's loop for i = 1..8k (dst is &dst[1]; it reads near and far up
// to index 8k).
//
//go:noescape
func stbHV2NEON(dst, near, far *uint8, k int)
