package axidma_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/dma/axidma"
	"github.com/fpgadetector/pynq-agent/dma/simdma"
	"github.com/fpgadetector/pynq-agent/overlay"
)

const dmaBase = 0x40400000

// dmaHWH is a design with one AXI DMA in simple mode, 64-bit memory side without DRE.
const dmaHWH = `<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" VIVADOVERSION="2020.2">
  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="dma" PACKAGE="clg400" SPEEDGRADE="-1"/>
  <MODULES>
    <MODULE FULLNAME="/ps7_0" INSTANCE="ps7_0" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5">
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x40400000" HIGHVALUE="0x4040FFFF" INSTANCE="axi_dma_0" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI_LITE"/>
      </MEMORYMAP>
    </MODULE>
    <MODULE FULLNAME="/axi_dma_0" INSTANCE="axi_dma_0" MODTYPE="axi_dma" VLNV="xilinx.com:ip:axi_dma:7.1">
      <PARAMETERS>
        <PARAMETER NAME="c_include_sg" VALUE="0"/>
        <PARAMETER NAME="c_sg_length_width" VALUE="14"/>
        <PARAMETER NAME="C_INCLUDE_MM2S" VALUE="1"/>
        <PARAMETER NAME="c_include_s2mm" VALUE="1"/>
        <PARAMETER NAME="c_m_axi_mm2s_data_width" VALUE="64"/>
        <PARAMETER NAME="c_include_s2mm_dre" VALUE="1"/>
        <PARAMETER NAME="c_addr_width" VALUE="32"/>
      </PARAMETERS>
    </MODULE>
    <MODULE FULLNAME="/gpio" INSTANCE="gpio" MODTYPE="axi_gpio" VLNV="xilinx.com:ip:axi_gpio:2.0"/>
  </MODULES>
</EDKSYSTEM>
`

type rig struct {
	alloc *dma.SimAllocator
	model *simdma.Model
	dev   *axidma.DMA
}

