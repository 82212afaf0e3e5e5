package qnnmo

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// FirstLayer is the float convolution that runs on the CPU before the engine
// (Tinier-YOLO's conv0, 3->16 3x3/2 on the 416x416 letterboxed image), followed by the
// 3-bit quantizer level = round-half-even(clip(x, 0, 4)/4*7) (numpy's np.round), in
// float32 as QNN-MO's numpy code computes it.
type FirstLayer struct {
	layer          *quant.Layer
	cin, cout, k   int
	stride, pad    int
	inH, inW, dim  int
	w              []float32        // [o][c*k*k+ky*k+kx]
	w16            []float32        // w in groups of 16 outputs, [o/16][j][o%16], for levels16
	b16            [][7][16]float32 // bounds in groups of 16 outputs, [o/16][k][o%16]
	bias           []float32
	maxLevel, clip float32
	// bounds[o][k-1] is the smallest float32 sum s of output o with
	// quantize(s + bias[o]) >= k: the quantizer as comparisons (see levelOf).
	bounds  [][]float32
	threads int
}

// NewFirstLayer prepares the float layer that feeds the engine. threads <= 0 uses
// GOMAXPROCS goroutines.
func NewFirstLayer(m *quant.Model, threads int) (*FirstLayer, error) {
	first, _, err := offload.EngineLayers(m)
	if err != nil {
		return nil, err
	}
	idx := m.Layers[first].Inputs[0]
	if idx < 0 || m.Layers[idx].Kind != quant.KindConv || m.Layers[idx].Quant == nil || m.Layers[idx].Quant.ActBits == 0 {
		return nil, fmt.Errorf("the engine's input is not a quantized float convolution")
	}
	l := m.Layers[idx]
	c, q := l.Conv, l.Quant
	if l.Inputs[0] != -1 || c.Groups != 1 || l.Out.H != l.Out.W || c.Weights == nil || c.BN != nil {
		return nil, fmt.Errorf("first layer %s: only a square, ungrouped convolution on the network input without batch norm is supported", l.Name)
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	f := &FirstLayer{
		layer: l, cin: l.In.C, cout: c.Filters, k: c.Size, stride: c.Stride, pad: c.Pad,
		inH: l.In.H, inW: l.In.W, dim: l.Out.H, w: c.Weights, bias: c.Bias,
		maxLevel: float32(int(1)<<q.ActBits - 1), threads: threads,
	}
	// In float64 so that 7 * float32(4/7) rounds to exactly 4.
	f.clip = float32(float64(f.maxLevel) * float64(q.ActScale))
	if f.bias == nil {
		f.bias = make([]float32, f.cout)
	}
	if 3*f.cout > 192 {
		return nil, fmt.Errorf("first layer has %d channels; its records hold at most 64", f.cout)
	}
	n := f.cin * f.k * f.k
	f.w16 = make([]float32, f.cout/16*16*n)
	for o := 0; o < f.cout/16*16; o++ {
		for j := 0; j < n; j++ {
			f.w16[(o/16)*16*n+16*j+o%16] = f.w[o*n+j]
		}
	}
	f.bounds = make([][]float32, f.cout)
	for o := range f.bounds {
		f.bounds[o] = quantizerBounds(func(s float32) uint8 { return f.quantize(s + f.bias[o]) }, int(f.maxLevel))
	}
	if f.maxLevel == 7 && neonSafe(f.bounds) {
		f.b16 = make([][7][16]float32, f.cout/16)
		for o := 0; o < f.cout/16*16; o++ {
			for k, t := range f.bounds[o] {
				f.b16[o/16][k][o%16] = t
			}
		}
	}
	return f, nil
}

// quantizerBounds turns a non-decreasing quantizer q of float32 into its steps: element
// k-1 is the smallest float32 x with q(x) >= k (+Inf when no x reaches k), found by
// bisection over float32s in order.
func quantizerBounds(q func(float32) uint8, levels int) []float32 {
	b := make([]float32, levels)
	for k := 1; k <= levels; k++ {
		lo, hi := orderedKey(float32(math.Inf(-1))), orderedKey(float32(math.Inf(1)))
		if int(q(float32(math.Inf(1)))) < k {
			b[k-1] = float32(math.Inf(1))
			continue
		}
		for lo < hi { // the first key whose float reaches level k
			mid := lo + (hi-lo)/2
			if int(q(fromOrderedKey(mid))) >= k {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		b[k-1] = fromOrderedKey(lo)
	}
	return b
}

// orderedKey maps float32s (not NaN) to uint32s in the same order.
func orderedKey(x float32) uint32 {
	u := math.Float32bits(x)
	if u>>31 == 1 {
		return ^u
	}
	return u | 1<<31
}

func fromOrderedKey(k uint32) float32 {
	if k>>31 == 1 {
		return math.Float32frombits(k &^ (1 << 31))
	}
	return math.Float32frombits(^k)
}

// levelOf is quantize(s + bias[o]) by comparisons with the precomputed steps: a binary
// search for the 3-bit quantizer's 7 steps, a count otherwise.
func (f *FirstLayer) levelOf(o int, s float32) uint8 {
	b := f.bounds[o]
	if len(b) != 7 {
		var l uint8
		for _, t := range b {
			if s >= t {
				l++
			}
		}
		return l
	}
	b = b[:7:7]
	var l uint8
	if s >= b[3] {
		l = 4
	}
	if s >= b[l+1] {
		l += 2
	}
	if s >= b[l] {
		l++
	}
	return l
}

// OutLayout is the DDR layout of the first layer's output (the engine's input).
func (f *FirstLayer) OutLayout() offload.Layout { return offload.DDRLayout(f.cout, f.dim) }

// Levels returns the quantized output levels, CHW in image order.
func (f *FirstLayer) Levels(img []float32) ([]uint8, error) {
	if len(img) != f.cin*f.inH*f.inW {
		return nil, fmt.Errorf("first layer input has %d values, want %dx%dx%d", len(img), f.cin, f.inH, f.inW)
	}
	out := make([]uint8, f.cout*f.dim*f.dim)
	f.parallel(func(y0, y1 int) {
		lv := make([]uint8, f.cout)
		col := make([]float32, f.cin*f.k*f.k)
		for y := y0; y < y1; y++ {
			for x := 0; x < f.dim; x++ {
				f.pixel(img, y, x, col, lv)
				for o, v := range lv {
					out[(o*f.dim+y)*f.dim+x] = v
				}
			}
		}
	})
	return out, nil
}

// Run computes the layer on a CHW image in darknet order (values in [0,1]) and writes the
// output levels as records of layout dst (its Dim and Channels must match) in the
// engine's transposed pixel order. Only the first ceil(3*C/64) 64-bit words of each
// record (or the whole record, when shorter) are written: the engine reads the rest of a
// record as channels C..63, so hand it zeroed buffers.
func (f *FirstLayer) Run(dst []byte, l offload.Layout, img []float32) error {
	if l.Channels != f.cout || l.Dim != f.dim || l.Check() != nil || len(dst) < l.Size() {
		return fmt.Errorf("first layer output layout %+v (%d bytes), want %d channels of %dx%d", l, len(dst), f.cout, f.dim, f.dim)
	}
	if len(img) != f.cin*f.inH*f.inW {
		return fmt.Errorf("first layer input has %d values, want %dx%dx%d", len(img), f.cin, f.inH, f.inW)
	}
	nb := min(l.RecordBytes, 8*((3*f.cout+63)/64))
	packed := haveNEON && f.b16 != nil && f.cout == 16 && nb >= 6 // the board's path for Tinier-YOLO
	f.parallel(func(y0, y1 int) {
		lv := make([]uint8, f.cout)
		col := make([]float32, f.cin*f.k*f.k)
		var words [2]uint32
		for y := y0; y < y1; y++ {
			xa, xb := 0, 0 // the row's in-place windows, one kernel call for all
			if packed && nb == 8 {
				xa, xb = f.interior(y)
			}
			if xb > xa {
				at, _ := f.window3x3x3(y, xa)
				r := offload.RecordIndex(y, xa, f.dim) * l.RecordBytes
				_ = dst[offload.RecordIndex(y, xb-1, f.dim)*l.RecordBytes+7] // in bounds
				_ = img[2*f.inH*f.inW+(at+(xb-1-xa)*f.stride)+2*f.inW+2]
				levels16RowNEON(&f.w16[0], &img[at], 4*f.inW, 4*f.inH*f.inW, &f.b16[0], &recordShifts,
					&dst[r], f.dim*l.RecordBytes, xb-xa, 4*f.stride)
			}
			for x := 0; x < f.dim; x++ {
				if x == xa && xb > xa {
					x = xb - 1
					continue
				}
				r := offload.RecordIndex(y, x, f.dim) * l.RecordBytes
				rec := dst[r : r+nb]
				if packed { // the image's edges (or records under 8 bytes)
					f.gather(img, y, x, col)
					levels16PackNEON(&f.w16[0], &col[0], len(col), &f.b16[0], &recordShifts, &words)
					putPacked16(rec, words)
					continue
				}
				f.pixel(img, y, x, col, lv)
				packRecord(rec, lv)
			}
		}
	})
	return nil
}

// recordShifts are the bit positions of eight 3-bit levels in a 24-bit group.
var recordShifts = [8]int32{0, 3, 6, 9, 12, 15, 18, 21}

// putPacked16 writes 16 levels packed in two 24-bit groups as a record's first six
// bytes (packRecord's layout) and zeroes the rest of rec.
func putPacked16(rec []byte, w [2]uint32) {
	r := rec[:6:6]
	r[0], r[1], r[2] = byte(w[0]), byte(w[0]>>8), byte(w[0]>>16)
	r[3], r[4], r[5] = byte(w[1]), byte(w[1]>>8), byte(w[1]>>16)
	clear(rec[6:])
}

// packRecord packs 3-bit levels into the leading bytes of a record (level i at bits
// 3i..3i+2, little-endian) and zeroes the rest of rec: eight levels make three bytes,
// packed in 32-bit words (64-bit shifts take several instructions on the board's ARM).
func packRecord(rec []byte, lv []uint8) {
	i := 0
	for ; len(lv) >= 8 && i+3 <= len(rec); i += 3 {
		g := lv[:8:8]
		v := uint32(g[0]&7) | uint32(g[1]&7)<<3 | uint32(g[2]&7)<<6 | uint32(g[3]&7)<<9 |
			uint32(g[4]&7)<<12 | uint32(g[5]&7)<<15 | uint32(g[6]&7)<<18 | uint32(g[7]&7)<<21
		d := rec[i : i+3 : i+3]
		d[0], d[1], d[2] = byte(v), byte(v>>8), byte(v>>16)
		lv = lv[8:]
	}
	if len(lv) > 0 && i < len(rec) { // a last group of fewer than eight
		var v uint32
		for j, l := range lv {
			v |= uint32(l&7) << (3 * uint(j))
		}
		for b := 0; b < 3 && i < len(rec); b++ {
			rec[i] = byte(v >> (8 * b))
			i++
		}
	}
	clear(rec[i:])
}

// pixel computes the levels of output pixel (y, x): every output's sum runs over the
// window in (channel, row, column) order from zero, then the bias and the quantizer.
func (f *FirstLayer) pixel(img []float32, y, x int, col []float32, lv []uint8) {
	f.gather(img, y, x, col)
	n := len(col)
	o := 0
	if haveNEON && f.b16 != nil { // sixteen outputs at a time on the board's NEON unit
		var l [16]int32
		for ; o+16 <= len(lv); o += 16 {
			levels16NEON(&f.w16[o*n], &col[0], n, &f.b16[o/16], &l)
			for i, v := range l {
				lv[o+i] = uint8(v)
			}
		}
	}
	// Four outputs at a time share each input load (more spill registers on ARM).
	for ; o+4 <= len(lv); o += 4 {
		w := f.w[o*n : (o+4)*n]
		w0, w1, w2, w3 := w[:n], w[n:2*n], w[2*n:3*n], w[3*n:4*n]
		w1, w2, w3 = w1[:len(w0)], w2[:len(w0)], w3[:len(w0)]
		col := col[:len(w0)]
		var s0, s1, s2, s3 float32
		for j, v := range col {
			s0 += w0[j] * v
			s1 += w1[j] * v
			s2 += w2[j] * v
			s3 += w3[j] * v
		}
		lv[o], lv[o+1], lv[o+2], lv[o+3] = f.levelOf(o, s0), f.levelOf(o+1, s1), f.levelOf(o+2, s2), f.levelOf(o+3, s3)
	}
	for ; o < len(lv); o++ {
		w := f.w[o*n : (o+1)*n]
		var s float32
		for j, v := range col {
			s += w[j] * v
		}
		lv[o] = f.levelOf(o, s)
	}
}

// neonSafe says whether NEON's flush-to-zero cannot change a comparison: no step is
// zero or subnormal. (Sums are of products of normal weights and pixels in [0,1]; only
// a subnormal sum, from exact cancellation, would be flushed, and only a zero or
// subnormal step could then tell the difference.)
func neonSafe(bounds [][]float32) bool {
	for _, b := range bounds {
		for _, t := range b {
			if a := math.Abs(float64(t)); a < 0x1p-126 {
				return false
			}
		}
	}
	return true
}

// window3x3x3 returns the index of the top-left value of output pixel (y, x)'s window
// when the layer is 3x3 over three planes and the window lies inside the image.
func (f *FirstLayer) window3x3x3(y, x int) (int, bool) {
	y0, x0 := y*f.stride-f.pad, x*f.stride-f.pad
	if f.k != 3 || f.cin != 3 || y0 < 0 || x0 < 0 || y0+3 > f.inH || x0+3 > f.inW {
		return 0, false
	}
	return y0*f.inW + x0, true
}

// interior returns the columns xa..xb-1 of output row y whose 3x3x3 windows lie inside
// the image (window3x3x3 reads them in place); xa == xb when there are none.
func (f *FirstLayer) interior(y int) (xa, xb int) {
	xa = (f.pad + f.stride - 1) / f.stride // x*stride - pad >= 0
	if _, ok := f.window3x3x3(y, xa); !ok {
		return 0, 0
	}
	xb = min(f.dim, (f.inW-3+f.pad)/f.stride+1) // x*stride - pad + 3 <= inW
	return xa, max(xa, xb)
}

// gather3x3x3 copies a 3x3 window of three planes (plane size hw, row length w) whose
// top-left value is at at.
func gather3x3x3(img []float32, hw, w, at int, col *[27]float32) {
	for c := 0; c < 3; c++ {
		p := img[c*hw+at : c*hw+at+2*w+3]
		r0, r1, r2 := p[0:3:3], p[w:w+3:w+3], p[2*w:2*w+3:2*w+3]
		d := col[9*c : 9*c+9 : 9*c+9]
		d[0], d[1], d[2] = r0[0], r0[1], r0[2]
		d[3], d[4], d[5] = r1[0], r1[1], r1[2]
		d[6], d[7], d[8] = r2[0], r2[1], r2[2]
	}
}

// levels16 is what levels16NEON computes, in Go: for 16 outputs, the sums over j of
// w[16*j+o] * col[j], each in j order from zero, and how many bounds each reaches.
func levels16(w, col []float32, bounds *[7][16]float32, out *[16]int32) {
	var s [16]float32
	for j, v := range col {
		r := w[16*j : 16*j+16 : 16*j+16]
		for o := range s {
			s[o] += r[o] * v
		}
	}
	*out = [16]int32{}
	for k := range bounds {
		for o, t := range bounds[k] {
			if s[o] >= t {
				out[o]++
			}
		}
	}
}

// gather copies the window of output pixel (y, x) into col, zero outside the image.
func (f *FirstLayer) gather(img []float32, y, x int, col []float32) {
	k, i := f.k, 0
	y0, x0 := y*f.stride-f.pad, x*f.stride-f.pad
	inside := y0 >= 0 && x0 >= 0 && y0+k <= f.inH && x0+k <= f.inW
	if inside && k == 3 && f.cin == 3 && len(col) == 27 { // the usual case, unrolled
		gather3x3x3(img, f.inH*f.inW, f.inW, y0*f.inW+x0, (*[27]float32)(col))
		return
	}
	for c := 0; c < f.cin; c++ {
		plane := img[c*f.inH*f.inW : (c+1)*f.inH*f.inW]
		for ky := 0; ky < k; ky++ {
			yy := y0 + ky
			if inside && k == 3 { // the usual case, without a copy call per row
				row := plane[yy*f.inW+x0 : yy*f.inW+x0+3 : yy*f.inW+x0+3]
				c3 := col[i : i+3 : i+3]
				c3[0], c3[1], c3[2] = row[0], row[1], row[2]
				i += 3
				continue
			}
			for kx := 0; kx < k; kx++ {
				xx := x0 + kx
				if yy < 0 || yy >= f.inH || xx < 0 || xx >= f.inW {
					col[i] = 0
				} else {
					col[i] = plane[yy*f.inW+xx]
				}
				i++
			}
		}
	}
}

// quantize is clip(x, 0, clip) / clip * maxLevel rounded half to even, in float32 like
// numpy's quantize(clip(x, 0, 4)/4, 3)*7.
// The pixel loop uses its steps (levelOf); this is the definition.
func (f *FirstLayer) quantize(x float32) uint8 {
	x = max(0, min(x, f.clip))
	v := x / f.clip * f.maxLevel
	return uint8(math.RoundToEven(float64(v)))
}

func (f *FirstLayer) parallel(fn func(y0, y1 int)) {
	parallelRows(f.dim, f.threads, fn)
}

// parallelRows splits rows 0..n-1 into contiguous chunks over t goroutines.
func parallelRows(n, t int, f func(r0, r1 int)) {
	t = min(t, n)
	if t <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < t; i++ {
		r0, r1 := n*i/t, n*(i+1)/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(r0, r1)
		}()
	}
	wg.Wait()
}

// LastLayer is the float 1x1 convolution that runs on the CPU after the engine
// (Tinier-YOLO's conv8, 512->125 plus bias) on the engine's output levels times the
// last engine layer's ActScale (1 for the published model: QNN-MO feeds the raw levels).
type LastLayer struct {
	layer   *quant.Layer
	cin     int
	cout    int
	dim     int
	wT      []float32 // [c][o]: weights of input channel c for every output
	w16     []float32 // [o/16][c][o%16]: wT in groups of 16 outputs, for dot16IdxNEON
	bias    []float32
	scale   float32
	threads int
}

// NewLastLayer prepares the float layer that reads the engine's output.
func NewLastLayer(m *quant.Model, threads int) (*LastLayer, error) {
	_, last, err := offload.EngineLayers(m)
	if err != nil {
		return nil, err
	}
	if last+1 >= len(m.Layers) {
		return nil, fmt.Errorf("no layer after the engine layers")
	}
	l := m.Layers[last+1]
	c := l.Conv
	if l.Kind != quant.KindConv || c.Size != 1 || c.Stride != 1 || c.Pad != 0 || c.Groups != 1 || c.BN != nil || c.Activation != quant.ActLinear || l.Quant != nil {
		return nil, fmt.Errorf("layer %s after the engine is not a float linear 1x1 convolution", l.Name)
	}
	if len(l.Inputs) != 1 || l.Inputs[0] != last {
		return nil, fmt.Errorf("layer %s does not read the engine's output", l.Name)
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	var engineOut *quant.Layer
	for i := last; i >= 0; i-- {
		if offload.IsEngineConv(m.Layers[i]) {
			engineOut = m.Layers[i]
			break
		}
	}
	ll := &LastLayer{layer: l, cin: l.In.C, cout: c.Filters, dim: l.In.H, bias: c.Bias, scale: engineOut.Quant.ActScale, threads: threads}
	if ll.scale == 0 {
		ll.scale = 1
	}
	if ll.bias == nil {
		ll.bias = make([]float32, ll.cout)
	}
	ll.wT = make([]float32, ll.cin*ll.cout)
	groups := (ll.cout + 15) / 16
	ll.w16 = make([]float32, groups*16*ll.cin) // outputs past cout weigh 0
	for o := 0; o < ll.cout; o++ {
		for ch := 0; ch < ll.cin; ch++ {
			ll.wT[ch*ll.cout+o] = c.Weights[o*ll.cin+ch]
			ll.w16[(o/16)*16*ll.cin+16*ch+o%16] = c.Weights[o*ll.cin+ch]
		}
	}
	return ll, nil
}

// dot16Idx is what dot16IdxNEON computes, in Go: for 16 outputs, the sums over i of
// w[16*idx[i]+o] * val[i], each in i order from zero.
func dot16Idx(w []float32, idx []int32, val []float32, out *[16]float32) {
	*out = [16]float32{}
	for i, c := range idx {
		r := w[16*c : 16*c+16 : 16*c+16]
		for o := range out {
			out[o] += r[o] * val[i]
		}
	}
}

// nonzero lists the channels of a pixel's bit planes whose level is not 0, with their
// values (level times scale), in channel order.
func (ll *LastLayer) nonzero(planes []uint64, idx []int32, val []float32) ([]int32, []float32) {
	// By 32-bit halves and set bits only: 64-bit shifts cost several instructions on
	// the board's 32-bit ARM, and many channels are 0.
	for q := 0; 64*q < ll.cin; q++ {
		for h := uint(0); h < 2; h++ {
			p0, p1, p2 := uint32(planes[3*q]>>(32*h)), uint32(planes[3*q+1]>>(32*h)), uint32(planes[3*q+2]>>(32*h))
			for m := p0 | p1 | p2; m != 0; m &= m - 1 {
				b := uint(bits.TrailingZeros32(m))
				ch := 64*q + 32*int(h) + int(b)
				if ch >= ll.cin {
					break
				}
				lv := p0>>b&1 | (p1>>b&1)<<1 | (p2>>b&1)<<2
				idx = append(idx, int32(ch))
				val = append(val, float32(lv)*ll.scale)
			}
		}
	}
	return idx, val
}

// Run reads engine output records (layout l) and returns the layer's output, CHW in
// image order.
func (ll *LastLayer) Run(src []byte, l offload.Layout) ([]float32, error) {
	if l.Channels != ll.cin || l.Dim != ll.dim || l.Check() != nil || len(src) < l.Size() {
		return nil, fmt.Errorf("last layer input layout %+v (%d bytes), want %d channels of %dx%d", l, len(src), ll.cin, ll.dim, ll.dim)
	}
	hw := ll.dim * ll.dim
	out := make([]float32, ll.cout*hw)
	parallelRows(ll.dim, ll.threads, func(y0, y1 int) {
		acc := make([]float32, ll.cout)
		planes := make([]uint64, 3*offload.Lanes(ll.cin))
		idx, val := make([]int32, 0, ll.cin), make([]float32, 0, ll.cin)
		for y := y0; y < y1; y++ {
			for x := 0; x < ll.dim; x++ {
				r := offload.RecordIndex(y, x, ll.dim) * l.RecordBytes
				copy(planes, recordsToPlanes(src[r:r+l.RecordBytes], l.RecordBytes, 1, offload.Lanes(ll.cin)))
				if haveNEON { // the board: 16 outputs at a time over the nonzero channels
					idx, val = ll.nonzero(planes, idx[:0], val[:0])
					var s [16]float32
					for g := 0; g*16 < ll.cout; g++ {
						if len(idx) > 0 {
							dot16IdxNEON(&ll.w16[g*16*ll.cin], &idx[0], &val[0], len(idx), &s)
						} else {
							s = [16]float32{}
						}
						for i, a := range s[:min(16, ll.cout-16*g)] {
							o := 16*g + i
							out[o*hw+y*ll.dim+x] = a + ll.bias[o]
						}
					}
					continue
				}
				clear(acc)
				// Sum in input-channel order, skipping level 0 (adding 0 changes nothing).
				for ch := 0; ch < ll.cin; ch++ {
					q, b := ch/64, uint(ch%64)
					lv := planes[3*q]>>b&1 | (planes[3*q+1]>>b&1)<<1 | (planes[3*q+2]>>b&1)<<2
					if lv == 0 {
						continue
					}
					v := float32(lv) * ll.scale
					w := ll.wT[ch*ll.cout : (ch+1)*ll.cout]
					for o := range acc {
						acc[o] += w[o] * v
					}
				}
				for o, a := range acc {
					out[o*hw+y*ll.dim+x] = a + ll.bias[o]
				}
			}
		}
	})
	return out, nil
}
