//go:build cgo

package onnx_test

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/ort"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// TestORTLHTanTinierYOLO: the float Tinier-YOLO that export-darknet
// --float-activation=lhtan makes from the QNN-MO model (eight lhtan layers), read by
// quant/darknet, exported to ONNX and run by onnxruntime on dog.jpg, gives the float
// engine's head input; the ONNX file imports back with its lhtan layers.
func TestORTLHTanTinierYOLO(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs Tinier-YOLO in onnxruntime")
	}
	if err := ort.Init(); err != nil {
		if errors.Is(err, ort.ErrNoLibrary) {
			t.Skipf("onnxruntime unavailable: %v", err)
		}
		t.Fatal(err)
	}
	src, err := qnnmo.LoadDir(testutil.Fixture(t, "qnn-mo-pynq", "params"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := todarknet.ExportWith(src, todarknet.Options{FloatActivation: todarknet.FloatLHTan})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "ty.cfg"), filepath.Join(dir, "ty.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := countLHTan(m); n != 8 {
		t.Fatalf("the darknet files have %d lhtan layers, want 8", n)
	}
	mp, err := onnx.Export(m, onnx.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ty.onnx")
	if err := onnx.WriteFile(path, mp); err != nil {
		t.Fatal(err)
	}
	back, err := onnx.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := countLHTan(back); n != 8 {
		t.Errorf("the ONNX file imports with %d lhtan layers, want 8", n)
	}
	im, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	in := imageio.Letterbox(im, m.Input.W, m.Input.H).Data
	got, err := ort.RunFile(path, in, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := floatengine.New(m, floatengine.Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(in); err != nil {
		t.Fatal(err)
	}
	for _, h := range m.Heads() {
		out, ok := got[onnx.HeadOutputName(h)]
		want := e.Output(m.Layers[h].Inputs[0])
		if !ok || len(out.Data) != len(want) {
			t.Fatalf("onnxruntime output %s missing or of the wrong size", onnx.HeadOutputName(h))
		}
		var diff, peak float64
		for i, w := range want {
			diff = max(diff, math.Abs(float64(out.Data[i]-w)))
			peak = max(peak, math.Abs(float64(w)))
		}
		rel := diff / max(1, peak)
		t.Logf("head %d: max|ort-engine|/max(1,max|engine|) = %.3g", h, rel)
		if rel > 1e-4 {
			t.Errorf("head %d: onnxruntime and the float engine differ by %.3g", h, rel)
		}
	}
}

func countLHTan(m *quant.Model) int {
	n := 0
	for _, l := range m.Layers {
		if l.Conv != nil && l.Conv.Activation == quant.ActLHTan {
			n++
		}
	}
	return n
}
