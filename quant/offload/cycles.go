package offload

import "time"

// RunCycles is the engine's clock-cycle estimate for one run (a weight load and a
// compute call).
type RunCycles struct {
	Load    int64 // doInit: the whole weight and threshold memory streamed in
	Read    int64 // the input records streamed from DDR
	MVTU    int64 // the matrix-vector unit's folded passes over every output pixel
	Write   int64 // the output records streamed to DDR
	Compute int64 // the compute call: its slowest stage plus the window's fill
	Total   int64 // Load + Compute
}

// Cycles estimates how long the engine takes for a run, from its folding (the facts are
// QNN-MO-PYNQ's HLS top level and library, W1A3 configuration):
//   - a weight load streams the whole weight and threshold memory sized for the run's
//     kernel (K*K*MaxOFMCh*MaxIFMCh/(PE*SIMD) weight words and 2*MaxOFMCh/PE threshold
//     words per PE, 64 bits each), half over each AXI master, a word a cycle each;
//   - a compute call is a dataflow pipeline paced by its slowest stage: reading the
//     input records (MaxIFMCh*ActBits/DataWidth words a pixel, whatever the channels),
//     the matrix-vector unit (K*K*ceil(IFMCh/SIMD) * ceil(OFMCh/PE) cycles an output
//     pixel), and writing the output records (the same words a pixel as the input);
//     before the first output the sliding window fills K-1 padded rows.
//
// Per-call control overhead (the CPU's register writes and its wait) is not engine time.
func (l Limits) Cycles(r Run) RunCycles {
	k := int64(r.KernelDim)
	pe, simd := int64(l.MaxPEConv), int64(l.MaxSIMD)
	memWords := pe * (int64(l.WMemWords(int(k))) + 2*int64(l.MaxOFMCh)/pe) // 64-bit words
	load := memWords / int64(l.MemChannels)

	rec := int64(l.RecordBytes() * 8 / l.DataWidth) // words a pixel record
	in, out := int64(r.IFMDim), int64(r.OFMDim)
	outPix := out * out
	written := outPix
	if r.Type == TypeConvPool {
		written = int64(r.PoolOutDim) * int64(r.PoolOutDim)
	}
	read := in * in * rec
	mvtu := outPix * k * k * ceilDiv(int64(r.IFMCh), simd) * ceilDiv(int64(r.OFMCh), pe)
	write := written * rec
	fill := (k - 1) * int64(r.PaddedDim) * rec
	c := RunCycles{Load: load, Read: read, MVTU: mvtu, Write: write}
	c.Compute = max(read, mvtu, write) + fill
	c.Total = c.Load + c.Compute
	return c
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// EngineTime is the engine's time for a frame's runs at clock hz (FCLK0; 100 MHz in the
// QNN-MO overlays).
func (l Limits) EngineTime(runs []Run, hz float64) time.Duration {
	var cycles int64
	for _, r := range runs {
		cycles += l.Cycles(r).Total
	}
	return time.Duration(float64(cycles) / hz * float64(time.Second))
}
