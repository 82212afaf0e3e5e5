package agent

import (
	"bytes"
	"context"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// calibratedTinierYOLO runs the quantization flow of `pynqctl quant` in-process on the
// published QNN-MO model, as the commands do it (each step reads the previous step's
// file): export-darknet --float-activation=lhtan, convert, finn, weights
// --weight-bits=1, activations --activation-bits=3, calibrate --scales=<sidecar>. It
// returns the calibrated and the streamlined file.
func calibratedTinierYOLO(tb testing.TB, params string) (calibrated, streamlined string) {
	tb.Helper()
	dir := tb.TempDir()
	src, err := qnnmo.LoadDir(params)
	if err != nil {
		tb.Fatal(err)
	}
	exp, err := todarknet.ExportWith(src, todarknet.Options{FloatActivation: todarknet.FloatLHTan})
	if err != nil {
		tb.Fatal(err)
	}
	cfg, weights := filepath.Join(dir, "tinier-yolo.cfg"), filepath.Join(dir, "tinier-yolo.weights")
	if err := exp.WriteFiles(cfg, weights); err != nil {
		tb.Fatal(err)
	}
	fm, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	mp, err := onnx.Export(fm, onnx.ExportOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "tinier-yolo.onnx")
	if err := onnx.WriteFile(path, mp); err != nil {
		tb.Fatal(err)
	}
	step := func(in, suffix string, opt qonnx.Options, f func(m *quant.Model) error) string {
		m, err := qonnx.ReadFile(in)
		if err != nil {
			tb.Fatal(err)
		}
		if err := f(m); err != nil {
			tb.Fatalf("%s: %v", suffix, err)
		}
		out := filepath.Join(dir, "tinier-yolo"+suffix+".onnx")
		if err := qonnx.WriteFile(out, m, opt); err != nil {
			tb.Fatal(err)
		}
		return out
	}
	path = step(path, "-finn", qonnx.Options{Stage: "finn"}, func(m *quant.Model) error { _, err := qonnx.Finn(m); return err })
	path = step(path, "-w1", qonnx.Options{Stage: "w1"}, func(m *quant.Model) error {
		_, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true})
		return err
	})
	path = step(path, "-w1a3", qonnx.Options{Stage: "a3"}, func(m *quant.Model) error {
		_, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3, Leaky: "relu"})
		return err
	})
	calibrate := func(m *quant.Model) error {
		sc, err := todarknet.ReadSidecar(todarknet.SidecarPath(cfg))
		if err != nil {
			return err
		}
		if _, err := todarknet.ApplyScales(m, sc); err != nil {
			return err
		}
		_, err = qonnx.SetThresholds(m)
		return err
	}
	calibrated = step(path, "-w1a3-calibrated", qonnx.Options{Stage: "calibrated"}, calibrate)
	streamlined = step(path, "-w1a3-calibrated-streamlined", qonnx.Options{Stage: "streamlined", Streamlined: true}, calibrate)
	return calibrated, streamlined
}

