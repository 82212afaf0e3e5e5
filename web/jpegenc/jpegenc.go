// Package jpegenc encodes the live feed's frames as baseline JPEG cheaply enough for the
// board's Cortex-A9. image/jpeg spends about 78 M ARM instructions on a 640x480 frame
// (its per-pixel colour conversion and block gathering, float-free but generic); this
// encoder takes YCbCr 4:2:2 planes as a camera delivers them (or converts RGBA once),
// uses a fixed-point AAN forward DCT and writes 4:2:2 scans, for a fraction of that.
// Its tables are image/jpeg's own (the standard Huffman tables of ITU T.81 Annex K and
// the quantization tables image/jpeg scales for a quality), read from a tiny image it
// encodes, so both encoders' files decode the same way.
package jpegenc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"sync"
)

// Encode writes img as a baseline JPEG of the given quality (1..100, as image/jpeg). An
// image with a YCbCr422() method (a camera frame) gives its planes directly.
func Encode(w io.Writer, img image.Image, quality int) error {
	b := img.Bounds()
	if b.Empty() || b.Dx() > 65535 || b.Dy() > 65535 {
		return fmt.Errorf("jpegenc: cannot encode a %dx%d image", b.Dx(), b.Dy())
	}
	t, err := tablesFor(quality)
	if err != nil {
		return err
	}
	var ycc *image.YCbCr
	switch m := img.(type) {
	case interface{ YCbCr422() *image.YCbCr }: // a camera frame that has the planes (or makes them)
		ycc = m.YCbCr422()
	case *image.YCbCr:
		ycc = m
	}
	if ycc == nil || ycc.SubsampleRatio != image.YCbCrSubsampleRatio422 || ycc.Rect.Size() != b.Size() {
		ycc = toYCbCr422(img)
	}
	e := &encoder{t: t, out: make([]byte, 0, b.Dx()*b.Dy()/4)}
	e.header(b.Dx(), b.Dy())
	e.scan(ycc)
	e.write([]byte{0xFF, 0xD9}) // EOI
	_, err = w.Write(e.out)
	return err
}

// StandardHuffmanTables returns the DHT segments of the standard Huffman tables (ITU
// T.81 K.3), as image/jpeg writes them: the tables an MJPEG frame without its own relies
// on. nil if image/jpeg wrote something unexpected.
func StandardHuffmanTables() []byte {
	t, err := tablesFor(75) // the Huffman tables do not depend on the quality
	if err != nil {
		return nil
	}
	return t.dht
}

// tables are one quality's segments and derived codes.
type tables struct {
	dqt, dht []byte
	recip    [2][64]int32 // 2^16 / (quantizer x AAN scale x 8), natural order
	huff     [4]huff      // DC luma, AC luma, DC chroma, AC chroma
}

// huff maps a symbol to its code and length.
type huff struct {
	code [256]uint16
	size [256]uint8
}

var (
	tablesMu sync.Mutex
	cache    = map[int]*tables{}
)

// tablesFor reads image/jpeg's tables for quality from a tiny encoded image.
func tablesFor(quality int) (*tables, error) {
	quality = max(1, min(100, quality))
	tablesMu.Lock()
	defer tablesMu.Unlock()
	if t := cache[quality]; t != nil {
		return t, nil
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 16, 16)), &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	t := &tables{}
	var q [2][64]int32 // zigzag order
	seen := 0
	err := segments(buf.Bytes(), func(marker byte, body []byte) error {
		switch marker {
		case 0xDB:
			t.dqt = append(t.dqt, segment(marker, body)...)
			for len(body) >= 65 {
				id := body[0] & 15
				if body[0]>>4 != 0 || id > 1 {
					return errors.New("unexpected quantization table")
				}
				for i := range 64 {
					q[id][i] = int32(body[1+i])
				}
				body = body[65:]
			}
		case 0xC4:
			t.dht = append(t.dht, segment(marker, body)...)
			for len(body) >= 17 {
				class, id := body[0]>>4, body[0]&15
				var counts [16]int
				n := 0
				for i := range counts {
					counts[i] = int(body[1+i])
					n += counts[i]
				}
				if class > 1 || id > 1 || len(body) < 17+n {
					return errors.New("unexpected Huffman table")
				}
				t.huff[2*int(id)+int(class)] = canonical(counts, body[17:17+n])
				seen++
				body = body[17+n:]
			}
		}
		return nil
	})
	if err == nil && (seen != 4 || len(t.dqt) == 0) {
		err = errors.New("image/jpeg wrote other tables than expected")
	}
	if err != nil {
		return nil, fmt.Errorf("jpegenc: reading image/jpeg's tables: %w", err)
	}
	for id := range q {
		for z, k := range zigzag {
			u, v := k/8, k%8
			div := float64(q[id][z]) * aan[u] * aan[v] * 8
			t.recip[id][k] = int32(math.Round(65536 / div))
		}
	}
	cache[quality] = t
	return t, nil
}

