//go:build amd64 && !purego && !goexperiment.simd

package floatengine

// The default amd64 build runs the GEMM on an assembly micro-kernel (gemm_amd64.s):
// AVX2+FMA, a 4x24 register tile (12 ymm accumulators: 4 rows x 3 vectors of 8
// columns), A values broadcast, B panels loaded 24 columns at a time, the k loop
// innermost. B panels are 24 columns wide, so the vectors run along the output pixels and
// the A panels stay 4 rows (darknet's filter counts are multiples of 4 or 8, rarely 16).
// Full tiles are stored by the kernel with the bias and linear/leaky/relu fused; edge
// tiles go through a scratch tile and storeEdge. CPUs without AVX2 or FMA run the same
// packing with a scalar Go kernel.

import (
	"golang.org/x/sys/cpu"

	"github.com/fpgadetector/pynq-agent/quant"
)

// mr and nr are the rows and columns of a register tile (and of an A and a B panel).
const (
	mr = 4
	nr = 24
)

// useAVX2 selects the assembly kernels; tests switch it off to check the Go fallback.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// winogradPays says whether 3x3 stride-1 convolutions take the Winograd path. Not with
// the assembly GEMM: its scalar transforms then cost more than the multiplications they
// save (Tinier-YOLO 416: 82 CPU-ms per image with Winograd, 64 without).
var winogradPays = !useAVX2

// Flags of gemmKernel4x24: what the kernel does to the tile before storing it.
const (
	kernAccumulate = 1 << iota // add C's previous values (k blocks after the first)
	kernBias                   // add bias[r] to row r
	kernSlope                  // v = max(v, slope*v)
)

// gemmKernel4x24 computes the 4x24 tile t = a^T b of the packed panels a (kc*4 floats)
// and b (kc*24 floats), applies flags and stores it at c (row stride ldc floats). bias
// points to 4 floats. Implemented in gemm_amd64.s.
//
//go:noescape
func gemmKernel4x24(kc int, a, b, c *float32, ldc int, flags int, bias *float32, slope float32)

// KernelName says which GEMM micro-kernel this build runs.
func KernelName() string {
	if useAVX2 {
		return "amd64 assembly AVX2+FMA 4x24"
	}
	return "scalar 4x24 (no AVX2/FMA on this CPU)"
}

// macroKernel multiplies one packed block: rows [ic, iend) of A (depths [pc, pc+kc))
// times the ncp/nr packed B panels in buf, into C columns [jc, jc+nc), register tile by
// register tile. accumulate (pc > 0) adds to C; last applies bias and the fused
// activation.
func macroKernel(a *PackedA, pc, kc int, buf []float32, ncp, nc int, c []float32, ldc, jc, ic, iend int, last bool, bias []float32, act quant.Activation) {
	if !useAVX2 {
		macroKernelGo(a, pc, kc, buf, ncp, nc, c, ldc, jc, ic, iend, last, bias, act)
		return
	}
	slope, _ := slopeOf(act) // gemmTile passes only linear, leaky or relu
	flags := 0
	if pc > 0 {
		flags |= kernAccumulate
	}
	if last {
		if bias != nil {
			flags |= kernBias
		}
		if slope != 1 {
			flags |= kernSlope
		}
	}
	var zero [mr]float32
	var t [mr * nr]float32
	for jr := 0; jr < ncp; jr += nr {
		bp := buf[jr*kc : jr*kc+kc*nr]
		cols := min(nr, nc-jr)
		for ir := ic; ir < iend; ir += mr {
			ap := a.panel(ir, pc, kc)
			o := ir*ldc + jc + jr
			if iend-ir < mr || cols < nr {
				gemmKernel4x24(kc, &ap[0], &bp[0], &t[0], nr, 0, &zero[0], 1)
				storeEdge(c[o:], ldc, min(mr, iend-ir), cols, t, pc > 0, last, bias, ir, act)
				continue
			}
			cc := c[o : o+(mr-1)*ldc+nr] // the kernel writes inside cc only
			bp4 := &zero[0]
			if flags&kernBias != 0 {
				bp4 = &bias[ir : ir+mr][0]
			}
			gemmKernel4x24(kc, &ap[0], &bp[0], &cc[0], ldc, flags, bp4, slope)
		}
	}
}

// macroKernelGo is macroKernel without AVX2: each tile computed in Go, stored by storeEdge.
func macroKernelGo(a *PackedA, pc, kc int, buf []float32, ncp, nc int, c []float32, ldc, jc, ic, iend int, last bool, bias []float32, act quant.Activation) {
	var t [mr * nr]float32
	for jr := 0; jr < ncp; jr += nr {
		bp := buf[jr*kc : jr*kc+kc*nr]
		cols := min(nr, nc-jr)
		for ir := ic; ir < iend; ir += mr {
			kernel4x24Go(a.panel(ir, pc, kc), bp, &t)
			storeEdge(c[ir*ldc+jc+jr:], ldc, min(mr, iend-ir), cols, t, pc > 0, last, bias, ir, act)
		}
	}
}

// kernel4x24Go is the scalar 4x24 tile t (row-major) = a^T b of the packed panels.
func kernel4x24Go(a, b []float32, t *[mr * nr]float32) {
	*t = [mr * nr]float32{}
	for len(a) >= mr && len(b) >= nr {
		bk := b[:nr]
		for r, av := range a[:mr] {
			row := t[r*nr : (r+1)*nr]
			for q, bv := range bk {
				row[q] += av * bv
			}
		}
		a, b = a[mr:], b[nr:]
	}
}

// depthwise3x3Vec computes no outputs: depthwisePlaneVec (depthwise_amd64.go) runs the
// planes it can vectorize before depthwise3x3Row is reached.
func depthwise3x3Vec(dst, a, b, c []float32, k *[9]float32, bias, slope float32) int { return 0 }
