//go:build cgo

package ort

import (
	"fmt"
	"time"
)

// Throughput runs modelPath on a constant mid-grey image with the given intra-op thread
// count, after one warm-up run, until at least minDuration has passed (and at least
// three runs), and returns images per second. Benchmarks use it to put onnxruntime's
// figures beside the Go float engine's in one run.
func Throughput(modelPath string, threads int, minDuration time.Duration) (float64, error) {
	s, err := Open(modelPath, Options{IntraOpThreads: threads})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n := int64(1)
	for _, d := range s.InputShape {
		n *= d
	}
	if n <= 0 {
		return 0, fmt.Errorf("onnxruntime: %s has a dynamic input shape %v", modelPath, s.InputShape)
	}
	input := make([]float32, n)
	for i := range input {
		input[i] = 0.5
	}
	if err := s.RunInPlace(input); err != nil { // warm-up: allocations, kernel choice
		return 0, err
	}
	start := time.Now()
	runs := 0
	for runs < 3 || time.Since(start) < minDuration {
		if err := s.RunInPlace(input); err != nil {
			return 0, err
		}
		runs++
	}
	return float64(runs) / time.Since(start).Seconds(), nil
}
