package sim

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
)

// layerShape is a compute run's geometry after the checks the hardware's fixed buffers
// and stream lengths impose.
type layerShape struct {
	k, g, sf, outCh     int // kernel, 64-channel groups, weight words per channel, PE-padded outputs
	inDim, padded, pad  int // input side, padded side, padding before the first row/column
	ofm                 int // convolution output side
	pool                bool
	poolIn, poolOut     int
	poolPad, poolStride int
	outDim              int // side of what is written to DDR
}

// shape checks a compute run's registers. An error means the hardware would hang: a
// buffer index past its synthesized size or streams whose lengths disagree stall the
// dataflow region, so ap_done never rises.
func (j *Jam) shape(a jamArgs) (layerShape, error) {
	lim := j.lim
	var s layerShape
	switch {
	case a.k == 0 || int(a.k) > lim.MaxK:
		return s, fmt.Errorf("KernelDim %d outside 1..%d", a.k, lim.MaxK)
	case a.stride != 0:
		return s, fmt.Errorf("Stride register (log2) %d: the window generator is synthesized for stride 1 only", a.stride)
	case a.ifmCh == 0 || int(a.ifmCh) > lim.MaxIFMCh:
		return s, fmt.Errorf("IFMCh %d outside 1..%d", a.ifmCh, lim.MaxIFMCh)
	case a.ofmCh == 0 || int(a.ofmCh) > lim.MaxOFMCh:
		return s, fmt.Errorf("OFMCh %d outside 1..%d", a.ofmCh, lim.MaxOFMCh)
	case a.ifmDim == 0 || int(a.ifmDim) > lim.MaxIFMDim:
		return s, fmt.Errorf("IFMDim %d outside 1..%d", a.ifmDim, lim.MaxIFMDim)
	case a.padded < a.ifmDim || int(a.padded) > lim.MaxIFMDim:
		return s, fmt.Errorf("PaddedDim %d outside IFMDim %d..%d", a.padded, a.ifmDim, lim.MaxIFMDim)
	case a.ofmDim == 0 || int(a.ofmDim) > lim.MaxOFMDim:
		return s, fmt.Errorf("OFMDim %d outside 1..%d", a.ofmDim, lim.MaxOFMDim)
	case a.ofmDim-1+a.k != a.padded:
		return s, fmt.Errorf("OFMDim %d with KernelDim %d consumes %d padded rows, PaddedDim is %d (stream length mismatch)", a.ofmDim, a.k, a.ofmDim-1+a.k, a.padded)
	}
	pe := lim.MaxPEConv
	s.k, s.g = int(a.k), (int(a.ifmCh)+lim.MaxSIMD-1)/lim.MaxSIMD
	s.sf = s.k * s.k * s.g
	s.outCh = (int(a.ofmCh) + pe - 1) / pe * pe
	if nf := s.outCh / pe; nf*s.sf > lim.WMemWords(lim.MaxK) || nf > lim.TMemEntries() {
		return s, fmt.Errorf("%d output channels of %d weight words each exceed the PE memories (%d words, %d thresholds)", s.outCh, s.sf, lim.WMemWords(lim.MaxK), lim.TMemEntries())
	}
	s.inDim, s.padded, s.ofm = int(a.ifmDim), int(a.padded), int(a.ofmDim)
	s.pad = (s.padded - s.inDim) / 2
	s.outDim = s.ofm
	if a.layerType == convLayer {
		return s, nil
	}
	maxLog2 := bits.Len(uint(lim.MaxPoolStride)) - 1
	switch {
	case int(a.poolStride) > maxLog2:
		return s, fmt.Errorf("PoolStride (log2) %d exceeds the synthesized maximum %d", a.poolStride, maxLog2)
	case a.poolIn < a.ofmDim || int(a.poolIn) > lim.MaxOFMDim:
		return s, fmt.Errorf("PoolInDim %d outside OFMDim %d..%d", a.poolIn, a.ofmDim, lim.MaxOFMDim)
	case a.poolOut == 0 || (a.poolOut-1)<<a.poolStride+uint32(lim.MaxPoolSize) != a.poolIn:
		return s, fmt.Errorf("PoolOutDim %d with stride 2^%d does not consume PoolInDim %d (stream length mismatch)", a.poolOut, a.poolStride, a.poolIn)
	}
	s.pool = true
	s.poolIn, s.poolOut, s.poolStride = int(a.poolIn), int(a.poolOut), int(a.poolStride)
	s.poolPad = (s.poolIn - s.ofm) / 2
	s.outDim = s.poolOut
	return s, nil
}

