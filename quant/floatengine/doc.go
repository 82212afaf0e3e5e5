// Package floatengine owns the float32 inference engine: it runs a [quant.Model] layer by layer
// on the CPU exactly as darknet's CPU forward pass computes it (NCHW, batch 1), in parallel
// across cores, in pure Go. It also exports the building blocks (GEMM, convolution,
// pooling, activations, head activations) that the quantized engine reuses for its float
// layers.
//
// How layers run: convolutions fold batch norm into private weights at [New]; 3x3
// stride-1 convolutions with at least 8 channels in and out use Winograd F(2x2,3x3),
// depthwise ones (groups == channels == filters) a direct kernel, the rest im2col (1x1
// stride-1 reads the input as is) into a packed GotoBLAS-style GEMM with the bias and
// linear/leaky/relu fused into the stores.
//
// On amd64 (the default build) the GEMM micro-kernel and the depthwise rows are Go
// assembly, AVX2+FMA, chosen at run time (golang.org/x/sys/cpu): a 4x24 register tile,
// about 90-100 GFLOP/s per core on a 2.6 GHz EPYC; with it Winograd no longer pays and
// 3x3 convolutions go through im2col. Built with -tags purego, on CPUs without AVX2/FMA
// and on other architectures the micro-kernel is scalar Go (4x2 tile, k loop unrolled 8x,
// no bounds checks; 4x24 on amd64 without AVX2), about 10 GFLOP/s per core. Built with
// GOEXPERIMENT=simd on amd64, it uses simd/archsimd instead (AVX2+FMA, 16x2 tile, about
// 40 GFLOP/s per core); everything else is the same code.
package floatengine
