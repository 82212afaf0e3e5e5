package floatengine

import "github.com/fpgadetector/pynq-agent/quant"

// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions: each 2x2 output tile comes from a
// 4x4 input tile with 16 multiplications per channel pair instead of 36. The 16
// element-wise products summed over input channels are 16 GEMMs (filters x channels
// times channels x tiles), which run on the packed GEMM above. Transforms:
//
//	V = Bt d B   Bt = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//	U = G g Gt   G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//	Y = At M A   At = [1 1 1 0; 0 1 -1 -1]
//
// Input and output transforms only add and subtract, so results stay within float
// rounding of the direct convolution.

// winogradMinChannels is the smallest per-group channel count (in and out) for which
// Winograd pays for its transforms.
const winogradMinChannels = 8

// useWinograd says whether a convolution takes the Winograd path.
func useWinograd(c *quant.Conv, inC int) bool {
	return winogradPays && c.Size == 3 && c.Stride == 1 && !c.XNOR &&
		inC/c.Groups >= winogradMinChannels && c.Filters/c.Groups >= winogradMinChannels
}

// winogradFilters transforms folded OIHW 3x3 weights of one group (f filters, c
// channels) into 16 packed f x c matrices U[xi].
func winogradFilters(w []float32, f, c int) [16]*PackedA {
	u := make([][]float32, 16)
	for xi := range u {
		u[xi] = make([]float32, f*c)
	}
	for o := 0; o < f; o++ {
		for ch := 0; ch < c; ch++ {
			g := w[(o*c+ch)*9 : (o*c+ch)*9+9]
			// Gg: 4x3, in float64 so that the halves add no rounding of their own.
			var gg [4][3]float64
			for col := 0; col < 3; col++ {
				g0, g1, g2 := float64(g[col]), float64(g[3+col]), float64(g[6+col])
				gg[0][col], gg[1][col], gg[2][col], gg[3][col] = g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2
			}
			for r := 0; r < 4; r++ {
				x0, x1, x2 := gg[r][0], gg[r][1], gg[r][2]
				row := [4]float64{x0, (x0 + x1 + x2) / 2, (x0 - x1 + x2) / 2, x2}
				for q, v := range row {
					u[r*4+q][o*c+ch] = float32(v)
				}
			}
		}
	}
	var packed [16]*PackedA
	for xi := range packed {
		packed[xi] = PackA(f, c, u[xi], c)
	}
	return packed
}

// winogradTiles is how many output tiles one worker transforms at a time: enough for
// the GEMMs to run at speed, few enough that V and M stay around a few MB.
func winogradTiles(c, f int) int {
	t := (1 << 20) / (16 * (c + f))
	return max(16, min(256, t/nr*nr))
}

// winograd runs the convolution through the Winograd path, in parallel over chunks of
// output tiles.
func (cv *Conv) winograd(in, out []float32, w *Workers) {
	oh, ow := cv.Out.H, cv.Out.W
	tw := (ow + 1) / 2
	tiles := tw * ((oh + 1) / 2)
	cg := cv.In.C / cv.groups
	fg := cv.Out.C / cv.groups
	per := winogradTiles(cg, fg)
	per = min(per, (tiles+w.n-1)/w.n)
	per = roundUp(per, nr)
	chunks := (tiles + per - 1) / per
	w.parallelForWorker(chunks, func(worker, lo, hi int) {
		buf := w.scratch(worker, 16*(cg+fg)*per)
		for ch := lo; ch < hi; ch++ {
			t0 := ch * per
			nt := min(per, tiles-t0)
			v, m := buf[:16*cg*nt], buf[16*cg*nt:16*(cg+fg)*nt]
			for g := 0; g < cv.groups; g++ {
				cv.winogradInput(in[g*cg*cv.In.H*cv.In.W:], cg, t0, nt, tw, v)
				for xi, u := range cv.wino[g] {
					gemmTile(u, denseB(v[xi*cg*nt:], nt), m[xi*fg*nt:(xi+1)*fg*nt], nt, 0, fg, 0, nt, w.bufs[worker], nil)
				}
				cv.winogradOutput(m, g*fg, fg, t0, nt, tw, out)
			}
		}
	})
}

