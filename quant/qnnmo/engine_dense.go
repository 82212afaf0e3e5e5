package qnnmo

import (
	"math/bits"

	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// convRows3x16 is convRowsDense for the usual first engine layer: 3x3 taps, pad 1, 16
// input channels with zero padding lanes (144 window bits in 3 words). The window slides
// along the row: per window row and plane a 48-bit register holds the three taps, 16 bits
// each, and each step shifts one pixel in instead of gathering nine.
func (l *engineLayer) convRows3x16(in, out []uint64, r0, r1 int) {
	dim := l.inDim
	gout := offload.Lanes(l.outCh)
	if l.vw == 32 && l.outCh%32 == 0 {
		// The row kernel: the row's windows and totals are gathered first.
		rowX, rowTot, zero := make([]uint64, 9*dim), make([]int, dim), make([]uint64, 3*dim)
		for r := r0; r < r1; r++ {
			rowWindows3x16(in, zero, dim, r, rowX, rowTot)
			row := out[3*r*dim*gout : 3*(r+1)*dim*gout]
			for o0 := 0; o0 < l.outCh; o0 += 32 {
				levelsRow32(&rowX[0], &rowTot[0], dim, &l.wvDense[o0*3], &l.thrV[7*o0], &l.invV[o0], &row[3*(o0/64)], 24*gout, o0%64/32)
			}
		}
		return
	}
	var x [9]uint64
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
			total := 0
			for b := 0; b < 3; b++ {
				// Taps in engine order: bit 16(3i+j) of the 144-bit window.
				w0 := g[0][b] | g[1][b]<<48
				w1 := g[1][b]>>16 | g[2][b]<<32
				w2 := g[2][b] >> 32
				x[b], x[3+b], x[6+b] = w0, w1, w2
				total += (bits.OnesCount64(w0) + bits.OnesCount64(w1) + bits.OnesCount64(w2)) << b
			}
			dst := out[3*(r*dim+c)*gout : 3*(r*dim+c+1)*gout]
			if l.vw == 0 && !use32 {
				l.outputs3(x[:], total, dst)
			} else {
				l.outputs(x[:], l.wDense, l.wvDense, 3, total, dst)
			}
		}
	}
}

// rowWindows3x16 gathers the windows of output row r for levelsRow32 (9 words per pixel
// into x, their level totals into tot), sliding like convRows3x16 with the window held
// in locals; zero is a row of zero planes standing for rows outside the map.
func rowWindows3x16(in, zero []uint64, dim, r int, x []uint64, tot []int) {
	var rows [3][]uint64
	for i := range rows {
		rows[i] = zero
		if rr := r + i - 1; rr >= 0 && rr < dim {
			rows[i] = in[3*rr*dim : 3*(rr+1)*dim]
		}
	}
	a, b, c := rows[0][:3*dim], rows[1][:3*dim], rows[2][:3*dim]
	x, tot = x[:9*dim], tot[:dim]
	// Window row i, plane p in gip: taps j = 0..2 at bits 16j (column c-1+j).
	var g00, g01, g02, g10, g11, g12, g20, g21, g22 uint64
	for col := 0; col < dim; col++ {
		// Shift column col+1 in (zeros past the map).
		var a0, a1, a2, b0, b1, b2, c0, c1, c2 uint64
		if n := col + 1; n < dim {
			a0, a1, a2 = a[3*n], a[3*n+1], a[3*n+2]
			b0, b1, b2 = b[3*n], b[3*n+1], b[3*n+2]
			c0, c1, c2 = c[3*n], c[3*n+1], c[3*n+2]
		}
		if col == 0 {
			// Column -1 is zero; column 0 enters first.
			g00, g01, g02 = a[0]<<32, a[1]<<32, a[2]<<32
			g10, g11, g12 = b[0]<<32, b[1]<<32, b[2]<<32
			g20, g21, g22 = c[0]<<32, c[1]<<32, c[2]<<32
		}
		g00, g01, g02 = g00>>16|a0<<32, g01>>16|a1<<32, g02>>16|a2<<32
		g10, g11, g12 = g10>>16|b0<<32, g11>>16|b1<<32, g12>>16|b2<<32
		g20, g21, g22 = g20>>16|c0<<32, g21>>16|c1<<32, g22>>16|c2<<32
		// Taps in engine order: bit 16(3i+j) of the 144-bit window, per plane.
		w := (*[9]uint64)(x[9*col : 9*col+9])
		w[0], w[3], w[6] = g00|g10<<48, g10>>16|g20<<32, g20>>32
		w[1], w[4], w[7] = g01|g11<<48, g11>>16|g21<<32, g21>>32
		w[2], w[5], w[8] = g02|g12<<48, g12>>16|g22<<32, g22>>32
		tot[col] = bits.OnesCount64(w[0]) + bits.OnesCount64(w[3]) + bits.OnesCount64(w[6]) +
			2*(bits.OnesCount64(w[1])+bits.OnesCount64(w[4])+bits.OnesCount64(w[7])) +
			4*(bits.OnesCount64(w[2])+bits.OnesCount64(w[5])+bits.OnesCount64(w[8]))
	}
}
