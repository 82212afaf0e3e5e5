package dma

import (
	"fmt"
	"testing"
)

// benchSizes: a 64 KiB weight block, a 416x416x3 letterboxed frame, 4 MiB.
var benchSizes = []int{64 << 10, 416 * 416 * 3, 4 << 20}

// BenchmarkCopy measures filling a DMA buffer from a Go slice and handing it to the
// device, against a plain copy between Go slices. Report: MB/s per case.
func BenchmarkCopy(b *testing.B) {
	for _, n := range benchSizes {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i * 7)
		}
		b.Run(fmt.Sprintf("plain/%d", n), func(b *testing.B) {
			dst := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(dst, src)
			}
		})
		for _, wb := range []bool{false, true} {
			name := map[bool]string{false: "sim-coherent", true: "sim-writeback"}[wb]
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				a := newSim(b, n+4096, SimConfig{WriteBack: wb})
				buf, err := a.Alloc(n)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(n))
				for b.Loop() {
					copy(buf.Bytes(), src)
					if err := buf.SyncForDevice(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		// The board's mmap path, with a regular file standing in for /dev/udmabuf0
		// (coherent, so no sysfs writes: the copy into the mapping alone).
		b.Run(fmt.Sprintf("udmabuf-file-mmap/%d", n), func(b *testing.B) {
			f := newFakeUdmabuf(b, "u-dma-buf", "0x3c000000", fmt.Sprint(n), "1")
			u, err := OpenUdmabuf(f.config())
			if err != nil {
				b.Fatal(err)
			}
			buf, err := u.Alloc(n)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(buf.Bytes(), src)
				if err := buf.SyncForDevice(); err != nil {
					b.Fatal(err)
				}
			}
			buf.Close()
			u.Close()
		})
	}
}