// newRig puts a simulated DMA on a bus, opens it through the .hwh and starts it. The
// allocator simulates a write-back cache, so a missing sync shows up as wrong data.
func newRig(tb testing.TB, mcfg simdma.Config) *rig {
	tb.Helper()
	d, err := overlay.ParseHWH(strings.NewReader(dmaHWH), "dma.hwh")
	if err != nil {
		tb.Fatal(err)
	}
	mem, err := dma.NewSimMemory(dma.DefaultSimBase, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	alloc, err := dma.NewSimAllocator(mem, dma.SimConfig{WriteBack: true})
	if err != nil {
		tb.Fatal(err)
	}
	model := simdma.New(mem, mcfg)
	bus := &overlay.MemBus{}
	bus.Add(dmaBase, model.Region())
	dev, err := axidma.Open(overlay.NewCheckedBus(bus, d), d, "axi_dma_0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close() })
	if err := dev.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return &rig{alloc: alloc, model: model, dev: dev}
}

func (r *rig) buffer(tb testing.TB, n int, fill byte) *dma.SimBuffer {
	tb.Helper()
	b, err := r.alloc.AllocSim(n)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range b.Bytes() {
		b.Bytes()[i] = fill + byte(i)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// loopback sends src through MM2S and receives it with S2MM into dst.
func (r *rig) loopback(ctx context.Context, src, dst dma.Buffer, n int) error {
	if err := r.dev.S2MM().Transfer(dst, 0, dst.Size()); err != nil {
		return err
	}
	if err := r.dev.MM2S().Transfer(src, 0, n); err != nil {
		return err
	}
	return errors.Join(r.dev.MM2S().Wait(ctx), r.dev.S2MM().Wait(ctx))
}

func TestConfigFromModule(t *testing.T) {
	d, err := overlay.ParseHWH(strings.NewReader(dmaHWH), "dma.hwh")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := d.Module("axi_dma_0")
	cfg, err := axidma.ConfigFromModule(m)
	if err != nil {
		t.Fatal(err)
	}
	want := axidma.Config{LengthWidth: 14, AddrWidth: 32, HasMM2S: true, HasS2MM: true, MM2SAlign: 8, S2MMAlign: 1}
	if cfg != want || cfg.MaxLength() != 16383 {
		t.Errorf("config %+v (max %d), want %+v", cfg, cfg.MaxLength(), want)
	}
	if mc, err := simdma.ConfigFromModule(m); err != nil || mc.LengthWidth != 14 || mc.AddrWidth != 32 {
		t.Errorf("model config %+v, %v", mc, err)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"c_include_sg" VALUE="0"`, `"c_include_sg" VALUE="1"`, "scatter-gather"},
		{`"c_sg_length_width" VALUE="14"`, `"c_sg_length_width" VALUE="x"`, `parameter c_sg_length_width (line 13): "x" is not an integer`},
		{`"c_sg_length_width" VALUE="14"`, `"c_sg_length_width" VALUE="27"`, "c_sg_length_width 27 is outside"},
		{`"C_INCLUDE_MM2S" VALUE="1"`, `"C_INCLUDE_MM2S" VALUE="0"/><PARAMETER NAME="c_include_s2mm" VALUE="0"`, "neither channel"},
	} {
		d, err := overlay.ParseHWH(strings.NewReader(strings.Replace(dmaHWH, c.old, c.new, 1)), "dma.hwh")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := d.Module("axi_dma_0")
		if _, err := axidma.ConfigFromModule(m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.new, err, c.want)
		}
	}
	if _, err := axidma.Open(&overlay.MemBus{}, d, "gpio"); err == nil || !strings.Contains(err.Error(), "not an AXI DMA") {
		t.Errorf("gpio as DMA: %v", err)
	}
	if _, err := axidma.Open(&overlay.MemBus{}, d, "nope"); err == nil || !strings.Contains(err.Error(), `no module "nope"`) {
		t.Errorf("missing instance: %v", err)
	}
}

func TestLoopback(t *testing.T) {
	for _, busy := range []int{0, 80} { // 80 status reads: the polling backoff path
		r := newRig(t, simdma.Config{BusyReads: busy})
		src, dst := r.buffer(t, 3000, 1), r.buffer(t, 4096, 0)
		clear(dst.Bytes())
		if err := r.loopback(context.Background(), src, dst, 3000); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst.Bytes()[:3000], src.Bytes()) {
			t.Fatal("S2MM buffer differs from what MM2S sent")
		}
		if n := r.dev.S2MM().LastLength(); n != 3000 {
			t.Errorf("S2MM received %d bytes, want 3000 (the packet ended early)", n)
		}
		// MM2S: flushed before; S2MM: cleaned before, invalidated after.
		if d, c := src.SyncCounts(); d != 1 || c != 0 {
			t.Errorf("MM2S buffer syncs: %d for device, %d for CPU; want 1, 0", d, c)
		}
		if d, c := dst.SyncCounts(); d != 1 || c != 1 {
			t.Errorf("S2MM buffer syncs: %d for device, %d for CPU; want 1, 1", d, c)
		}
		if s := r.model.Stats(axidma.MM2S); s.Transfers != 1 || s.Bytes != 3000 {
			t.Errorf("model MM2S stats %+v", s)
		}
	}
}

// TestMissingSyncIsVisible shows why the sync counts matter: data written into the
// simulated cache without SyncForDevice never reaches DDR.
func TestMissingSyncIsVisible(t *testing.T) {
	r := newRig(t, simdma.Config{})
	src := r.buffer(t, 64, 7)
	ddr, _ := r.alloc.Memory().Slice(src.PhysAddr(), 64)
	if bytes.Equal(ddr, src.Bytes()) {
		t.Fatal("the simulated cache is not write-back")
	}
	if err := r.dev.MM2S().Run(context.Background(), src, 0, 64); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ddr, src.Bytes()) {
		t.Error("the driver did not flush the MM2S buffer")
	}
}

func TestErrorBits(t *testing.T) {
	for _, c := range []struct {
		fault simdma.Fault
		bit   uint32
		err   error
		text  string
	}{
		{simdma.SlaveError, axidma.SRDMASlvErr, axidma.ErrSlave, "DMASlvErr"},
		{simdma.DecodeError, axidma.SRDMADecErr, axidma.ErrDecode, "DMADecErr"},
		{simdma.InternalError, axidma.SRDMAIntErr, axidma.ErrInternal, "DMAIntErr"},
	} {
		for _, dir := range []axidma.Direction{axidma.MM2S, axidma.S2MM} {
			r := newRig(t, simdma.Config{})
			src, dst := r.buffer(t, 256, 3), r.buffer(t, 256, 0)
			r.model.InjectFault(dir, c.fault)
			err := r.loopback(context.Background(), src, dst, 256)
			var de *axidma.Error
			if !errors.As(err, &de) || !errors.Is(err, c.err) {
				t.Fatalf("%v on %s: %v", c.fault, dir, err)
			}
			if de.Channel != dir || de.Status&c.bit == 0 || de.Status&axidma.SRHalted == 0 || de.Length != 256 || !de.Reset {
				t.Errorf("%v on %s: %+v", c.fault, dir, de)
			}
			if want := map[axidma.Direction]uint64{axidma.MM2S: src.PhysAddr(), axidma.S2MM: dst.PhysAddr()}[dir]; de.Addr != want {
				t.Errorf("%v on %s: error names 0x%X, want 0x%X", c.fault, dir, de.Addr, want)
			}
			msg := err.Error()
			for _, want := range []string{"axi dma axi_dma_0 " + dir.String(), c.text, "transfer of 256 bytes", "the core was reset"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			// Recovered: the next transfer goes through.
			if err := r.loopback(context.Background(), src, dst, 256); err != nil {
				t.Fatalf("after %v on %s: %v", c.fault, dir, err)
			}
			if !bytes.Equal(dst.Bytes(), src.Bytes()) {
				t.Errorf("after %v on %s: wrong data", c.fault, dir)
			}
		}
	}
}

// outsideBuffer claims a physical address outside the simulated DDR.
type outsideBuffer struct{ data []byte }

func (b *outsideBuffer) Bytes() []byte        { return b.data }
func (b *outsideBuffer) PhysAddr() uint64     { return 0x0800_0000 }
func (b *outsideBuffer) Size() int            { return len(b.data) }
func (b *outsideBuffer) SyncForDevice() error { return nil }
func (b *outsideBuffer) SyncForCPU() error    { return nil }
func (b *outsideBuffer) Close() error         { return nil }

func TestDecodeErrorFromAddress(t *testing.T) {
	r := newRig(t, simdma.Config{})
	err := r.dev.MM2S().Run(context.Background(), &outsideBuffer{make([]byte, 64)}, 0, 64)
	if !errors.Is(err, axidma.ErrDecode) || !strings.Contains(err.Error(), "at 0x8000000") {
		t.Errorf("unmapped address: %v", err)
	}
}

func TestHangTimesOutAndRecovers(t *testing.T) {
	r := newRig(t, simdma.Config{})
	src, dst := r.buffer(t, 512, 9), r.buffer(t, 512, 0)
	r.model.InjectFault(axidma.MM2S, simdma.Hang)
	resets := r.model.Resets()
	if err := r.dev.MM2S().Transfer(src, 0, 512); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := r.dev.MM2S().Wait(ctx)
	var de *axidma.Error
	if !errors.As(err, &de) || !errors.Is(err, axidma.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !de.Reset {
		t.Fatalf("hang: %v", err)
	}
	if !strings.Contains(err.Error(), "consumer") || r.model.Resets() != resets+1 {
		t.Errorf("hang: %v (resets %d -> %d)", err, resets, r.model.Resets())
	}
	if err := r.loopback(context.Background(), src, dst, 512); err != nil || !bytes.Equal(dst.Bytes(), src.Bytes()) {
		t.Fatalf("after the hang: %v", err)
	}
}

// TestResetAbortsOtherChannel: the IP has one reset, so recovering MM2S loses the
// S2MM transfer in flight; its Wait says so instead of timing out.
func TestResetAbortsOtherChannel(t *testing.T) {
	r := newRig(t, simdma.Config{})
	src, dst := r.buffer(t, 128, 1), r.buffer(t, 128, 0)
	if err := r.dev.S2MM().Transfer(dst, 0, 128); err != nil {
		t.Fatal(err)
	}
	r.model.InjectFault(axidma.MM2S, simdma.SlaveError)
	if err := r.dev.MM2S().Run(context.Background(), src, 0, 128); !errors.Is(err, axidma.ErrSlave) {
		t.Fatalf("MM2S: %v", err)
	}
	if err := r.dev.S2MM().Wait(context.Background()); !errors.Is(err, axidma.ErrAborted) {
		t.Errorf("S2MM after the reset: %v", err)
	}
}

func TestTransferChecks(t *testing.T) {
	r := newRig(t, simdma.Config{})
	big := r.buffer(t, 1<<14, 0)
	mm2s := r.dev.MM2S()
	for _, c := range []struct {
		off, n int
		want   string
	}{
		{0, 1 << 14, "16384 bytes exceed the maximum of 16383 (c_sg_length_width = 14"},
		{0, 0, "length 0 must be positive"},
		{8, 1<<14 - 1, "outside the 16384-byte buffer"},
		{-8, 8, "outside"},
		{4, 8, "address 0x10000004 is not aligned to 8 bytes"},
	} {
		if err := mm2s.Transfer(big, c.off, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Transfer(off %d, n %d): %v, want %q", c.off, c.n, err, c.want)
		}
	}
	if s := r.model.Stats(axidma.MM2S); s.Transfers+s.Errors != 0 || s.Busy {
		t.Errorf("a refused transfer reached the DMA: %+v", s)
	}
	if d, _ := big.SyncCounts(); d != 0 {
		t.Errorf("a refused transfer synced the buffer %d times", d)
	}
	// Unaligned S2MM is fine: it has the realignment engine.
	small := r.buffer(t, 64, 0)
	if err := r.dev.S2MM().Transfer(small, 4, 8); err != nil {
		t.Errorf("S2MM with DRE at offset 4: %v", err)
	}
	if err := r.dev.S2MM().Transfer(small, 0, 8); err == nil || !strings.Contains(err.Error(), "not waited for") {
		t.Errorf("second transfer without Wait: %v", err)
	}
	if err := r.dev.MM2S().Run(context.Background(), small, 0, 8); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.S2MM().Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.S2MM().Wait(context.Background()); err != nil {
		t.Errorf("Wait with nothing in flight: %v", err)
	}
}

func TestNotStartedAndResetStuck(t *testing.T) {
	mem, _ := dma.NewSimMemory(dma.DefaultSimBase, 1<<16)
	alloc, _ := dma.NewSimAllocator(mem, dma.SimConfig{})
	model := simdma.New(mem, simdma.Config{ResetReads: 3})
	dev, err := axidma.New("dma0", model.Region(), axidma.Config{HasMM2S: true, ResetTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := alloc.Alloc(64)
	if err := dev.MM2S().Transfer(buf, 0, 64); !errors.Is(err, axidma.ErrHalted) {
		t.Errorf("transfer before Start: %v", err)
	}
	if err := dev.S2MM().Transfer(buf, 0, 64); !errors.Is(err, axidma.ErrNoChannel) {
		t.Errorf("S2MM on an MM2S-only DMA: %v", err)
	}
	if err := dev.Start(context.Background()); err != nil {
		t.Fatalf("Start with a 3-read reset: %v", err)
	}
	if err := dev.MM2S().Run(context.Background(), buf, 0, 64); err != nil {
		t.Fatal(err)
	}
	model.SetResetStuck(true)
	if err := dev.Reset(context.Background()); err == nil || !strings.Contains(err.Error(), "reset did not complete") {
		t.Errorf("stuck reset: %v", err)
	}
	model.SetResetStuck(false)
	if err := dev.Start(context.Background()); err != nil {
		t.Errorf("Start after the reset came free: %v", err)
	}
}

func TestWideAddresses(t *testing.T) {
	mem, _ := dma.NewSimMemory(0x1_2000_0000, 1<<16)
	alloc, _ := dma.NewSimAllocator(mem, dma.SimConfig{})
	model := simdma.New(mem, simdma.Config{AddrWidth: 40})
	buf, _ := alloc.Alloc(64)
	copy(buf.Bytes(), "above 4 GiB")
	narrow, _ := axidma.New("dma32", model.Region(), axidma.Config{HasMM2S: true, HasS2MM: true})
	narrow.Start(context.Background())
	if err := narrow.MM2S().Transfer(buf, 0, 64); err == nil || !strings.Contains(err.Error(), "32-bit address space") {
		t.Errorf("32-bit DMA, 36-bit buffer: %v", err)
	}
	wide, _ := axidma.New("dma40", model.Region(), axidma.Config{HasMM2S: true, HasS2MM: true, AddrWidth: 40})
	wide.Start(context.Background())
	dst, _ := alloc.Alloc(64)
	wide.S2MM().Transfer(dst, 0, 64)
	if err := wide.MM2S().Run(context.Background(), buf, 0, 64); err != nil {
		t.Fatal(err)
	}
	if err := wide.S2MM().Wait(context.Background()); err != nil || string(dst.Bytes()[:11]) != "above 4 GiB" {
		t.Errorf("40-bit loopback: %v, %q", err, dst.Bytes()[:11])
	}
	if msb := model.Region().Peek(axidma.Regs(axidma.S2MM).AddrMSB); msb != 1 {
		t.Errorf("S2MM DA MSB = %d, want 1", msb)
	}
}

// TestChannelsConcurrently receives in one goroutine while another sends, as a
// pipeline does; run with -race.
func TestChannelsConcurrently(t *testing.T) {
	r := newRig(t, simdma.Config{BusyReads: 5})
	src, dst := r.buffer(t, 1024, 5), r.buffer(t, 1024, 0)
	for range 20 {
		clear(dst.Bytes())
		if err := r.dev.S2MM().Transfer(dst, 0, 1024); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.dev.S2MM().Wait(context.Background()) }()
		if err := r.dev.MM2S().Run(context.Background(), src, 0, 1024); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst.Bytes(), src.Bytes()) {
			t.Fatal("wrong data")
		}
	}
}
