package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/dma/axidma"
	"github.com/fpgadetector/pynq-agent/dma/simdma"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

var (
	modelOnce sync.Once
	model     *quant.Model
	modelErr  error
)

func loadModel(tb testing.TB) *quant.Model {
	tb.Helper()
	dir := testutil.Fixture(tb, "qnn-mo-pynq", "params")
	modelOnce.Do(func() { model, modelErr = qnnmo.LoadDir(dir) })
	if modelErr != nil {
		tb.Fatal(modelErr)
	}
	return model
}

func qnnBoard(tb testing.TB) *Machine {
	tb.Helper()
	bit := testutil.Fixture(tb, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
	m, err := New(Config{})
	if err != nil {
		tb.Fatal(err)
	}
	res, err := m.Program(context.Background(), bit, bitstream.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if res.State != bitstream.StateOperating || res.Header.Part != bitstream.PartPYNQZ2 {
		tb.Fatalf("result %+v", res)
	}
	return m
}

// engine is a raw register-level session with the simulated BlackBoxJam.
type engine struct {
	tb   testing.TB
	m    *Machine
	jam  *Jam
	regs overlay.Region
}

func newEngine(tb testing.TB, m *Machine) *engine {
	tb.Helper()
	rng, ok := m.Design().Range("BlackBoxJam_0")
	if !ok {
		tb.Fatal("no BlackBoxJam_0 in the address map")
	}
	if rng.Base != 0x43C00000 {
		tb.Fatalf("engine at 0x%X", rng.Base)
	}
	regs, err := m.Map(rng.Base, int(rng.Size()))
	if err != nil {
		tb.Fatal(err)
	}
	jam, _ := m.Jam("BlackBoxJam_0")
	return &engine{tb: tb, m: m, jam: jam, regs: regs}
}

func (e *engine) alloc(data []byte, size int) dma.Buffer {
	e.tb.Helper()
	b, err := e.m.Allocator().Alloc(max(size, len(data)))
	if err != nil {
		e.tb.Fatal(err)
	}
	copy(b.Bytes(), data)
	e.tb.Cleanup(func() { b.Close() })
	return b
}

func (e *engine) set64(off uint32, v uint64) {
	e.regs.Write32(off, uint32(v))
	e.regs.Write32(off+4, uint32(v>>32))
}

// start runs the engine and waits up to wait for done; false means it hung.
func (e *engine) start(wait time.Duration) bool {
	e.regs.Write32(JamCtrl, ctrlStart)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if e.regs.Read32(JamCtrl)&ctrlDone != 0 {
			return true
		}
		time.Sleep(100 * time.Microsecond)
	}
	return false
}

// layerRegs are the compute registers of one run.
type layerRegs map[uint32]uint32

func runRegs(r offload.Run) layerRegs {
	return layerRegs{JamLayerType: r.Type, JamKernelDim: r.KernelDim, JamStride: r.Log2Stride,
		JamIFMCh: r.IFMCh, JamOFMCh: r.OFMCh, JamIFMDim: r.IFMDim, JamPaddedDim: r.PaddedDim,
		JamOFMDim: r.OFMDim, JamPoolInDim: r.PoolInDim, JamPoolOutDim: r.PoolOutDim, JamPoolStride: r.Log2PoolStride}
}

// layer loads run r's weights (with weight-load KernelDim initK) and computes in with
// regs; it returns the output buffer's bytes, or nil if the engine hung.
func (e *engine) layer(r offload.Run, initK uint32, regs layerRegs, in []byte, inAddr *uint64, wait time.Duration) []byte {
	e.tb.Helper()
	w1, w2, err := offload.LayerBuffers(loadModel(e.tb), r, offload.W1A3)
	if err != nil {
		e.tb.Fatal(err)
	}
	var bufs []dma.Buffer
	alloc := func(data []byte, size int) dma.Buffer {
		b, err := e.m.Allocator().Alloc(max(size, len(data)))
		if err != nil {
			e.tb.Fatal(err)
		}
		copy(b.Bytes(), data)
		bufs = append(bufs, b)
		return b
	}
	defer func() {
		for _, b := range bufs {
			b.Close()
		}
	}()
	b1, b2 := alloc(w1, 0), alloc(w2, 0)
	e.set64(JamIn1, b1.PhysAddr())
	e.set64(JamIn2, b2.PhysAddr())
	e.regs.Write32(JamDoInit, 1)
	e.regs.Write32(JamKernelDim, initK)
	if !e.start(wait) {
		return nil
	}
	inBuf := alloc(in, 0)
	out := alloc(nil, 208*208*192)
	addr := inBuf.PhysAddr()
	if inAddr != nil {
		addr = *inAddr
	}
	e.regs.Write32(JamDoInit, 0)
	e.set64(JamIn1, addr)
	e.set64(JamOut, out.PhysAddr())
	for off, v := range regs {
		e.regs.Write32(off, v)
	}
	if !e.start(wait) {
		return nil
	}
	return bytes.Clone(out.Bytes())
}

// randomInput is deterministic pseudo-random 16-channel records (channels past 16 zero).
func randomInput(dim int) []byte {
	buf := make([]byte, dim*dim*192)
	s := uint32(12345)
	for p := 0; p < dim*dim; p++ {
		for i := 0; i < 6; i++ { // 16 channels x 3 bits = 48 bits
			s = s*1664525 + 1013904223
			buf[p*192+i] = byte(s >> 24)
		}
	}
	return buf
}

// TestJamMatchesHostLayer computes Tinier-YOLO's first engine layer with the register
// values of the plan and compares with the host engine on a one-layer model.
func TestJamMatchesHostLayer(t *testing.T) {
	m := qnnBoard(t)
	e := newEngine(t, m)
	model := loadModel(t)
	runs, err := offload.Plan(model, offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	r := runs[0]
	in := randomInput(int(r.IFMDim))
	got := e.layer(r, r.KernelDim, runRegs(r), in, nil, 10*time.Second)
	if got == nil {
		t.Fatalf("engine hung: %s", e.jam.Hung())
	}
	want := hostLayer(t, model, r, in)
	if n := len(want); !bytes.Equal(got[:n], want) {
		t.Fatal("first layer differs from the host engine")
	}
}

// hostLayer runs only the first engine layer (conv + pool) on the host engine.
func hostLayer(tb testing.TB, m *quant.Model, r offload.Run, in []byte) []byte {
	tb.Helper()
	cut := *m
	last := r.Conv
	if r.Pool >= 0 {
		last = r.Pool
	}
	cut.Layers = m.Layers[:last+1]
	eng, err := qnnmo.NewEngine(&cut, offload.W1A3, 0)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := eng.Run(in)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestJamWrongRegisters: each wrong register value gives a different output or a hang.
func TestJamWrongRegisters(t *testing.T) {
	m := qnnBoard(t)
	e := newEngine(t, m)
	runs, err := offload.Plan(loadModel(t), offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	// Conv1's weights on a 32x32 map: the engine takes any dimensions within its
	// limits, and the small map keeps the cases fast.
	r := runs[0]
	r.IFMDim, r.PaddedDim, r.OFMDim, r.PoolInDim, r.PoolOutDim = 32, 34, 32, 32, 16
	in := randomInput(int(r.IFMDim))
	good := e.layer(r, r.KernelDim, runRegs(r), in, nil, 10*time.Second)
	if good == nil {
		t.Fatalf("hung: %s", e.jam.Hung())
	}
	outside := uint64(0x2000_0000)
	cases := []struct {
		name   string
		initK  uint32
		change layerRegs
		in     *uint64
		hang   string // substring of the hang reason; "" means a different output
	}{
		{name: "weight load with KernelDim 1", initK: 1},
		{name: "OFMCh 32", change: layerRegs{JamOFMCh: 32}},
		{name: "no pool (layerType 1)", change: layerRegs{JamLayerType: 1}},
		{name: "pool stride 1 padded", change: layerRegs{JamPoolInDim: 33, JamPoolOutDim: 32, JamPoolStride: 0}},
		{name: "IFMCh 65 (two SIMD groups)", change: layerRegs{JamIFMCh: 65}},
		{name: "weight load KernelDim 4", initK: 4, hang: "KernelDim 4"},
		{name: "no padding", change: layerRegs{JamPaddedDim: 32}, hang: "stream length mismatch"},
		{name: "IFMDim beyond the limit", change: layerRegs{JamIFMDim: 211, JamPaddedDim: 213, JamOFMDim: 211}, hang: "IFMDim 211"},
		{name: "stride register", change: layerRegs{JamStride: 1}, hang: "Stride"},
		{name: "pool output too large", change: layerRegs{JamPoolOutDim: 17}, hang: "PoolOutDim"},
		{name: "input outside DDR", in: &outside, hang: "AXI read error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			regs := runRegs(r)
			for k, v := range c.change {
				regs[k] = v
			}
			k := r.KernelDim
			if c.initK != 0 {
				k = c.initK
			}
			wait := 10 * time.Second
			if c.hang != "" {
				wait = 200 * time.Millisecond // the model decides to hang at the start
			}
			got := e.layer(r, k, regs, in, c.in, wait)
			switch {
			case c.hang != "" && got != nil:
				t.Fatalf("completed, want a hang (%s)", c.hang)
			case c.hang != "" && !strings.Contains(e.jam.Hung(), c.hang):
				t.Fatalf("hang reason %q, want %q", e.jam.Hung(), c.hang)
			case c.hang == "" && got == nil:
				t.Fatalf("hung (%s), want a different output", e.jam.Hung())
			case c.hang == "" && bytes.Equal(got, good):
				t.Fatal("same output as with the right registers")
			}
			if c.hang != "" {
				e.m.ResetPL()
				if e.regs.Read32(JamCtrl)&ctrlIdle == 0 {
					t.Fatal("engine not idle after the PL reset")
				}
			}
		})
	}
}

// TestJamControl: ap_done clears on read, idle follows the run, the SLCR reset ends a hang.
func TestJamControl(t *testing.T) {
	m := qnnBoard(t)
	e := newEngine(t, m)
	if v := e.regs.Read32(JamCtrl); v != ctrlIdle {
		t.Fatalf("ap_ctrl 0x%X after programming, want idle", v)
	}
	w := e.alloc(nil, 2*16*(576+16)*8)
	e.set64(JamIn1, w.PhysAddr())
	e.set64(JamIn2, w.PhysAddr()+16*(576+16)*8)
	e.regs.Write32(JamDoInit, 1)
	e.regs.Write32(JamKernelDim, 3)
	if !e.start(5 * time.Second) {
		t.Fatal(e.jam.Hung())
	}
	if v := e.regs.Read32(JamCtrl); v&ctrlDone != 0 || v&ctrlIdle == 0 {
		t.Fatalf("ap_ctrl 0x%X after reading done once, want idle without done", v)
	}
	e.jam.InjectHang(1)
	if e.start(20 * time.Millisecond) {
		t.Fatal("injected hang completed")
	}
	slcr, err := m.Map(overlay.SLCRBase, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	slcr.Write32(SLCRFPGAResetCtrl, 1)
	slcr.Write32(SLCRFPGAResetCtrl, 0)
	if v := e.regs.Read32(JamCtrl); v != ctrlIdle {
		t.Fatalf("ap_ctrl 0x%X after the PL reset, want idle", v)
	}
	if !e.start(5 * time.Second) {
		t.Fatal("run after reset hung")
	}
}

// testHWH is a small design with an AXI DMA, an AXI GPIO and an unknown IP.
const testHWH = `<?xml version="1.0" encoding="UTF-8"?>
<EDKSYSTEM EDWVERSION="1.2" VIVADOVERSION="2020.2">
  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="t" PACKAGE="clg400" SPEEDGRADE="-1"/>
  <MODULES>
    <MODULE FULLNAME="/ps7" INSTANCE="ps7" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5">
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x40400000" HIGHVALUE="0x4040FFFF" INSTANCE="dma" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI_LITE"/>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x41200000" HIGHVALUE="0x4120FFFF" INSTANCE="leds" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI"/>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x43C10000" HIGHVALUE="0x43C1FFFF" INSTANCE="mystery" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI"/>
      </MEMORYMAP>
    </MODULE>
    <MODULE FULLNAME="/dma" INSTANCE="dma" MODTYPE="axi_dma" VLNV="xilinx.com:ip:axi_dma:7.1">
      <PARAMETERS>
        <PARAMETER NAME="c_include_sg" VALUE="0"/>
        <PARAMETER NAME="c_sg_length_width" VALUE="23"/>
      </PARAMETERS>
    </MODULE>
    <MODULE FULLNAME="/leds" INSTANCE="leds" MODTYPE="axi_gpio" VLNV="xilinx.com:ip:axi_gpio:2.0"/>
    <MODULE FULLNAME="/mystery" INSTANCE="mystery" MODTYPE="mystery" VLNV="example.com:user:mystery:1.0"/>
  </MODULES>
</EDKSYSTEM>
`

// makeBit encodes a small .bit whose payload holds a sync word.
func makeBit(part string) []byte {
	var payload []byte
	for i := 0; i < 8; i++ {
		payload = append(payload, 0xff, 0xff, 0xff, 0xff)
	}
	payload = append(payload, 0x00, 0x00, 0x00, 0xbb, 0x11, 0x22, 0x00, 0x44, 0xaa, 0x99, 0x55, 0x66, 0x20, 0, 0, 0)
	b := []byte{0x00, 0x09, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x00, 0x00, 0x01}
	for i, s := range []string{"t;UserID=0XFFFFFFFF;Version=2020.2", part, "2026/01/01", "00:00:00"} {
		b = append(b, "abcd"[i])
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)+1))
		b = append(append(b, s...), 0)
	}
	b = append(b, 'e')
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func testDesign(tb testing.TB, part string) string {
	tb.Helper()
	dir := tb.TempDir()
	bit := filepath.Join(dir, "t.bit")
	if err := os.WriteFile(bit, makeBit(part), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t.hwh"), []byte(testHWH), 0o644); err != nil {
		tb.Fatal(err)
	}
	return bit
}

// TestDesignModels: every IP of a design appears at its .hwh address; the DMA moves data
// and its injected errors surface through the dma driver, which recovers.
func TestDesignModels(t *testing.T) {
	m, err := New(Config{DDRSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	bit := testDesign(t, bitstream.PartPYNQZ2)
	if _, err := m.Program(context.Background(), bit, bitstream.Options{}); err != nil {
		t.Fatal(err)
	}
	bus := overlay.NewCheckedBus(m, m.Design())

	// GPIO: outputs where tri is 0, inputs elsewhere.
	g, ok := m.GPIO("leds")
	if !ok {
		t.Fatal("no GPIO model for leds")
	}
	r, err := bus.Map(0x41200000, 0x200)
	if err != nil {
		t.Fatal(err)
	}
	r.Write32(gpioTri1, 0xF0)
	r.Write32(gpioData1, 0x5A)
	g.SetInputs(0, 0x30)
	if lv, mask := g.Outputs(0); lv != 0x0A || mask != ^uint32(0xF0) {
		t.Errorf("outputs 0x%X mask 0x%X", lv, mask)
	}
	if v := r.Read32(gpioData1); v != 0x3A {
		t.Errorf("data reads 0x%X, want inputs 0x30 | outputs 0x0A", v)
	}

	// Unknown IP: a plain register file.
	if v, ok := m.Model("mystery"); !ok {
		t.Error("no model for the unknown IP")
	} else if _, isRegs := v.(*overlay.MemRegion); !isRegs {
		t.Errorf("unknown IP modelled as %T", v)
	}

	// AXI DMA: loopback, an injected slave error, recovery.
	d, err := axidma.Open(bus, m.Design(), "dma")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	src, _ := m.Allocator().Alloc(4096)
	dst, _ := m.Allocator().Alloc(4096)
	for i := range src.Bytes() {
		src.Bytes()[i] = byte(i * 7)
	}
	loop := func() error {
		if err := d.S2MM().Transfer(dst, 0, 4096); err != nil {
			return err
		}
		if err := d.MM2S().Run(ctx, src, 0, 4096); err != nil {
			return err
		}
		return d.S2MM().Wait(ctx)
	}
	if err := loop(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src.Bytes(), dst.Bytes()) {
		t.Fatal("loopback data differs")
	}
	model, _ := m.DMA("dma")
	model.InjectFault(axidma.MM2S, simdma.SlaveError)
	err = d.MM2S().Run(ctx, src, 0, 4096)
	var derr *axidma.Error
	if !errors.As(err, &derr) || !errors.Is(err, axidma.ErrSlave) || !derr.Reset {
		t.Fatalf("got %v, want a slave error with a reset", err)
	}
	t.Log(err)
	clear(dst.Bytes())
	if err := loop(); err != nil {
		t.Fatalf("transfer after the error: %v", err)
	}
	if !bytes.Equal(src.Bytes(), dst.Bytes()) {
		t.Fatal("loopback data differs after recovery")
	}

	// Reprogramming removes the old PL.
	m.FailNextLoad(bitstream.StateWriteCompleteError)
	if _, err := m.Program(ctx, bit, bitstream.Options{}); !errors.Is(err, bitstream.ErrLoadFailed) {
		t.Fatalf("got %v", err)
	}
	if _, err := m.Map(0x41200000, 0x200); err == nil || !strings.Contains(err.Error(), "program a bitstream first") {
		t.Fatalf("map after a failed load: %v", err)
	}
}

// TestWrongPart: a .bit for another part is refused unless forced.
func TestWrongPart(t *testing.T) {
	m, _ := New(Config{DDRSize: 1 << 20})
	bit := testDesign(t, "7z010clg400")
	_, err := m.Program(context.Background(), bit, bitstream.Options{})
	if !errors.Is(err, bitstream.ErrWrongPart) {
		t.Fatalf("got %v, want ErrWrongPart", err)
	}
	t.Log(err)
	if m.Design() != nil {
		t.Fatal("design loaded despite the wrong part")
	}
	if _, err := m.Program(context.Background(), bit, bitstream.Options{Force: true}); err != nil {
		t.Fatalf("forced: %v", err)
	}
}

// TestDDRMapping: the CPU's DDR mapping and the allocator see the same bytes.
func TestDDRMapping(t *testing.T) {
	m, _ := New(Config{DDRSize: 1 << 20})
	b, _ := m.Allocator().Alloc(64)
	r, err := m.Map(b.PhysAddr(), 64)
	if err != nil {
		t.Fatal(err)
	}
	r.Write32(4, 0x11223344)
	if got := binary.LittleEndian.Uint32(b.Bytes()[4:]); got != 0x11223344 {
		t.Fatalf("buffer reads 0x%X", got)
	}
	if _, err := m.Map(0x43C00000, 4); !errors.Is(err, overlay.ErrOutsideDesign) {
		t.Fatalf("unprogrammed PL mapped: %v", err)
	}
}
