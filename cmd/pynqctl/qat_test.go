package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/flow"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
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
	m, err := qnnmo.LoadDir(qdir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "tiny-w1a3" || m.Layers[1].Quant == nil || len(m.Layers[1].Quant.Thresholds) != 32 {
		t.Errorf("loaded %q, engine layer %+v", m.Name, m.Layers[1].Quant)
	}
}

// TestQATReportComparesPTQ: with --outdir, quant qat runs the flow on the float model
// (PTQ) and on the trained one (QAT, its trained scales) and writes the comparison.
func TestQATReportComparesPTQ(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", strings.ReplaceAll(qatTestCfg, "binary=1\n", ""))
	data := filepath.Join(dir, "data")
	if log, err := runPynqctl(t, "dataset", "synth", "--out", data, "--count", "8", "--size", "32", "--val-fraction", "0.5"); err != nil {
		t.Fatalf("dataset: %v\n%s", err, log)
	}
	train := filepath.Join(data, "train.txt")
	if log, err := runPynqctl(t, "train", "--cfg", cfg, "--data", train, "--out", filepath.Join(dir, "float"), "--max-batches", "3", "--threads", "2"); err != nil {
		t.Fatalf("float training: %v\n%s", err, log)
	}
	out := filepath.Join(dir, "qat")
	log, err := runPynqctl(t, "quant", "qat", "--cfg", cfg, "--weights", filepath.Join(dir, "float", "tiny_final.weights"),
		"--data", train, "--val", filepath.Join(data, "val"), "--outdir", out, "--threads", "2", "--max-drop", "100", "--learn-clip")
	if err != nil {
		t.Fatalf("qat: %v\n%s", err, log)
	}
	for _, want := range []string{"post-training quantization", "quantization-aware training", "PTQ AP", "QAT AP"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	var r flow.QATReport
	b, err := os.ReadFile(filepath.Join(out, "qat_report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Classes) != 1 || r.Classes[0].Class != "chair" || r.Training.Iterations != 2 || !r.Passed.QAT {
		t.Errorf("report %+v", r)
	}
	for _, p := range []string{r.Results.PTQ, r.Results.QAT, filepath.Join(out, "qat_report.html"),
		filepath.Join(out, "ptq", "tiny-w1a3-calibrated.onnx"), filepath.Join(out, "qat", "tiny-qat-w1a3-calibrated.onnx")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	m, err := darknet.LoadCfg(r.Training.Cfg, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].Conv.Binary || !m.Layers[1].Conv.Binary {
		t.Errorf("qat cfg: conv0 binary %v, conv1 binary %v; want false, true", m.Layers[0].Conv.Binary, m.Layers[1].Conv.Binary)
	}
	qdir := filepath.Join(dir, "qnn")
	if log, err := runPynqctl(t, "quant", "qnn-dir", "--cfg", r.Training.Cfg, "--weights", r.Training.Weights,
		"--sidecar", r.Training.Sidecar, "--out", qdir); err != nil {
		t.Fatalf("qnn-dir of the QAT outputs: %v\n%s", err, log)
	}
	if _, err := qnnmo.LoadDir(qdir); err != nil {
		t.Error(err)
	}
}

// --outdir needs the float model and a validation set, and says so before training.
func TestQATOutdirNeedsFloatAndVal(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", qatTestCfg)
	log, err := runPynqctl(t, "quant", "qat", "--cfg", cfg, "--data", dir, "--outdir", filepath.Join(dir, "out"))
	if err == nil || !strings.Contains(err.Error(), "--weights") || !strings.Contains(err.Error(), "--val") {
		t.Fatalf("quant qat --outdir without --weights/--val: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the refused run created its output directory (%v)", err)
	}
}
