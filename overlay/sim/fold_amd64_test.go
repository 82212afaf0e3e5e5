//go:build amd64 && !purego

package sim

import (
	"encoding/binary"
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

// TestRecordPlanes compares recordPlanes with lanePlanes on random records, the last
// group ending at the end of the buffer (the load must not read past it).
func TestRecordPlanes(t *testing.T) {
	if !planesAVX512 {
		t.Skip("the CPU lacks AVX-512 VBMI and BITALG")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const recBytes, pixels = 192, 5
	for groups := 1; groups <= 8; groups++ {
		src := make([]byte, (pixels-1)*recBytes+24*groups) // nothing past the last group
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		got := make([]uint64, pixels*3*8)
		if !recordPlanes(got, src, pixels, groups, recBytes, 3*8) {
			t.Fatal("recordPlanes refused valid arguments")
		}
		for p := 0; p < pixels; p++ {
			for g := 0; g < groups; g++ {
				w := src[p*recBytes+24*g:]
				p0, p1, p2 := lanePlanes(binary.LittleEndian.Uint64(w), binary.LittleEndian.Uint64(w[8:]), binary.LittleEndian.Uint64(w[16:]))
				if q := got[p*24+3*g:]; q[0] != p0 || q[1] != p1 || q[2] != p2 {
					t.Fatalf("%d groups, pixel %d group %d: planes %x %x %x, want %x %x %x", groups, p, g, q[0], q[1], q[2], p0, p1, p2)
				}
			}
		}
	}
}
