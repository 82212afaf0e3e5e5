package bitstream

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
)

// swapWordsBinary is the obvious encoding/binary version, kept as a benchmark baseline.
func swapWordsBinary(b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(b[i:], bits.RotateLeft64(bits.ReverseBytes64(v), 32))
	}
}

func TestSwapWords(t *testing.T) {
	src := make([]byte, 67) // odd tail, and room for an unaligned start
	for i := range src {
		src[i] = byte(i)
	}
	for _, start := range []int{0, 1, 2, 3} {
		b := append([]byte(nil), src[start:]...)
		if start > 0 {
			// force an unaligned view of the same content
			b = append(make([]byte, start), src[start:]...)[start:]
		}
		want := append([]byte(nil), b...)
		for i := 0; i+4 <= len(want); i += 4 {
			want[i], want[i+1], want[i+2], want[i+3] = b[i+3], b[i+2], b[i+1], b[i]
		}
		SwapWords(b)
		if !bytes.Equal(b, want) {
			t.Errorf("start %d: got % x, want % x", start, b, want)
		}
	}
	SwapWords(nil)
	SwapWords([]byte{1, 2, 3})
}

func benchSwap(b *testing.B, f func([]byte)) {
	buf := make([]byte, 4<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		f(buf)
	}
}

// BenchmarkSwapWords measures the word swap alone over 4 MiB (the size of a Zynq-7020
// bitstream); the sub-benchmarks compare it with the alternatives it replaced.
func BenchmarkSwapWords(b *testing.B) {
	b.Run("aligned", func(b *testing.B) { benchSwap(b, SwapWords) })
	b.Run("bytewise", func(b *testing.B) { benchSwap(b, swapWordsBytewise) })
	b.Run("encoding-binary", func(b *testing.B) { benchSwap(b, swapWordsBinary) })
}
