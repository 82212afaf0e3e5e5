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
