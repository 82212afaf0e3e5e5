//go:build !arm

package qnnmo

// haveNEON is false off ARM: the Go loops run.
var haveNEON = false

func levels16NEON(w, col *float32, n int, bounds *[7][16]float32, out *[16]int32) {
	panic("qnn: NEON kernel called off ARM")
}

func dot16IdxNEON(w *float32, idx *int32, val *float32, n int, out *[16]float32) {
	panic("qnn: NEON kernel called off ARM")
}

func levels16PackNEON(w, col *float32, n int, bounds *[7][16]float32, shifts *[8]int32, out *[2]uint32) {
	panic("qnn: NEON kernel called off ARM")
}

func levels16RowNEON(w, win *float32, rowBytes, planeBytes int, bounds *[7][16]float32, shifts *[8]int32, dst *byte, dstStride, n, winStep int) {
	panic("qnn: NEON kernel called off ARM")
}
