package bitstream

import (
	"math/bits"
	"unsafe"
)

// SwapWords reverses the bytes of every 32-bit word of b in place; a trailing partial
// word (len(b) % 4 bytes) is left as is.
//
// Why unsafe: this runs over 4 MB on a 650 MHz Cortex-A9, where the Go compiler does not
// merge byte loads (encoding/binary costs 8 byte loads, 8 byte stores and a dozen ORs per
// 8 bytes). Viewing an aligned buffer as []uint32 gives one LDR, REV, STR per word.
// Reversing a word's bytes does not depend on the host's byte order. See BenchmarkSwapWords.
func SwapWords(b []byte) {
	n := len(b) &^ 3
	if n == 0 {
		return
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		swapWordsBytewise(b[:n])
		return
	}
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n/4)
	for i, w := range words {
		words[i] = bits.ReverseBytes32(w)
	}
}

// swapWordsBytewise is the portable path for unaligned buffers (len(b) % 4 == 0).
func swapWordsBytewise(b []byte) {
	for i := 0; i+4 <= len(b); i += 4 {
		w := b[i : i+4 : i+4]
		w[0], w[1], w[2], w[3] = w[3], w[2], w[1], w[0]
	}
}
