package imageio

import (
	"errors"
	"fmt"
	"image"
)

// This file is a small sequential (baseline and extended, Huffman, 8-bit) JPEG decoder.
// It exists for one reason: image/jpeg's inverse DCT rounds differently from libjpeg's
// default integer IDCT (the "islow" Loeffler-Ligtenberg-Moschytz one with 13-bit
// constants), which moves about 2% of the luma samples by one level compared with what
// darknet gets from OpenCV. This decoder reproduces libjpeg's IDCT and leaves
// everything else (progressive, arithmetic, 12-bit, CMYK and RGB JPEGs) to image/jpeg:
// errSkip sends the caller there.
var errSkip = errors.New("jpeg layout left to image/jpeg")

// jpegZigzag maps zigzag order to natural (row-major) order.
var jpegZigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

type huffTable struct {
	// Canonical decoding (JPEG spec F.2.2.3): per code length, the largest code, and the
	// index in vals of the first code of that length.
	maxCode [17]int32
	valPtr  [17]int32
	minCode [17]int32
	vals    []byte
	defined bool
	// lookup decodes codes of up to lookupBits bits in one step: for the next
	// lookupBits bits of input, length<<8 | value, or 0 when the code is longer.
	lookup [1 << lookupBits]uint16
	// fastAC decodes, for AC tables, a code and its coefficient's bits together when
	// both fit in lookupBits bits: value<<8 | run<<4 | bits used; 0 otherwise.
	fastAC [1 << lookupBits]int32
}

const lookupBits = 9

// fastHuffman enables decodeBlock's fast path (the fuzz target compares both paths).
var fastHuffman = true

// setFastAC fills t.fastAC from t.lookup.
func (t *huffTable) setFastAC() {
	for p, e := range t.lookup {
		t.fastAC[p] = 0
		n, run, s := int(e>>8), int32(byte(e)>>4), int(e&15)
		if e == 0 || s == 0 || n+s > lookupBits {
			continue
		}
		v := int32(p>>(lookupBits-n-s)) & (1<<s - 1)
		if v < 1<<(s-1) {
			v += -1<<s + 1
		}
		t.fastAC[p] = v<<8 | run<<4 | int32(n+s)
	}
}

type jpegComponent struct {
	id, h, v, tq int
	bw, bh       int    // blocks per row / column in the plane (padded to whole MCUs)
	plane        []byte // decoded samples, bw*8 wide
	decoded      bool
	pred         int32
	dc, ac       int
}

type jpegDecoder struct {
	data            []byte
	pos             int
	width, height   int
	comps           []*jpegComponent
	hmax, vmax      int
	quant           [4][64]int32 // natural order
	quantSet        [4]bool
	dcTab, acTab    [4]huffTable
	restartInterval int
	adobe, frame    bool
	// stb selects stb_image's inverse DCT and lets RGB-coded files through, which
	// outputSTB converts as stb_image does.
	stb            bool
	jfif           bool // a JFIF APP0 segment was seen
	app14Transform int  // the Adobe APP14 colour transform, -1 without one
	// entropy-coded segment reader
	bits     uint32
	nbits    int
	atMarker bool
}

func (d *jpegDecoder) fail(format string, args ...any) error {
	return fmt.Errorf("jpeg at byte %d: %s", d.pos, fmt.Sprintf(format, args...))
}

// decodeJPEG decodes a sequential JPEG into *image.YCbCr or *image.Gray, with libjpeg's
// inverse DCT.
func decodeJPEG(data []byte) (image.Image, error) {
	d, err := parseJPEG(data, false)
	if err != nil {
		return nil, err
	}
	return d.output()
}

// parseJPEG decodes every scan of a sequential JPEG into the component planes, with
// stb_image's inverse DCT if stb is set, else libjpeg's.
func parseJPEG(data []byte, stb bool) (*jpegDecoder, error) {
	d := &jpegDecoder{data: data, stb: stb, app14Transform: -1}
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, errSkip
	}
	d.pos = 2
	for {
		marker, err := d.nextMarker()
		if err != nil {
			return nil, err
		}
		switch {
		case marker == 0xD9: // EOI
			return d, d.complete()
		case marker == 0xC0 || marker == 0xC1:
			err = d.readFrame()
		case marker >= 0xC2 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			return nil, errSkip // progressive, lossless, arithmetic, hierarchical
		case marker == 0xC4:
			err = d.readHuffman()
		case marker == 0xDB:
			err = d.readQuant()
		case marker == 0xDD:
			err = d.readRestart()
		case marker == 0xDA:
			err = d.readScan()
		case marker == 0xE0:
			err = d.readAPP0()
		case marker == 0xEE: // Adobe: may mean RGB or CMYK, which image/jpeg sorts out
			d.adobe = true
			err = d.readAPP14()
		case marker >= 0xD0 && marker <= 0xD7, marker == 0x01:
			// stray parameterless marker: ignore
		default:
			err = d.skipSegment()
		}
		if err != nil {
			return nil, err
		}
	}
}

