package qnndriver_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// TestRunTraceEqualsHostTrace: every layer's output of a traced driver run equals the
// host engine's RunTrace (levels compared, padding bits aside), the last equals Run,
// and a bit flipped in a preloaded weight buffer shows up first in that layer.
func TestRunTraceEqualsHostTrace(t *testing.T) {
	f := loadFixture(t)
	m := board(t, f, sim.Config{})
	d := openDriver(t, f, m, true, 0)
	name := names(f, true)[0]
	outs, err := d.RunTrace(context.Background(), f.inputs[name])
	if err != nil {
		t.Fatal(err)
	}
	host, err := f.det.Engine.RunTrace(f.inputs[name])
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(host) || len(outs) == 0 {
		t.Fatalf("%d traced layers, host %d", len(outs), len(host))
	}
	if !bytes.Equal(outs[len(outs)-1].Data, f.want[name]) {
		t.Error("last traced layer differs from Run's output")
	}
	if k := firstLayerDiff(t, outs, host); k >= 0 {
		t.Fatalf("layer %d (%s) differs from the host", k, outs[k].Name)
	}

	// Fault: flip one weight bit of the second engine layer in simulated DDR.
	target := outs[1].Name
	phys, size, err := d.WeightBuffer(target, 0)
	if err != nil || size < 4 {
		t.Fatal(size, err)
	}
	r, err := m.Map(phys, size)
	if err != nil {
		t.Fatal(err)
	}
	r.Write32(0, r.Read32(0)^1)
	r.Close()
	bad, err := d.RunTrace(context.Background(), f.inputs[name])
	if err != nil {
		t.Fatal(err)
	}
	if k := firstLayerDiff(t, bad, host); k != 1 {
		t.Errorf("corrupted %s: first differing layer %d, want 1", target, k)
	}
	if _, _, err := d.WeightBuffer("nope", 0); err == nil {
		t.Error("unknown layer accepted")
	}
}

// firstLayerDiff is the first layer whose channel levels differ, -1 when none.
func firstLayerDiff(tb testing.TB, outs []qnndriver.LayerOutput, host [][]byte) int {
	tb.Helper()
	for k, o := range outs {
		a, err := offload.Unpack(o.Data, o.Layout)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := offload.Unpack(host[k], o.Layout)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			return k
		}
	}
	return -1
}
