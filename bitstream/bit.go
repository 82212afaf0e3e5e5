package bitstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors of the .bit parser; FieldError wraps one of them.
var (
	ErrTruncated     = errors.New("file is truncated")
	ErrTrailingData  = errors.New("bytes after the configuration data")
	ErrBadLength     = errors.New("unexpected length")
	ErrUnexpectedKey = errors.New("unexpected field key")
	ErrNotTerminated = errors.New("string is not NUL-terminated")
)

// FieldError says which header field of a .bit file is wrong and where it starts.
type FieldError struct {
	Field  string // "preamble", "a (design)", "e (configuration data)", ...
	Offset int64  // byte offset in the file where the problem was found
	Err    error  // one of the sentinel errors, with detail
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("bit header field %s at byte %d: %v", e.Field, e.Offset, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Header is the decoded .bit header. The configuration data ("payload") follows it at
// PayloadOffset and is PayloadLen bytes long.
type Header struct {
	Design        string            // field a verbatim, e.g. "top;UserID=0XFFFFFFFF;Version=2017.4"
	DesignName    string            // the part of Design before the first ';'
	UserID        string            // UserID= from Design, "" when absent
	Version       string            // Version= (Vivado version) from Design, "" when absent
	Attributes    map[string]string // every key=value of Design, including UserID and Version
	Part          string            // field b, e.g. "7z020clg400"
	Date          string            // field c, e.g. "2018/10/16"
	Time          string            // field d, e.g. "17:41:26"
	PayloadOffset int64             // file offset of the first configuration byte
	PayloadLen    int64             // length of field e
}

// preamble is the fixed first field every Vivado .bit starts with (length 9).
var preamble = []byte{0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x00}

// headerFields are the string fields in the order Vivado writes them.
var headerFields = []struct {
	key  byte
	name string
}{
	{'a', "a (design)"},
	{'b', "b (part)"},
	{'c', "c (date)"},
	{'d', "d (time)"},
}

// offsetReader counts consumed bytes so errors can name the offset.
type offsetReader struct {
	r   io.Reader
	off int64
}

func (o *offsetReader) full(field string, n int) ([]byte, error) {
	buf := make([]byte, n)
	start := o.off
	got, err := io.ReadFull(o.r, buf)
	o.off += int64(got)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FieldError{field, start, fmt.Errorf("%w: need %d bytes, file ends after %d", ErrTruncated, n, got)}
		}
		return nil, &FieldError{field, start, err}
	}
	return buf, nil
}

func (o *offsetReader) uint16(field string) (int, error) {
	b, err := o.full(field, 2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(b)), nil
}

// ReadHeader decodes a .bit header from r and stops at the first payload byte, so the
// caller can stream the payload. It does not know the file size: use Parse, Decode or
// ToBin to also check the payload length against the file.
func ReadHeader(r io.Reader) (*Header, error) {
	or := &offsetReader{r: r}
	if err := readPreamble(or); err != nil {
		return nil, err
	}
	h := &Header{}
	dst := []*string{&h.Design, &h.Part, &h.Date, &h.Time}
	for i, f := range headerFields {
		s, err := readStringField(or, f.key, f.name)
		if err != nil {
			return nil, err
		}
		*dst[i] = s
	}
	h.parseDesign()
	if err := expectKey(or, 'e', "e (configuration data)"); err != nil {
		return nil, err
	}
	b, err := or.full("e (configuration data) length", 4)
	if err != nil {
		return nil, err
	}
	h.PayloadLen = int64(binary.BigEndian.Uint32(b))
	h.PayloadOffset = or.off
	return h, nil
}

func readPreamble(or *offsetReader) error {
	n, err := or.uint16("preamble length")
	if err != nil {
		return err
	}
	if n != len(preamble) {
		return &FieldError{"preamble length", 0, fmt.Errorf("%w: %d, want %d (not a Xilinx .bit file?)", ErrBadLength, n, len(preamble))}
	}
	if _, err := or.full("preamble", n); err != nil {
		return err
	}
	// The content of the preamble varies between tools; only its length is checked.
	off := or.off
	n, err = or.uint16("key length")
	if err != nil {
		return err
	}
	if n != 1 {
		return &FieldError{"key length", off, fmt.Errorf("%w: %d, want 1", ErrBadLength, n)}
	}
	return nil
}

