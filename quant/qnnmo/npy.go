package qnnmo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Array is an n-dimensional float32 array read from a .npy file, in C (row-major) order
// whatever the file's order.
type Array struct {
	Shape []int
	Data  []float32
}

// Size is the number of elements the shape describes.
func (a *Array) Size() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// ErrNpy is wrapped by every .npy parse failure.
var ErrNpy = errors.New("bad npy file")

const npyMagic = "\x93NUMPY"

// maxNpyElements bounds allocations for hostile headers (1 GiB of float32).
const maxNpyElements = 1 << 28

// ReadNpyFile reads a .npy file holding little-endian float32 or float64 values.
func ReadNpyFile(path string) (*Array, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := ParseNpy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ReadNpy reads a .npy stream; see [ParseNpy].
func ReadNpy(r io.Reader) (*Array, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseNpy(data)
}

// ParseNpy parses a .npy file (format versions 1 to 3) holding '<f4' or '<f8' values in C
// or Fortran order. Errors name the byte offset.
func ParseNpy(data []byte) (*Array, error) {
	if len(data) < 10 || string(data[:6]) != npyMagic {
		return nil, fmt.Errorf("offset 0: no \\x93NUMPY magic (not a .npy file): %w", ErrNpy)
	}
	major := data[6]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return nil, fmt.Errorf("offset 8: truncated header length: %w", ErrNpy)
		}
		hlen, start = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, fmt.Errorf("offset 6: format version %d.%d is not supported (1, 2 or 3): %w", major, data[7], ErrNpy)
	}
	if hlen < 0 || start+hlen > len(data) || start+hlen < start {
		return nil, fmt.Errorf("offset %d: header of %d bytes runs past the end (%d bytes): %w", start, hlen, len(data), ErrNpy)
	}
	h, err := parseNpyHeader(string(data[start : start+hlen]))
	if err != nil {
		return nil, fmt.Errorf("offset %d: header: %w", start, err)
	}
	a := &Array{Shape: h.shape}
	n := 1
	for _, d := range h.shape {
		if d < 0 || (d > 0 && n > maxNpyElements/d) {
			return nil, fmt.Errorf("offset %d: shape %v is too large: %w", start, h.shape, ErrNpy)
		}
		n *= d
	}
	body := data[start+hlen:]
	if len(body) != n*h.itemSize {
		return nil, fmt.Errorf("offset %d: %d data bytes, shape %v of %s needs %d: %w", start+hlen, len(body), h.shape, h.descr, n*h.itemSize, ErrNpy)
	}
	a.Data = make([]float32, n)
	for i := range a.Data {
		if h.itemSize == 4 {
			a.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		} else {
			a.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:])))
		}
	}
	if h.fortran && len(h.shape) > 1 {
		a.Data = fortranToC(a.Data, h.shape)
	}
	return a, nil
}

type npyHeader struct {
	descr    string
	itemSize int
	fortran  bool
	shape    []int
}

// parseNpyHeader reads the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 3, 16), }.
func parseNpyHeader(s string) (npyHeader, error) {
	var h npyHeader
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return h, fmt.Errorf("not a dict literal: %w", ErrNpy)
	}
	descr, ok := dictValue(s, "descr")
	if !ok {
		return h, fmt.Errorf("no 'descr' key: %w", ErrNpy)
	}
	h.descr = strings.Trim(descr, `'"`)
	switch h.descr {
	case "<f4":
		h.itemSize = 4
	case "<f8":
		h.itemSize = 8
	default:
		return h, fmt.Errorf("dtype %q is not supported (little-endian float32 '<f4' or float64 '<f8'): %w", h.descr, ErrNpy)
	}
	fo, ok := dictValue(s, "fortran_order")
	switch {
	case !ok:
		return h, fmt.Errorf("no 'fortran_order' key: %w", ErrNpy)
	case fo == "True":
		h.fortran = true
	case fo == "False":
	default:
		return h, fmt.Errorf("fortran_order %q is not True or False: %w", fo, ErrNpy)
	}
	sh, ok := dictValue(s, "shape")
	if !ok || !strings.HasPrefix(sh, "(") || !strings.HasSuffix(sh, ")") {
		return h, fmt.Errorf("no 'shape' tuple: %w", ErrNpy)
	}
	h.shape = []int{}
	for _, f := range strings.Split(sh[1:len(sh)-1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return h, fmt.Errorf("shape entry %q is not a size: %w", f, ErrNpy)
		}
		h.shape = append(h.shape, d)
	}
	return h, nil
}

// dictValue returns the raw text of key's value in a flat dict literal: a quoted string,
// a tuple, or a bare word.
func dictValue(s, key string) (string, bool) {
	for _, q := range []string{"'", `"`} {
		i := strings.Index(s, q+key+q)
		if i < 0 {
			continue
		}
		rest := strings.TrimSpace(s[i+len(key)+2:])
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		rest = strings.TrimSpace(rest[1:])
		var end int
		switch {
		case rest == "":
			return "", false
		case rest[0] == '(':
			end = strings.IndexByte(rest, ')') + 1
		case rest[0] == '\'' || rest[0] == '"':
			end = strings.IndexByte(rest[1:], rest[0]) + 2
		default:
			end = strings.IndexAny(rest, ",}")
		}
		if end <= 0 {
			return "", false
		}
		return strings.TrimSpace(rest[:end]), true
	}
	return "", false
}

// fortranToC reorders column-major data into row-major order.
func fortranToC(src []float32, shape []int) []float32 {
	dst := make([]float32, len(src))
	nd := len(shape)
	idx := make([]int, nd)
	// Column-major strides.
	fstride := make([]int, nd)
	st := 1
	for k := 0; k < nd; k++ {
		fstride[k] = st
		st *= shape[k]
	}
	for i := range dst {
		off := 0
		for k := 0; k < nd; k++ {
			off += idx[k] * fstride[k]
		}
		dst[i] = src[off]
		for k := nd - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return dst
}
