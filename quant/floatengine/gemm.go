package floatengine

import "github.com/fpgadetector/pynq-agent/quant"

// The GEMM follows the GotoBLAS scheme: A (weights, constant) is packed once into panels
// of mr rows; B (activations, or their im2col expansion) is packed per block of kcBlock
// rows x ncBlock columns into panels of nr columns; a register-tile micro-kernel runs the
// k loop innermost over one A panel and one B panel. The micro-kernel and mr live in
// kernel_generic.go (scalar 4x2: 8 accumulators, 4 a and 2 b values fit amd64's scalar
// float registers without spills; reslicing removes every bounds check from the k loop)
// kernel_simd_amd64.go (GOEXPERIMENT=simd: AVX2+FMA 16x2) and kernel_asm_amd64.go (the
// default amd64 build: AVX2+FMA assembly, 4x24). Each defines mr and nr (the columns of a
// register tile and of a B panel).

const (
	kcBlock = 256           // depth of a packed block: one B panel (kcBlock*nr floats) stays in L1
	mcBlock = 64            // rows of A swept per B panel: mcBlock*kcBlock floats stay in L2
	ncBlock = 256 / nr * nr // columns of a packed B block (per thread), whole panels
)

// roundUp rounds x up to a multiple of m.
func roundUp(x, m int) int { return (x + m - 1) / m * m }

// bufFloats is the size of one thread's B packing buffer.
const bufFloats = kcBlock * ncBlock

// PackedA is an m x k row-major matrix packed into panels of mr rows (k-major inside a
// panel, rows padded with zeros), the layout the GEMM micro-kernel reads.
type PackedA struct {
	M, K int
	data []float32
}

// PackA packs the m x k matrix a (row stride lda) for [SgemmPacked].
func PackA(m, k int, a []float32, lda int) *PackedA {
	panels := (m + mr - 1) / mr
	p := &PackedA{M: m, K: k, data: make([]float32, panels*mr*k)}
	for i := 0; i < m; i++ {
		row := a[i*lda : i*lda+k]
		panel := p.data[(i/mr)*mr*k:]
		r := i % mr
		for kk, v := range row {
			panel[kk*mr+r] = v
		}
	}
	return p
}

// panel returns the packed rows [i, i+mr) for depths [k0, k0+kc).
func (p *PackedA) panel(i, k0, kc int) []float32 {
	off := (i/mr)*mr*p.K + k0*mr
	return p.data[off : off+kc*mr]
}

// bSource produces blocks of the right-hand matrix B (k x n) packed into panels of nr
// columns: dst[(c/nr)*kc*nr + kk*nr + c%nr] = B[k0+kk][j0+c] for c < nc, and zeros for
// the padding columns up to a multiple of nr. B is either a plain row-major matrix
// (b, ld) or the implicit im2col expansion of an input (col). It is a concrete type, not
// an interface, so that passing one allocates nothing.
type bSource struct {
	b   []float32
	ld  int
	col *im2col // nil: dense
}

// denseB is a plain row-major k x n matrix with row stride ld.
func denseB(b []float32, ld int) bSource { return bSource{b: b, ld: ld} }

func (s *bSource) pack(dst []float32, k0, kc, j0, nc int) {
	if s.col != nil {
		s.col.pack(dst, k0, kc, j0, nc)
		return
	}
	packRows(dst, s.b, s.ld, k0, kc, j0, nc)
}

// packRows packs rows k0.. of a row-major matrix (row stride ld) starting at column j0.
func packRows(dst, src []float32, ld, k0, kc, j0, nc int) {
	full := nc / nr * nr
	step := kc * nr
	for kk := 0; kk < kc; kk++ {
		row := src[(k0+kk)*ld+j0 : (k0+kk)*ld+j0+nc]
		d := dst[kk*nr:]
		if nr == 2 { // the scalar builds: two stores beat a copy call
			for c := 0; c+1 < full && c+1 < len(row); c += nr {
				o := (c / nr) * step
				d[o], d[o+1] = row[c], row[c+1]
			}
		} else {
			for c, o := 0, 0; c < full; c, o = c+nr, o+step {
				copy(d[o:o+nr], row[c:c+nr])
			}
		}
		if full < nc {
			o := (full / nr) * step
			tail := d[o : o+nr]
			copy(tail, row[full:])
			clear(tail[nc-full:])
		}
	}
}

// Epilogue is what a convolution does to the GEMM result: add a per-row bias, then an
// activation. linear, leaky and relu are applied as each register tile is stored; other
// activations run on each finished block of columns while it is still in cache.
type Epilogue struct {
	Bias       []float32 // one per row of C; nil: no bias
	Activation quant.Activation
}

// fused says whether the activation is applied inside the tile store.
func (e *Epilogue) fused() bool {
	return e.Activation == "" || e.Activation == quant.ActLinear || e.Activation == quant.ActLeaky || e.Activation == quant.ActReLU
}

