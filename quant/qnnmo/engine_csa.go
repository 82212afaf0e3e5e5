package qnnmo

import "math/bits"

// On 32-bit CPUs (the board's Cortex-A9) there is no popcount instruction:
// bits.OnesCount64 is a 64-bit software routine there. dotCSA instead adds each weight
// word's masked planes with carry-save adders into bit-sliced counters and runs a SWAR
// popcount once per word, on the counters' top carry only.

// use32 selects the carry-save kernel; tests switch it on to check it on 64-bit hosts.
var use32 = bits.UintSize == 32

// csa is a carry-save adder: sum and carry bits of a + b + c, lane by lane.
func csa(a, b, c uint32) (sum, carry uint32) {
	u := a ^ b
	return u ^ c, a&b | u&c
}

// byteCounts is the SWAR popcount of v's four bytes, one count (<= 8) per byte.
func byteCounts(v uint32) uint32 {
	v -= v >> 1 & 0x55555555
	v = v&0x33333333 + v>>2&0x33333333
	return (v + v>>4) & 0x0f0f0f0f
}

// byteSum adds the four bytes of v.
func byteSum(v uint32) int {
	v = v&0x00ff00ff + v>>8&0x00ff00ff
	return int(v&0xffff + v>>16)
}

// dotCSA returns sum over q < len(w) of sum_b 2^b popcount(x[3q+b] & w[q]) for one
// output channel, like dotMasked4. The two 32-bit halves of each word are added as two
// words of the same weight; counters s1..s8 hold the running sum's low bits lane by
// lane, the weight-16 carries go through byte counts, summed every 31 words (before a
// byte can overflow).
func dotCSA(x, w []uint64) int {
	x = x[:3*len(w)]
	var s1, s2, s4, s8 uint32
	total16 := 0
	for q0 := 0; q0 < len(w); q0 += 31 {
		ws := w[q0:min(q0+31, len(w))]
		xs := x[3*q0:]
		var bytes16 uint32
		for q, ww := range ws {
			wl, wh := uint32(ww), uint32(ww>>32)
			xa := (*[3]uint64)(xs[3*q:])
			x0, x1, x2 := xa[0], xa[1], xa[2]
			var c2, d4, e4, f8, g8, h16 uint32
			s1, c2 = csa(s1, uint32(x0)&wl, uint32(x0>>32)&wh)
			s2, d4 = csa(s2, uint32(x1)&wl, uint32(x1>>32)&wh)
			s2, e4 = s2^c2, s2&c2
			s4, f8 = csa(s4, uint32(x2)&wl, uint32(x2>>32)&wh)
			s4, g8 = csa(s4, d4, e4)
			s8, h16 = csa(s8, f8, g8)
			bytes16 += byteCounts(h16)
		}
		total16 += byteSum(bytes16)
	}
	// Weighted byte counts of the counters: at most 8+16+32+64 per byte.
	low := byteCounts(s1) + byteCounts(s2)<<1 + byteCounts(s4)<<2 + byteCounts(s8)<<3
	return byteSum(low) + 16*total16
}

// dotCSA3 is dotCSA for a 3-word window (3x3 taps of 16 channels, the dense first
// engine layer), unrolled.
func dotCSA3(x *[9]uint64, w *[3]uint64) int {
	var s1, s2, s4, s8, top uint32
	for q := 0; q < 3; q++ {
		wl, wh := uint32(w[q]), uint32(w[q]>>32)
		x0, x1, x2 := x[3*q], x[3*q+1], x[3*q+2]
		var c2, d4, e4, f8, g8, h16 uint32
		s1, c2 = csa(s1, uint32(x0)&wl, uint32(x0>>32)&wh)
		s2, d4 = csa(s2, uint32(x1)&wl, uint32(x1>>32)&wh)
		s2, e4 = s2^c2, s2&c2
		s4, f8 = csa(s4, uint32(x2)&wl, uint32(x2>>32)&wh)
		s4, g8 = csa(s4, d4, e4)
		s8, h16 = csa(s8, f8, g8)
		top += byteCounts(h16)
	}
	low := byteCounts(s1) + byteCounts(s2)<<1 + byteCounts(s4)<<2 + byteCounts(s8)<<3
	return byteSum(low) + 16*byteSum(top)
}
