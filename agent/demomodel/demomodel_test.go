package demomodel

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

func TestLoadFitsTheEngine(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != Network || m.Input != (quant.Shape{C: 3, H: 416, W: 416}) {
		t.Errorf("model %q input %v", m.Name, m.Input)
	}
	head := m.Layers[len(m.Layers)-1].Head
	if head == nil || head.Classes != 1 || head.Num != 5 {
		t.Fatalf("head %+v, want 1 class, 5 anchors", head)
	}
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 10 { // conv1-4, and conv5-7 in two halves of 256 channels
		t.Errorf("%d engine runs, want 10", len(runs))
	}
}

func TestExtract(t *testing.T) {
	p, err := Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := qnnmo.LoadDir(p.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range embedded.Layers {
		if l.Conv != nil && !reflect.DeepEqual(l.Conv.Weights, fromDir.Layers[i].Conv.Weights) {
			t.Errorf("layer %d: extracted weights differ", i)
		}
	}
	bit, err := bitstream.Parse(SimBit())
	if err != nil {
		t.Fatal(err)
	}
	if err := bit.Header.CheckPart(bitstream.PartPYNQZ2, false); err != nil {
		t.Error(err)
	}
	d, err := overlay.LoadHWH(p.Bitstream[:len(p.Bitstream)-4] + ".hwh")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FindByVLNV("xilinx.com:hls:BlackBoxJam:")) != 1 {
		t.Error("the simulation design has no BlackBoxJam engine")
	}
}

// TestSimEngineEqualsHost runs the demo's engine layers through the QNN driver on the
// FPGA simulation programmed with the demo design, and requires the host engine's
// bytes exactly.
func TestSimEngineEqualsHost(t *testing.T) {
	p, err := Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := qnnmo.LoadDir(p.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	machine, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := machine.Program(context.Background(), p.Bitstream, bitstream.Options{}); err != nil {
		t.Fatal(err)
	}
	drv, err := qnndriver.Open(qnndriver.Config{
		Bus:   overlay.NewCheckedBus(machine, machine.Design(), overlay.SLCRRange),
		Alloc: machine.Allocator(), Design: machine.Design(), Model: m, Preload: true,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	host, err := qnnmo.NewEngine(m, offload.W1A3, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := host.InLayout()
	in := make([]byte, l.Size())
	rng := rand.New(rand.NewPCG(1, 1))
	for px := 0; px < l.Dim*l.Dim; px++ { // 16 channels x 3 bits: 6 bytes per record
		for b := 0; b < 3*l.Channels/8; b++ {
			in[px*l.RecordBytes+b] = byte(rng.Uint32())
		}
	}
	want, err := host.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := drv.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the simulated engine's output differs from the host engine's")
	}
}