// TestCalibratedONNXModel starts the sim agent with the calibrated QONNX file of the
// quantization flow as its model: the engine's output bytes on dog.jpg must equal the
// published QNN-MO model's and the published detections must be QNN-MO's (stb decoding:
// dog 86 %, car 86 %, bicycle 78 %). The streamlined variant must load to the same
// engine output.
func TestCalibratedONNXModel(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	params := cfg.Model.Dir
	calibrated, streamlined := calibratedTinierYOLO(t, params)
	dog := filepath.Join(cfg.SourceInput(), "dog.jpg")
	cfg.Model.Dir = calibrated
	cfg.Source.Input = dog

	ref, err := qnnmo.LoadDir(params)
	if err != nil {
		t.Fatal(err)
	}
	refNet, err := qnnmo.NewNetwork(ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	refDet, err := detector.NewQNN(refNet, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageio.LoadWith(dog, qnnmo.ImageDecoder)
	if err != nil {
		t.Fatal(err)
	}
	refFrame := &detector.Frame{Image: img}
	if err := refDet.Prepare(refFrame); err != nil {
		t.Fatal(err)
	}
	refIn := refFrame.In
	refOut, err := refNet.Engine.Run(refIn)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	a, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.modelInfo["dir"] != calibrated || len(a.modelInfo["sha256"].(string)) != 64 {
		t.Errorf("model identity %v", a.modelInfo)
	}
	qm := a.qnn
	if qm == nil {
		t.Fatalf("model %T, want a QNN model", a.model)
	}
	j := &detector.Frame{Image: img, Thresh: float32(cfg.Model.Thresh)}
	if err := qm.Prepare(j); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j.In, refIn) {
		t.Errorf("first layer: the calibrated model's engine input differs from the published model's")
	}
	if err := qm.Accelerate(ctx, j); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j.Out, refOut) {
		t.Errorf("engine output (simulated board) differs from the published model's host engine output")
	}

	pub := newCollector()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Serve(sctx, pub) }()
	waitFor(t, "dog.jpg", func() bool { return pub.count() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range pub.frames[0].Detections {
		got[d.Class] = int(math.Round(float64(100 * d.Score)))
	}
	if want := map[string]int{"dog": 86, "car": 86, "bicycle": 78}; !maps.Equal(got, want) {
		t.Errorf("dog.jpg with the calibrated .onnx: %v %%, published %v %%", got, want)
	}
	thresh := float32(cfg.Model.Thresh)
	cands, err := refDet.Detect(img, thresh)
	if err != nil {
		t.Fatal(err)
	}
	want := boxes.Objects(cands, thresh, a.Names(), img.W, img.H)
	if g := pub.frames[0].Detections; len(g) != len(want) {
		t.Fatalf("%d detections, the published model %d", len(g), len(want))
	}
	for k, w := range want {
		g := pub.frames[0].Detections[k]
		db := 0.0
		for i := range w.Box {
			db = max(db, math.Abs(float64(g.Box[i]-w.Box[i])))
		}
		// The last layer reads levels*1/7 with 7x weights (QNN-MO: raw levels): the
		// float sums round differently in the last bits.
		if g.Class != w.Name || math.Abs(float64(g.Score-w.Score)) > 1e-5 || db > 1e-3 {
			t.Errorf("detection %d: %+v, published model %+v", k, g, w)
		}
	}
	t.Logf("dog.jpg with %s: %v", filepath.Base(calibrated), pub.frames[0].Detections)

	sm, err := loadQNNModel(streamlined)
	if err != nil {
		t.Fatal(err)
	}
	sNet, err := qnnmo.NewNetwork(sm, 0)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := detector.NewQNN(sNet, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sIn, err := sd.Input(img)
	if err != nil {
		t.Fatal(err)
	}
	if sOut, err := sNet.Engine.Run(sIn); err != nil || !bytes.Equal(sOut, refOut) {
		t.Errorf("streamlined model: engine output differs from the published model's (err %v)", err)
	}
}

// TestEngineFitErrors checks that models the engine cannot run are refused with the
// layer and the reason (mutations of the published model, which fits).
func TestEngineFitErrors(t *testing.T) {
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	base, err := qnnmo.LoadDir(params)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEngineFit(base); err != nil {
		t.Fatalf("the published model does not fit: %v", err)
	}
	byName := func(m *quant.Model, name string) *quant.Layer {
		for _, l := range m.Layers {
			if l.Name == name {
				return l
			}
		}
		t.Fatalf("no layer %s", name)
		return nil
	}
	cases := []struct {
		name   string
		mutate func(m *quant.Model)
		want   string
	}{
		{"5x5 kernel", func(m *quant.Model) { byName(m, "conv5").Conv.Size = 5 }, "layer conv5: 5x5 kernels exceed the engine's MAX_K 3"},
		{"no thresholds", func(m *quant.Model) { byName(m, "conv3").Quant.Thresholds = nil }, "layer conv3: no integer thresholds"},
		{"signed", func(m *quant.Model) { byName(m, "conv2").Quant.ActSigned = true }, "layer conv2: signed output quantizer"},
		{"float hidden", func(m *quant.Model) { byName(m, "conv4").Quant.WeightBits = 8 }, "layer conv4: a float convolution between binary ones"},
		{"stride 2", func(m *quant.Model) { byName(m, "conv6").Conv.Stride = 2 }, "stride 2"},
		{"first logistic", func(m *quant.Model) { m.Layers[0].Conv.Activation = quant.ActLogistic }, `layer conv0: activation "logistic"`},
		{"first 8-bit", func(m *quant.Model) { m.Layers[0].Quant.ActBits = 8 }, "layer conv0: the first layer needs an unsigned 3-bit output quantizer"},
		{"first float out", func(m *quant.Model) { m.Layers[0].Quant = nil }, "layer conv0: the first layer needs"},
		{"first batch norm", func(m *quant.Model) { m.Layers[0].Conv.BN = &quant.BatchNorm{} }, "layer conv0: batch norm"},
		{"quantized last", func(m *quant.Model) { byName(m, "conv8").Quant = &quant.LayerQuant{WeightBits: 8} }, "layer conv8 after the engine layers must be a float convolution"},
		{"no binary", func(m *quant.Model) {
			for _, l := range m.Layers {
				if l.Quant != nil {
					l.Quant.WeightBits = 0
				}
			}
		}, "no binary (W1A3) convolution"},
	}
	for _, c := range cases {
		m, err := qnnmo.LoadDir(params)
		if err != nil {
			t.Fatal(err)
		}
		c.mutate(m)
		err = checkEngineFit(m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// TestLoadQNNModelPaths checks how a model path is read: a directory as QNN-MO's, a
// .onnx through QONNX and the fit check (the error names the file), anything else
// refused.
func TestLoadQNNModelPaths(t *testing.T) {
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	m, err := loadQNNModel(params)
	if err != nil || m.Layers[0].Quant == nil {
		t.Fatalf("directory: %v", err)
	}
	dir := t.TempDir()
	txt := filepath.Join(dir, "model.txt")
	if err := os.WriteFile(txt, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadQNNModel(txt); err == nil || !strings.Contains(err.Error(), "neither a QNN-MO parameter directory nor a .onnx") {
		t.Errorf("model.txt: %v", err)
	}
	if _, err := loadQNNModel(filepath.Join(dir, "missing.onnx")); err == nil {
		t.Error("a missing file loads")
	}
	bad := filepath.Join(dir, "bad.onnx")
	if err := os.WriteFile(bad, []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadQNNModel(bad); err == nil || !strings.Contains(err.Error(), "bad.onnx") {
		t.Errorf("bad.onnx: %v", err)
	}
	// The published model written as QONNX with a logistic first layer, read back.
	m.Layers[0].Conv.Activation = quant.ActLogistic
	big := filepath.Join(dir, "logistic.onnx")
	if err := qonnx.WriteFile(big, m, qonnx.Options{Stage: "calibrated"}); err != nil {
		t.Skipf("the QONNX writer does not take this model: %v", err)
	}
	if _, err := loadQNNModel(big); err == nil || !strings.Contains(err.Error(), "logistic.onnx does not fit the QNN engine: layer conv0") {
		t.Errorf("logistic.onnx: %v", err)
	}
}
