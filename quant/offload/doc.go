// Package offload is the contract of QNN-MO-PYNQ's offload engine (the BlackBoxJam HLS
// IP): its synthesis limits ([Limits], [W1A3]), the runs a model's hidden layers become
// and their register values ([Plan], [Run], the Reg* offsets), the activation records it
// reads and writes ([Layout], [Pack], [Unpack], [Concat]), the words of its weight and
// threshold memories and the DDR buffers that load them ([PEParams], [LayerBuffers]), its
// cycle model ([Limits.Cycles]) and the [Accelerator] interface the agent calls. It
// imports only the model IR, so that the board's driver and the simulation depend on
// what the engine is, not on the host reference engine or the ONNX code.
//
// Formats (read from QNN-MO-PYNQ's HLS and host sources):
//
// Activation records. The engine reads and writes one record per pixel of
// MaxIFMCh*ActBits/8 = 192 bytes (24 little-endian 64-bit words), whatever the layer's
// channel count. Channel c's 3-bit level sits at record bits 3c..3c+2 (bit 3c is the level's
// least significant bit; record bit i is bit i%8 of byte i/8). Bits above the layer's
// channels are zero in engine output; in engine input they are read as channels (the
// host zero-pads them). Records follow the engine's raster order (row-major, engine rows
// first). QNN-MO's driver feeds the engine the transposed image (numpy swapaxes of
// darknet's CHW image): engine row r, column c is image pixel x=r, y=c, so record index
// = x*H + y; the last layer transposes back. [Pack] and [Unpack] take CHW tensors in
// image order and do that transposition. The Python driver hands the library a compact
// form (ceil(3C/8) bytes per pixel) that the library bit-copies into 192-byte records;
// [Pack] and [Unpack] take the record size as a parameter.
//
// Parameter files {L}-{PE}-weights.bin and {L}-{PE}-thres.bin: package qnn's
// WriteBinparams, the words of [PEParams]; DDR weight buffers: [LayerBuffers].
//
// Driving the engine (QNN-MO's host library; [Plan] lists the runs and their register
// values): for each [Run], first a weight load — in1 (0x10) and in2 (0x1C) = the physical
// addresses of the run's two [LayerBuffers], doInit (0x34) = 1, layerType (0x3C) = 1,
// KernelDim (0x44), start, wait for done — then the compute run: doInit = 0, in1 = the
// input activation buffer, out (0x28) = the output buffer, layerType (1 conv, 2 conv +
// pool), KernelDim, log2 stride (0x4C), IFMCh, OFMCh (channels of this part), IFMDim,
// PaddedDim (IFMDim + 2*pad), OFMDim, PoolInDim, PoolOutDim, log2 PoolStride, start, wait.
// The engine reads IFMDim^2 records and writes PoolOutDim^2 records of 192 bytes (for a
// plain conv run it ignores the pool registers). A layer with Parts > 1 runs each part on
// the same input; the CPU merges the part outputs with [Concat] (part j's channels at
// record bits 3*OFMCh*j ...) into the next layer's input. The stride-1 pool pads the conv
// output bottom and right with level 0 (PoolInDim = OFMDim + 1).
package offload