// compute is DoCompute: records from in1, convolution, thresholds, optional max pool,
// records to out.
func (j *Jam) compute(a jamArgs) error {
	s, err := j.shape(a)
	if err != nil {
		return err
	}
	recBytes := j.lim.RecordBytes()
	in, err := j.mem.Slice(a.in1, s.inDim*s.inDim*recBytes)
	if err != nil {
		return fmt.Errorf("AXI read error on the input: %w", err)
	}
	out, err := j.mem.Slice(a.out, s.outDim*s.outDim*recBytes)
	if err != nil {
		return fmt.Errorf("AXI write error on the output: %w", err)
	}
	planes, used := j.inputPlanes(in, s, recBytes)
	levels := grow(&j.levels, s.ofm*s.ofm*s.outCh) // every entry is written
	conv := func(r0, r1 int) { j.convRows(planes, levels, s, r0, r1) }
	if width := denseWidth(used, s); width > 0 {
		conv = func(r0, r1 int) { j.convRowsDense(planes, levels, s, width, r0, r1) }
	}
	// Few parallel sections a layer: on a VM a parked worker thread takes some 100 us
	// to wake, which is the time of a small layer.
	if !s.pool {
		j.parallel(s.ofm, func(r0, r1 int) {
			conv(r0, r1)
			writeRecords(out, levels, s, r0, r1)
		})
		return nil
	}
	j.parallel(s.ofm, conv)
	pooled := grow(&j.pooled, s.poolOut*s.poolOut*s.outCh)
	j.parallel(s.poolOut, func(r0, r1 int) {
		j.maxPoolRows(levels, pooled, s, r0, r1)
		writeRecords(out, pooled, s, r0, r1)
	})
	return nil
}

// writeRecords writes output rows r0..r1-1 (s.outDim pixels each) of levels to the
// records in out.
func writeRecords(out []byte, levels []uint8, s layerShape, r0, r1 int) {
	recBytes := len(out) / (s.outDim * s.outDim)
	for p := r0 * s.outDim; p < r1*s.outDim; p++ {
		writeRecord(out[p*recBytes:(p+1)*recBytes], levels[p*s.outCh:(p+1)*s.outCh])
	}
}

// parallel runs f over row ranges of 0..n-1 on the model's goroutines.
func (j *Jam) parallel(n int, f func(r0, r1 int)) { j.crew.run(n, j.threads, f) }

// inputPlanes reads the records into the zero-padded map as bit planes: per padded
// pixel and 64-channel group three words, word b holding bit b of each lane's level.
// The engine reads whole SIMD groups, so lanes past IFMCh count as they are in DDR.
// used has a bit set for each lane that holds a level other than 0 somewhere.
func (j *Jam) inputPlanes(in []byte, s layerShape, recBytes int) (planes []uint64, used uint64) {
	stride := 3 * s.g
	planes = grow(&j.planes, s.padded*s.padded*stride)
	zeroBorder(planes, s, stride)
	var lanes atomic.Uint64
	j.parallel(s.inDim, func(r0, r1 int) {
		var m uint64
		for r := r0; r < r1; r++ {
			row := planes[((r+s.pad)*s.padded+s.pad)*stride : ((r+s.pad)*s.padded+s.pad+s.inDim)*stride]
			if recordPlanes(row, in[r*s.inDim*recBytes:], s.inDim, s.g, recBytes, stride) {
				for _, p := range row {
					m |= p
				}
				continue
			}
			for c := 0; c < s.inDim; c++ {
				rec := in[(r*s.inDim+c)*recBytes:]
				dst := planes[((r+s.pad)*s.padded+c+s.pad)*stride:]
				for g := 0; g < s.g; g++ {
					w := rec[24*g : 24*g+24]
					p0, p1, p2 := lanePlanes(binary.LittleEndian.Uint64(w),
						binary.LittleEndian.Uint64(w[8:]), binary.LittleEndian.Uint64(w[16:]))
					dst[3*g], dst[3*g+1], dst[3*g+2] = p0, p1, p2
					m |= p0 | p1 | p2
				}
			}
		}
		lanes.Or(m)
	})
	return planes, lanes.Load()
}

