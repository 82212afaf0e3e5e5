//go:build amd64 && !purego && !goexperiment.simd

package floatengine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// TestDepthwisePlaneVecMatchesGo compares the AVX2 depthwise plane path with the Go one
// on kernel sizes, strides, paddings and plane widths around the 8-lane vector (rows
// that are and are not multiples of 8, a single vector, several groups of four).
func TestDepthwisePlaneVecMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("this CPU has no AVX2+FMA: only the Go path runs")
	}
	r := rand.New(rand.NewPCG(31, 32))
	acts := []quant.Activation{quant.ActLeaky, quant.ActLinear, quant.ActReLU, quant.ActMish}
	ran := 0
	for _, size := range []int{1, 3, 5, 7} {
		for _, stride := range []int{1, 2, 3} {
			for _, pad := range []int{0, size / 2, size - 1} {
				for _, hw := range [][2]int{{8, 8}, {9, 10}, {11, 17}, {20, 20}, {5, 40}, {33, 67}} {
					h, w := hw[0], hw[1]
					oh, ow := (h+2*pad-size)/stride+1, (w+2*pad-size)/stride+1
					if oh < 1 || ow < 1 {
						continue
					}
					in, k := randSlice(r, h*w, -1, 1), randSlice(r, size*size, -1, 1)
					bias := randSlice(r, 1, -1, 1)[0]
					act := acts[ran%len(acts)]
					want := make([]float32, oh*ow)
					DepthwisePlane(in, h, w, k, size, stride, pad, bias, act, want, oh, ow)
					got := randSlice(r, oh*ow, 5, 6)
					buf := make([]float32, depthwiseScratch(size, stride, oh, ow))
					what := fmt.Sprintf("size %d stride %d pad %d %dx%d %s", size, stride, pad, h, w, act)
					if !depthwisePlaneVec(in, h, w, k, size, stride, pad, bias, act, got, oh, ow, buf) {
						if ow >= 8 {
							t.Errorf("%s: vector path refused a %d-wide output", what, ow)
						}
						continue
					}
					ran++
					closeEnough(t, what, got, want, 1e-5)
				}
			}
		}
	}
	if ran == 0 {
		t.Fatal("no case took the vector path")
	}
}
