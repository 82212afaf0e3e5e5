package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// qatTestCfg is a tiny one-class W1A3 detector at 32x32: conv0 on the CPU, one binary
// engine layer with a pool, the 1x1 head.
var qatTestCfg = tinyRegionCfg(`[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=relu

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=relu
binary=1

[maxpool]
size=2
stride=2
`, 1)

// TestQATToQNNDir: quant qat writes weights and the scale sidecar; quant qnn-dir turns
// them into a parameter directory the QNN loader reads.
func TestQATToQNNDir(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", qatTestCfg)
	data := filepath.Join(dir, "data")
	if log, err := runPynqctl(t, "dataset", "synth", "--out", data, "--count", "4", "--size", "32", "--val-fraction", "0"); err != nil {
		t.Fatalf("dataset: %v\n%s", err, log)
	}
	out := filepath.Join(dir, "backup")
	log, err := runPynqctl(t, "quant", "qat", "--cfg", cfg, "--data", filepath.Join(data, "train.txt"), "--out", out, "--threads", "2")
	if err != nil {
		t.Fatalf("qat: %v\n%s", err, log)
	}
	if !strings.Contains(log, "2: ") {
		t.Errorf("progress lines missing:\n%s", log)
	}
	sc, err := todarknet.ReadSidecar(filepath.Join(out, "tiny.quant.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Layers) != 2 || sc.Layers[0].WeightBits != 0 || sc.Layers[1].WeightBits != 1 || !(sc.Layers[1].ActScale > 0) {
		t.Fatalf("sidecar layers %+v", sc.Layers)
	}
	qdir := filepath.Join(dir, "qnn")
	if log, err := runPynqctl(t, "quant", "qnn-dir", "--cfg", cfg, "--weights", filepath.Join(out, "tiny_final.weights"),
		"--sidecar", filepath.Join(out, "tiny.quant.json"), "--out", qdir, "--name", "tiny-w1a3"); err != nil {
		t.Fatalf("qnn-dir: %v\n%s", err, log)
	}
	m, err := qnn.LoadDir(qdir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "tiny-w1a3" || m.Layers[1].Quant == nil || len(m.Layers[1].Quant.Thresholds) != 32 {
		t.Errorf("loaded %q, engine layer %+v", m.Name, m.Layers[1].Quant)
	}
}
