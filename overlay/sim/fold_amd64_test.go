//go:build amd64 && !purego

package sim

import (
	"math/rand/v2"
	"testing"
)

// TestFoldKernelsAgree runs foldLevels with each assembly kernel on random pixels
// (windows of several segments, several folds, up to 80 triples per segment, ties at the
// thresholds, MAC values that wrap) and compares with the definition.
func TestFoldKernelsAgree(t *testing.T) {
	kernels := []struct {
		name       string
		avx512, on bool
	}{
		{"avx512", true, foldAVX512},
		{"avx2", false, foldAVX2},
	}
	saved := foldAVX512
	defer func() { foldAVX512 = saved }()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range kernels {
		t.Run(k.name, func(t *testing.T) {
			if !k.on {
				t.Skipf("the CPU lacks the %s instructions", k.name)
			}
			foldAVX512 = k.avx512
			for trial := 0; trial < 400; trial++ {
				c := newFoldCase(rng, 32, 1+rng.IntN(3), 80)
				got := make([]uint8, len(c.want))
				foldLevels(&c.win, 32, c.w, c.thr, got)
				if string(got) != string(c.want) {
					t.Fatalf("trial %d (%d triples in %d segments): levels\n%v, want\n%v", trial, c.win.seg, c.win.segs, got, c.want)
				}
			}
		})
	}
}
