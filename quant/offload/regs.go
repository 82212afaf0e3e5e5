package offload

// Register offsets of the engine's AXI-Lite control interface (BlackBoxJam, as
// QNN-MO's offload-adapter-hw.cpp writes them). The three buffer addresses are 64-bit
// (low word at the offset, high word at offset+4).
const (
	RegCtrl           = 0x00 // bit 0 start, bit 1 done
	RegIn1            = 0x10 // weight buffer 1 (weight load) or input activations (compute)
	RegIn2            = 0x1C // weight buffer 2 (weight load)
	RegOut            = 0x28 // output activations (compute)
	RegDoInit         = 0x34 // 1 weight load, 0 compute
	RegLayerType      = 0x3C // TypeConv or TypeConvPool
	RegKernelDim      = 0x44
	RegLog2Stride     = 0x4C
	RegIFMCh          = 0x54
	RegOFMCh          = 0x5C
	RegIFMDim         = 0x64
	RegPaddedDim      = 0x6C
	RegOFMDim         = 0x74
	RegPoolInDim      = 0x7C
	RegPoolOutDim     = 0x84
	RegLog2PoolStride = 0x8C
)

// RegWrite is one 32-bit register write.
type RegWrite struct{ Offset, Value uint32 }

// WeightLoadRegs are the scalar registers QNN-MO writes for a run's weight load (besides
// RegIn1/RegIn2 = the [LayerBuffers] addresses), in its order; then it starts the engine.
func (r Run) WeightLoadRegs() []RegWrite {
	return []RegWrite{{RegDoInit, 1}, {RegLayerType, TypeConv}, {RegKernelDim, r.KernelDim}}
}

// ComputeRegs are the scalar registers QNN-MO writes for a run's computation (besides
// RegIn1 = input and RegOut = output buffer addresses), in its order; then it starts the
// engine.
func (r Run) ComputeRegs() []RegWrite {
	return []RegWrite{
		{RegDoInit, 0}, {RegLayerType, r.Type}, {RegKernelDim, r.KernelDim}, {RegLog2Stride, r.Log2Stride},
		{RegIFMCh, r.IFMCh}, {RegOFMCh, r.OFMCh}, {RegIFMDim, r.IFMDim}, {RegPaddedDim, r.PaddedDim},
		{RegOFMDim, r.OFMDim}, {RegPoolInDim, r.PoolInDim}, {RegPoolOutDim, r.PoolOutDim},
		{RegLog2PoolStride, r.Log2PoolStride},
	}
}

// InBytes and OutBytes are the activation bytes the engine reads from RegIn1 and writes
// to RegOut in a compute run: IFMDim^2 and PoolOutDim^2 records.
func (r Run) InBytes(lim Limits) int { return int(r.IFMDim*r.IFMDim) * lim.RecordBytes() }

// OutBytes: see [Run.InBytes].
func (r Run) OutBytes(lim Limits) int { return int(r.PoolOutDim*r.PoolOutDim) * lim.RecordBytes() }
