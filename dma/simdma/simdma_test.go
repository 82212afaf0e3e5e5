package simdma

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/dma/axidma"
)

// TestRegisterSemantics pins the PG021 behaviour the model promises drivers.
func TestRegisterSemantics(t *testing.T) {
	mem, err := dma.NewSimMemory(0x1000_0000, 4096)
	if err != nil {
		t.Fatal(err)
	}
	m := New(mem, Config{LengthWidth: 8})
	r := m.Region()
	mm2s, s2mm := axidma.Regs(axidma.MM2S), axidma.Regs(axidma.S2MM)
	if sr := r.Read32(mm2s.SR); sr != axidma.SRHalted {
		t.Errorf("reset DMASR 0x%X, want halted", sr)
	}
	// LENGTH while halted starts nothing.
	r.Write32(mm2s.Length, 16)
	if s := m.Stats(axidma.MM2S); s.Busy || s.Transfers != 0 {
		t.Errorf("halted channel started a transfer: %+v", s)
	}
	r.Write32(mm2s.CR, axidma.CRRunStop)
	r.Write32(s2mm.CR, axidma.CRRunStop)
	if sr := r.Read32(mm2s.SR); sr&axidma.SRHalted != 0 {
		t.Errorf("RS=1 left DMASR 0x%X halted", sr)
	}
	mem.WritePhys([]byte("abcdef"), 0x1000_0000)
	r.Write32(s2mm.Addr, 0x1000_0100)
	r.Write32(s2mm.Length, 0x1FF) // masked to 8 bits: 255
	r.Write32(mm2s.Addr, 0x1000_0000)
	r.Write32(mm2s.Length, 6)
	if sr := r.Read32(mm2s.SR); sr&(axidma.SRIdle|axidma.SRIOCIrq) != axidma.SRIdle|axidma.SRIOCIrq {
		t.Errorf("MM2S DMASR 0x%X after the transfer, want Idle|IOC", sr)
	}
	got := make([]byte, 6)
	mem.ReadPhys(got, 0x1000_0100)
	if string(got) != "abcdef" || r.Read32(s2mm.Length) != 6 {
		t.Errorf("S2MM wrote %q, LENGTH reads %d; want the 6-byte packet", got, r.Read32(s2mm.Length))
	}
	r.Write32(mm2s.SR, axidma.SRIOCIrq) // write 1 to clear
	if sr := r.Read32(mm2s.SR); sr&axidma.SRIOCIrq != 0 || sr&axidma.SRIdle == 0 {
		t.Errorf("DMASR 0x%X after clearing IOC", sr)
	}
	// A packet longer than LENGTH is an internal error on S2MM.
	r.Write32(s2mm.Length, 2)
	r.Write32(mm2s.Length, 6)
	if sr := r.Read32(s2mm.SR); sr&(axidma.SRDMAIntErr|axidma.SRHalted) != axidma.SRDMAIntErr|axidma.SRHalted {
		t.Errorf("S2MM DMASR 0x%X after an oversize packet", sr)
	}
	// Reset halts both channels and clears the errors.
	r.Write32(mm2s.CR, axidma.CRReset)
	if sr := r.Read32(s2mm.SR); sr != axidma.SRHalted || m.Resets() != 1 {
		t.Errorf("after reset S2MM DMASR 0x%X, resets %d", sr, m.Resets())
	}
}
