package offload

import (
	"testing"
	"time"
)

// The cycle model on Tinier-YOLO's first engine layer, counted by hand from the
// folding: a weight load streams 32 PEs x (576 weight + 16 threshold words) over two
// masters; the compute call reads 208x208 records of 24 words, runs 9 kernel positions x
// 1 SIMD pass x 2 PE passes per output pixel, writes 104x104 pooled records and first
// fills 2 padded rows.
func TestCyclesByHand(t *testing.T) {
	r := Run{Type: TypeConvPool, KernelDim: 3, IFMCh: 16, OFMCh: 64, IFMDim: 208, PaddedDim: 210, OFMDim: 208, PoolInDim: 208, PoolOutDim: 104}
	c := W1A3.Cycles(r)
	want := RunCycles{Load: 32 * 592 / 2, Read: 208 * 208 * 24, MVTU: 208 * 208 * 9 * 2, Write: 104 * 104 * 24}
	want.Compute = want.Read + 2*210*24
	want.Total = want.Load + want.Compute
	if c != want {
		t.Errorf("cycles %+v, want %+v", c, want)
	}
	// A 1x1 kernel loads a ninth of the weight memory; a wide layer is MVTU-bound.
	r = Run{Type: TypeConv, KernelDim: 1, IFMCh: 512, OFMCh: 256, IFMDim: 13, PaddedDim: 13, OFMDim: 13, PoolInDim: 13, PoolOutDim: 13}
	c = W1A3.Cycles(r)
	if c.Load != 32*(64+16)/2 || c.MVTU != 13*13*8*8 || c.Compute != c.MVTU {
		t.Errorf("1x1 layer: %+v", c)
	}
	if got := W1A3.EngineTime([]Run{r, r}, 100e6); got != time.Duration(2*c.Total)*10*time.Nanosecond {
		t.Errorf("engine time of two runs %v, want %v", got, time.Duration(2*c.Total)*10*time.Nanosecond)
	}
}