// grow returns (*buf)[:n], reallocating when too small: the buffers of one run serve the
// next (contents undefined).
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}

// zeroBorder zeroes the padding around the map in planes (the interior is written).
// Plain loops, not clear: the simulation's work stays in its own functions for an
// instruction count (scripts/board-cost.sh) rather than in runtime.memclr.
func zeroBorder(planes []uint64, s layerShape, stride int) {
	row := s.padded * stride
	for r := 0; r < s.padded; r++ {
		line := planes[r*row : (r+1)*row]
		if r < s.pad || r >= s.pad+s.inDim {
			for i := 0; i < len(line); i++ {
				line[i] = 0
			}
			continue
		}
		for i := 0; i < s.pad*stride; i++ {
			line[i] = 0
		}
		for i := (s.pad + s.inDim) * stride; i < len(line); i++ {
			line[i] = 0
		}
	}
}

// lanePlanes turns 192 record bits (64 lanes of 3 bits, lane i at bits 3i..3i+2, in
// w0, w1, w2) into three bit planes, four lanes (12 bits) at a time by table, up to the
// last lane that is not 0.
func lanePlanes(w0, w1, w2 uint64) (p0, p1, p2 uint64) {
	for k := 0; w0|w1|w2 != 0; k += 4 { // the rest of the lanes are level 0
		t := uint64(lanes4[w0&0xFFF])
		p0 |= (t & 15) << k
		p1 |= (t >> 4 & 15) << k
		p2 |= (t >> 8) << k
		w0, w1, w2 = w0>>12|w1<<52, w1>>12|w2<<52, w2>>12
	}
	return
}

// lanes4 splits 12 bits (four 3-bit levels) into the four levels' bit 0 (bits 0-3),
// bit 1 (bits 4-7) and bit 2 (bits 8-11).
var lanes4 = func() (t [4096]uint16) {
	for c := range t {
		for lane := 0; lane < 4; lane++ {
			v := c >> (3 * lane)
			t[c] |= uint16(v&1)<<lane | uint16(v>>1&1)<<(4+lane) | uint16(v>>2&1)<<(8+lane)
		}
	}
	return t
}()

// pixelWindow is the input a PE array reads for one output pixel: segs segments of seg
// plane-word triples (kernel rows), segment i starting at word i*stride of x.
type pixelWindow struct {
	x                 []uint64
	seg, segs, stride int
}

// triples is the number of plane-word triples in the window (weight words per PE).
func (win *pixelWindow) triples() int { return win.seg * win.segs }

// valid reports whether the window is not empty and its last segment lies within x.
func (win *pixelWindow) valid() bool {
	return win.seg > 0 && win.segs > 0 && win.stride >= 0 && (win.segs-1)*win.stride+3*win.seg <= len(win.x)
}

