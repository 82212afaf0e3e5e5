package qnn

import "math/bits"

// convRows3x16 is convRowsDense for the usual first engine layer: 3x3 taps, pad 1, 16
// input channels with zero padding lanes (144 window bits in 3 words). The window slides
// along the row: per window row and plane a 48-bit register holds the three taps, 16 bits
// each, and each step shifts one pixel in instead of gathering nine.
func (l *engineLayer) convRows3x16(in, out []uint64, r0, r1 int) {
	dim := l.inDim
	gout := lanes(l.outCh)
	var x [9]uint64
	// With the row kernel the row's windows and totals are gathered first.
	var rowX []uint64
	var rowTot []int
	if l.vw == 32 && l.outCh%32 == 0 {
		rowX, rowTot = make([]uint64, 9*dim), make([]int, dim)
	}
	for r := r0; r < r1; r++ {
		var g [3][3]uint64 // window row i, plane b: tap j at bits 16j
		var rowAt [3]int   // plane index of the row's first pixel, -1 outside the map
		for i := range rowAt {
			rowAt[i] = -1
			if rr := r + i - 1; rr >= 0 && rr < dim {
				rowAt[i] = 3 * rr * dim
			}
		}
		// push shifts column col (zeros outside the map) in as tap 2.
		push := func(col int) {
			for i := range g {
				var v0, v1, v2 uint64
				if rowAt[i] >= 0 && col < dim {
					p := in[rowAt[i]+3*col : rowAt[i]+3*col+3]
					v0, v1, v2 = p[0], p[1], p[2]
				}
				g[i][0] = g[i][0]>>16 | v0<<32
				g[i][1] = g[i][1]>>16 | v1<<32
				g[i][2] = g[i][2]>>16 | v2<<32
			}
		}
		push(0) // column -1 stays zero
		for c := 0; c < dim; c++ {
			push(c + 1)
			xs := &x
			if rowX != nil {
				xs = (*[9]uint64)(rowX[9*c : 9*c+9])
			}
			total := 0
			for b := 0; b < 3; b++ {
				// Taps in engine order: bit 16(3i+j) of the 144-bit window.
				w0 := g[0][b] | g[1][b]<<48
				w1 := g[1][b]>>16 | g[2][b]<<32
				w2 := g[2][b] >> 32
				xs[b], xs[3+b], xs[6+b] = w0, w1, w2
				total += (bits.OnesCount64(w0) + bits.OnesCount64(w1) + bits.OnesCount64(w2)) << b
			}
			if rowX != nil {
				rowTot[c] = total
				continue
			}
			dst := out[3*(r*dim+c)*gout : 3*(r*dim+c+1)*gout]
			if l.vw == 0 && !use32 {
				l.outputs3(x[:], total, dst)
			} else {
				l.outputs(x[:], l.wDense, l.wvDense, 3, total, dst)
			}
		}
		if rowX != nil {
			row := out[3*r*dim*gout : 3*(r+1)*dim*gout]
			for o0 := 0; o0 < l.outCh; o0 += 32 {
				levelsRow32(&rowX[0], &rowTot[0], dim, &l.wvDense[o0*3], &l.thrV[7*o0], &l.invV[o0], &row[3*(o0/64)], 24*gout, o0%64/32)
			}
		}
	}
}
