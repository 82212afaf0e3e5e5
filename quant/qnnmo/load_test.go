package qnnmo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

func paramsDir(tb testing.TB) string {
	tb.Helper()
	return testutil.Fixture(tb, "qnn-mo-pynq", "params")
}

// loadModel loads the published model once per test binary.
var loadedModel *quant.Model

func loadModel(tb testing.TB) *quant.Model {
	tb.Helper()
	dir := paramsDir(tb)
	if loadedModel == nil {
		m, err := LoadDir(dir)
		if err != nil {
			tb.Fatalf("LoadDir: %v", err)
		}
		loadedModel = m
	}
	return loadedModel
}

func TestLoadDirShapes(t *testing.T) {
	m := loadModel(t)
	var got []string
	for _, l := range m.Layers {
		got = append(got, l.Name+" "+l.Out.String())
	}
	want := []string{
		"conv0 16x208x208", "conv1 64x208x208", "pool1 64x104x104", "conv2 64x104x104", "pool2 64x52x52",
		"conv3 128x52x52", "pool3 128x26x26", "conv4 256x26x26", "pool4 256x13x13", "conv5 512x13x13",
		"pool5 512x13x13", "conv6 512x13x13", "conv7 512x13x13", "conv8 125x13x13", "region 125x13x13",
	}
	if len(got) != len(want) {
		t.Fatalf("layers %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layer %d = %s, want %s", i, got[i], want[i])
		}
	}
	first := m.Layers[0]
	if first.Quant == nil || first.Quant.ActBits != 3 || first.Quant.ActScale != FirstActScale || len(first.Conv.Bias) != 16 {
		t.Errorf("conv0 quant %+v", first.Quant)
	}
	h := m.Layers[14].Head
	if h.Classes != 20 || h.Num != 5 || !h.Softmax || len(h.Anchors) != 10 || h.Anchors[9] != 10.52 {
		t.Errorf("region head %+v", h)
	}
	for _, i := range []int{1, 3, 5, 7, 9, 11, 12} {
		l := m.Layers[i]
		if l.Quant == nil || l.Quant.WeightBits != 1 || len(l.Quant.Thresholds) != l.Conv.Filters {
			t.Fatalf("%s is not a W1A3 layer: %+v", l.Name, l.Quant)
		}
		for _, w := range l.Conv.Weights {
			if w != 1 && w != -1 {
				t.Fatalf("%s has weight %v", l.Name, w)
			}
		}
	}
	// Published thresholds of conv1, output channel 0 (PE 0, entry 0).
	if got := m.Layers[1].Quant.Thresholds[0]; !equalInt32(got, []int32{40, 47, 54, 60, 67, 74, 81}) {
		t.Errorf("conv1 channel 0 thresholds %v", got)
	}
}

func equalInt32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanRegisters(t *testing.T) {
	m := loadModel(t)
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 10 {
		t.Fatalf("%d runs, want 10 (conv5..7 in two parts)", len(runs))
	}
	type regs struct{ typ, ifm, ofm, dim, pad, out, pin, pout, pst uint32 }
	want := []regs{
		{2, 16, 64, 208, 210, 208, 208, 104, 1},
		{2, 64, 64, 104, 106, 104, 104, 52, 1},
		{2, 64, 128, 52, 54, 52, 52, 26, 1},
		{2, 128, 256, 26, 28, 26, 26, 13, 1},
		{2, 256, 256, 13, 15, 13, 14, 13, 0},
		{2, 256, 256, 13, 15, 13, 14, 13, 0},
		{1, 512, 256, 13, 15, 13, 13, 13, 0},
		{1, 512, 256, 13, 15, 13, 13, 13, 0},
		{1, 512, 256, 13, 15, 13, 13, 13, 0},
		{1, 512, 256, 13, 15, 13, 13, 13, 0},
	}
	for i, r := range runs {
		got := regs{r.Type, r.IFMCh, r.OFMCh, r.IFMDim, r.PaddedDim, r.OFMDim, r.PoolInDim, r.PoolOutDim, r.Log2PoolStride}
		if got != want[i] || r.WeightIndex != i || r.KernelDim != 3 {
			t.Errorf("run %d = %+v, want %+v", i, got, want[i])
		}
	}
}

// TestBinparamRoundTrip imports the published 640 parameter files and exports them again:
// every file must come back byte for byte.
func TestBinparamRoundTrip(t *testing.T) {
	m := loadModel(t)
	src := filepath.Join(paramsDir(t), "binparam-tinier-yolo-nopool")
	out := t.TempDir()
	if err := WriteBinparams(m, out, offload.W1A3); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(src, "*.bin"))
	if err != nil || len(names) != 640 {
		t.Fatalf("%d published files (%v), want 640", len(names), err)
	}
	written, _ := filepath.Glob(filepath.Join(out, "*.bin"))
	if len(written) != len(names) {
		t.Errorf("wrote %d files, want %d", len(written), len(names))
	}
	for _, name := range names {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, filepath.Base(name)))
		if err != nil {
			t.Errorf("%s not written: %v", filepath.Base(name), err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the published file", filepath.Base(name))
		}
	}
}

func FuzzModelFromCfg(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", "qnn-mo-pynq", "params", "tinier-yolo-bwn-3bit-relu-nomaxpool.cfg")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("[net]\nwidth=8\nheight=8\n[convolutional]\nbinary=1\nfilters=32\nsize=3\npad=1\n[maxpool]\nsize=2\nstride=1\n"))
	f.Add([]byte("[net\n"))
	f.Add([]byte("[region]\nanchors=1,x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sections, err := parseCfg(data)
		if err != nil {
			return
		}
		m, err := modelFromCfg(sections)
		if err != nil {
			return
		}
		if m.InferShapes() != nil {
			return
		}
		_, _ = offload.PlanShapes(m, offload.W1A3)
	})
}

func TestRunRegisters(t *testing.T) {
	runs, err := offload.Plan(loadModel(t), offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	r := runs[4] // conv5 part 0 with the 2/1 pool
	got := r.ComputeRegs()
	want := []offload.RegWrite{{Name: "doInit", Value: 0}, {Name: "layerType", Value: 2}, {Name: "KernelDim", Value: 3}, {Name: "Stride", Value: 0}, {Name: "IFMCh", Value: 256}, {Name: "OFMCh", Value: 256},
		{Name: "IFMDim", Value: 13}, {Name: "PaddedDim", Value: 15}, {Name: "OFMDim", Value: 13}, {Name: "PoolInDim", Value: 14}, {Name: "PoolOutDim", Value: 13}, {Name: "PoolStride", Value: 0}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("write %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if w := r.WeightLoadRegs(); len(w) != 3 || w[0] != (offload.RegWrite{Name: "doInit", Value: 1}) || w[2] != (offload.RegWrite{Name: "KernelDim", Value: 3}) {
		t.Errorf("weight load %v", w)
	}
	if runs[0].InBytes(offload.W1A3) != 208*208*192 || runs[0].OutBytes(offload.W1A3) != 104*104*192 {
		t.Errorf("conv1 moves %d -> %d bytes", runs[0].InBytes(offload.W1A3), runs[0].OutBytes(offload.W1A3))
	}
}
