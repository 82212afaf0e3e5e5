package offload

import (
	"fmt"
)

// Layout describes an activation buffer: Dim x Dim pixels (the engine's maps are square),
// one record of RecordBytes bytes per pixel in the engine's pixel order, Channels 3-bit
// levels at record bits 3c..3c+2.
type Layout struct {
	Channels, Dim, RecordBytes int
}

// DDRLayout is the layout of the engine's DDR input and output buffers: 192-byte records.
func DDRLayout(channels, dim int) Layout {
	return Layout{Channels: channels, Dim: dim, RecordBytes: W1A3.RecordBytes()}
}

// CompactLayout is QNN-MO's Python form: ceil(3*channels/8) bytes per pixel.
func CompactLayout(channels, dim int) Layout {
	return Layout{Channels: channels, Dim: dim, RecordBytes: (3*channels + 7) / 8}
}

// Pixels is the number of records.
func (l Layout) Pixels() int { return l.Dim * l.Dim }

// Size is the buffer size in bytes.
func (l Layout) Size() int { return l.Pixels() * l.RecordBytes }

func (l Layout) Check() error {
	if l.Channels <= 0 || l.Dim <= 0 || l.RecordBytes*8 < 3*l.Channels {
		return fmt.Errorf("activation layout %d channels, %dx%d pixels, %d-byte records: records too small or empty", l.Channels, l.Dim, l.Dim, l.RecordBytes)
	}
	return nil
}

// LayoutForSize returns the layout whose records fill a buffer of n bytes, as QNN-MO's
// padTo reads a buffer: record size n / pixels.
func LayoutForSize(channels, dim, n int) (Layout, error) {
	l := Layout{Channels: channels, Dim: dim}
	if dim <= 0 || n%(dim*dim) != 0 {
		return l, fmt.Errorf("%d bytes are not a whole number of records for %dx%d pixels", n, dim, dim)
	}
	l.RecordBytes = n / (dim * dim)
	return l, l.Check()
}

// RecordIndex maps image pixel (y, x) to its record: the engine scans the transposed image.
func RecordIndex(y, x, dim int) int { return x*dim + y }

// Pack packs 3-bit levels of a CHW tensor in image order (Channels x Dim x Dim, values
// 0..7) into a new buffer of layout l, in the engine's transposed pixel order. Record bits
// past the channels are zero.
func Pack(levels []uint8, l Layout) ([]byte, error) {
	buf := make([]byte, l.Size())
	return buf, PackInto(buf, levels, l)
}

// PackInto is [Pack] into an existing buffer; it writes every byte of every record.
func PackInto(dst []byte, levels []uint8, l Layout) error {
	if err := l.Check(); err != nil {
		return err
	}
	if len(levels) != l.Channels*l.Pixels() || len(dst) < l.Size() {
		return fmt.Errorf("pack %d levels into %d bytes: layout %+v needs %d levels and %d bytes", len(levels), len(dst), l, l.Channels*l.Pixels(), l.Size())
	}
	clear(dst[:l.Size()])
	plane := l.Pixels()
	for y := 0; y < l.Dim; y++ {
		for x := 0; x < l.Dim; x++ {
			rec := dst[RecordIndex(y, x, l.Dim)*l.RecordBytes:]
			for c := 0; c < l.Channels; c++ {
				v := levels[c*plane+y*l.Dim+x]
				if v > 7 {
					return fmt.Errorf("level %d at channel %d, pixel (%d,%d) does not fit 3 bits", v, c, x, y)
				}
				putBits3(rec, 3*c, v)
			}
		}
	}
	return nil
}

// Unpack reads the levels of a buffer of layout l back into a CHW tensor in image order.
func Unpack(buf []byte, l Layout) ([]uint8, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	if len(buf) < l.Size() {
		return nil, fmt.Errorf("unpack %d bytes: layout %+v needs %d", len(buf), l, l.Size())
	}
	plane := l.Pixels()
	levels := make([]uint8, l.Channels*plane)
	for y := 0; y < l.Dim; y++ {
		for x := 0; x < l.Dim; x++ {
			rec := buf[RecordIndex(y, x, l.Dim)*l.RecordBytes:]
			for c := 0; c < l.Channels; c++ {
				levels[c*plane+y*l.Dim+x] = getBits3(rec, 3*c)
			}
		}
	}
	return levels, nil
}

