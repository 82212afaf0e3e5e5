//go:build !arm

package agent

// haveNEON is false off ARM: the Go loops run.
var haveNEON = false

func yuyvPlanarNEON(rp, gp, bp *float32, src *uint8, n int) {
	panic("agent: NEON kernel called off ARM")
}
func yuyvYCbCrNEON(y, cb, cr *uint8, src *uint8, n int) { panic("agent: NEON kernel called off ARM") }
