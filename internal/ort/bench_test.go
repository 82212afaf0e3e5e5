//go:build cgo

package ort

import (
	"fmt"
	"os"
	"testing"
)

// BenchmarkModel measures onnxruntime on any model file at 1 and 2 intra-op threads:
//
//	ORT_BENCH_MODEL=model.onnx go test -run='^$' -bench=Model ./internal/ort
//
// (quant/onnx's BenchmarkInference does the same for the exported real models, beside
// the Go float engine.)
func BenchmarkModel(b *testing.B) {
	path := os.Getenv("ORT_BENCH_MODEL")
	if path == "" {
		b.Skip("set ORT_BENCH_MODEL to an .onnx file")
	}
	requireLib(b)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			s, err := Open(path, Options{IntraOpThreads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			n := int64(1)
			for _, d := range s.InputShape {
				n *= d
			}
			input := make([]float32, n)
			for i := range input {
				input[i] = 0.5
			}
			if err := s.RunInPlace(input); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := s.RunInPlace(input); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
