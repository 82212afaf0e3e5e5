package sim

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
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
	if nf := s.outCh / pe; nf*s.sf > len(j.wmem[0]) || nf > len(j.tmem[0]) {
		return s, fmt.Errorf("%d output channels of %d weight words each exceed the PE memories (%d words, %d thresholds)", s.outCh, s.sf, len(j.wmem[0]), len(j.tmem[0]))
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
	planes := j.inputPlanes(in, s, recBytes)
	levels := grow(&j.levels, s.ofm*s.ofm*s.outCh) // every entry is written
	if width := usedLanes(planes, s); width > 0 {
		j.parallel(s.ofm, func(r0, r1 int) { j.convRowsDense(planes, levels, s, width, r0, r1) })
	} else {
		j.parallel(s.ofm, func(r0, r1 int) { j.convRows(planes, levels, s, r0, r1) })
	}
	if s.pool {
		levels = j.maxPool(levels, s)
	}
	j.parallel(s.outDim, func(r0, r1 int) {
		var w [24]uint64
		for p := r0 * s.outDim; p < r1*s.outDim; p++ {
			writeRecord(out[p*recBytes:(p+1)*recBytes], levels[p*s.outCh:(p+1)*s.outCh], &w)
		}
	})
	return nil
}

// parallel runs f over contiguous row ranges of 0..n-1 on the model's goroutines.
func (j *Jam) parallel(n int, f func(r0, r1 int)) {
	t := min(j.threads, n)
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

// inputPlanes reads the records into the zero-padded map as bit planes: per padded
// pixel and 64-channel group three words, word b holding bit b of each lane's level.
// The engine reads whole SIMD groups, so lanes past IFMCh count as they are in DDR.
func (j *Jam) inputPlanes(in []byte, s layerShape, recBytes int) []uint64 {
	stride := 3 * s.g
	planes := grow(&j.planes, s.padded*s.padded*stride)
	zeroBorder(planes, s, stride)
	for r := 0; r < s.inDim; r++ {
		for c := 0; c < s.inDim; c++ {
			rec := in[(r*s.inDim+c)*recBytes:]
			dst := planes[((r+s.pad)*s.padded+c+s.pad)*stride:]
			for g := 0; g < s.g; g++ {
				w := rec[24*g : 24*g+24]
				dst[3*g], dst[3*g+1], dst[3*g+2] = lanePlanes(binary.LittleEndian.Uint64(w),
					binary.LittleEndian.Uint64(w[8:]), binary.LittleEndian.Uint64(w[16:]))
			}
		}
	}
	return planes
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
// w0, w1, w2) into three bit planes, four lanes (12 bits) at a time by table.
func lanePlanes(w0, w1, w2 uint64) (p0, p1, p2 uint64) {
	for k := 0; k < 64; k += 4 {
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

// convRows computes the levels of output rows r0..r1-1. For each output channel o
// (PE o mod PEs, neuron fold o / PEs) the weights are that PE's words
// fold*SF .. fold*SF+SF-1, in window order: kernel row, kernel column, SIMD group, the
// order the sliding window generator feeds the PEs.
func (j *Jam) convRows(planes []uint64, levels []uint8, s layerShape, r0, r1 int) {
	pe := j.lim.MaxPEConv
	stride := 3 * s.g
	rowWords := s.k * stride // plane words of one kernel row
	x := make([]uint64, 3*s.sf)
	w := make([][]uint64, s.outCh)
	for o := range w {
		w[o] = j.wmem[o%pe][(o/pe)*s.sf : (o/pe+1)*s.sf]
	}
	th := j.thresholds(s.outCh)
	for r := r0; r < r1; r++ {
		for c := 0; c < s.ofm; c++ {
			for ky := 0; ky < s.k; ky++ { // gather the window in the PEs' order
				at := ((r+ky)*s.padded + c) * stride
				dst, src := x[ky*rowWords:(ky+1)*rowWords], planes[at:at+rowWords]
				for i := 0; i < len(dst); i++ {
					dst[i] = src[i]
				}
			}
			total := 0
			for q := 0; q < len(x); q += 3 {
				total += bits.OnesCount64(x[q]) + 2*bits.OnesCount64(x[q+1]) + 4*bits.OnesCount64(x[q+2])
			}
			lv := levels[(r*s.ofm+c)*s.outCh:]
			o := 0
			for ; o+4 <= s.outCh; o += 4 {
				n0, n1, n2, n3 := maskedSum4(x, w[o], w[o+1], w[o+2], w[o+3])
				lv[o] = th[o].level(total - 2*n0)
				lv[o+1] = th[o+1].level(total - 2*n1)
				lv[o+2] = th[o+2].level(total - 2*n2)
				lv[o+3] = th[o+3].level(total - 2*n3)
			}
			for ; o < s.outCh; o++ {
				lv[o] = th[o].level(total - 2*maskedSum(x, w[o]))
			}
		}
	}
}

// usedLanes returns, for a one-group layer whose input uses only the low lanes (at most
// 32), how many low lanes hold data; 0 otherwise. Lanes that are zero everywhere add
// nothing to any sum, so the window can be packed densely (the hardware still spends
// cycles on them; the result is the same).
func usedLanes(planes []uint64, s layerShape) int {
	if s.g != 1 {
		return 0
	}
	var m uint64
	for _, p := range planes {
		m |= p
	}
	if w := bits.Len64(m); w <= 32 {
		return max(w, 1)
	}
	return 0
}

// packLanes ORs the low width bits of v into dst at bit position pos.
func packLanes(dst []uint64, pos, width int, v uint64) {
	v &= 1<<width - 1
	dst[pos/64] |= v << (pos % 64)
	if pos%64+width > 64 {
		dst[pos/64+1] |= v >> (64 - pos%64)
	}
}

// convRowsDense is convRows for one-group inputs using only the low width lanes: tap t's
// lanes sit at bits t*width.. of the packed window and weight rows.
func (j *Jam) convRowsDense(planes []uint64, levels []uint8, s layerShape, width, r0, r1 int) {
	pe, taps := j.lim.MaxPEConv, s.k*s.k
	words := (taps*width + 63) / 64
	w := make([][]uint64, s.outCh)
	for o := range w {
		src := j.wmem[o%pe][(o/pe)*s.sf : (o/pe+1)*s.sf]
		w[o] = make([]uint64, words)
		for t := 0; t < taps; t++ {
			packLanes(w[o], t*width, width, src[t])
		}
	}
	x := make([]uint64, 3*words)
	th := j.thresholds(s.outCh)
	tapAt := make([]int, taps) // plane offset of tap t from the window's corner
	for t := range tapAt {
		tapAt[t] = 3 * ((t/s.k)*s.padded + t%s.k)
	}
	for r := r0; r < r1; r++ {
		for c := 0; c < s.ofm; c++ {
			for i := 0; i < len(x); i++ {
				x[i] = 0
			}
			total := 0
			corner := 3 * (r*s.padded + c)
			for t := 0; t < taps; t++ {
				p := planes[corner+tapAt[t]:]
				for b := 0; b < 3; b++ {
					total += bits.OnesCount64(p[b]) << b
					packPlane(x, b, t*width, width, p[b])
				}
			}
			lv := levels[(r*s.ofm+c)*s.outCh:]
			o := 0
			for ; o+4 <= s.outCh; o += 4 {
				n0, n1, n2, n3 := maskedSum4(x, w[o], w[o+1], w[o+2], w[o+3])
				lv[o] = th[o].level(total - 2*n0)
				lv[o+1] = th[o+1].level(total - 2*n1)
				lv[o+2] = th[o+2].level(total - 2*n2)
				lv[o+3] = th[o+3].level(total - 2*n3)
			}
			for ; o < s.outCh; o++ {
				lv[o] = th[o].level(total - 2*maskedSum(x, w[o]))
			}
		}
	}
}

// packPlane is packLanes into bit plane b of interleaved plane words (word q of plane b
// at index 3q+b).
func packPlane(x []uint64, b, pos, width int, v uint64) {
	v &= 1<<width - 1
	q := pos / 64
	x[3*q+b] |= v << (pos % 64)
	if pos%64+width > 64 {
		x[3*(q+1)+b] |= v >> (64 - pos%64)
	}
}

// thresholds lists the threshold entry of each output channel (PE o mod PEs, fold o /
// PEs), so the inner loops do not divide (the A9 has no divide instruction).
func (j *Jam) thresholds(outCh int) []*threshEntry {
	pe := j.lim.MaxPEConv
	th := make([]*threshEntry, outCh)
	for o := range th {
		th[o] = &j.tmem[o%pe][o/pe]
	}
	return th
}

// maskedSum is the level sum of the lanes whose weight bit is 1 (weight -1).
func maskedSum(x, w []uint64) int {
	var s0, s1, s2 int
	x = x[:3*len(w)]
	for q, wq := range w {
		s0 += bits.OnesCount64(x[3*q] & wq)
		s1 += bits.OnesCount64(x[3*q+1] & wq)
		s2 += bits.OnesCount64(x[3*q+2] & wq)
	}
	return s0 + 2*s1 + 4*s2
}

// maskedSum4 is maskedSum for four weight rows, reading each window word once.
func maskedSum4(x, w0, w1, w2, w3 []uint64) (n0, n1, n2, n3 int) {
	x = x[:3*len(w0)]
	w1, w2, w3 = w1[:len(w0)], w2[:len(w0)], w3[:len(w0)]
	for q, a := range w0 {
		p0, p1, p2 := x[3*q], x[3*q+1], x[3*q+2]
		b, c, d := w1[q], w2[q], w3[q]
		n0 += bits.OnesCount64(p0&a) + 2*bits.OnesCount64(p1&a) + 4*bits.OnesCount64(p2&a)
		n1 += bits.OnesCount64(p0&b) + 2*bits.OnesCount64(p1&b) + 4*bits.OnesCount64(p2&b)
		n2 += bits.OnesCount64(p0&c) + 2*bits.OnesCount64(p1&c) + 4*bits.OnesCount64(p2&c)
		n3 += bits.OnesCount64(p0&d) + 2*bits.OnesCount64(p1&d) + 4*bits.OnesCount64(p2&d)
	}
	return
}

// level applies the thresholds to the 16-bit MAC register's value.
func (e *threshEntry) level(acc int) uint8 {
	a := int16(acc) // the MAC register is 16 bits and wraps
	n := uint8(0)
	for _, t := range e.t {
		n += b2u8(a >= t)
	}
	if e.invert {
		n = 7 - n
	}
	return n
}

// b2u8 is 1 for true (without a branch: the compiler emits a set-on-condition).
func b2u8(b bool) uint8 {
	var n uint8
	if b {
		n = 1
	}
	return n
}

// maxPool is StreamPad to PoolInDim (level 0 padding, the extra row/column at the end)
// followed by the 2x2 max pool with stride 2^PoolStride.
func (j *Jam) maxPool(levels []uint8, s layerShape) []uint8 {
	size := j.lim.MaxPoolSize
	out := grow(&j.pooled, s.poolOut*s.poolOut*s.outCh)
	at := func(y, x int) []uint8 { // padded coordinates; nil for padding
		y, x = y-s.poolPad, x-s.poolPad
		if y < 0 || x < 0 || y >= s.ofm || x >= s.ofm {
			return nil
		}
		return levels[(y*s.ofm+x)*s.outCh : (y*s.ofm+x+1)*s.outCh]
	}
	j.parallel(s.poolOut, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			for c := 0; c < s.poolOut; c++ {
				dst := out[(r*s.poolOut+c)*s.outCh : (r*s.poolOut+c+1)*s.outCh]
				for o := 0; o < len(dst); o++ {
					dst[o] = 0 // the padding's level, and the least
				}
				for ky := 0; ky < size; ky++ {
					for kx := 0; kx < size; kx++ {
						src := at(r<<s.poolStride+ky, c<<s.poolStride+kx)
						for o, v := range src {
							dst[o] = max(dst[o], v)
						}
					}
				}
			}
		}
	})
	return out
}

// writeRecord stores one pixel's levels at record bits 3o..3o+2, zeroing the rest of
// the record (the engine widens its MaxOFMCh output to MaxIFMCh records with zeros).
func writeRecord(rec []byte, levels []uint8, w *[24]uint64) {
	for i := 0; i < len(w); i++ {
		w[i] = 0
	}
	for o, v := range levels {
		pos := 3 * o
		w[pos/64] |= uint64(v) << (pos % 64)
		if pos%64 > 61 {
			w[pos/64+1] |= uint64(v) >> (64 - pos%64)
		}
	}
	for i := 0; i < len(rec)/8; i++ {
		binary.LittleEndian.PutUint64(rec[8*i:], w[i])
	}
}
