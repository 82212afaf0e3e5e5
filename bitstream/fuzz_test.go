package bitstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// FuzzParse checks that the parser never panics, that what it accepts is consistent with
// the file, and that the streaming decoder agrees with it.
func FuzzParse(f *testing.F) {
	good := defaultBit()
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(append(append([]byte(nil), good...), 1, 2, 3))
	f.Add([]byte{})
	f.Add([]byte{0, 9})
	f.Add(makeBit("a;b=c;;=;UserID", "", "", "", nil))
	if data := realBitOrNil(f); data != nil {
		// the real header with a short payload: as it is (truncated) and with the
		// length field made consistent
		f.Add(data[:111+256])
		short := append([]byte(nil), data[:111+256]...)
		binary.BigEndian.PutUint32(short[107:], 256)
		f.Add(short)
		short2 := append([]byte(nil), short...)
		short2[0x40] = 'x' // design string loses its NUL
		f.Add(short2)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, perr := Parse(data)
		h, derr := Decode(bytes.NewReader(data), -1, io.Discard)
		if (perr == nil) != (derr == nil) {
			t.Fatalf("Parse %v, Decode %v", perr, derr)
		}
		if perr != nil {
			var fe *FieldError
			if !errors.As(perr, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v lacks a valid field offset", perr)
			}
			return
		}
		if b.PayloadOffset+b.PayloadLen != int64(len(data)) || !bytes.Equal(b.Payload, data[b.PayloadOffset:]) {
			t.Fatalf("payload %d+%d in %d bytes", b.PayloadOffset, b.PayloadLen, len(data))
		}
		if h.Design != b.Design || h.Part != b.Part || h.Date != b.Date || h.Time != b.Time {
			t.Fatalf("Decode %+v, Parse %+v", h, b.Header)
		}
		var out bytes.Buffer
		if _, err := ToBin(&out, bytes.NewReader(data), int64(len(data))); err == nil {
			if FindSyncWord(out.Bytes()) < 0 || int64(out.Len()) != b.PayloadLen {
				t.Fatalf("ToBin output without sync word or wrong length")
			}
		}
	})
}

// realBitOrNil returns the real bitstream, or nil when the fixtures are absent (the fuzz
// target still runs on its synthetic seeds).
func realBitOrNil(f *testing.F) []byte {
	f.Helper()
	dir := os.Getenv("PYNQ_FIXTURES")
	if dir == "" {
		dir = filepath.Join(testutil.RepoRoot(f), "..", "shared", "fixtures")
	}
	data, err := os.ReadFile(filepath.Join(dir, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit"))
	if err != nil {
		f.Logf("fuzzing without the real bitstream: %v", err)
		return nil
	}
	return data
}

func BenchmarkParse(b *testing.B) {
	_, data := realBit(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkToBin converts the real 4 MB bitstream from memory to a discarded .bin: the
// CPU cost of the conversion (header, copy, word swap, sync search).
func BenchmarkToBin(b *testing.B) {
	_, data := realBit(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ToBin(io.Discard, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvertFile is `pynqctl bit tobin` end to end: read the real .bit from disk,
// convert, write the .bin to a temporary file and rename it (page cache speeds).
func BenchmarkConvertFile(b *testing.B) {
	path, data := realBit(b)
	out := filepath.Join(b.TempDir(), "out.bin")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ConvertFile(path, out, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
