package sim

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// Register offsets of the BlackBoxJam AXI-lite slave: offload's map (the .hwh lists
// them under BlackBoxJam_0's REGISTERS; the HLS top's arguments in this order), plus
// the interrupt registers every HLS control interface has.
const (
	JamCtrl       = offload.RegCtrl // ap_ctrl: bit0 ap_start, bit1 ap_done (clear on read), bit2 ap_idle, bit3 ap_ready
	JamGIER       = 0x04
	JamIER        = 0x08
	JamISR        = 0x0C
	JamIn1        = offload.RegIn1 // 64-bit: low word here, high word at +4
	JamIn2        = offload.RegIn2
	JamOut        = offload.RegOut
	JamDoInit     = offload.RegDoInit
	JamLayerType  = offload.RegLayerType
	JamKernelDim  = offload.RegKernelDim
	JamStride     = offload.RegLog2Stride // log2 of the convolution stride
	JamIFMCh      = offload.RegIFMCh
	JamOFMCh      = offload.RegOFMCh
	JamIFMDim     = offload.RegIFMDim
	JamPaddedDim  = offload.RegPaddedDim
	JamOFMDim     = offload.RegOFMDim
	JamPoolInDim  = offload.RegPoolInDim
	JamPoolOutDim = offload.RegPoolOutDim
	JamPoolStride = offload.RegLog2PoolStride // log2 of the pool stride

	ctrlStart = 1 << 0
	ctrlDone  = 1 << 1
	ctrlIdle  = 1 << 2
	ctrlReady = 1 << 3

	jamRegSize = 0x10000
	convLayer  = 1 // layerType value without the pool (the HLS top pools for any other value)
)

// Memory is what the engine's AXI masters reach: dma.SimMemory implements it.
type Memory interface {
	Slice(phys uint64, n int) ([]byte, error)
}

// Jam is a register-level model of QNN-MO's BlackBoxJam HLS engine. A start with doInit=1
// streams the two weight buffers at in1 / in2 into the per-PE weight and threshold
// memories; a start with doInit=0 reads activation records at in1, computes one layer
// from those memories and the dimension registers, and writes records at out. It is
// written from the HLS sources' behaviour, independently of quant/qnnmo's host engine.
//
// Register values the hardware cannot process (dimensions beyond the synthesis limits,
// stream lengths that do not match, addresses outside DDR) make the run hang, as the
// dataflow pipeline would: done never rises. Hung() says why, for tests.
type Jam struct {
	regs    *overlay.MemRegion
	mem     Memory
	lim     offload.Limits
	threads int

	mu         sync.Mutex
	busy, done bool
	isr        uint32
	hung       string // reason of the current hang, "" when none
	gen        uint64 // bumps at every reset: a run of an older generation is dropped
	hangNext   int    // injected: the next n starts hang
	stuck      bool   // injected: every start hangs, resets or not
	busErrNext int    // injected: the next n runs end in an AXI bus error
	runs       int    // completed runs

	synchronous bool // run inside the start (Config.Synchronous)

	// The PE memories, stored address-major as the PEs read them in lockstep: word a
	// of PE p at wmem[a*PEs+p]; per neuron fold f, tmem[(8f+t)*PEs+p] holds PE p's
	// threshold t (t < 7) and, at t = 7, its invert mask (7 inverts, 0 does not).
	wmem []uint64
	tmem []int16

	// compute's buffers, kept for the next run; computeMu keeps a run that a reset
	// abandoned (its goroutine still computing) from sharing them with the next.
	computeMu sync.Mutex
	crew      *crew
	planes    []uint64
	levels    []uint8
	pooled    []uint8
}

// NewJam returns an engine model over mem with the synthesis limits lim (offload.W1A3 for
// the published overlay). threads <= 0 uses GOMAXPROCS goroutines for a layer.
func NewJam(mem Memory, lim offload.Limits, threads int) *Jam {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	j := &Jam{regs: overlay.NewMemRegion(jamRegSize), mem: mem, lim: lim, threads: threads, crew: newCrew(threads)}
	j.wmem = make([]uint64, lim.WMemWords(lim.MaxK)*lim.MaxPEConv)
	j.tmem = make([]int16, lim.TMemEntries()*tmemRows*lim.MaxPEConv)
	j.regs.OnWrite = j.write
	j.regs.OnRead = j.read
	return j
}

