package sim

import (
	"testing"
)

// BenchmarkDDRCopy compares filling 1 MiB of simulated DDR through a mapped Region (32-bit
// writes, as a driver poking /dev/mem does) with a plain copy into a buffer's Bytes (the
// mmap'ed buffer path drivers use for bulk data):
//
//	go test -run '^$' -bench DDRCopy ./overlay/sim
func BenchmarkDDRCopy(b *testing.B) {
	const size = 1 << 20
	m, err := New(Config{DDRSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	buf, err := m.Allocator().Alloc(size)
	if err != nil {
		b.Fatal(err)
	}
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	b.Run("region-write32", func(b *testing.B) {
		r, err := m.Map(buf.PhysAddr(), size)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			for off := 0; off < size; off += 4 {
				r.Write32(uint32(off), uint32(src[off])|uint32(src[off+1])<<8|uint32(src[off+2])<<16|uint32(src[off+3])<<24)
			}
		}
	})
	b.Run("buffer-copy", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			copy(buf.Bytes(), src)
			if err := buf.SyncForDevice(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
