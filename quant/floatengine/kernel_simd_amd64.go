//go:build goexperiment.simd && amd64

package floatengine

// Built with GOEXPERIMENT=simd, the GEMM uses AVX2+FMA through simd/archsimd (still pure
// Go): a 16x2 register tile, two 8-lane vectors of A rows times two broadcast B values,
// four accumulators. A panels are 16 rows; B packing is unchanged.

import (
	"simd/archsimd"

	"github.com/fpgadetector/pynq-agent/quant"
)

// mr and nr are the rows and columns of a register tile (and of an A and a B panel).
const (
	mr = 16
	nr = 2
)

var haveFMA = archsimd.X86.AVX2() && archsimd.X86.FMA()

// KernelName says which GEMM micro-kernel this build runs.
func KernelName() string {
	if haveFMA {
		return "simd/archsimd AVX2+FMA 16x2"
	}
	return "scalar 16x2 (no AVX2/FMA on this CPU)"
}

// macroKernel multiplies one packed block: rows [ic, iend) of A (depths [pc, pc+kc))
// times the ncp/nr packed B panels in buf, into C columns [jc, jc+nc), register tile by
// register tile. accumulate (pc > 0) adds to C; last applies bias and the activation.
func macroKernel(a *PackedA, pc, kc int, buf []float32, ncp, nc int, c []float32, ldc, jc, ic, iend int, last bool, bias []float32, act quant.Activation) {
	var t [mr * nr]float32 // column-major: t[q*mr+r]
	slope, simple := slopeOf(act)
	for jr := 0; jr < ncp; jr += nr {
		bp := buf[jr*kc : jr*kc+kc*nr]
		cols := min(nr, nc-jr)
		for ir := ic; ir < iend; ir += mr {
			ap := a.panel(ir, pc, kc)
			if haveFMA {
				kernel16x2(ap, bp, &t)
			} else {
				kernel16x2Scalar(ap, bp, &t)
			}
			rows := min(mr, iend-ir)
			o := ir*ldc + jc + jr
			cc := c[o:]
			if rows == mr && cols == nr && (!last || simple) {
				storeFull(cc, ldc, &t, pc > 0, last, bias, ir, slope)
				continue
			}
			for q := 0; q < cols; q++ {
				for r := 0; r < rows; r++ {
					v := t[q*mr+r]
					if pc > 0 {
						v += cc[r*ldc+q]
					}
					if last {
						if bias != nil {
							v += bias[ir+r]
						}
						v = activate1(v, act)
					}
					cc[r*ldc+q] = v
				}
			}
		}
	}
}

// kernel16x2 computes the 16x2 tile a^T b of packed panels a (kc*16) and b (kc*2).
func kernel16x2(a, b []float32, t *[mr * nr]float32) {
	var x0, x1, y0, y1 archsimd.Float32x8
	for len(a) >= 32 && len(b) >= 4 {
		a0 := archsimd.LoadFloat32x8Slice(a[0:8])
		a1 := archsimd.LoadFloat32x8Slice(a[8:16])
		b0 := archsimd.BroadcastFloat32x8(b[0])
		b1 := archsimd.BroadcastFloat32x8(b[1])
		x0 = a0.MulAdd(b0, x0)
		x1 = a1.MulAdd(b0, x1)
		y0 = a0.MulAdd(b1, y0)
		y1 = a1.MulAdd(b1, y1)
		a0 = archsimd.LoadFloat32x8Slice(a[16:24])
		a1 = archsimd.LoadFloat32x8Slice(a[24:32])
		b0 = archsimd.BroadcastFloat32x8(b[2])
		b1 = archsimd.BroadcastFloat32x8(b[3])
		x0 = a0.MulAdd(b0, x0)
		x1 = a1.MulAdd(b0, x1)
		y0 = a0.MulAdd(b1, y0)
		y1 = a1.MulAdd(b1, y1)
		a = a[32:]
		b = b[4:]
	}
	for len(a) >= 16 && len(b) >= 2 {
		a0 := archsimd.LoadFloat32x8Slice(a[0:8])
		a1 := archsimd.LoadFloat32x8Slice(a[8:16])
		b0 := archsimd.BroadcastFloat32x8(b[0])
		b1 := archsimd.BroadcastFloat32x8(b[1])
		x0 = a0.MulAdd(b0, x0)
		x1 = a1.MulAdd(b0, x1)
		y0 = a0.MulAdd(b1, y0)
		y1 = a1.MulAdd(b1, y1)
		a = a[16:]
		b = b[2:]
	}
	x0.StoreSlice(t[0:8])
	x1.StoreSlice(t[8:16])
	y0.StoreSlice(t[16:24])
	y1.StoreSlice(t[24:32])
}

// kernel16x2Scalar is kernel16x2 for CPUs without AVX2/FMA.
func kernel16x2Scalar(a, b []float32, t *[mr * nr]float32) {
	*t = [mr * nr]float32{}
	for len(a) >= mr && len(b) >= nr {
		for r, v := range a[:mr] {
			t[r] += v * b[0]
			t[mr+r] += v * b[1]
		}
		a = a[mr:]
		b = b[nr:]
	}
}

