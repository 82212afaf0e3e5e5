package darknet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Header is the start of a .weights file.
type Header struct {
	Major, Minor, Revision int32
	Seen                   uint64 // images seen in training
}

// ErrSize is wrapped when a weights file does not hold exactly what the cfg needs.
var ErrSize = errors.New("weights size does not match the cfg")

// seen64 says whether the header's seen counter is 64-bit. pjreddie darknet also requires
// major and minor below 1000 (larger values flag transposed weights); AlexeyAB does not.
func seen64(h Header, d quant.Dialect) bool {
	if int64(h.Major)*10+int64(h.Minor) < 2 {
		return false
	}
	return d == quant.DialectAlexeyAB || (h.Major < 1000 && h.Minor < 1000)
}

func (h Header) size(d quant.Dialect) int64 {
	if seen64(h, d) {
		return 20
	}
	return 16
}

// chunk is one run of float32 values of one convolution, in file order.
type chunk struct {
	layer int
	what  string // biases, scales, rolling_mean, rolling_variance, weights
	n     int
}

// plan lists the chunks darknet reads, per convolution in layer order: biases, then with
// batch norm scales, rolling_mean, rolling_variance, then OIHW weights.
func plan(m *quant.Model) []chunk {
	var cs []chunk
	for i, l := range m.Layers {
		c := l.Conv
		if l.Kind != quant.KindConv || c == nil {
			continue
		}
		cs = append(cs, chunk{i, "biases", c.Filters})
		if c.BN != nil {
			cs = append(cs, chunk{i, "scales", c.Filters}, chunk{i, "rolling_mean", c.Filters}, chunk{i, "rolling_variance", c.Filters})
		}
		cs = append(cs, chunk{i, "weights", c.Filters * l.In.C / c.Groups * c.Size * c.Size})
	}
	return cs
}

func planBytes(cs []chunk) int64 {
	var n int64
	for _, c := range cs {
		n += 4 * int64(c.n)
	}
	return n
}