// convRows computes the levels of output rows r0..r1-1 as the matrix-vector unit
// does: per output pixel, the window in the sliding window generator's order (kernel
// row, kernel column, SIMD group) read in place from the padded map, then one neuron
// fold after the other, the PEs of a fold reading their memories in lockstep (channel
// o is PE o mod PEs, fold o / PEs; fold f's weights are words f*SF .. f*SF+SF-1 of
// every PE).
func (j *Jam) convRows(planes []uint64, levels []uint8, s layerShape, r0, r1 int) {
	stride := 3 * s.g // plane words per pixel
	win := &pixelWindow{seg: s.k * s.g, segs: s.k, stride: s.padded * stride}
	for r := r0; r < r1; r++ {
		for c := 0; c < s.ofm; c++ {
			win.x = planes[(r*s.padded+c)*stride:]
			foldLevels(win, j.lim.MaxPEConv, j.wmem, j.tmem, levels[(r*s.ofm+c)*s.outCh:(r*s.ofm+c+1)*s.outCh])
		}
	}
}

// denseWidth returns, for a one-group layer whose input uses only the low lanes (used
// has a bit per lane holding data), how many low lanes hold data, if a kernel row of
// that many lanes per tap fits a word; 0 otherwise. Lanes that are zero everywhere add
// nothing to any sum, so the window can be packed densely (the hardware still spends
// cycles on them; the result is the same).
func denseWidth(used uint64, s layerShape) int {
	if w := max(bits.Len64(used), 1); s.g == 1 && w*s.k <= 64 {
		return w
	}
	return 0
}

// packRows packs, for padded rows y0..y1-1 and every output column c, the k taps of
// kernel row (y, c..c+k-1) into one word per plane (tap kx at bits kx*width), at
// dst[3*((y-y0)*ofm+c)+b]: a dense window is then k such triples.
func packRows(dst, planes []uint64, s layerShape, width, y0, y1 int) {
	for y := y0; y < y1; y++ {
		for c := 0; c < s.ofm; c++ {
			src, d := planes[3*(y*s.padded+c):], dst[3*((y-y0)*s.ofm+c):]
			var p0, p1, p2 uint64
			for kx := 0; kx < s.k; kx++ {
				sh := uint(kx * width)
				p0 |= src[3*kx] << sh
				p1 |= src[3*kx+1] << sh
				p2 |= src[3*kx+2] << sh
			}
			d[0], d[1], d[2] = p0, p1, p2
		}
	}
}

// convRowsDense is convRows for one-group inputs using only the low width lanes, from
// row packs of the padded rows these output rows read (packRows): window triple ky
// holds kernel row ky, tap kx's lanes at bits kx*width, and the lockstep weights are
// packed the same way.
func (j *Jam) convRowsDense(planes []uint64, levels []uint8, s layerShape, width, r0, r1 int) {
	pes := j.lim.MaxPEConv
	w := make([]uint64, s.outCh/pes*s.k*pes)
	for f := 0; f < s.outCh/pes; f++ {
		for t := 0; t < s.k*s.k; t++ {
			for p := 0; p < pes; p++ {
				v := j.wmem[(f*s.sf+t)*pes+p] & (1<<width - 1)
				w[(f*s.k+t/s.k)*pes+p] |= v << uint(t%s.k*width)
			}
		}
	}
	packed := make([]uint64, 3*(r1-r0+s.k-1)*s.ofm)
	packRows(packed, planes, s, width, r0, r1+s.k-1)
	win := &pixelWindow{seg: 1, segs: s.k, stride: 3 * s.ofm}
	for r := r0; r < r1; r++ {
		for c := 0; c < s.ofm; c++ {
			win.x = packed[3*((r-r0)*s.ofm+c):]
			foldLevels(win, pes, w, j.tmem, levels[(r*s.ofm+c)*s.outCh:(r*s.ofm+c+1)*s.outCh])
		}
	}
}