// putBits3 ORs a 3-bit value into rec at bit offset off (record bit i = byte i/8, bit i%8).
// RecordLevel returns channel ch's 3-bit level in a record.
func RecordLevel(rec []byte, ch int) uint8 { return getBits3(rec, 3*ch) }

// SetRecordLevel sets channel ch's level in a record whose bits for it are zero.
func SetRecordLevel(rec []byte, ch int, v uint8) { putBits3(rec, 3*ch, v) }

func putBits3(rec []byte, off int, v uint8) {
	for b := 0; b < 3; b++ {
		if v>>b&1 == 1 {
			i := off + b
			rec[i/8] |= 1 << (i % 8)
		}
	}
}

func getBits3(rec []byte, off int) uint8 {
	var v uint8
	for b := 0; b < 3; b++ {
		i := off + b
		v |= (rec[i/8] >> (i % 8) & 1) << b
	}
	return v
}

// Parts returns how many engine runs a layer with outCh output channels takes and the
// channels of each: QNN-MO runs ceil(outCh/MaxOFMCh) parts of outCh/parts channels.
func Parts(outCh int, lim Limits) (parts, perPart int) {
	parts = (outCh + lim.MaxOFMCh - 1) / lim.MaxOFMCh
	return parts, outCh / parts
}

// Concat copies the output of part partIndex of a split layer (partChannels channels per
// record, records of layout l) into the full layer's buffer dst of the same layout:
// record bits 0 .. 3*partChannels-1 of each part record go to bit offset
// 3*partChannels*partIndex (QNN-MO's concatBuffer), leaving other bits of dst alone.
func Concat(dst, part []byte, l Layout, partIndex, partChannels int) error {
	off := 3 * partChannels * partIndex
	if partIndex < 0 || partChannels <= 0 || off+3*partChannels > 8*l.RecordBytes {
		return fmt.Errorf("concat part %d of %d channels does not fit %d-byte records", partIndex, partChannels, l.RecordBytes)
	}
	if len(dst) < l.Size() || len(part) < l.Size() {
		return fmt.Errorf("concat: buffers of %d and %d bytes, layout needs %d", len(dst), len(part), l.Size())
	}
	for p := 0; p < l.Pixels(); p++ {
		copyBits(dst[p*l.RecordBytes:(p+1)*l.RecordBytes], off, part[p*l.RecordBytes:(p+1)*l.RecordBytes], 0, 3*partChannels)
	}
	return nil
}

// Repack copies every record of src (layout from) into a new buffer of layout to, as
// QNN-MO's padTo does: the first min(record bits) bits of each record, the rest zero.
func Repack(src []byte, from, to Layout) ([]byte, error) {
	if from.Dim != to.Dim || len(src) < from.Size() {
		return nil, fmt.Errorf("repack %d bytes of %+v into %+v: shapes differ", len(src), from, to)
	}
	dst := make([]byte, to.Size())
	n := 8 * min(from.RecordBytes, to.RecordBytes)
	for p := 0; p < from.Pixels(); p++ {
		copyBits(dst[p*to.RecordBytes:], 0, src[p*from.RecordBytes:], 0, n)
	}
	return dst, nil
}

// copyBits copies n bits from src at bit offset so to dst at bit offset do.
func copyBits(dst []byte, do int, src []byte, so int, n int) {
	if do%8 == 0 && so%8 == 0 && n%8 == 0 {
		copy(dst[do/8:do/8+n/8], src[so/8:so/8+n/8])
		return
	}
	for i := 0; i < n; i++ {
		bit := src[(so+i)/8] >> ((so + i) % 8) & 1
		d := do + i
		dst[d/8] = dst[d/8]&^(1<<(d%8)) | bit<<(d%8)
	}
}
