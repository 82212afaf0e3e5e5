package qnnmo

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// Engine is the host reference of the offload engine: it computes a model's hidden
// layers (binary convolutions, thresholds, fused max pools) from packed activation
// records to packed activation records, bit-exactly as the hardware does.
//
// Arithmetic, as the HLS sources define it: input levels are read 64 channels (one SIMD
// word) at a time from each record, including any bits past the layer's channels; the
// convolution zero-pads (level 0) around the map; a weight bit 1 subtracts the level, a 0
// adds it; the sum is a 16-bit two's complement accumulator; output level =
// count(acc >= T_t) over 7 signed 16-bit thresholds, bitwise negated (7 - level) when
// the invert flag is set; max pools take the unsigned maximum of levels, the 2/1 pool
// padding bottom and right with level 0.
//
// Internally activations are bit planes: per pixel and 64-channel group three uint64
// words, word b holding bit b of each channel's level, so a weight word and a plane word
// give 64 products with one AND and one popcount:
// acc = sum_b 2^b (popcount(x_b) - 2 popcount(x_b & w)); the first sum is the window's
// level total, shared by all output channels.
//
// Kernels: amd64 CPUs with AVX-512 VPOPCNTQ compute 32 output channels per call in
// assembly, thresholds included (engine_amd64.s): levels32s reads each window in place as
// one segment per window row inside the map (padding taps cost nothing), levelsRow32
// runs a whole row of the dense first layer with its weights in registers; AVX2 CPUs
// without AVX-512 run the same three with a VPSHUFB nibble-table popcount (about 2.3x
// the AVX-512 time, 2.7x faster than scalar); other amd64 CPUs run a POPCNT assembly
// kernel; 32-bit CPUs (the board's Cortex-A9, no popcount
// instruction) add the masked planes with carry-save adders (engine_csa.go); the rest
// run bits.OnesCount64. All give identical results (TestEngineKernelsAgree). Weights
// are packed and interleaved once, in NewEngine. Records become planes with BMI2 PEXT
// on CPUs with AVX-512 (fast PEXT), else through a table.
//
// An Engine is safe for concurrent use: its layers are read-only after NewEngine, and
// each Run takes its own scratch planes (reused across runs through a sync.Pool, about
// 3 MB for a 208x208 input, which the garbage collector may drop).
type Engine struct {
	lim     offload.Limits
	layers  []*engineLayer
	threads int
	scratch sync.Pool // of *scratch
}

// scratch holds one run's bit planes: slot 0 the input, slots 1+2i and 2+2i layer i's
// convolution and pool outputs; tot[i] layer i's input pixel totals.
type scratch struct {
	planes [][]uint64
	tot    [][]int
}

// planesBuf returns slot's buffer of n words (contents undefined).
func (s *scratch) planesBuf(slot, n int) []uint64 {
	for len(s.planes) <= slot {
		s.planes = append(s.planes, nil)
	}
	if cap(s.planes[slot]) < n {
		s.planes[slot] = make([]uint64, n)
	}
	return s.planes[slot][:n]
}

// totBuf returns layer i's totals buffer of n entries (contents undefined).
func (s *scratch) totBuf(i, n int) []int {
	for len(s.tot) <= i {
		s.tot = append(s.tot, nil)
	}
	if cap(s.tot[i]) < n {
		s.tot[i] = make([]int, n)
	}
	return s.tot[i][:n]
}

