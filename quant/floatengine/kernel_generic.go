//go:build !amd64 || (purego && !goexperiment.simd)

package floatengine

import "github.com/fpgadetector/pynq-agent/quant"

// mr and nr are the rows and columns of a register tile (and of an A and a B panel).
const (
	mr = 4
	nr = 2
)

// KernelName says which GEMM micro-kernel this build runs.
func KernelName() string { return "scalar 4x2" }

// macroKernel multiplies one packed block: rows [ic, iend) of A (depths [pc, pc+kc))
// times the ncp/nr packed B panels in buf, into C columns [jc, jc+nc), register tile by
// register tile. accumulate (pc > 0) adds to C; last applies bias and the fused
// activation.
func macroKernel(a *PackedA, pc, kc int, buf []float32, ncp, nc int, c []float32, ldc, jc, ic, iend int, last bool, bias []float32, act quant.Activation) {
	slope, _ := slopeOf(act) // gemmTile passes only linear, leaky or relu
	for jr := 0; jr < ncp; jr += nr {
		bp := buf[jr*kc : jr*kc+kc*nr]
		cols := min(nr, nc-jr)
		for ir := ic; ir < iend; ir += mr {
			ap := a.panel(ir, pc, kc)
			c00, c01, c10, c11, c20, c21, c30, c31 := kernel4x2(ap, bp)
			o := ir*ldc + jc + jr
			if iend-ir < mr || cols < nr {
				storeEdge(c[o:], ldc, min(mr, iend-ir), cols, [mr * nr]float32{c00, c01, c10, c11, c20, c21, c30, c31},
					pc > 0, last, bias, ir, act)
				continue
			}
			cc := c[o : o+3*ldc+2]
			if pc > 0 {
				c00 += cc[0]
				c01 += cc[1]
				c10 += cc[ldc]
				c11 += cc[ldc+1]
				c20 += cc[2*ldc]
				c21 += cc[2*ldc+1]
				c30 += cc[3*ldc]
				c31 += cc[3*ldc+1]
			}
			if last {
				if bias != nil {
					b := bias[ir : ir+4]
					c00 += b[0]
					c01 += b[0]
					c10 += b[1]
					c11 += b[1]
					c20 += b[2]
					c21 += b[2]
					c30 += b[3]
					c31 += b[3]
				}
				if slope != 1 { // max(v, slope*v): leaky (0.1) or relu (0), without branches
					c00, c01, c10, c11 = max(c00, slope*c00), max(c01, slope*c01), max(c10, slope*c10), max(c11, slope*c11)
					c20, c21, c30, c31 = max(c20, slope*c20), max(c21, slope*c21), max(c30, slope*c30), max(c31, slope*c31)
				}
			}
			cc[0], cc[1] = c00, c01
			cc[ldc], cc[ldc+1] = c10, c11
			cc[2*ldc], cc[2*ldc+1] = c20, c21
			cc[3*ldc], cc[3*ldc+1] = c30, c31
		}
	}
}

// kernel4x2 returns the 4x2 tile a^T b over the packed panels a (kc*4) and b (kc*2).
// The k loop is unrolled eight times: Go does not unroll, and the loop bookkeeping
// otherwise costs as much as the arithmetic (measured: 7 -> 11.5 GFLOP/s on one core).
func kernel4x2(a, b []float32) (c00, c01, c10, c11, c20, c21, c30, c31 float32) {
	for len(a) >= 32 && len(b) >= 16 {
		b0, b1 := b[0], b[1]
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[2], b[3]
		a0, a1, a2, a3 = a[4], a[5], a[6], a[7]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[4], b[5]
		a0, a1, a2, a3 = a[8], a[9], a[10], a[11]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[6], b[7]
		a0, a1, a2, a3 = a[12], a[13], a[14], a[15]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[8], b[9]
		a0, a1, a2, a3 = a[16], a[17], a[18], a[19]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[10], b[11]
		a0, a1, a2, a3 = a[20], a[21], a[22], a[23]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[12], b[13]
		a0, a1, a2, a3 = a[24], a[25], a[26], a[27]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		b0, b1 = b[14], b[15]
		a0, a1, a2, a3 = a[28], a[29], a[30], a[31]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		a = a[32:]
		b = b[16:]
	}
	for len(a) >= 4 && len(b) >= 2 {
		b0, b1 := b[0], b[1]
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		a = a[4:]
		b = b[2:]
	}
	return
}

// depthwise3x3Vec computes no outputs in builds without SIMD; see the simd build.
func depthwise3x3Vec(dst, a, b, c []float32, k *[9]float32, bias, slope float32) int { return 0 }
