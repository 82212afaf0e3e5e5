// Package engine owns the float32 inference engine: it runs a [quant.Model] layer by layer
// on the CPU exactly as darknet's CPU forward pass computes it (NCHW, batch 1), in parallel
// across cores, in pure Go. It also exports the building blocks (GEMM, convolution,
// pooling, activations) that the quantized engine reuses for its float layers.
package engine