// getScratch takes a scratch from the pool or makes one; put it back with
// e.scratch.Put when the run's planes are no longer used.
func (e *Engine) getScratch() *scratch {
	if s, ok := e.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

type engineLayer struct {
	name          string
	k, pad        int
	inDim, outDim int // conv input and output side
	gin, outCh    int
	sf            int // weight words per output channel: k*k*gin
	w             []uint64
	thr           []int32 // 7 per output channel
	invMask       []int32 // 7 for inverted channels (level ^ 7 = 7 - level), else 0
	pool          int     // 0 none, 2 for 2x2 stride 2, 1 for 2x2 stride 1 padded bottom/right
	poolDim       int     // side after the pool

	// Layers with fewer than 64 input channels (dividing 64) also get a dense weight
	// copy, taps packed back to back (tap t, channel c at bit t*inC+c), used when the
	// input's padding lanes are all zero (as QNN-MO's host pads them), which makes the
	// dense sum equal to the engine's.
	inC    int
	dw     int // dense words per output channel
	wDense []uint64

	// With an assembly dot kernel, w and wDense also exist interleaved by blocks of
	// vw output channels (32 for levels32, 4 for dotPopcnt4; see interleave); channels
	// past the last full block use the Go kernel.
	vw          int
	wv, wvDense []uint64
	thrV, invV  []int16 // thr and invMask for levels32, see thresholds32

}

// NewEngine prepares the hidden layers of m for the host engine. threads <= 0 uses
// GOMAXPROCS goroutines.
func NewEngine(m *quant.Model, lim offload.Limits, threads int) (*Engine, error) {
	runs, err := offload.Plan(m, lim)
	if err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	e := &Engine{lim: lim, threads: threads}
	for _, r := range runs {
		if r.Part != 0 {
			continue // the host computes all parts of a layer in one pass
		}
		l := m.Layers[r.Conv]
		el := &engineLayer{
			name: l.Name, k: l.Conv.Size, pad: l.Conv.Pad, inDim: l.In.H, outDim: l.Out.H,
			gin: offload.Lanes(l.In.C), outCh: l.Conv.Filters, w: offload.WeightWords(l),
			thr: make([]int32, 7*l.Conv.Filters), invMask: make([]int32, l.Conv.Filters), poolDim: l.Out.H,
		}
		el.sf = el.k * el.k * el.gin
		el.inC = l.In.C
		if el.inC < 64 && 64%el.inC == 0 {
			el.densify()
		}
		for o, t := range l.Quant.Thresholds {
			if _, _, err := offload.ThresholdEntry(t, false); err != nil {
				return nil, fmt.Errorf("layer %s channel %d: %w", l.Name, o, err)
			}
			for i, v := range t {
				el.thr[7*o+i] = v
			}
			if l.Quant.Invert[o] {
				el.invMask[o] = 7
			}
		}
		switch {
		case vectorDot():
			el.vw = 32
			el.thrV, el.invV = el.thresholds32()
		case popcntDot():
			el.vw = 4
		}
		if el.vw != 0 {
			el.wv = interleave(el.w, el.outCh, el.sf, el.vw)
			if el.wDense != nil {
				el.wvDense = interleave(el.wDense, el.outCh, el.dw, el.vw)
			}
		}
		if el.outCh%4 != 0 {
			return nil, fmt.Errorf("layer %s: %d output channels, the host engine needs a multiple of 4", l.Name, el.outCh)
		}
		if r.Pool >= 0 {
			el.poolDim = int(r.PoolOutDim)
			el.pool = 1 + int(r.Log2PoolStride)
		}
		e.layers = append(e.layers, el)
	}
	return e, nil
}

// InLayout is the DDR layout of the engine's input (the first hidden layer's input
// channels; the engine also reads the record bits up to the next multiple of 64
// channels).
func (e *Engine) InLayout() offload.Layout {
	return offload.Layout{Channels: e.layers[0].inC, Dim: e.layers[0].inDim, RecordBytes: e.lim.RecordBytes()}
}

// OutLayout is the DDR layout of the engine's output (the last hidden layer's output).
func (e *Engine) OutLayout() offload.Layout {
	l := e.layers[len(e.layers)-1]
	return offload.Layout{Channels: l.outCh, Dim: l.poolDim, RecordBytes: e.lim.RecordBytes()}
}

// Run computes the hidden layers on a packed input (records of any size, as QNN-MO's
// padTo accepts them: record size = len(in) / pixels; bytes past a short record read as
// zero) and returns the packed output in the DDR layout (192-byte records).
func (e *Engine) Run(in []byte) ([]byte, error) {
	first := e.layers[0]
	pixels := first.inDim * first.inDim
	if len(in) == 0 || len(in)%pixels != 0 {
		return nil, fmt.Errorf("engine input of %d bytes is not a whole number of records for %dx%d pixels", len(in), first.inDim, first.inDim)
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	x := e.inputPlanes(s, in, len(in)/pixels, pixels, first.gin)
	for i, l := range e.layers {
		x = e.layer(s, i, l, x)
	}
	last := e.layers[len(e.layers)-1]
	out := make([]byte, last.poolDim*last.poolDim*e.lim.RecordBytes())
	planesToRecords(out, e.lim.RecordBytes(), x, last.poolDim*last.poolDim, offload.Lanes(last.outCh))
	return out, nil
}

// RunTrace is [Engine.Run] that also returns every engine layer's output (after its
// fused pool, all parts concatenated) in the DDR layout, for locating a layer where a
// board or simulation run departs from the host reference.
func (e *Engine) RunTrace(in []byte) (outs [][]byte, err error) {
	first := e.layers[0]
	pixels := first.inDim * first.inDim
	if len(in) == 0 || len(in)%pixels != 0 {
		return nil, fmt.Errorf("engine input of %d bytes is not a whole number of records for %dx%d pixels", len(in), first.inDim, first.inDim)
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	x := e.inputPlanes(s, in, len(in)/pixels, pixels, first.gin)
	rb := e.lim.RecordBytes()
	for i, l := range e.layers {
		x = e.layer(s, i, l, x)
		out := make([]byte, l.poolDim*l.poolDim*rb)
		planesToRecords(out, rb, x, l.poolDim*l.poolDim, offload.Lanes(l.outCh))
		outs = append(outs, out)
	}
	return outs, nil
}

// layer runs layer i (l: one convolution, all parts, and its pool) on bit planes, with
// s's buffers.
func (e *Engine) layer(s *scratch, i int, l *engineLayer, in []uint64) []uint64 {
	gout := offload.Lanes(l.outCh)
	conv := s.planesBuf(1+2*i, l.outDim*l.outDim*gout*3)
	// The row and segment kernels set every plane word; the others OR into zeros.
	assigns := l.vw == 32 && l.outCh%64 == 0
	switch {
	case l.wDense != nil && l.k == 3 && l.pad == 1 && l.inC == 16 && l.outDim == l.inDim && lanesClean(in, l.inC):
		if !assigns {
			clear(conv)
		}
		e.parallel(l.outDim, func(r0, r1 int) { l.convRows3x16(in, conv, r0, r1) })
	case l.wDense != nil && lanesClean(in, l.inC):
		clear(conv)
		e.parallel(l.outDim, func(r0, r1 int) { l.convRowsDense(in, conv, r0, r1) })
	case l.vw == 32 && l.outCh%32 == 0:
		tot := s.totBuf(i, l.inDim*l.inDim)
		e.parallel(l.inDim, func(r0, r1 int) { levelTotals(tot, in, l.gin, r0*l.inDim, r1*l.inDim) })
		e.parallel(l.outDim, func(r0, r1 int) { l.convRowsSeg(in, tot, conv, r0, r1) })
	default:
		clear(conv)
		e.parallel(l.outDim, func(r0, r1 int) { l.convRows(in, conv, r0, r1) })
	}
	switch l.pool {
	case 0:
		return conv
	default:
		out := s.planesBuf(2+2*i, l.poolDim*l.poolDim*gout*3)
		e.parallel(l.poolDim, func(r0, r1 int) { l.poolRows(conv, out, gout, r0, r1) })
		return out
	}
}

// parallel splits rows 0..n-1 into contiguous chunks over the engine's goroutines.
func (e *Engine) parallel(n int, f func(r0, r1 int)) { parallelRows(n, e.threads, f) }

// convRows computes output rows r0..r1-1 of a convolution into bit planes.
func (l *engineLayer) convRows(in, out []uint64, r0, r1 int) {
	k, g, dim := l.k, l.gin, l.inDim
	gout := offload.Lanes(l.outCh)
	x := make([]uint64, 3*l.sf)
	for r := r0; r < r1; r++ {
		for c := 0; c < l.outDim; c++ {
			// Gather the window (taps in engine order i*k+j), zeros outside the map.
			total := 0
			for i := 0; i < k; i++ {
				rr := r + i - l.pad
				for j := 0; j < k; j++ {
					cc := c + j - l.pad
					dst := x[3*(i*k+j)*g : 3*(i*k+j+1)*g]
					if rr < 0 || rr >= dim || cc < 0 || cc >= dim {
						clear(dst)
						continue
					}
					src := in[3*(rr*dim+cc)*g : 3*(rr*dim+cc+1)*g]
					copy(dst, src)
					for q := 0; q < g; q++ {
						total += bits.OnesCount64(src[3*q]) + 2*bits.OnesCount64(src[3*q+1]) + 4*bits.OnesCount64(src[3*q+2])
					}
				}
			}
			l.outputs(x, l.w, l.wv, l.sf, total, out[3*(r*l.outDim+c)*gout:3*(r*l.outDim+c+1)*gout])
		}
	}
}

// seg32 is a run of window words for levels32s: n words of plane triples at x, whose
// weights start woff bytes into the block's interleaved weights.
type seg32 struct {
	x    *uint64
	woff int
	n    int
}

// levelTotals sets tot[p] to the level sum of pixel p (all g groups) for p0 <= p < p1.
func levelTotals(tot []int, planes []uint64, g, p0, p1 int) {
	for p := p0; p < p1; p++ {
		n := 0
		for q := 3 * p * g; q < 3*(p+1)*g; q += 3 {
			n += bits.OnesCount64(planes[q]) + 2*bits.OnesCount64(planes[q+1]) + 4*bits.OnesCount64(planes[q+2])
		}
		tot[p] = n
	}
}

// convRowsSeg is convRows for the vector kernel with whole 32-channel blocks: the
// window is read in place, one segment per window row inside the map (the taps inside
// the map are contiguous pixels), so zero padding costs nothing.
func (l *engineLayer) convRowsSeg(in []uint64, tot []int, out []uint64, r0, r1 int) {
	k, g, dim := l.k, l.gin, l.inDim
	gout := offload.Lanes(l.outCh)
	segs := make([]seg32, k)
	for r := r0; r < r1; r++ {
		for c := 0; c < l.outDim; c++ {
			ns, total := 0, 0
			j0, j1 := max(0, l.pad-c), min(k, dim+l.pad-c) // taps inside the map
			for i := 0; i < k; i++ {
				rr := r + i - l.pad
				if rr < 0 || rr >= dim || j0 >= j1 {
					continue
				}
				p := rr*dim + c + j0 - l.pad
				for _, t := range tot[p : p+j1-j0] {
					total += t
				}
				segs[ns] = seg32{x: &in[3*p*g], woff: 256 * (i*k + j0) * g, n: (j1 - j0) * g}
				ns++
			}
			dst := out[3*(r*l.outDim+c)*gout : 3*(r*l.outDim+c+1)*gout]
			if ns == 0 {
				// An all-padding window: every accumulator is 0.
				clear(dst)
				l.outputs(make([]uint64, 3*l.sf), l.w, l.wv, l.sf, 0, dst)
				continue
			}
			// Every plane word is set (dst need not be zero): the low half of each
			// group assigns, the high half ORs in.
			for o0 := 0; o0 < l.outCh; o0 += 32 {
				p0, p1, p2 := levels32s(&segs[0], ns, &l.wv[o0*l.sf], total, &l.thrV[7*o0], &l.invV[o0])
				q := 3 * (o0 / 64)
				if o0%64 == 0 {
					dst[q], dst[q+1], dst[q+2] = p0, p1, p2
				} else {
					dst[q] |= p0 << 32
					dst[q+1] |= p1 << 32
					dst[q+2] |= p2 << 32
				}
			}
		}
	}
}

// densify builds the dense weight copy of a layer with one lane word per pixel.
func (l *engineLayer) densify() {
	taps := l.k * l.k
	l.dw = (taps*l.inC + 63) / 64
	l.wDense = make([]uint64, l.outCh*l.dw)
	for o := 0; o < l.outCh; o++ {
		for t := 0; t < taps; t++ {
			w := l.w[o*l.sf+t]
			for c := 0; c < l.inC; c++ {
				if w>>c&1 == 1 {
					pos := t*l.inC + c
					l.wDense[o*l.dw+pos/64] |= 1 << (pos % 64)
				}
			}
		}
	}
}

// lanesClean reports whether single-group planes hold nothing past channel c.
func lanesClean(planes []uint64, c int) bool {
	var junk uint64
	for _, p := range planes {
		junk |= p
	}
	return junk>>c == 0
}

// convRowsDense is convRows for a dense layer whose padding lanes are zero.
func (l *engineLayer) convRowsDense(in, out []uint64, r0, r1 int) {
	k, dim, dw := l.k, l.inDim, l.dw
	gout := offload.Lanes(l.outCh)
	x := make([]uint64, 3*dw)
	for r := r0; r < r1; r++ {
		for c := 0; c < l.outDim; c++ {
			clear(x)
			total := 0
			for i := 0; i < k; i++ {
				rr := r + i - l.pad
				if rr < 0 || rr >= dim {
					continue
				}
				for j := 0; j < k; j++ {
					cc := c + j - l.pad
					if cc < 0 || cc >= dim {
						continue
					}
					src := in[3*(rr*dim+cc) : 3*(rr*dim+cc+1)]
					pos := (i*k + j) * l.inC
					q, sh := 3*(pos/64), uint(pos%64)
					x[q] |= src[0] << sh
					x[q+1] |= src[1] << sh
					x[q+2] |= src[2] << sh
					total += bits.OnesCount64(src[0]) + 2*bits.OnesCount64(src[1]) + 4*bits.OnesCount64(src[2])
				}
			}
			dst := out[3*(r*l.outDim+c)*gout : 3*(r*l.outDim+c+1)*gout]
			if dw == 3 && l.vw == 0 && !use32 {
				l.outputs3(x, total, dst)
			} else {
				l.outputs(x, l.wDense, l.wvDense, dw, total, dst)
			}
		}
	}
}

// dotMasked4 returns, for four consecutive output channels (weights w, sf words each),
// sum over words of sum_b 2^b popcount(x_b & w): the level sum of the inputs whose
// weight is -1. Each input word is loaded once for the four channels.
func dotMasked4(x, w []uint64, sf int) (d0, d1, d2, d3 int) {
	x = x[:3*sf]
	w0, w1, w2, w3 := w[:sf], w[sf:2*sf], w[2*sf:3*sf], w[3*sf:4*sf]
	for q := range w0 {
		x0, x1, x2 := x[3*q], x[3*q+1], x[3*q+2]
		a, b, c, d := w0[q], w1[q], w2[q], w3[q]
		d0 += bits.OnesCount64(x0&a) + 2*bits.OnesCount64(x1&a) + 4*bits.OnesCount64(x2&a)
		d1 += bits.OnesCount64(x0&b) + 2*bits.OnesCount64(x1&b) + 4*bits.OnesCount64(x2&b)
		d2 += bits.OnesCount64(x0&c) + 2*bits.OnesCount64(x1&c) + 4*bits.OnesCount64(x2&c)
		d3 += bits.OnesCount64(x0&d) + 2*bits.OnesCount64(x1&d) + 4*bits.OnesCount64(x2&d)
	}
	return
}

// interleave reorders the weights of outCh channels (sf words each) by blocks of n
// channels for the assembly kernels: word q of channel nb+j at index n(b*sf+q)+j, for n
// = 32 as interleaveRow lays them out. Channels past the last full block are left out.
func interleave(w []uint64, outCh, sf, n int) []uint64 {
	if n == 32 {
		return interleaveRow(w, outCh, sf)
	}
	blocks := outCh / n
	v := make([]uint64, blocks*n*sf)
	for b := 0; b < blocks; b++ {
		for j := 0; j < n; j++ {
			for q := 0; q < sf; q++ {
				v[n*(b*sf+q)+j] = w[(n*b+j)*sf+q]
			}
		}
	}
	return v
}

// interleaveRow reorders the weights of outCh channels (sf words each) for levels32 and
// levelsRow32: by blocks of 32 channels, word q of channel 32b+4j+i at 32(b*sf+q)+8i+j,
// so that lane j of the kernels' vector i holds channel 4j+i. Channels past the last
// full block are left out.
func interleaveRow(w []uint64, outCh, sf int) []uint64 {
	v := make([]uint64, outCh/32*32*sf)
	for b := 0; b < outCh/32; b++ {
		for q := 0; q < sf; q++ {
			for i := 0; i < 4; i++ {
				for j := 0; j < 8; j++ {
					v[32*(b*sf+q)+8*i+j] = w[(32*b+4*j+i)*sf+q]
				}
			}
		}
	}
	return v
}

// thresholds32 lays out the thresholds (int16, as the engine holds them) and invert
// masks for levels32, by blocks of 32 channels: threshold i of channel 32b+j at
// 32(7b+i)+j, the mask of channel o at o.
func (l *engineLayer) thresholds32() (thr, inv []int16) {
	n := l.outCh / 32 * 32
	thr, inv = make([]int16, 7*n), make([]int16, n)
	for o := 0; o < n; o++ {
		for i := 0; i < 7; i++ {
			thr[32*(7*(o/32)+i)+o%32] = int16(l.thr[7*o+i])
		}
		inv[o] = int16(l.invMask[o])
	}
	return thr, inv
}

// outputs computes every output channel of one pixel from its gathered window x (sf
// words per channel in w, and interleaved in wv if not nil) and writes the levels into
// the pixel's bit planes dst (zero on entry).
func (l *engineLayer) outputs(x, w, wv []uint64, sf, total int, dst []uint64) {
	o0 := 0
	if wv != nil && l.vw == 32 {
		for ; o0+32 <= l.outCh; o0 += 32 {
			p0, p1, p2 := levels32(&x[0], &wv[o0*sf], sf, total, &l.thrV[7*o0], &l.invV[o0])
			q, sh := 3*(o0/64), uint(o0%64)
			dst[q] |= p0 << sh
			dst[q+1] |= p1 << sh
			dst[q+2] |= p2 << sh
		}
	}
	var p0, p1, p2 uint64
	for o := o0; o < l.outCh; o += 4 {
		var d0, d1, d2, d3 int
		if wv != nil && l.vw == 4 {
			var d [4]int64
			dotPopcnt4(&x[0], &wv[o*sf], sf, &d)
			d0, d1, d2, d3 = int(d[0]), int(d[1]), int(d[2]), int(d[3])
		} else if use32 && sf == 3 {
			x3 := (*[9]uint64)(x)
			d0, d1 = dotCSA3(x3, (*[3]uint64)(w[o*3:])), dotCSA3(x3, (*[3]uint64)(w[o*3+3:]))
			d2, d3 = dotCSA3(x3, (*[3]uint64)(w[o*3+6:])), dotCSA3(x3, (*[3]uint64)(w[o*3+9:]))
		} else if use32 {
			d0, d1 = dotCSA(x, w[o*sf:(o+1)*sf]), dotCSA(x, w[(o+1)*sf:(o+2)*sf])
			d2, d3 = dotCSA(x, w[(o+2)*sf:(o+3)*sf]), dotCSA(x, w[(o+3)*sf:(o+4)*sf])
		} else {
			d0, d1, d2, d3 = dotMasked4(x, w[o*sf:(o+4)*sf], sf)
		}
		// Four levels interleaved (3 bits each) -> 4 bits in each plane at lanes
		// o%64 .. o%64+3.
		v := l.threshold(o, total-2*d0) | l.threshold(o+1, total-2*d1)<<3 |
			l.threshold(o+2, total-2*d2)<<6 | l.threshold(o+3, total-2*d3)<<9
		t := deinterleave4[v&0xfff]
		sh := uint(o % 64)
		p0 |= uint64(t&0xf) << sh
		p1 |= uint64(t>>4&0xf) << sh
		p2 |= uint64(t>>8) << sh
		if sh == 60 || o+4 == l.outCh {
			q := 3 * (o / 64)
			dst[q] |= p0
			dst[q+1] |= p1
			dst[q+2] |= p2
			p0, p1, p2 = 0, 0, 0
		}
	}
}

// outputs3 is outputs for a dense window of exactly 3 words (3x3 taps of 16 channels),
// with the window held in registers across all output channels.
func (l *engineLayer) outputs3(x []uint64, total int, dst []uint64) {
	x = x[:9]
	a0, a1, a2 := x[0], x[1], x[2]
	b0, b1, b2 := x[3], x[4], x[5]
	c0, c1, c2 := x[6], x[7], x[8]
	w := l.wDense[:3*l.outCh]
	dot := func(o int) int {
		ws := (*[3]uint64)(w[3*o : 3*o+3])
		wa, wb, wc := ws[0], ws[1], ws[2]
		return bits.OnesCount64(a0&wa) + bits.OnesCount64(b0&wb) + bits.OnesCount64(c0&wc) +
			2*(bits.OnesCount64(a1&wa)+bits.OnesCount64(b1&wb)+bits.OnesCount64(c1&wc)) +
			4*(bits.OnesCount64(a2&wa)+bits.OnesCount64(b2&wb)+bits.OnesCount64(c2&wc))
	}
	var p0, p1, p2 uint64
	for o := 0; o < l.outCh; o += 4 {
		// Four levels interleaved (3 bits each) -> their three plane nibbles.
		v := l.threshold(o, total-2*dot(o)) | l.threshold(o+1, total-2*dot(o+1))<<3 |
			l.threshold(o+2, total-2*dot(o+2))<<6 | l.threshold(o+3, total-2*dot(o+3))<<9
		t := deinterleave4[v&0xfff]
		sh := uint(o % 64)
		p0 |= uint64(t&0xf) << sh
		p1 |= uint64(t>>4&0xf) << sh
		p2 |= uint64(t>>8) << sh
		if sh == 60 || o+4 == l.outCh {
			q := 3 * (o / 64)
			dst[q], dst[q+1], dst[q+2] = p0, p1, p2
			p0, p1, p2 = 0, 0, 0
		}
	}
}

// threshold turns an accumulator into a level: count(acc >= T_t), negated for inverted
// channels. acc wraps to 16 bits like the engine's MAC register.
func (l *engineLayer) threshold(o int, acc int) int32 {
	a := int32(int16(acc))
	t := l.thr[7*o : 7*o+7 : 7*o+7]
	// 1 + (a-t)>>31 is 1 when a >= t (no overflow: both fit 16 bits). Branch-free: the
	// comparisons are data-dependent and would mispredict.
	n := 7 + (a-t[0])>>31 + (a-t[1])>>31 + (a-t[2])>>31 + (a-t[3])>>31 +
		(a-t[4])>>31 + (a-t[5])>>31 + (a-t[6])>>31
	return n ^ l.invMask[o]
}

// poolRows computes rows r0..r1-1 of a 2x2 max pool on bit planes.
func (l *engineLayer) poolRows(in, out []uint64, g, r0, r1 int) {
	dim, stride := l.outDim, l.pool // pool 1: stride 1, pool 2: stride 2
	for r := r0; r < r1; r++ {
		y0, y1 := r*stride, r*stride+1
		for c := 0; c < l.poolDim; c++ {
			x0, x1 := c*stride, c*stride+1
			// Level-0 padding past the map leaves the maximum unchanged: an outside
			// input is replaced by the pool's top-left one.
			p00 := 3 * (y0*dim + x0) * g
			p01, p10, p11 := p00, p00, p00
			if x1 < dim {
				p01 = 3 * (y0*dim + x1) * g
			}
			if y1 < dim {
				p10 = 3 * (y1*dim + x0) * g
				if x1 < dim {
					p11 = 3 * (y1*dim + x1) * g
				}
			}
			dst := out[3*(r*l.poolDim+c)*g : 3*(r*l.poolDim+c+1)*g]
			for q := 0; q < 3*g; q += 3 {
				a := (*[3]uint64)(in[p00+q : p00+q+3])
				b := (*[3]uint64)(in[p01+q : p01+q+3])
				d := (*[3]uint64)(in[p10+q : p10+q+3])
				e := (*[3]uint64)(in[p11+q : p11+q+3])
				m0, m1, m2 := max3(a[0], a[1], a[2], b[0], b[1], b[2])
				n0, n1, n2 := max3(d[0], d[1], d[2], e[0], e[1], e[2])
				dst[q], dst[q+1], dst[q+2] = max3(m0, m1, m2, n0, n1, n2)
			}
		}
	}
}

// maxPlanes sets a to the lane-wise maximum of the 3-bit levels in a and b.
func maxPlanes(a, b []uint64) {
	a[0], a[1], a[2] = max3(a[0], a[1], a[2], b[0], b[1], b[2])
}

// max3 is the lane-wise maximum of the 3-bit levels (a0, a1, a2) and (b0, b1, b2).
func max3(a0, a1, a2, b0, b1, b2 uint64) (m0, m1, m2 uint64) {
	eq2, eq1 := ^(a2 ^ b2), ^(a1 ^ b1)
	bGreater := b2&^a2 | eq2&(b1&^a1|eq1&(b0&^a0))
	return a0&^bGreater | b0&bGreater, a1&^bGreater | b1&bGreater, a2&^bGreater | b2&bGreater
}

// Deinterleave and interleave tables for 4 channels (12 record bits <-> 3 nibbles).
var deinterleave4, interleave4 [4096]uint16

func init() {
	for v := 0; v < 4096; v++ {
		var planes uint16
		for ch := 0; ch < 4; ch++ {
			for b := 0; b < 3; b++ {
				if v>>(3*ch+b)&1 == 1 {
					planes |= 1 << (4*b + ch)
				}
			}
		}
		deinterleave4[v] = planes
		interleave4[planes] = uint16(v)
	}
}

// recordsToPlanes converts packed records (stride bytes each) into bit planes of g
// 64-channel groups; record bytes past the stride read as zero.
func recordsToPlanes(buf []byte, stride, pixels, g int) []uint64 {
	out := make([]uint64, pixels*g*3)
	recordsToPlanesRange(out, buf, stride, g, 0, pixels)
	return out
}

// inputPlanes is recordsToPlanes over the engine's goroutines (the input is the largest
// map, read from a strided buffer).
func (e *Engine) inputPlanes(s *scratch, buf []byte, stride, pixels, g int) []uint64 {
	out := s.planesBuf(0, pixels*g*3)
	e.parallel(pixels, func(p0, p1 int) { recordsToPlanesRange(out, buf, stride, g, p0, p1) })
	return out
}

// recordsToPlanesRange converts records from..to-1 of buf into out (see
// recordsToPlanes).
func recordsToPlanesRange(out []uint64, buf []byte, stride, g, from, to int) {
	if pextPlanes() && to > from {
		// Whole 24-byte chunks go through PEXT a group at a time; a short record's
		// last group (read as zero past the record) goes the table way.
		full := min(g, stride/24)
		for q := 0; q < full; q++ {
			_ = buf[(to-1)*stride+24*(q+1)-1]
			_ = out[3*((to-1)*g+q)+2]
			recordPlanesPEXT(&out[3*(from*g+q)], 24*g, &buf[from*stride+24*q], stride, to-from)
		}
		if full == g {
			return
		}
		recordsToPlanesTable(out, buf, stride, g, full, from, to)
		return
	}
	recordsToPlanesTable(out, buf, stride, g, 0, from, to)
}

// recordsToPlanesTable is recordsToPlanesRange for groups q0..g-1, with table lookups.
func recordsToPlanesTable(out []uint64, buf []byte, stride, g, q0, from, to int) {
	var tmp [24]byte
	for p := from; p < to; p++ {
		rec := buf[p*stride : (p+1)*stride]
		for q := q0; q < g; q++ {
			chunk := tmp[:]
			if 24*(q+1) <= len(rec) {
				chunk = rec[24*q : 24*(q+1)]
			} else {
				clear(tmp[:])
				if 24*q < len(rec) {
					copy(tmp[:], rec[24*q:])
				}
			}
			var p0, p1, p2 uint64
			for t := 0; t < 8; t++ { // 8 channels per 3 bytes
				v := uint32(chunk[3*t]) | uint32(chunk[3*t+1])<<8 | uint32(chunk[3*t+2])<<16
				lo, hi := deinterleave4[v&0xfff], deinterleave4[v>>12]
				sh := uint(8 * t)
				p0 |= uint64(lo&0xf|hi&0xf<<4) << sh
				p1 |= uint64(lo>>4&0xf|hi>>4&0xf<<4) << sh
				p2 |= uint64(lo>>8&0xf|hi>>8&0xf<<4) << sh
			}
			o := 3 * (p*g + q)
			out[o], out[o+1], out[o+2] = p0, p1, p2
		}
	}
}

// planesToRecords writes bit planes of g groups into records of stride bytes (at least
// 24*g), zeroing the rest of each record.
func planesToRecords(dst []byte, stride int, planes []uint64, pixels, g int) {
	for p := 0; p < pixels; p++ {
		rec := dst[p*stride : (p+1)*stride]
		clear(rec)
		for q := 0; q < g; q++ {
			o := 3 * (p*g + q)
			p0, p1, p2 := planes[o], planes[o+1], planes[o+2]
			for t := 0; t < 8; t++ {
				sh := uint(8 * t)
				lo := uint16(p0>>sh&0xf) | uint16(p1>>sh&0xf)<<4 | uint16(p2>>sh&0xf)<<8
				hi := uint16(p0>>(sh+4)&0xf) | uint16(p1>>(sh+4)&0xf)<<4 | uint16(p2>>(sh+4)&0xf)<<8
				v := uint32(interleave4[lo]) | uint32(interleave4[hi])<<12
				rec[24*q+3*t] = byte(v)
				rec[24*q+3*t+1] = byte(v >> 8)
				rec[24*q+3*t+2] = byte(v >> 16)
			}
		}
	}
}