// nextMarker skips to the next 0xFF xx marker (and fill bytes) and returns xx.
func (d *jpegDecoder) nextMarker() (byte, error) {
	for d.pos+1 < len(d.data) {
		if d.data[d.pos] != 0xFF {
			d.pos++
			continue
		}
		m := d.data[d.pos+1]
		if m == 0xFF {
			d.pos++
			continue
		}
		d.pos += 2
		if m == 0 {
			continue
		}
		return m, nil
	}
	return 0, d.fail("no end-of-image marker")
}

// segment returns the payload of the marker segment at pos and advances past it.
func (d *jpegDecoder) segment() ([]byte, error) {
	if d.pos+2 > len(d.data) {
		return nil, d.fail("truncated segment length")
	}
	n := int(d.data[d.pos])<<8 | int(d.data[d.pos+1])
	if n < 2 || d.pos+n > len(d.data) {
		return nil, d.fail("segment length %d runs past the end", n)
	}
	p := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return p, nil
}

func (d *jpegDecoder) skipSegment() error {
	_, err := d.segment()
	return err
}

// readAPP0 notes a JFIF header: stb_image treats an Adobe transform 0 as RGB only
// without one.
func (d *jpegDecoder) readAPP0() error {
	p, err := d.segment()
	if err == nil && len(p) >= 5 && string(p[:5]) == "JFIF\x00" {
		d.jfif = true
	}
	return err
}

// readAPP14 records the colour transform of an Adobe segment (0 RGB or CMYK, 1 YCbCr,
// 2 YCCK), read where stb_image reads it.
func (d *jpegDecoder) readAPP14() error {
	p, err := d.segment()
	if err == nil && len(p) >= 12 && string(p[:6]) == "Adobe\x00" {
		d.app14Transform = int(p[11])
	}
	return err
}

func (d *jpegDecoder) readFrame() error {
	p, err := d.segment()
	if err != nil {
		return err
	}
	if d.frame {
		return d.fail("second frame header")
	}
	d.frame = true
	if len(p) < 6 {
		return d.fail("short frame header")
	}
	if p[0] != 8 {
		return errSkip // 12-bit samples
	}
	d.height, d.width = int(p[1])<<8|int(p[2]), int(p[3])<<8|int(p[4])
	n := int(p[5])
	if d.height == 0 || d.width == 0 || (n != 1 && n != 3) || len(p) < 6+3*n {
		return errSkip // DNL height, CMYK, odd component counts
	}
	if tooBig(d.width, d.height) {
		return tooBigErr(d.width, d.height)
	}
	for i := 0; i < n; i++ {
		c := &jpegComponent{id: int(p[6+3*i]), h: int(p[7+3*i] >> 4), v: int(p[7+3*i] & 15), tq: int(p[8+3*i])}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return d.fail("component %d has sampling %dx%d, table %d", c.id, c.h, c.v, c.tq)
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
		d.comps = append(d.comps, c)
	}
	mcuW, mcuH := 8*d.hmax, 8*d.vmax
	mcusX, mcusY := (d.width+mcuW-1)/mcuW, (d.height+mcuH-1)/mcuH
	for _, c := range d.comps {
		c.bw, c.bh = mcusX*c.h, mcusY*c.v
		c.plane = make([]byte, c.bw*8*c.bh*8)
	}
	return nil
}

func (d *jpegDecoder) readQuant() error {
	p, err := d.segment()
	if err != nil {
		return err
	}
	for len(p) > 0 {
		prec, id := p[0]>>4, int(p[0]&15)
		size := 64 * (1 + int(prec))
		if prec > 1 || id > 3 || len(p) < 1+size {
			return d.fail("bad quantization table %d (precision %d)", id, prec)
		}
		for k := 0; k < 64; k++ {
			v := int32(p[1+k])
			if prec == 1 {
				v = int32(p[1+2*k])<<8 | int32(p[2+2*k])
			}
			d.quant[id][jpegZigzag[k]] = v
		}
		d.quantSet[id] = true
		p = p[1+size:]
	}
	return nil
}