// Load parses a cfg and reads its weights.
func Load(cfgPath, weightsPath string, opt Options) (*quant.Model, error) {
	m, err := LoadCfg(cfgPath, opt)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(weightsPath)
	if err != nil {
		return nil, fmt.Errorf("open darknet weights: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("darknet weights: %w", err)
	}
	if _, err := ReadWeights(bufio.NewReaderSize(f, 1<<16), weightsPath, st.Size(), m); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadWeights reads a darknet .weights stream into the convolutions of m (whose shapes it
// infers first). size is the stream's length in bytes, or -1 when unknown; either way the
// data must match the cfg exactly, else the error (wrapping ErrSize) says how many bytes
// were expected and found, and where a truncated file runs out. On error m is unchanged.
func ReadWeights(r io.Reader, name string, size int64, m *quant.Model) (Header, error) {
	var h Header
	if err := m.InferShapes(); err != nil {
		return h, fmt.Errorf("darknet weights %s: model: %w", name, err)
	}
	var hdr [20]byte
	if n, err := io.ReadFull(r, hdr[:12]); err != nil {
		return h, fmt.Errorf("darknet weights %s: %d bytes, too short for the 12-byte header (empty or not a weights file): %w", name, n, ErrSize)
	}
	h.Major = int32(binary.LittleEndian.Uint32(hdr[0:]))
	h.Minor = int32(binary.LittleEndian.Uint32(hdr[4:]))
	h.Revision = int32(binary.LittleEndian.Uint32(hdr[8:]))
	hlen := h.size(m.Dialect)
	if n, err := io.ReadFull(r, hdr[12:hlen]); err != nil {
		return h, fmt.Errorf("darknet weights %s: %d bytes, too short for the %d-byte header of version %d.%d: %w", name, 12+n, hlen, h.Major, h.Minor, ErrSize)
	}
	if hlen == 20 {
		h.Seen = binary.LittleEndian.Uint64(hdr[12:])
	} else {
		h.Seen = uint64(binary.LittleEndian.Uint32(hdr[12:]))
	}
	cs := plan(m)
	want := hlen + planBytes(cs)
	if size >= 0 && size != want {
		return h, sizeError(name, m, size, want, hlen, cs)
	}
	vals := make([][]float32, len(cs))
	off := hlen
	buf := make([]byte, 64<<10)
	for i, c := range cs {
		v, err := readFloats(r, c.n, buf)
		if err != nil {
			got := off + 4*int64(len(v))
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return h, fmt.Errorf("darknet weights %s: truncated: %d bytes, the cfg needs %d; data ends in layer %d (%s) %s (weights for another cfg, or a partial download?): %w",
					name, got, want, c.layer, m.Layers[c.layer].Name, c.what, ErrSize)
			}
			return h, fmt.Errorf("darknet weights %s: read at byte %d: %w", name, got, err)
		}
		vals[i] = v
		off += 4 * int64(c.n)
	}
	if size < 0 {
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n > 0 {
			return h, fmt.Errorf("darknet weights %s: more bytes than the %d the cfg needs (weights for another cfg?): %w", name, want, ErrSize)
		}
	}
	assign(m, cs, vals)
	return h, nil
}

func sizeError(name string, m *quant.Model, size, want, hlen int64, cs []chunk) error {
	if size > want {
		return fmt.Errorf("darknet weights %s: %d bytes, the cfg needs %d: %d bytes too many (weights for another cfg, or a cfg with layers missing?): %w",
			name, size, want, size-want, ErrSize)
	}
	off := hlen
	for _, c := range cs {
		if off+4*int64(c.n) > size {
			return fmt.Errorf("darknet weights %s: truncated: %d bytes, the cfg needs %d; data ends in layer %d (%s) %s (weights for another cfg, or a partial download?): %w",
				name, size, want, c.layer, m.Layers[c.layer].Name, c.what, ErrSize)
		}
		off += 4 * int64(c.n)
	}
	return fmt.Errorf("darknet weights %s: %d bytes, the cfg needs %d: %w", name, size, want, ErrSize)
}

// readFloats reads n little-endian float32 values. It grows its result as data arrives,
// so a short stream cannot make it allocate for values that are not there.
func readFloats(r io.Reader, n int, buf []byte) ([]float32, error) {
	step := len(buf) / 4
	out := make([]float32, 0, min(n, step))
	for len(out) < n {
		k := min(n-len(out), step)
		got, err := io.ReadFull(r, buf[:4*k])
		for i := 0; i+4 <= got; i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(buf[i:])))
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func assign(m *quant.Model, cs []chunk, vals [][]float32) {
	for i, c := range cs {
		conv := m.Layers[c.layer].Conv
		v := vals[i]
		switch c.what {
		case "biases":
			conv.Bias = v
		case "scales":
			conv.BN.Scale = v
		case "rolling_mean":
			conv.BN.Mean = v
		case "rolling_variance":
			conv.BN.Variance = v
		case "weights":
			conv.Weights = v
		}
	}
}

// WriteWeights writes m's convolution parameters as a darknet .weights file with header h
// (seen is written 32- or 64-bit as darknet reads it for h's version).
func WriteWeights(w io.Writer, m *quant.Model, h Header) error {
	if err := m.InferShapes(); err != nil {
		return fmt.Errorf("write darknet weights: model: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var hdr [20]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(h.Major))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(h.Minor))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(h.Revision))
	hlen := h.size(m.Dialect)
	if hlen == 20 {
		binary.LittleEndian.PutUint64(hdr[12:], h.Seen)
	} else {
		if h.Seen > math.MaxUint32 {
			return fmt.Errorf("write darknet weights: seen %d does not fit the 32-bit counter of version %d.%d (use version 0.2)", h.Seen, h.Major, h.Minor)
		}
		binary.LittleEndian.PutUint32(hdr[12:], uint32(h.Seen))
	}
	bw.Write(hdr[:hlen])
	for _, c := range plan(m) {
		v := chunkValues(m.Layers[c.layer].Conv, c.what)
		if len(v) != c.n {
			return fmt.Errorf("write darknet weights: layer %d (%s) has %d %s, want %d (load or initialise the weights first)", c.layer, m.Layers[c.layer].Name, len(v), c.what, c.n)
		}
		writeFloats(bw, v)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write darknet weights: %w", err)
	}
	return nil
}

func chunkValues(c *quant.Conv, what string) []float32 {
	switch what {
	case "biases":
		return c.Bias
	case "scales":
		return c.BN.Scale
	case "rolling_mean":
		return c.BN.Mean
	case "rolling_variance":
		return c.BN.Variance
	}
	return c.Weights
}

// writeFloats writes little-endian float32 values; errors surface at Flush.
func writeFloats(w *bufio.Writer, v []float32) {
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		w.Write(b[:])
	}
}