// Region is the register file (map it at the engine's address).
func (j *Jam) Region() *overlay.MemRegion { return j.regs }

// InjectHang makes the next n starts hang (done never rises) until a reset.
func (j *Jam) InjectHang(n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hangNext = n
}

// InjectBusError makes the next n runs fail on the AXI master (a DDR access answered
// SLVERR/DECERR, e.g. a buffer freed under the engine): as on the device, the HLS
// engine then never raises done, and only a reset brings it back.
func (j *Jam) InjectBusError(n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.busErrNext = n
}

// SetStuck makes every start hang until SetStuck(false): an engine that a PL reset
// does not bring back (InjectHang's hangs end at the next reset).
func (j *Jam) SetStuck(stuck bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stuck = stuck
}

// Hung returns why the engine hangs, "" when it does not.
func (j *Jam) Hung() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.hung
}

// Runs is the number of completed runs (weight loads and layers).
func (j *Jam) Runs() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.runs
}

// Reset is the PL reset (ap_rst_n from the design's proc_sys_reset): the control state
// returns to idle and a run in flight is abandoned. The weight memories are BRAM and
// keep their contents, as on the device.
func (j *Jam) Reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gen++
	j.busy, j.done, j.hung, j.isr, j.hangNext, j.busErrNext = false, false, "", 0, 0, 0
}

func (j *Jam) read(off, stored uint32) uint32 {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch off {
	case JamCtrl:
		v := stored & 0x80 // auto_restart reads back
		if j.busy {
			v |= ctrlStart
		} else {
			v |= ctrlIdle
		}
		if j.done {
			v |= ctrlDone | ctrlReady
			j.done = false // ap_done and ap_ready clear on read (ap_ctrl_hs)
		}
		return v
	case JamISR:
		return j.isr
	}
	return stored
}

func (j *Jam) write(off, v uint32) {
	switch off {
	case JamCtrl:
		if v&ctrlStart != 0 {
			j.start()
		}
	case JamISR:
		j.mu.Lock()
		j.isr ^= v & 3 // toggle on write
		j.mu.Unlock()
	}
}

// jamArgs is the register snapshot a run starts with.
type jamArgs struct {
	in1, in2, out                                   uint64
	doInit                                          bool
	layerType                                       uint32
	k, stride, ifmCh, ofmCh, ifmDim, padded, ofmDim uint32
	poolIn, poolOut, poolStride                     uint32
}

func (j *Jam) args() jamArgs {
	r := j.regs.Peek
	addr := func(off uint32) uint64 { return uint64(r(off)) | uint64(r(off+4))<<32 }
	return jamArgs{
		in1: addr(JamIn1), in2: addr(JamIn2), out: addr(JamOut),
		doInit: r(JamDoInit)&1 == 1, layerType: r(JamLayerType),
		k: r(JamKernelDim), stride: r(JamStride), ifmCh: r(JamIFMCh), ofmCh: r(JamOFMCh),
		ifmDim: r(JamIFMDim), padded: r(JamPaddedDim), ofmDim: r(JamOFMDim),
		poolIn: r(JamPoolInDim), poolOut: r(JamPoolOutDim), poolStride: r(JamPoolStride),
	}
}

// start latches the arguments and runs the engine in the background, as ap_start does.
func (j *Jam) start() {
	j.mu.Lock()
	if j.busy {
		j.mu.Unlock()
		return // ap_start while running is held until ready; the model ignores it
	}
	j.busy, j.done = true, false
	gen := j.gen
	if j.hangNext > 0 || j.stuck {
		j.hangNext = max(j.hangNext-1, 0)
		j.hung = "injected hang"
		j.mu.Unlock()
		return
	}
	if j.busErrNext > 0 {
		j.busErrNext--
		j.hung = "injected AXI bus error (SLVERR) on the DDR master"
		j.mu.Unlock()
		return
	}
	a := j.args()
	j.mu.Unlock()
	if j.synchronous {
		j.run(gen, a)
		return
	}
	go j.run(gen, a)
}