// gemmTile computes rows [m0, m1) and columns [n0, n1) of C = A*B (C row stride ldc),
// overwriting C, then applies ep (if not nil). m0 must be a multiple of mr. buf holds at
// least bufFloats values.
func gemmTile(a *PackedA, src bSource, c []float32, ldc, m0, m1, n0, n1 int, buf []float32, ep *Epilogue) {
	k := a.K
	var bias []float32
	act := quant.ActLinear
	if ep != nil {
		bias = ep.Bias
		if ep.fused() {
			act = ep.Activation
		}
	}
	for jc := n0; jc < n1; jc += ncBlock {
		nc := min(ncBlock, n1-jc)
		ncp := roundUp(nc, nr)
		for pc := 0; pc < k; pc += kcBlock {
			kc := min(kcBlock, k-pc)
			last := pc+kc >= k
			src.pack(buf[:ncp*kc], pc, kc, jc, nc)
			for ic := m0; ic < m1; ic += mcBlock {
				iend := min(ic+mcBlock, m1)
				macroKernel(a, pc, kc, buf, ncp, nc, c, ldc, jc, ic, iend, last, bias, act)
			}
		}
		if ep != nil && !ep.fused() {
			for r := m0; r < m1; r++ {
				Activate(c[r*ldc+jc:r*ldc+jc+nc], ep.Activation)
			}
		}
	}
}

// storeEdge stores a partial register tile (rows x cols of t) the way gemmTile stores
// full ones.
func storeEdge(c []float32, ldc, rows, cols int, t [mr * nr]float32, accumulate, last bool, bias []float32, row0 int, act quant.Activation) {
	for r := 0; r < rows; r++ {
		for q := 0; q < cols; q++ {
			v := t[r*nr+q]
			if accumulate {
				v += c[r*ldc+q]
			}
			if last {
				if bias != nil {
					v += bias[row0+r]
				}
				v = activate1(v, act)
			}
			c[r*ldc+q] = v
		}
	}
}

// tile is one thread's share of an m x n output.
type tile struct{ m0, m1, n0, n1 int }

// splitWork divides an m x n output among up to threads workers: by columns when every
// worker gets a reasonable number of them (so each packs its own B), else by rows.
func splitWork(m, n, threads int, tiles []tile) []tile {
	tiles = tiles[:0]
	const minCols = 32
	switch {
	case threads <= 1:
		tiles = append(tiles, tile{0, m, 0, n})
	case n >= threads*minCols:
		per := roundUp((n+threads-1)/threads, nr)
		for j := 0; j < n; j += per {
			tiles = append(tiles, tile{0, m, j, min(j+per, n)})
		}
	default:
		per := roundUp((m+threads-1)/threads, mr)
		for i := 0; i < m; i += per {
			tiles = append(tiles, tile{i, min(i+per, m), 0, n})
		}
	}
	return tiles
}

// Sgemm computes C = A*B for row-major A (m x k), B (k x n) and C (m x n), overwriting
// C, on up to threads goroutines (0 or less: GOMAXPROCS). It packs A on every call;
// callers with constant A should use [PackA] and [SgemmPacked].
func Sgemm(m, n, k int, a, b, c []float32, threads int) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		clear(c[:m*n])
		return
	}
	SgemmPacked(PackA(m, k, a, k), n, b, c, NewWorkers(threads))
}

// SgemmPacked computes C = A*B for a packed A (m x k), row-major B (k x n) and C (m x n),
// overwriting C, using w's goroutines and buffers.
func SgemmPacked(a *PackedA, n int, b, c []float32, w *Workers) {
	if a.M <= 0 || n <= 0 {
		return
	}
	if a.K <= 0 {
		clear(c[:a.M*n])
		return
	}
	_ = b[a.K*n-1]
	_ = c[a.M*n-1]
	w.gemm(a, denseB(b, n), c, n, nil)
}

// SgemmEpilogue is [SgemmPacked] followed by ep (bias per row of C, then activation),
// fused into the stores.
func SgemmEpilogue(a *PackedA, n int, b, c []float32, ep *Epilogue, w *Workers) {
	if a.M <= 0 || n <= 0 {
		return
	}
	_ = c[a.M*n-1]
	if ep.Bias != nil {
		_ = ep.Bias[:a.M]
	}
	if a.K <= 0 { // C = act(bias)
		for r := 0; r < a.M; r++ {
			var v float32
			if ep.Bias != nil {
				v = ep.Bias[r]
			}
			row := c[r*n : (r+1)*n]
			for j := range row {
				row[j] = v
			}
			Activate(row, ep.Activation)
		}
		return
	}
	_ = b[a.K*n-1]
	w.gemm(a, denseB(b, n), c, n, ep)
}

// gemm runs C = A*B and the epilogue (if any) on the workers.
func (w *Workers) gemm(a *PackedA, src bSource, c []float32, n int, epilogue *Epilogue) {
	w.tiles = splitWork(a.M, n, w.n, w.tiles)
	w.run(len(w.tiles), func(i int) {
		t := w.tiles[i]
		gemmTile(a, src, c, n, t.m0, t.m1, t.n0, t.n1, w.bufs[i], epilogue)
	})
}
