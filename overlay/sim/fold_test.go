package sim

import (
	"math/rand/v2"
	"testing"
)

// TestFoldLevelsGo compares foldLevelsGo with the definition, bit by bit, for the
// published 32 PEs and a PE count that leaves a remainder after groups of four.
func TestFoldLevelsGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, pes := range []int{32, 6} {
		for trial := 0; trial < 300; trial++ {
			n := 1 + rng.IntN(20)
			x, w := make([]uint64, 3*n), make([]uint64, pes*n)
			for i := range x {
				x[i] = rng.Uint64()
			}
			for i := range w {
				w[i] = rng.Uint64()
			}
			total := rng.IntN(1 << 18)
			thr, want := make([]int16, tmemRows*pes), make([]uint8, pes)
			for p := 0; p < pes; p++ {
				acc := int16(total - 2*dot(x, w, p, pes)) // the 16-bit MAC register
				for i := 0; i < 7; i++ {
					thr[i*pes+p] = acc + int16(rng.IntN(5)-2)
					if thr[i*pes+p] <= acc {
						want[p]++
					}
				}
				if rng.IntN(2) == 0 {
					thr[7*pes+p] = 7
					want[p] = 7 - want[p]
				}
			}
			got := make([]uint8, pes)
			foldLevelsGo(x, w, total, thr, got)
			if string(got) != string(want) {
				t.Fatalf("%d PEs, trial %d: levels %v, want %v", pes, trial, got, want)
			}
		}
	}
}

// dot is PE p's d = sum over q of sum_b 2^b popcount(x[3q+b] & w[q*pes+p]), bit by bit.
func dot(x, w []uint64, p, pes int) int {
	d := 0
	for q := 0; q < len(w)/pes; q++ {
		for bit := 0; bit < 64; bit++ {
			if w[q*pes+p]>>bit&1 == 1 {
				d += int(x[3*q]>>bit&1) + 2*int(x[3*q+1]>>bit&1) + 4*int(x[3*q+2]>>bit&1)
			}
		}
	}
	return d
}

// TestWriteRecord compares writeRecord with the record format bit by bit, for channel
// counts with and without a remainder after groups of eight.
func TestWriteRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, ch := range []int{1, 7, 8, 21, 32, 64, 100, 512} {
		levels := make([]uint8, ch)
		for i := range levels {
			levels[i] = uint8(rng.IntN(8))
		}
		rec := make([]byte, 192)
		for i := range rec {
			rec[i] = 0xA5 // stale bytes must be cleared
		}
		writeRecord(rec, levels)
		for bit := 0; bit < 8*len(rec); bit++ {
			want := 0
			if o := bit / 3; o < ch {
				want = int(levels[o]) >> (bit % 3) & 1
			}
			if got := int(rec[bit/8]) >> (bit % 8) & 1; got != want {
				t.Fatalf("%d channels: record bit %d is %d, want %d", ch, bit, got, want)
			}
		}
	}
}

// TestMaxLevels compares maxLevels with max on every pair of levels.
func TestMaxLevels(t *testing.T) {
	var a, b []uint8
	for x := uint8(0); x < 8; x++ {
		for y := uint8(0); y < 8; y++ {
			a, b = append(a, x), append(b, y)
		}
	}
	a, b = append(a, 3), append(b, 5) // a remainder after groups of eight
	got := append([]uint8(nil), a...)
	maxLevels(got, b)
	for i := range got {
		if got[i] != max(a[i], b[i]) {
			t.Fatalf("max(%d, %d) = %d", a[i], b[i], got[i])
		}
	}
}
