package axidma_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fpgadetector/pynq-agent/dma/simdma"
)

// BenchmarkSimLoopback moves a buffer through the whole simulated path: CPU copy into
// the MM2S buffer, flush, MM2S -> loopback stream -> S2MM through the register model,
// invalidate, CPU copy out. MB/s counts the payload once.
func BenchmarkSimLoopback(b *testing.B) {
	for _, n := range []int{64 << 10, 16383} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := newRig(b, simdma.Config{})
			src, dst := r.buffer(b, n, 1), r.buffer(b, n, 0)
			in, out := make([]byte, n), make([]byte, n)
			chunk := r.dev.Config().MaxLength() &^ 7
			b.SetBytes(int64(n))
			ctx := context.Background()
			for b.Loop() {
				copy(src.Bytes(), in)
				for off := 0; off < n; off += chunk {
					m := min(chunk, n-off)
					if err := r.dev.S2MM().Transfer(dst, off, m); err != nil {
						b.Fatal(err)
					}
					if err := r.dev.MM2S().Run(ctx, src, off, m); err != nil {
						b.Fatal(err)
					}
					if err := r.dev.S2MM().Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				copy(out, dst.Bytes())
			}
		})
	}
}