// foldLevelsGo sets lv[o] for every output channel of one pixel (len(lv) / pes neuron
// folds): PE p of fold f computes the 16-bit MAC value total - 2 d, where total is the
// window's level sum and d = sum over the window's triples q of sum_b 2^b
// popcount(x_q[b] & w[(f*n+q)*pes+p]) (n triples), and counts the thresholds
// thr[(8f+t)*pes+p], t < 7, that it reaches, inverted by the mask at t = 7.
func foldLevelsGo(win *pixelWindow, pes int, w []uint64, thr []int16, lv []uint8) {
	n := win.triples()
	total := win.levelSum()
	for f := 0; (f+1)*pes <= len(lv); f++ { // (no division: the A9 has no divide instruction)
		wf, tf, lf := w[f*n*pes:(f+1)*n*pes], thr[f*tmemRows*pes:(f+1)*tmemRows*pes], lv[f*pes:(f+1)*pes]
		p := 0
		for ; p+4 <= pes; p += 4 {
			d0, d1, d2, d3 := win.dots4(wf, pes, p)
			lf[p], lf[p+1] = level(total-2*d0, tf[p:], pes), level(total-2*d1, tf[p+1:], pes)
			lf[p+2], lf[p+3] = level(total-2*d2, tf[p+2:], pes), level(total-2*d3, tf[p+3:], pes)
		}
		for ; p < pes; p++ { // PEs past the last group of four
			d, q := 0, 0
			for sg := 0; sg < win.segs; sg++ {
				x := win.x[sg*win.stride : sg*win.stride+3*win.seg]
				for i := 0; i+2 < len(x); i += 3 {
					d += maskedSum(x[i], x[i+1], x[i+2], wf[q*pes+p])
					q++
				}
			}
			lf[p] = level(total-2*d, tf[p:], pes)
		}
	}
}

// levelSum is the sum of the window's levels.
func (win *pixelWindow) levelSum() int {
	total := 0
	for sg := 0; sg < win.segs; sg++ {
		x := win.x[sg*win.stride : sg*win.stride+3*win.seg]
		for i := 0; i+2 < len(x); i += 3 {
			total += bits.OnesCount64(x[i]) + 2*bits.OnesCount64(x[i+1]) + 4*bits.OnesCount64(x[i+2])
		}
	}
	return total
}

// dots4 returns d of PEs p..p+3 (see foldLevelsGo) over the fold's weights wf, reading
// each window word once for the four.
func (win *pixelWindow) dots4(wf []uint64, pes, p int) (d0, d1, d2, d3 int) {
	q := 0
	for sg := 0; sg < win.segs; sg++ {
		x := win.x[sg*win.stride : sg*win.stride+3*win.seg]
		for i := 0; i+2 < len(x); i += 3 {
			x0, x1, x2 := x[i], x[i+1], x[i+2]
			ws := wf[q*pes+p : q*pes+p+4]
			d0 += maskedSum(x0, x1, x2, ws[0])
			d1 += maskedSum(x0, x1, x2, ws[1])
			d2 += maskedSum(x0, x1, x2, ws[2])
			d3 += maskedSum(x0, x1, x2, ws[3])
			q++
		}
	}
	return d0, d1, d2, d3
}

// maskedSum is the level sum of the lanes whose weight bit is 1 (weight -1).
func maskedSum(x0, x1, x2, w uint64) int {
	return bits.OnesCount64(x0&w) + 2*bits.OnesCount64(x1&w) + 4*bits.OnesCount64(x2&w)
}

// level applies a PE's thresholds (thr[t*stride], t < 7, and its invert mask at
// thr[7*stride]) to the 16-bit MAC register's value.
func level(acc int, thr []int16, stride int) uint8 {
	a := int16(acc) // the MAC register is 16 bits and wraps
	n := uint8(0)
	for t := 0; t < 7; t++ {
		n += b2u8(a >= thr[t*stride])
	}
	return n ^ uint8(thr[7*stride])
}

// b2u8 is 1 for true (without a branch: the compiler emits a set-on-condition).
func b2u8(b bool) uint8 {
	var n uint8
	if b {
		n = 1
	}
	return n
}

