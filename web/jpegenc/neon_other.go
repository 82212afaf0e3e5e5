//go:build !arm

package jpegenc

// haveNEON is false off ARM: the Go loop runs.
var haveNEON = false

func quantizeNEON(blk, recip *[64]int32)            { panic("jpegenc: NEON kernel called off ARM") }
func fdctNEON(d *[64]int32)                         { panic("jpegenc: NEON kernel called off ARM") }
func loadNEON(blk *[64]int32, p *uint8, stride int) { panic("jpegenc: NEON kernel called off ARM") }
