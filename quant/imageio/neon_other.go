//go:build !arm

package imageio

// haveNEON is false off ARM: the Go loop runs.
var haveNEON = false

func blendRowsNEON(dst, top, bottom *float32, n int, a, b float32) {
	panic("imageio: NEON kernel called off ARM")
}

func lerpColsNEON(dst, src *float32, ix *int32, rx, dx *float32, n int) {
	panic("imageio: NEON kernel called off ARM")
}

func idctSTBNEON(coef, quant *[64]int32, out *uint8, stride int, consts *[12]int32) {
	panic("imageio: NEON kernel called off ARM")
}

func rgbaPlanarNEON(rp, gp, bp *float32, src *uint8, n int) {
	panic("imageio: NEON kernel called off ARM")
}

func stbYCbCrNEON(o, y, cb, cr *uint8, n int) { panic("imageio: NEON kernel called off ARM") }

func stbHV2NEON(dst, near, far *uint8, k int) { panic("imageio: NEON kernel called off ARM") }