func (d *jpegDecoder) readHuffman() error {
	p, err := d.segment()
	if err != nil {
		return err
	}
	for len(p) > 0 {
		class, id := p[0]>>4, int(p[0]&15)
		if class > 1 || id > 3 || len(p) < 17 {
			return d.fail("bad Huffman table class %d id %d", class, id)
		}
		t := &d.dcTab[id]
		if class == 1 {
			t = &d.acTab[id]
		}
		total := 0
		var counts [17]int
		for l := 1; l <= 16; l++ {
			counts[l] = int(p[l])
			total += counts[l]
		}
		if total > 256 || len(p) < 17+total {
			return d.fail("Huffman table with %d codes", total)
		}
		t.vals = append([]byte(nil), p[17:17+total]...)
		code, k := int32(0), int32(0)
		for l := 1; l <= 16; l++ {
			t.valPtr[l], t.minCode[l] = k, code
			code += int32(counts[l])
			k += int32(counts[l])
			t.maxCode[l] = code - 1
			if counts[l] == 0 {
				t.maxCode[l] = -1
			}
			if code > 1<<l {
				return d.fail("Huffman table overfull at length %d", l)
			}
			code <<= 1
		}
		t.lookup = [1 << lookupBits]uint16{}
		k = 0
		code = 0
		for l := 1; l <= lookupBits; l++ {
			for i := 0; i < counts[l]; i++ {
				// every lookupBits-bit string that starts with this code
				shift := lookupBits - l
				for fill := 0; fill < 1<<shift; fill++ {
					t.lookup[int(code)<<shift|fill] = uint16(l)<<8 | uint16(t.vals[k])
				}
				code++
				k++
			}
			code <<= 1
		}
		t.setFastAC()
		t.defined = true
		p = p[17+total:]
	}
	return nil
}

func (d *jpegDecoder) readRestart() error {
	p, err := d.segment()
	if err != nil {
		return err
	}
	if len(p) < 2 {
		return d.fail("short restart interval")
	}
	d.restartInterval = int(p[0])<<8 | int(p[1])
	return nil
}

func (d *jpegDecoder) readScan() error {
	p, err := d.segment()
	if err != nil {
		return err
	}
	if !d.frame || len(p) < 1 {
		return d.fail("scan before frame header")
	}
	n := int(p[0])
	if n < 1 || n > len(d.comps) || len(p) < 1+2*n+3 {
		return d.fail("scan with %d components", n)
	}
	if !d.stb && (d.adobe || d.rgbIDs()) {
		return errSkip // RGB-coded JPEG
	}
	var scan []*jpegComponent
	for i := 0; i < n; i++ {
		var c *jpegComponent
		for _, fc := range d.comps {
			if fc.id == int(p[1+2*i]) {
				c = fc
			}
		}
		if c == nil || c.decoded {
			return d.fail("scan names unknown or repeated component %d", p[1+2*i])
		}
		c.dc, c.ac = int(p[2+2*i]>>4), int(p[2+2*i]&15)
		if c.dc > 3 || c.ac > 3 || !d.dcTab[c.dc].defined || !d.acTab[c.ac].defined || !d.quantSet[c.tq] {
			return d.fail("component %d uses undefined tables", c.id)
		}
		scan = append(scan, c)
	}
	if ss, se, a := p[1+2*n], p[2+2*n], p[3+2*n]; ss != 0 || se != 63 || a != 0 {
		return d.fail("sequential scan with spectral selection %d-%d", ss, se)
	}
	if err := d.decodeScan(scan); err != nil {
		return err
	}
	for _, c := range scan {
		c.decoded = true
	}
	return nil
}

