package bitstream

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// realBit returns the QNN-MO-PYNQ W1A3 bitstream for PYNQ-Z1/Z2 (skips without fixtures).
func realBit(tb testing.TB) (path string, data []byte) {
	tb.Helper()
	path = testutil.Fixture(tb, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return path, data
}

// bitSyncWord is the sync word as it appears in a .bit (big-endian words).
var bitSyncWord = []byte{0xaa, 0x99, 0x55, 0x66}

// testPayload is a small configuration stream in .bit byte order: dummy words, the
// bus-width pattern, the sync word, one command word.
func testPayload() []byte {
	var p []byte
	for range 4 {
		p = append(p, 0xff, 0xff, 0xff, 0xff)
	}
	p = append(p, 0x00, 0x00, 0x00, 0xbb, 0x11, 0x22, 0x00, 0x44)
	p = append(p, bitSyncWord...)
	return append(p, 0x20, 0x00, 0x00, 0x00)
}

// makeBit encodes a .bit file the way Vivado lays it out.
func makeBit(design, part, date, clock string, payload []byte) []byte {
	b := []byte{0x00, 0x09}
	b = append(b, preamble...)
	b = append(b, 0x00, 0x01)
	for i, s := range []string{design, part, date, clock} {
		b = append(b, "abcd"[i])
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)+1))
		b = append(append(b, s...), 0)
	}
	b = append(b, 'e')
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func defaultBit() []byte {
	return makeBit("top;UserID=0X1234;Version=2022.1", PartPYNQZ2, "2024/01/02", "03:04:05", testPayload())
}

// writeTemp writes data to a new file in a test temp dir and returns its path.
func writeTemp(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := tb.TempDir() + "/" + name
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