// aan[k] are the AAN DCT's output scales: 1, then cos(k pi/16) sqrt(2).
var aan = func() (a [8]float64) {
	a[0] = 1
	for k := 1; k < 8; k++ {
		a[k] = math.Cos(float64(k)*math.Pi/16) * math.Sqrt2
	}
	return a
}()

// zigzag[z] is the natural (row-major) index of zigzag position z.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// canonical assigns the canonical codes of ITU T.81 Annex C to a table's symbols.
func canonical(counts [16]int, vals []byte) huff {
	var h huff
	code, k := uint16(0), 0
	for l := 1; l <= 16; l++ {
		for range counts[l-1] {
			h.code[vals[k]], h.size[vals[k]] = code, uint8(l)
			code++
			k++
		}
		code <<= 1
	}
	return h
}

func segment(marker byte, body []byte) []byte {
	n := len(body) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, body...)
}

// segments calls f with each marker segment's body before the scan.
func segments(b []byte, f func(marker byte, body []byte) error) error {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return errors.New("not a JPEG")
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return errors.New("bad marker")
		}
		m, n := b[i+1], int(b[i+2])<<8|int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return errors.New("bad segment length")
		}
		if m == 0xDA {
			return nil
		}
		if err := f(m, b[i+4:i+2+n]); err != nil {
			return err
		}
		i += 2 + n
	}
	return errors.New("no scan")
}

// toYCbCr422 converts any image to JFIF YCbCr with 4:2:2 chroma (the mean of each pair).
func toYCbCr422(img image.Image) *image.YCbCr {
	b := img.Bounds()
	out := image.NewYCbCr(image.Rect(0, 0, b.Dx(), b.Dy()), image.YCbCrSubsampleRatio422)
	if rgba, ok := img.(*image.RGBA); ok && b.Dx()%2 == 0 {
		rgbaToYCbCr422(rgba, out)
		return out
	}
	rgba, isRGBA := img.(*image.RGBA)
	for y := 0; y < b.Dy(); y++ {
		yy := out.Y[y*out.YStride : y*out.YStride+b.Dx()]
		cb := out.Cb[y*out.CStride : y*out.CStride+(b.Dx()+1)/2]
		cr := out.Cr[y*out.CStride : y*out.CStride+(b.Dx()+1)/2]
		for x := 0; x < b.Dx(); x += 2 {
			var r, g, bl [2]int32
			for i := 0; i < 2; i++ {
				xi := min(x+i, b.Dx()-1)
				if isRGBA {
					p := rgba.Pix[rgba.PixOffset(b.Min.X+xi, b.Min.Y+y):]
					r[i], g[i], bl[i] = int32(p[0]), int32(p[1]), int32(p[2])
				} else {
					cr, cg, cb, _ := img.At(b.Min.X+xi, b.Min.Y+y).RGBA()
					r[i], g[i], bl[i] = int32(cr>>8), int32(cg>>8), int32(cb>>8)
				}
			}
			// JFIF: Y = .299 R + .587 G + .114 B, Cb/Cr centred on 128; 16.16 fixed point.
			yy[x] = uint8((19595*r[0] + 38470*g[0] + 7471*bl[0] + 32768) >> 16)
			if x+1 < b.Dx() {
				yy[x+1] = uint8((19595*r[1] + 38470*g[1] + 7471*bl[1] + 32768) >> 16)
			}
			rs, gs, bs := r[0]+r[1], g[0]+g[1], bl[0]+bl[1]
			cb[x/2] = clip8((-11059*rs - 21709*gs + 32768*bs + 65536*256 + 65536) >> 17)
			cr[x/2] = clip8((32768*rs - 27439*gs - 5329*bs + 65536*256 + 65536) >> 17)
		}
	}
	return out
}

func clip8(v int32) uint8 { return uint8(max(0, min(255, v))) }

// rgbaToYCbCr422 is toYCbCr422's conversion for RGBA of even width, a row at a time.
func rgbaToYCbCr422(src *image.RGBA, out *image.YCbCr) {
	b := src.Rect
	w := b.Dx()
	for y := 0; y < b.Dy(); y++ {
		row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
		yy := out.Y[y*out.YStride : y*out.YStride+w]
		cb := out.Cb[y*out.CStride : y*out.CStride+w/2]
		cr := out.Cr[y*out.CStride : y*out.CStride+w/2]
		for i := range cb {
			p := row[8*i : 8*i+8 : 8*i+8]
			r0, g0, b0 := int32(p[0]), int32(p[1]), int32(p[2])
			r1, g1, b1 := int32(p[4]), int32(p[5]), int32(p[6])
			yy[2*i] = uint8((19595*r0 + 38470*g0 + 7471*b0 + 32768) >> 16)
			yy[2*i+1] = uint8((19595*r1 + 38470*g1 + 7471*b1 + 32768) >> 16)
			rs, gs, bs := r0+r1, g0+g1, b0+b1
			cb[i] = clip8((-11059*rs - 21709*gs + 32768*bs + 65536*256 + 65536) >> 17)
			cr[i] = clip8((32768*rs - 27439*gs - 5329*bs + 65536*256 + 65536) >> 17)
		}
	}
}
