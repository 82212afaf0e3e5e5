package sim

import (
	"math/rand/v2"
	"testing"
)

// foldCase is a random pixel for foldLevels: a window of segments read in place from a
// larger map, folds of PEs with weights, thresholds around the MAC values (ties
// included) and the levels the definition gives, computed bit by bit.
type foldCase struct {
	win  pixelWindow
	w    []uint64
	thr  []int16
	want []uint8
}

func newFoldCase(rng *rand.Rand, pes, folds int, maxTriples int) foldCase {
	seg, segs := 1+rng.IntN(maxTriples), 1+rng.IntN(3)
	stride := 3*seg + 3*rng.IntN(4) // words between segment starts, gaps allowed
	x := make([]uint64, (segs-1)*stride+3*seg+rng.IntN(6))
	full := rng.IntN(4) == 0 // all ones: the largest byte and plane sums
	for i := range x {
		x[i] = rng.Uint64()
		if full {
			x[i] = ^uint64(0)
		}
	}
	win := pixelWindow{x: x, seg: seg, segs: segs, stride: stride}
	n := win.triples()
	c := foldCase{win: win, w: make([]uint64, folds*n*pes), thr: make([]int16, folds*tmemRows*pes), want: make([]uint8, folds*pes)}
	for i := range c.w {
		c.w[i] = rng.Uint64()
		if full {
			c.w[i] = ^uint64(0)
		}
	}
	var triples [][3]uint64 // the window's triples in order
	for s := 0; s < segs; s++ {
		for q := 0; q < seg; q++ {
			at := s*stride + 3*q
			triples = append(triples, [3]uint64{x[at], x[at+1], x[at+2]})
		}
	}
	total := 0
	for _, t := range triples {
		total += bitDot(t, ^uint64(0))
	}
	for f := 0; f < folds; f++ {
		for p := 0; p < pes; p++ {
			d := 0
			for q, t := range triples {
				d += bitDot(t, c.w[(f*n+q)*pes+p])
			}
			acc := int16(total - 2*d) // the 16-bit MAC register
			o, row := f*pes+p, f*tmemRows*pes+p
			for i := 0; i < 7; i++ {
				t := int16(rng.IntN(1<<16) - 1<<15)
				if rng.IntN(3) != 0 {
					t = acc + int16(rng.IntN(5)-2)
				}
				c.thr[row+i*pes] = t
				if acc >= t {
					c.want[o]++
				}
			}
			if rng.IntN(2) == 0 {
				c.thr[row+7*pes] = 7
				c.want[o] = 7 - c.want[o]
			}
		}
	}
	return c
}

// bitDot is sum_b 2^b (number of lanes with bit b of their level and weight bit 1), bit
// by bit.
func bitDot(t [3]uint64, w uint64) int {
	d := 0
	for bit := 0; bit < 64; bit++ {
		if w>>bit&1 == 1 {
			d += int(t[0]>>bit&1) + 2*int(t[1]>>bit&1) + 4*int(t[2]>>bit&1)
		}
	}
	return d
}

// TestFoldLevelsGo compares foldLevelsGo with the definition for the published 32 PEs
// and a PE count that leaves a remainder after groups of four.
func TestFoldLevelsGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, pes := range []int{32, 6} {
		for trial := 0; trial < 300; trial++ {
			c := newFoldCase(rng, pes, 1+rng.IntN(3), 12)
			got := make([]uint8, len(c.want))
			foldLevelsGo(&c.win, pes, c.w, c.thr, got)
			if string(got) != string(c.want) {
				t.Fatalf("%d PEs, trial %d: levels %v, want %v", pes, trial, got, c.want)
			}
		}
	}
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

// TestMaxLevels4 compares maxLevels4 with max on every four levels.
func TestMaxLevels4(t *testing.T) {
	var a, b, c, d []uint8
	for i := 0; i < 8*8*8*8; i++ {
		a, b, c, d = append(a, uint8(i&7)), append(b, uint8(i>>3&7)), append(c, uint8(i>>6&7)), append(d, uint8(i>>9))
	}
	a, b, c, d = append(a, 3), append(b, 5), append(c, 0), append(d, 1) // a remainder after groups of eight
	got := make([]uint8, len(a))
	maxLevels4(got, a, b, c, d)
	for i := range got {
		if got[i] != max(a[i], b[i], c[i], d[i]) {
			t.Fatalf("max(%d, %d, %d, %d) = %d", a[i], b[i], c[i], d[i], got[i])
		}
	}
}
