//go:build !arm

package jpegenc

// haveNEON is false off ARM: the Go loop runs.
var haveNEON = false

func quantizeNEON(blk, recip *[64]int32) { panic("jpegenc: NEON kernel called off ARM") }