// storeFull stores a full 16x2 tile t (column-major) at C (row stride ldc): adding C's
// previous values when accumulate, and when last the row biases and max(v, slope*v).
func storeFull(c []float32, ldc int, t *[mr * nr]float32, accumulate, last bool, bias []float32, row0 int, slope float32) {
	c = c[:(mr-1)*ldc+nr]
	if last && haveFMA {
		x0 := archsimd.LoadFloat32x8Slice(t[0:8])
		x1 := archsimd.LoadFloat32x8Slice(t[8:16])
		y0 := archsimd.LoadFloat32x8Slice(t[16:24])
		y1 := archsimd.LoadFloat32x8Slice(t[24:32])
		if accumulate {
			var p [mr * nr]float32
			for r := 0; r < mr; r++ {
				p[r], p[mr+r] = c[r*ldc], c[r*ldc+1]
			}
			x0 = x0.Add(archsimd.LoadFloat32x8Slice(p[0:8]))
			x1 = x1.Add(archsimd.LoadFloat32x8Slice(p[8:16]))
			y0 = y0.Add(archsimd.LoadFloat32x8Slice(p[16:24]))
			y1 = y1.Add(archsimd.LoadFloat32x8Slice(p[24:32]))
			accumulate = false
		}
		if bias != nil {
			b := bias[row0 : row0+mr]
			b0, b1 := archsimd.LoadFloat32x8Slice(b[0:8]), archsimd.LoadFloat32x8Slice(b[8:16])
			x0, x1, y0, y1 = x0.Add(b0), x1.Add(b1), y0.Add(b0), y1.Add(b1)
		}
		if slope != 1 {
			s := archsimd.BroadcastFloat32x8(slope)
			x0, x1 = x0.Max(x0.Mul(s)), x1.Max(x1.Mul(s))
			y0, y1 = y0.Max(y0.Mul(s)), y1.Max(y1.Mul(s))
		}
		x0.StoreSlice(t[0:8])
		x1.StoreSlice(t[8:16])
		y0.StoreSlice(t[16:24])
		y1.StoreSlice(t[24:32])
		last = false
	}
	for r := 0; r < mr; r++ {
		v0, v1 := t[r], t[mr+r]
		if accumulate {
			v0 += c[r*ldc]
			v1 += c[r*ldc+1]
		}
		if last {
			if bias != nil {
				v0 += bias[row0+r]
				v1 += bias[row0+r]
			}
			v0, v1 = max(v0, slope*v0), max(v1, slope*v1)
		}
		c[r*ldc], c[r*ldc+1] = v0, v1
	}
}

// depthwise3x3Vec computes the first multiple of 8 outputs of a stride-1 3x3 depthwise
// row, dst[i] = max(v, slope*v) with v = bias + the nine taps of rows a, b, c at i..i+2,
// eight outputs per vector, and returns how many it computed.
func depthwise3x3Vec(dst, a, b, c []float32, k *[9]float32, bias, slope float32) int {
	if !haveFMA {
		return 0
	}
	k0, k1, k2 := archsimd.BroadcastFloat32x8(k[0]), archsimd.BroadcastFloat32x8(k[1]), archsimd.BroadcastFloat32x8(k[2])
	k3, k4, k5 := archsimd.BroadcastFloat32x8(k[3]), archsimd.BroadcastFloat32x8(k[4]), archsimd.BroadcastFloat32x8(k[5])
	k6, k7, k8 := archsimd.BroadcastFloat32x8(k[6]), archsimd.BroadcastFloat32x8(k[7]), archsimd.BroadcastFloat32x8(k[8])
	vb, vs := archsimd.BroadcastFloat32x8(bias), archsimd.BroadcastFloat32x8(slope)
	n := 0
	for n+8 <= len(dst) && n+10 <= len(a) && n+10 <= len(b) && n+10 <= len(c) {
		acc := archsimd.LoadFloat32x8Slice(a[n:]).Mul(k0)
		acc = archsimd.LoadFloat32x8Slice(a[n+1:]).MulAdd(k1, acc)
		acc = archsimd.LoadFloat32x8Slice(a[n+2:]).MulAdd(k2, acc)
		acc = archsimd.LoadFloat32x8Slice(b[n:]).MulAdd(k3, acc)
		acc = archsimd.LoadFloat32x8Slice(b[n+1:]).MulAdd(k4, acc)
		acc = archsimd.LoadFloat32x8Slice(b[n+2:]).MulAdd(k5, acc)
		acc = archsimd.LoadFloat32x8Slice(c[n:]).MulAdd(k6, acc)
		acc = archsimd.LoadFloat32x8Slice(c[n+1:]).MulAdd(k7, acc)
		acc = archsimd.LoadFloat32x8Slice(c[n+2:]).MulAdd(k8, acc)
		acc = acc.Add(vb)
		acc = acc.Max(acc.Mul(vs))
		acc.StoreSlice(dst[n:])
		n += 8
	}
	return n
}
