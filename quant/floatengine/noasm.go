//go:build !amd64 || purego || goexperiment.simd

package floatengine

import "github.com/fpgadetector/pynq-agent/quant"

// winogradPays: with the scalar or archsimd GEMM, Winograd's 2.25x fewer multiplications
// beat its transforms.
var winogradPays = true

// depthwiseScratch is 0: builds without the amd64 assembly have no vector plane path.
func depthwiseScratch(size, stride, oh, ow int) int { return 0 }

// depthwisePlaneVec computes nothing in builds without the amd64 assembly; the caller
// runs [DepthwisePlane].
func depthwisePlaneVec(in []float32, h, w int, k []float32, size, stride, pad int, bias float32, act quant.Activation, out []float32, oh, ow int, buf []float32) bool {
	return false
}