// maxPoolRows computes pooled rows r0..r1-1 into out: StreamPad to PoolInDim (level 0
// padding, the extra row/column at the end) followed by the 2x2 max pool with stride
// 2^PoolStride. Padding is level 0, the least.
func (j *Jam) maxPoolRows(levels, out []uint8, s layerShape, r0, r1 int) {
	if j.lim.MaxPoolSize != 2 {
		panic(fmt.Sprintf("sim: pool size %d; the model has the published 2x2 pool only", j.lim.MaxPoolSize))
	}
	zero := make([]uint8, s.outCh)
	pixel := func(y, x int) []uint8 { // padding outside the map
		if y < 0 || x < 0 || y >= s.ofm || x >= s.ofm {
			return zero
		}
		return levels[(y*s.ofm+x)*s.outCh : (y*s.ofm+x+1)*s.outCh]
	}
	for r := r0; r < r1; r++ {
		for c := 0; c < s.poolOut; c++ {
			y, x := r<<s.poolStride-s.poolPad, c<<s.poolStride-s.poolPad
			maxLevels4(out[(r*s.poolOut+c)*s.outCh:(r*s.poolOut+c+1)*s.outCh],
				pixel(y, x), pixel(y, x+1), pixel(y+1, x), pixel(y+1, x+1))
		}
	}
}

// maxLevels4 sets dst to the bytewise maximum of the levels (0..7) a, b, c and d,
// eight at a time: in each byte, (u | 0x80) - v keeps bit 7 exactly when u >= v.
func maxLevels4(dst, a, b, c, d []uint8) {
	n := len(dst)
	a, b, c, d = a[:n], b[:n], c[:n], d[:n]
	le := binary.LittleEndian
	i := 0
	for ; i+8 <= n; i += 8 {
		m := max8(max8(le.Uint64(a[i:]), le.Uint64(b[i:])), max8(le.Uint64(c[i:]), le.Uint64(d[i:])))
		le.PutUint64(dst[i:], m)
	}
	for ; i < n; i++ {
		dst[i] = max(a[i], b[i], c[i], d[i])
	}
}

// max8 is the bytewise maximum of eight levels.
func max8(u, v uint64) uint64 {
	const hi = 0x8080808080808080
	ge := ((u | hi) - v) & hi
	m := ge - ge>>7 | ge // 0xFF where u >= v
	return u&m | v&^m
}

// writeRecord stores one pixel's levels at record bits 3o..3o+2, zeroing the rest of
// the record (the engine widens its MaxOFMCh output to MaxIFMCh records with zeros).
// Eight levels at a time become 24 bits by folding pairs of fields together.
func writeRecord(rec []byte, levels []uint8) {
	var acc uint64 // bits not yet stored, from bit 0
	n, at := 0, 0  // bits in acc, bytes stored
	o := 0
	for ; o+8 <= len(levels); o += 8 {
		v := binary.LittleEndian.Uint64(levels[o:]) & 0x0707070707070707
		v = (v | v>>5) & 0x003F003F003F003F
		v = (v | v>>10) & 0x00000FFF00000FFF
		v = (v | v>>20) & 0xFFFFFF
		acc |= v << n
		if n += 24; n >= 64 {
			binary.LittleEndian.PutUint64(rec[at:], acc)
			at, n = at+8, n-64
			acc = v >> (24 - n)
		}
	}
	for ; o < len(levels); o++ { // channels past the last group of eight
		acc |= uint64(levels[o]&7) << n
		if n += 3; n >= 64 {
			binary.LittleEndian.PutUint64(rec[at:], acc)
			at, n = at+8, n-64
			acc = uint64(levels[o]&7) >> (3 - n)
		}
	}
	for ; at+8 <= len(rec); at += 8 { // the last bits, then zeros
		binary.LittleEndian.PutUint64(rec[at:], acc)
		acc = 0
	}
	for ; at < len(rec); at++ {
		rec[at] = byte(acc)
		acc >>= 8
	}
}
