package jpegenc

import (
	"image"
	"math/bits"
)

type encoder struct {
	out   []byte // the file so far
	t     *tables
	acc   uint32 // pending bits, the oldest highest
	nacc  uint   // how many
	prevD [3]int32
}

func (e *encoder) write(p []byte) { e.out = append(e.out, p...) }

// header writes SOI, the tables, SOF0 (Y 2x1, Cb and Cr 1x1: 4:2:2) and SOS.
func (e *encoder) header(w, h int) {
	e.write([]byte{0xFF, 0xD8})
	e.write(e.t.dqt)
	e.write([]byte{0xFF, 0xC0, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3,
		1, 0x21, 0, // Y: id 1, 2x1 sampling, table 0
		2, 0x11, 1, // Cb
		3, 0x11, 1}) // Cr
	e.write(e.t.dht)
	e.write([]byte{0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0})
}

// scan encodes the MCUs (16x8 pixels: two Y blocks, one Cb, one Cr) left to right, top
// to bottom, replicating edge pixels past the image.
func (e *encoder) scan(img *image.YCbCr) {
	b := img.Rect
	w, h := b.Dx(), b.Dy()
	cw := (w + 1) / 2
	var blk [64]int32
	for my := 0; my < h; my += 8 {
		for mx := 0; mx < w; mx += 16 {
			for i := 0; i < 2; i++ {
				load(&blk, img.Y, img.YStride, mx+8*i, my, w, h)
				e.block(&blk, 0)
			}
			load(&blk, img.Cb, img.CStride, mx/2, my, cw, h)
			e.block(&blk, 1)
			load(&blk, img.Cr, img.CStride, mx/2, my, cw, h)
			e.block(&blk, 2)
		}
	}
	// Pad the last byte with 1 bits.
	if e.nacc > 0 {
		e.bits(0x7F, 8-e.nacc)
	}
}

// load copies the 8x8 samples at (x, y) of a plane of w x h samples, level-shifted,
// repeating the last row and column past the edges.
func load(blk *[64]int32, p []uint8, stride, x, y, w, h int) {
	if x+8 <= w && y+8 <= h { // inside: no clamping
		if haveNEON {
			_ = p[(y+7)*stride+x+7] // in bounds
			loadNEON(blk, &p[y*stride+x], stride)
			return
		}
		for r := 0; r < 8; r++ {
			row := p[(y+r)*stride+x : (y+r)*stride+x+8 : (y+r)*stride+x+8]
			d := blk[8*r : 8*r+8 : 8*r+8]
			for c, v := range row {
				d[c] = int32(v) - 128
			}
		}
		return
	}
	for r := 0; r < 8; r++ {
		row := p[min(y+r, h-1)*stride:]
		for c := 0; c < 8; c++ {
			blk[8*r+c] = int32(row[min(x+c, w-1)]) - 128
		}
	}
}

// block transforms, quantizes and Huffman-codes one block of component comp.
func (e *encoder) block(blk *[64]int32, comp int) {
	fdct(blk)
	id := min(comp, 1)
	quantizeBlock(blk, &e.t.recip[id])
	dcT, acT := &e.t.huff[2*id], &e.t.huff[2*id+1]
	dc := blk[0]
	e.emit(dcT, dc-e.prevD[comp], 0)
	e.prevD[comp] = dc
	run := 0
	for z := 1; z < 64; z++ {
		v := blk[zigzag[z]&63]
		if v == 0 {
			run++
			continue
		}
		for run > 15 {
			e.bits(uint32(acT.code[0xF0]), uint(acT.size[0xF0])) // ZRL: sixteen zeros
			run -= 16
		}
		e.emit(acT, v, run)
		run = 0
	}
	if run > 0 {
		e.bits(uint32(acT.code[0]), uint(acT.size[0])) // EOB
	}
}

// quantizeBlock quantizes the 64 coefficients in place: on NEON four at a time.
func quantizeBlock(blk, recip *[64]int32) {
	if haveNEON {
		quantizeNEON(blk, recip)
		return
	}
	for k := range blk {
		blk[k] = quantize(blk[k], recip[k])
	}
}

// quantize divides by the quantizer through its reciprocal, rounding half away from 0
// (without a branch: s is 0 or -1, and (x ^ s) - s negates x when s is -1).
func quantize(v, recip int32) int32 {
	s := v >> 31
	return (((v^s)-s)*recip+1<<15)>>16 ^ s - s
}

// emit writes the symbol for (run, size of v) and v's bits (T.81 F.1.2).
func (e *encoder) emit(t *huff, v int32, run int) {
	a, b := v, v
	if v < 0 {
		a, b = -v, v-1
	}
	size := uint(bits.Len32(uint32(a)))
	sym := byte(run<<4) | byte(size)
	e.bits(uint32(t.code[sym]), uint(t.size[sym]))
	if size > 0 {
		e.bits(uint32(b)&(1<<size-1), size)
	}
}

// bits appends the low n (<= 16) bits of v, flushing whole bytes with 0xFF stuffing.
func (e *encoder) bits(v uint32, n uint) {
	e.acc = e.acc<<n | v&(1<<n-1)
	e.nacc += n
	for e.nacc >= 8 {
		e.nacc -= 8
		c := byte(e.acc >> e.nacc)
		e.out = append(e.out, c)
		if c == 0xFF {
			e.out = append(e.out, 0) // stuffing: FF in the scan is data, not a marker
		}
	}
	e.acc &= 1<<e.nacc - 1
}

// fdct is the AAN forward DCT in 8.8 fixed point, the rows then the columns; the
// outputs carry the scales that tables.recip divides out. On the board NEON runs both
// passes four lanes at a time (fdctNEON, the same integer arithmetic).
func fdct(d *[64]int32) {
	if haveNEON {
		fdctNEON(d)
		return
	}
	fdctGo(d)
}

// fdctGo is fdct in Go: the butterflies along each row, then down each column.
func fdctGo(d *[64]int32) {
	for i := 0; i < 8; i++ {
		aan8(d, 8*i, 1)
	}
	for c := 0; c < 8; c++ {
		aan8(d, c, 8)
	}
}

const (
	c0382 = 98  // 0.382683433 * 256
	c0541 = 139 // 0.541196100 * 256
	c0707 = 181 // 0.707106781 * 256
	c1306 = 334 // 1.306562965 * 256
)

// aan8 transforms the 8 values of d at at, at+step, ..., at+7*step in place.
func aan8(d *[64]int32, at, step int) {
	x := func(k int) *int32 { return &d[at+k*step] }
	t0, t7 := *x(0)+*x(7), *x(0)-*x(7)
	t1, t6 := *x(1)+*x(6), *x(1)-*x(6)
	t2, t5 := *x(2)+*x(5), *x(2)-*x(5)
	t3, t4 := *x(3)+*x(4), *x(3)-*x(4)
	// Even part.
	t10, t13 := t0+t3, t0-t3
	t11, t12 := t1+t2, t1-t2
	*x(0), *x(4) = t10+t11, t10-t11
	z1 := (t12 + t13) * c0707 >> 8
	*x(2), *x(6) = t13+z1, t13-z1
	// Odd part.
	t10, t11, t12 = t4+t5, t5+t6, t6+t7
	z5 := (t10 - t12) * c0382 >> 8
	z2 := t10*c0541>>8 + z5
	z4 := t12*c1306>>8 + z5
	z3 := t11 * c0707 >> 8
	z11, z13 := t7+z3, t7-z3
	*x(5), *x(3) = z13+z2, z13-z2
	*x(1), *x(7) = z11+z4, z11-z4
}