// winogradInput writes V[xi][c][k] = (Bt d B)[xi] for the nt tiles from t0 and the c
// channels of in.
func (cv *Conv) winogradInput(in []float32, c, t0, nt, tw int, v []float32) {
	h, w, pad := cv.In.H, cv.In.W, cv.pad
	plane := h * w
	stride := c * nt // distance between V[xi] and V[xi+1]
	for ch := 0; ch < c; ch++ {
		p := in[ch*plane : (ch+1)*plane]
		for k := 0; k < nt; k++ {
			t := t0 + k
			y0, x0 := 2*(t/tw)-pad, 2*(t%tw)-pad
			var d [4][4]float32
			if y0 >= 0 && x0 >= 0 && y0+4 <= h && x0+4 <= w {
				for r := range 4 {
					copy(d[r][:], p[(y0+r)*w+x0:(y0+r)*w+x0+4])
				}
			} else {
				for r := range 4 {
					if y := y0 + r; y >= 0 && y < h {
						for q := range 4 {
							if x := x0 + q; x >= 0 && x < w {
								d[r][q] = p[y*w+x]
							}
						}
					}
				}
			}
			// Bt d, then (Bt d) B.
			var e [4][4]float32
			for q := range 4 {
				e[0][q] = d[0][q] - d[2][q]
				e[1][q] = d[1][q] + d[2][q]
				e[2][q] = d[2][q] - d[1][q]
				e[3][q] = d[1][q] - d[3][q]
			}
			o := ch*nt + k
			for r := range 4 {
				row := e[r]
				v[o+(r*4+0)*stride] = row[0] - row[2]
				v[o+(r*4+1)*stride] = row[1] + row[2]
				v[o+(r*4+2)*stride] = row[2] - row[1]
				v[o+(r*4+3)*stride] = row[1] - row[3]
			}
		}
	}
}

// winogradOutput turns M[xi][f][k] into the 2x2 output tiles of filters f0..f0+f,
// adding the bias and applying the activation.
func (cv *Conv) winogradOutput(m []float32, f0, f, t0, nt, tw int, out []float32) {
	oh, ow := cv.Out.H, cv.Out.W
	stride := f * nt
	slope, simple := slopeOf(cv.act)
	for o := 0; o < f; o++ {
		plane := out[(f0+o)*oh*ow : (f0+o+1)*oh*ow]
		bias := cv.bias[f0+o]
		for k := 0; k < nt; k++ {
			var x [16]float32
			base := o*nt + k
			for xi := range x {
				x[xi] = m[base+xi*stride]
			}
			// At M: 2x4, then (At M) A: 2x2.
			var a [2][4]float32
			for q := range 4 {
				a[0][q] = x[q] + x[4+q] + x[8+q]
				a[1][q] = x[4+q] - x[8+q] - x[12+q]
			}
			t := t0 + k
			y0, x0 := 2*(t/tw), 2*(t%tw)
			for r := range 2 {
				y := y0 + r
				if y >= oh {
					break
				}
				v0 := a[r][0] + a[r][1] + a[r][2] + bias
				v1 := a[r][1] - a[r][2] - a[r][3] + bias
				if simple {
					v0, v1 = max(v0, slope*v0), max(v1, slope*v1)
				} else {
					v0, v1 = activate1(v0, cv.act), activate1(v1, cv.act)
				}
				plane[y*ow+x0] = v0
				if x0+1 < ow {
					plane[y*ow+x0+1] = v1
				}
			}
		}
	}
}

// activate1 applies an activation to one value.
func activate1(v float32, a quant.Activation) float32 {
	switch a {
	case quant.ActLinear:
		return v
	case quant.ActLeaky:
		return max(v, 0.1*v)
	case quant.ActReLU:
		return max(v, 0)
	case quant.ActLogistic:
		return Logistic(v)
	case quant.ActMish:
		return Mish(v)
	case quant.ActSwish:
		return v * Logistic(v)
	case quant.ActLHTan:
		return LHTan(v)
	}
	return v
}