func expectKey(or *offsetReader, key byte, field string) error {
	off := or.off
	b, err := or.full(field+" key", 1)
	if err != nil {
		return err
	}
	if b[0] != key {
		return &FieldError{field, off, fmt.Errorf("%w: %s, want %q", ErrUnexpectedKey, quoteKey(b[0]), key)}
	}
	return nil
}

func quoteKey(k byte) string {
	if k >= 0x20 && k < 0x7f {
		return fmt.Sprintf("%q", k)
	}
	return fmt.Sprintf("0x%02x", k)
}

func readStringField(or *offsetReader, key byte, field string) (string, error) {
	if err := expectKey(or, key, field); err != nil {
		return "", err
	}
	lenOff := or.off
	n, err := or.uint16(field + " length")
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", &FieldError{field, lenOff, fmt.Errorf("%w: 0 (a string needs at least its NUL)", ErrBadLength)}
	}
	valOff := or.off
	b, err := or.full(field, n)
	if err != nil {
		return "", err
	}
	if b[n-1] != 0 {
		return "", &FieldError{field, valOff, ErrNotTerminated}
	}
	s := b[:n-1]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return "", &FieldError{field, valOff + int64(i), fmt.Errorf("%w: NUL inside the string", ErrBadLength)}
	}
	return string(s), nil
}

// parseDesign splits "name;Key=Value;..." into the named fields.
func (h *Header) parseDesign() {
	parts := strings.Split(h.Design, ";")
	h.DesignName = parts[0]
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue // tolerate free-form annotations; Design keeps them verbatim
		}
		if h.Attributes == nil {
			h.Attributes = make(map[string]string)
		}
		h.Attributes[k] = v
		switch k {
		case "UserID":
			h.UserID = v
		case "Version":
			h.Version = v
		}
	}
}

// checkSize compares the payload extent with the file size (size < 0: unknown).
func (h *Header) checkSize(size int64) error {
	if size < 0 {
		return nil
	}
	end := h.PayloadOffset + h.PayloadLen
	lenOff := h.PayloadOffset - 4
	switch {
	case end > size:
		return &FieldError{"e (configuration data)", h.PayloadOffset,
			fmt.Errorf("%w: length field says %d bytes, file has %d after the header", ErrTruncated, h.PayloadLen, size-h.PayloadOffset)}
	case end < size:
		return &FieldError{"e (configuration data)", end,
			fmt.Errorf("%w: %d extra bytes (length field at byte %d says %d)", ErrTrailingData, size-end, lenOff, h.PayloadLen)}
	}
	return nil
}

// Bitstream is a .bit file held in memory.
type Bitstream struct {
	Header
	Payload []byte // the configuration data (field e), aliasing the parsed buffer
}

// Parse decodes a whole .bit file. The returned Payload aliases data.
func Parse(data []byte) (*Bitstream, error) {
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if err := h.checkSize(int64(len(data))); err != nil {
		return nil, err
	}
	return &Bitstream{Header: *h, Payload: data[h.PayloadOffset : h.PayloadOffset+h.PayloadLen]}, nil
}

// Decode reads a .bit file from r, copying the payload to payload (which may be nil to
// skip it). size is the file size when known (checked before copying), or -1; either way
// Decode fails if r holds fewer or more bytes than the header declares.
func Decode(r io.Reader, size int64, payload io.Writer) (*Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if err := h.checkSize(size); err != nil {
		return nil, err
	}
	if payload == nil {
		payload = io.Discard
	}
	n, err := io.CopyN(payload, r, h.PayloadLen)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{"e (configuration data)", h.PayloadOffset + n,
				fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, n, h.PayloadLen)}
		}
		return nil, fmt.Errorf("copy configuration data: %w", err)
	}
	if err := expectEOF(r, h.PayloadOffset+h.PayloadLen); err != nil {
		return nil, err
	}
	return h, nil
}

// expectEOF fails if r has any byte left after the payload ending at end.
func expectEOF(r io.Reader, end int64) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return &FieldError{"e (configuration data)", end, fmt.Errorf("%w: file continues past the declared length", ErrTrailingData)}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read after configuration data: %w", err)
	}
	return nil
}