// decodeScan decodes the entropy-coded data of one scan, leaving pos after it.
func (d *jpegDecoder) decodeScan(scan []*jpegComponent) error {
	d.bits, d.nbits, d.atMarker = 0, 0, false
	for _, c := range scan {
		c.pred = 0
	}
	var coef [64]int32
	block := func(c *jpegComponent, bx, by int) error {
		last, err := d.decodeBlock(c, &coef)
		if err != nil {
			return err
		}
		out := c.plane[by*8*c.bw*8+bx*8:]
		if d.stb {
			idctSTB(&coef, &d.quant[c.tq], last, out, c.bw*8)
		} else {
			idctIslow(&coef, &d.quant[c.tq], out, c.bw*8)
		}
		return nil
	}
	var units, unitsX int // MCUs of this scan
	if len(scan) == 1 {
		// Non-interleaved: one block per MCU, covering only the component's own extent.
		c := scan[0]
		cw := (d.width*c.h + 8*d.hmax - 1) / (8 * d.hmax)
		ch := (d.height*c.v + 8*d.vmax - 1) / (8 * d.vmax)
		unitsX, units = cw, cw*ch
	} else {
		unitsX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
		units = unitsX * ((d.height + 8*d.vmax - 1) / (8 * d.vmax))
	}
	for u := 0; u < units; u++ {
		if d.restartInterval > 0 && u > 0 && u%d.restartInterval == 0 {
			if err := d.restart(scan); err != nil {
				return err
			}
		}
		mx, my := u%unitsX, u/unitsX
		if len(scan) == 1 {
			if err := block(scan[0], mx, my); err != nil {
				return err
			}
			continue
		}
		for _, c := range scan {
			for v := 0; v < c.v; v++ {
				for h := 0; h < c.h; h++ {
					if err := block(c, mx*c.h+h, my*c.v+v); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// restart expects an RSTn marker: bits are byte-aligned again and DC predictions reset.
func (d *jpegDecoder) restart(scan []*jpegComponent) error {
	d.bits, d.nbits = 0, 0
	if !d.atMarker {
		// skip to the marker
		for d.pos+1 < len(d.data) && !(d.data[d.pos] == 0xFF && d.data[d.pos+1] != 0 && d.data[d.pos+1] != 0xFF) {
			d.pos++
		}
	}
	for d.pos < len(d.data) && d.data[d.pos] == 0xFF && d.pos+1 < len(d.data) && d.data[d.pos+1] == 0xFF {
		d.pos++
	}
	if d.pos+1 >= len(d.data) || d.data[d.pos+1] < 0xD0 || d.data[d.pos+1] > 0xD7 {
		return d.fail("missing restart marker")
	}
	d.pos += 2
	d.atMarker = false
	for _, c := range scan {
		c.pred = 0
	}
	return nil
}

// fill loads one more byte of entropy-coded data. At a marker it stops, which the
// callers treat as corrupt data (libjpeg would pad with zeros and warn).
func (d *jpegDecoder) fill() error {
	if d.atMarker || d.pos >= len(d.data) {
		return d.fail("entropy-coded data ends early")
	}
	b := d.data[d.pos]
	if b == 0xFF {
		if d.pos+1 >= len(d.data) {
			return d.fail("entropy-coded data ends early")
		}
		if d.data[d.pos+1] != 0 {
			d.atMarker = true
			return d.fail("marker inside entropy-coded data")
		}
		d.pos++
	}
	d.pos++
	d.bits = d.bits<<8 | uint32(b)
	d.nbits += 8
	return nil
}

// refill tops the bit buffer up to more than 24 bits while entropy-coded bytes follow;
// at a marker or the end it stops quietly (fill, on the bit-by-bit paths, reports them).
func (d *jpegDecoder) refill() {
	for d.nbits <= 24 && !d.atMarker && d.pos < len(d.data) {
		b := d.data[d.pos]
		if b == 0xFF {
			if d.pos+1 >= len(d.data) || d.data[d.pos+1] != 0 {
				return
			}
			d.pos++
		}
		d.pos++
		d.bits = d.bits<<8 | uint32(b)
		d.nbits += 8
	}
}

func (d *jpegDecoder) readBits(n int) (int32, error) {
	for d.nbits < n {
		if err := d.fill(); err != nil {
			return 0, err
		}
	}
	d.nbits -= n
	return int32(d.bits>>uint(d.nbits)) & (1<<uint(n) - 1), nil
}

func (d *jpegDecoder) decodeHuff(t *huffTable) (byte, error) {
	// Fast path: enough buffered bits for a table lookup. fill fails at markers, so
	// near the end of a segment the bit-by-bit path below takes over.
	for d.nbits < lookupBits {
		if d.fill() != nil {
			break
		}
	}
	if d.nbits >= lookupBits {
		if e := t.lookup[(d.bits>>uint(d.nbits-lookupBits))&(1<<lookupBits-1)]; e != 0 {
			d.nbits -= int(e >> 8)
			return byte(e), nil
		}
	}
	code := int32(0)
	for l := 1; l <= 16; l++ {
		b, err := d.readBits(1)
		if err != nil {
			return 0, err
		}
		code = code<<1 | b
		if code <= t.maxCode[l] {
			i := t.valPtr[l] + code - t.minCode[l]
			if i < 0 || int(i) >= len(t.vals) {
				break
			}
			return t.vals[i], nil
		}
	}
	return 0, d.fail("bad Huffman code")
}

// receiveExtend reads an s-bit magnitude category value (JPEG spec F.2.2.1).
func (d *jpegDecoder) receiveExtend(s byte) (int32, error) {
	if s == 0 {
		return 0, nil
	}
	if s > 16 {
		return 0, d.fail("coefficient category %d", s)
	}
	v, err := d.readBits(int(s))
	if err != nil {
		return 0, err
	}
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v, nil
}

// decodeBlock reads one block's coefficients into coef (natural order) and returns the
// zigzag index of the last one it set, so that callers can skip the zero tail.
func (d *jpegDecoder) decodeBlock(c *jpegComponent, coef *[64]int32) (last int, err error) {
	*coef = [64]int32{}
	s, err := d.decodeHuff(&d.dcTab[c.dc])
	if err != nil {
		return 0, err
	}
	diff, err := d.receiveExtend(s)
	if err != nil {
		return 0, err
	}
	c.pred += diff
	coef[0] = c.pred
	ac := &d.acTab[c.ac]
	for k := 1; k < 64; k++ {
		// Fast path, with 25 bits buffered: a code of up to lookupBits bits and its
		// coefficient's bits (at most 15) are there without a fill.
		if d.nbits < 25 && fastHuffman {
			d.refill()
		}
		if d.nbits >= 25 && fastHuffman {
			peek := d.bits >> uint(d.nbits-lookupBits) & (1<<lookupBits - 1)
			if f := ac.fastAC[peek]; f != 0 {
				d.nbits -= int(f & 15)
				if k += int(f >> 4 & 15); k > 63 {
					return 0, d.fail("AC run past the end of a block")
				}
				coef[jpegZigzag[k]] = f >> 8
				last = k
				continue
			}
			if e := ac.lookup[peek]; e != 0 {
				d.nbits -= int(e >> 8)
				r, s := int(byte(e)>>4), uint(e&15)
				if s == 0 {
					if r != 15 {
						return last, nil // end of block
					}
					k += 15
					continue
				}
				if k += r; k > 63 {
					return 0, d.fail("AC run past the end of a block")
				}
				d.nbits -= int(s)
				v := int32(d.bits>>uint(d.nbits)) & (1<<s - 1)
				if v < 1<<(s-1) {
					v += -1<<s + 1
				}
				coef[jpegZigzag[k]] = v
				last = k
				continue
			}
		}
		rs, err := d.decodeHuff(ac)
		if err != nil {
			return 0, err
		}
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r != 15 {
				return last, nil // end of block
			}
			k += 15
			continue
		}
		k += r
		if k > 63 {
			return 0, d.fail("AC run past the end of a block")
		}
		v, err := d.receiveExtend(s)
		if err != nil {
			return 0, err
		}
		coef[jpegZigzag[k]] = v
		last = k
	}
	return last, nil
}

// rgbIDs says whether the three components are named R, G, B (an RGB-coded file).
func (d *jpegDecoder) rgbIDs() bool {
	return len(d.comps) == 3 && d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B'
}

// complete checks at the end of the image that every component was decoded.
func (d *jpegDecoder) complete() error {
	if !d.frame {
		return d.fail("no frame header")
	}
	for _, c := range d.comps {
		if !c.decoded {
			return d.fail("component %d has no scan", c.id)
		}
	}
	return nil
}

// output copies the decoded planes into an image: grey, or YCbCr with the subsampling
// image/jpeg would report, so that yccToRGBA can upsample it.
func (d *jpegDecoder) output() (image.Image, error) {
	r := image.Rect(0, 0, d.width, d.height)
	if len(d.comps) == 1 {
		g := image.NewGray(r)
		copyPlane(g.Pix, g.Stride, d.comps[0], d.width, d.height)
		return g, nil
	}
	y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
	if cb.h != 1 || cb.v != 1 || cr.h != 1 || cr.v != 1 {
		return nil, errSkip
	}
	ratio, ok := subsampleRatio(y.h, y.v)
	if !ok {
		return nil, errSkip
	}
	img := image.NewYCbCr(r, ratio)
	copyPlane(img.Y, img.YStride, y, d.width, d.height)
	cw := (d.width + y.h - 1) / y.h
	ch := (d.height + y.v - 1) / y.v
	copyPlane(img.Cb, img.CStride, cb, cw, ch)
	copyPlane(img.Cr, img.CStride, cr, cw, ch)
	return img, nil
}

func copyPlane(dst []byte, stride int, c *jpegComponent, w, h int) {
	for y := 0; y < h; y++ {
		copy(dst[y*stride:y*stride+w], c.plane[y*c.bw*8:])
	}
}

// libjpeg's islow IDCT constants: FIX(x) = round(x * 2^13).
const (
	idctConstBits = 13
	idctPass1Bits = 2
	fix0298631336 = 2446
	fix0390180644 = 3196
	fix0541196100 = 4433
	fix0765366865 = 6270
	fix0899976223 = 7373
	fix1175875602 = 9633
	fix1501321110 = 12299
	fix1847759065 = 15137
	fix1961570560 = 16069
	fix2053119869 = 16819
	fix2562915447 = 20995
	fix3072711026 = 25172
)

func descale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// idct1D is one 8-point pass of libjpeg's islow IDCT on in[0], in[step], ... in[7*step]
// (already dequantized, or the first pass's output); it returns the eight outputs before
// the final descale.
func idct1D(in [8]int32) [8]int32 {
	// Even part.
	z2, z3 := in[2], in[6]
	z1 := (z2 + z3) * fix0541196100
	tmp2 := z1 - z3*fix1847759065
	tmp3 := z1 + z2*fix0765366865
	tmp0 := (in[0] + in[4]) << idctConstBits
	tmp1 := (in[0] - in[4]) << idctConstBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
	// Odd part.
	t0, t1, t2, t3 := in[7], in[5], in[3], in[1]
	o1, o2, o3, o4 := t0+t3, t1+t2, t0+t2, t1+t3
	z5 := (o3 + o4) * fix1175875602
	t0 *= fix0298631336
	t1 *= fix2053119869
	t2 *= fix3072711026
	t3 *= fix1501321110
	o1 *= -fix0899976223
	o2 *= -fix2562915447
	o3 = o3*-fix1961570560 + z5
	o4 = o4*-fix0390180644 + z5
	t0 += o1 + o3
	t1 += o2 + o4
	t2 += o2 + o3
	t3 += o1 + o4
	return [8]int32{tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3}
}

// idctIslow dequantizes a block and writes its 8x8 samples at out (row stride stride),
// bit-exact with libjpeg's jpeg_idct_islow including its range limiting. It computes in
// 32 bits, as libjpeg does on 32-bit machines (the board's Cortex-A9, where 64-bit
// multiplies cost several instructions); for 8-bit data from a real encoder nothing
// overflows (jidctint.c's own argument), so only corrupt files can differ from a 64-bit
// build.
func idctIslow(coef, quant *[64]int32, out []byte, stride int) {
	var ws [64]int32
	for col := 0; col < 8; col++ {
		if coef[8+col]|coef[16+col]|coef[24+col]|coef[32+col]|coef[40+col]|coef[48+col]|coef[56+col] == 0 {
			// Only the DC term: the full pass gives the same constant, faster.
			dc := int32(coef[col]) * int32(quant[col]) << idctPass1Bits
			for k := 0; k < 8; k++ {
				ws[8*k+col] = dc
			}
			continue
		}
		var in [8]int32
		for k := 0; k < 8; k++ {
			in[k] = int32(coef[8*k+col]) * int32(quant[8*k+col])
		}
		res := idct1D(in)
		for k := 0; k < 8; k++ {
			ws[8*k+col] = descale(res[k], idctConstBits-idctPass1Bits)
		}
	}
	for row := 0; row < 8; row++ {
		o := out[row*stride : row*stride+8]
		w := ws[8*row : 8*row+8]
		if w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7] == 0 {
			v := idctRangeLimit(descale(w[0], idctPass1Bits+3))
			for k := range o {
				o[k] = v
			}
			continue
		}
		var in [8]int32
		copy(in[:], w)
		res := idct1D(in)
		for k := 0; k < 8; k++ {
			o[k] = idctRangeLimit(descale(res[k], idctConstBits+idctPass1Bits+3))
		}
	}
}

// idctRangeLimit adds the 128 level shift and clamps like libjpeg's post-IDCT table,
// which is indexed by the low 10 bits (so wildly corrupt values wrap as they do there).
func idctRangeLimit(v int32) byte {
	m := v & 1023
	switch {
	case m < 128:
		return byte(m + 128)
	case m < 512:
		return 255
	case m < 896:
		return 0
	}
	return byte(m - 896)
}
