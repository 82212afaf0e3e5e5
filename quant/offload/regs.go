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

// Registers are the engine's registers by their .hwh names (the HLS top's arguments; a
// 64-bit pointer by its argument name), in address order, at the published overlay's
// offsets. A design's .hwh may place them elsewhere: the driver looks the names up there.
var Registers = []struct {
	Name   string
	Offset uint32
}{
	{"CTRL", RegCtrl}, {"in1", RegIn1}, {"in2", RegIn2}, {"out", RegOut}, {"doInit", RegDoInit},
	{"layerType", RegLayerType}, {"KernelDim", RegKernelDim}, {"Stride", RegLog2Stride},
	{"IFMCh", RegIFMCh}, {"OFMCh", RegOFMCh}, {"IFMDim", RegIFMDim}, {"PaddedDim", RegPaddedDim},
	{"OFMDim", RegOFMDim}, {"PoolInDim", RegPoolInDim}, {"PoolOutDim", RegPoolOutDim},
	{"PoolStride", RegLog2PoolStride},
}

// RegWrite is one 32-bit register write, the register by its name in [Registers].
type RegWrite struct {
	Name  string
	Value uint32
}

// WeightLoadRegs are the scalar registers QNN-MO writes for a run's weight load (besides
// in1/in2 = the [LayerBuffers] addresses), in its order; then it starts the engine.
func (r Run) WeightLoadRegs() []RegWrite {
	return []RegWrite{{"doInit", 1}, {"layerType", TypeConv}, {"KernelDim", r.KernelDim}}
}

// ComputeRegs are the scalar registers QNN-MO writes for a run's computation (besides
// in1 = input and out = output buffer addresses), in its order; then it starts the
// engine.
func (r Run) ComputeRegs() []RegWrite {
	return []RegWrite{
		{"doInit", 0}, {"layerType", r.Type}, {"KernelDim", r.KernelDim}, {"Stride", r.Log2Stride},
		{"IFMCh", r.IFMCh}, {"OFMCh", r.OFMCh}, {"IFMDim", r.IFMDim}, {"PaddedDim", r.PaddedDim},
		{"OFMDim", r.OFMDim}, {"PoolInDim", r.PoolInDim}, {"PoolOutDim", r.PoolOutDim},
		{"PoolStride", r.Log2PoolStride},
	}
}

// InBytes and OutBytes are the activation bytes the engine reads from RegIn1 and writes
// to RegOut in a compute run: IFMDim^2 and PoolOutDim^2 records.
func (r Run) InBytes(lim Limits) int { return int(r.IFMDim*r.IFMDim) * lim.RecordBytes() }

// OutBytes: see [Run.InBytes].
func (r Run) OutBytes(lim Limits) int { return int(r.PoolOutDim*r.PoolOutDim) * lim.RecordBytes() }