func (j *Jam) run(gen uint64, a jamArgs) {
	var err error
	if a.doInit {
		err = j.loadWeights(a)
	} else {
		j.computeMu.Lock()
		err = j.compute(a)
		j.computeMu.Unlock()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if gen != j.gen {
		return // reset while running
	}
	if err != nil {
		j.hung = err.Error() // busy stays set: the pipeline stalls, done never rises
		return
	}
	j.busy, j.done = false, true
	j.isr |= 1
	j.runs++
	j.regs.Raise() // ap_done on the interrupt line (the model does not gate it by GIER/IER)
}

// loadWeights is StreamingDoMemInit: each memory channel streams, for its half of the PEs,
// every PE's K*K*MaxOFMCh*MaxIFMCh/(PE*SIMD) weight words, then every PE's threshold
// entries as two words each, high word first.
func (j *Jam) loadWeights(a jamArgs) error {
	lim := j.lim
	if a.k == 0 || int(a.k) > lim.MaxK {
		return fmt.Errorf("weight load with KernelDim %d: the weight memories hold kernels up to %d (write past the memory)", a.k, lim.MaxK)
	}
	wmem, tmem := lim.WMemWords(int(a.k)), lim.TMemEntries()
	perCh := lim.MaxPEConv / lim.MemChannels
	words := perCh * (wmem + 2*tmem)
	for ch, addr := range []uint64{a.in1, a.in2} {
		buf, err := j.mem.Slice(addr, 8*words)
		if err != nil {
			return fmt.Errorf("weight load channel %d: AXI read error: %w", ch, err)
		}
		j.storeWeights(buf[:8*perCh*wmem], ch*perCh, perCh, wmem)
		pes := lim.MaxPEConv
		word := func(i int) uint64 { return binary.LittleEndian.Uint64(buf[8*i:]) }
		for q := 0; q < perCh; q++ {
			for n := 0; n < tmem; n++ {
				base := perCh*wmem + (q*tmem+n)*2
				decodeThreshold(j.tmem[n*tmemRows*pes+ch*perCh+q:], pes, word(base), word(base+1))
			}
		}
	}
	return nil
}

// storeWeights stores the weight streams of PEs pe0..pe0+n-1 (in buf one after the
// other, words each) address-major, eight PEs at a time so that every store fills a
// cache line of Jam.wmem rather than touching one line per word; blocks of eight PEs
// go to the model's goroutines.
func (j *Jam) storeWeights(buf []byte, pe0, n, words int) {
	pes := j.lim.MaxPEConv
	j.parallel((n+7)/8, func(b0, b1 int) {
		for b := 8 * b0; b < min(8*b1, n); b += 8 {
			block := min(8, n-b)
			for w := 0; w < words; w++ {
				dst := j.wmem[w*pes+pe0+b : w*pes+pe0+b+block]
				for q := range dst {
					dst[q] = binary.LittleEndian.Uint64(buf[8*((b+q)*words+w):])
				}
			}
		}
	})
}

// tmemRows is the rows per neuron fold in Jam.tmem: seven thresholds and the invert mask.
const tmemRows = 8

// decodeThreshold splits a 128-bit threshold word (seven int16 thresholds from bit 0
// up, the invert flag at bit 112) into dst's rows, stride entries apart.
func decodeThreshold(dst []int16, stride int, hi, lo uint64) {
	for t := 0; t < 7; t++ {
		v := lo >> (16 * t)
		if t >= 4 {
			v = hi >> (16 * (t - 4))
		}
		dst[t*stride] = int16(uint16(v))
	}
	dst[7*stride] = int16(7 * (hi >> 48 & 1))
}
