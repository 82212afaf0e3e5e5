package todarknet

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// qnnModel imports the published QNN-MO Tinier-YOLO (a fresh copy per call).
func qnnModel(tb testing.TB) *quant.Model {
	tb.Helper()
	m, err := qnnmo.LoadDir(testutil.Fixture(tb, "qnn-mo-pynq", "params"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// exportFiles exports m into a temp dir and returns the cfg and weights paths.
func exportFiles(tb testing.TB, m *quant.Model) (res *Result, cfg, weights string) {
	tb.Helper()
	res, err := Export(m)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cfg, weights = filepath.Join(dir, "tinier-yolo.cfg"), filepath.Join(dir, "tinier-yolo.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		tb.Fatal(err)
	}
	return res, cfg, weights
}

// reload reads exported files back through the darknet reader and the sidecar.
func reload(tb testing.TB, cfg, weights string) *quant.Model {
	tb.Helper()
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := ReadSidecar(SidecarPath(cfg))
	if err != nil {
		tb.Fatal(err)
	}
	if err := Requantize(m, sc); err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestQNNRoundTrip exports the published W1A3 model, reads the darknet files back,
// re-derives the thresholds from the batch norms with the recorded activation scales and
// compares every layer with the original: the same thresholds, invert flags and weights
// in every exactly representable channel.
func TestQNNRoundTrip(t *testing.T) {
	orig := qnnModel(t)
	res, cfg, weights := exportFiles(t, qnnModel(t))
	total, exact := 0, 0
	for _, r := range res.Layers {
		t.Logf("%s: %d channels: %d exact (min margin %.3f acc), %d constant, %d approx, %d inverted",
			r.Name, r.Channels, r.Exact, r.MinMargin, r.Constant, r.Approx, r.Inverted)
		total += r.Channels
		exact += r.Exact + r.Constant
	}
	t.Logf("exactly representable: %d of %d channels (%.2f%%)", exact, total, 100*res.ExactFraction())
	if total != 64+64+128+256+512+512+512 {
		t.Fatalf("%d threshold channels, Tinier-YOLO has 2048", total)
	}
	back := reload(t, cfg, weights)
	if len(back.Layers) != len(orig.Layers) {
		t.Fatalf("%d layers back, %d exported", len(back.Layers), len(orig.Layers))
	}
	approx := map[int]map[int]bool{}
	for _, r := range res.Layers {
		approx[r.Index] = map[int]bool{}
		for _, o := range r.ApproxChannels {
			approx[r.Index][o] = true
		}
	}
	for i, l := range orig.Layers {
		b := back.Layers[i]
		if l.Kind != b.Kind || l.Out != b.Out {
			t.Fatalf("layer %d: %s %v back as %s %v", i, l.Kind, l.Out, b.Kind, b.Out)
		}
		if l.Conv == nil {
			continue
		}
		if !reflect.DeepEqual(l.Conv.Weights, b.Conv.Weights) {
			t.Errorf("layer %d (%s): weights differ", i, l.Name)
		}
		if (l.Quant == nil) != (b.Quant == nil) {
			t.Fatalf("layer %d (%s): quant %+v back as %+v", i, l.Name, l.Quant, b.Quant)
		}
		if l.Quant == nil || l.Quant.Thresholds == nil {
			if !reflect.DeepEqual(l.Conv.Bias, b.Conv.Bias) || !reflect.DeepEqual(l.Quant, b.Quant) {
				t.Errorf("layer %d (%s): float layer changed (bias or quant %+v -> %+v)", i, l.Name, l.Quant, b.Quant)
			}
			continue
		}
		q, bq := l.Quant, b.Quant
		if q.ActBits != bq.ActBits || q.ActScale != bq.ActScale || q.WeightBits != bq.WeightBits {
			t.Errorf("layer %d (%s): quant W%dA%d scale %g back as W%dA%d scale %g", i, l.Name, q.WeightBits, q.ActBits, q.ActScale, bq.WeightBits, bq.ActBits, bq.ActScale)
		}
		bad := 0
		for o := range q.Thresholds {
			if approx[i][o] {
				continue
			}
			if !reflect.DeepEqual(q.Thresholds[o], bq.Thresholds[o]) || q.Invert[o] != bq.Invert[o] {
				if bad++; bad <= 3 {
					t.Errorf("layer %d (%s) channel %d: thresholds %v invert %v back as %v invert %v", i, l.Name, o, q.Thresholds[o], q.Invert[o], bq.Thresholds[o], bq.Invert[o])
				}
			}
		}
	}
}

// TestQNNRoundTripDetections runs QNN-MO's host pipeline on dog.jpg with the published
// model and with the model re-quantized from the exported darknet files: the engine's
// output and the detections must be identical.
func TestQNNRoundTripDetections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO twice; skipped in -short")
	}
	img, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	_, cfg, weights := exportFiles(t, qnnModel(t))
	want, wantOut := detectQNN(t, qnnModel(t), img)
	got, gotOut := detectQNN(t, reload(t, cfg, weights), img)
	if !bytes.Equal(wantOut, gotOut) {
		t.Errorf("engine outputs differ")
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("detections differ:\npublished model %+v\nre-quantized    %+v", want, got)
	}
	if len(want) == 0 {
		t.Errorf("no detections on dog.jpg")
	}
	t.Logf("%d identical detections", len(got))
}

// detectQNN runs the W1A3 host pipeline and returns its detections and engine output.
func detectQNN(tb testing.TB, m *quant.Model, img *imageio.Image) ([]boxes.Detection, []byte) {
	tb.Helper()
	net, err := qnnmo.NewNetwork(m, 0)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := detector.NewQNN(net, nil, 0)
	if err != nil {
		tb.Fatal(err)
	}
	dets, err := d.Detect(img, 0.3)
	if err != nil {
		tb.Fatal(err)
	}
	in, err := d.Input(img)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := net.Engine.Run(in)
	if err != nil {
		tb.Fatal(err)
	}
	return dets, out
}

// TestSidecarRoundTrip writes and parses a sidecar.
func TestSidecarRoundTrip(t *testing.T) {
	res, err := Export(qnnModel(t))
	if err != nil {
		t.Fatal(err)
	}
	data, err := res.Sidecar.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSidecar(data, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, res.Sidecar) {
		t.Fatalf("sidecar changed:\n%+v\n%+v", res.Sidecar, back)
	}
	if back.Layers[0].ActScale != qnnmo.FirstActScale || back.Layers[1].InputScale != qnnmo.FirstActScale {
		t.Fatalf("first layer scale %g / conv1 input scale %g, want 4/7", back.Layers[0].ActScale, back.Layers[1].InputScale)
	}
}

// TestQNNLHTanExport: the lhtan export has unit scales (1/7) and rescaled float layers,
// gives back the thresholds, and its re-quantized model detects what the published one
// does on dog.jpg (the last layer's weights are scaled by 7 in float32, so scores may
// move in the last bits).
func TestQNNLHTanExport(t *testing.T) {
	orig := qnnModel(t)
	res, err := ExportWith(qnnModel(t), Options{FloatActivation: FloatLHTan})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExactFraction() != 1 {
		t.Errorf("exact fraction %g", res.ExactFraction())
	}
	for _, sl := range res.Sidecar.Layers {
		if sl.ActScale != float32(1.0/7) || (sl.Thresholds && sl.InputScale != float32(1.0/7)) {
			t.Errorf("layer %d: act scale %g input scale %g, want 1/7", sl.Index, sl.ActScale, sl.InputScale)
		}
	}
	dir := t.TempDir()
	cfg, weights := filepath.Join(dir, "l.cfg"), filepath.Join(dir, "l.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "activation=lhtan"); n != 8 {
		t.Errorf("%d lhtan layers in the cfg, want 8 (conv0..conv7)", n)
	}
	if _, err := darknet.Load(cfg, weights, darknet.Options{}); err == nil {
		t.Log("quant/darknet now reads lhtan: LoadExport's relu substitution can go")
	}
	ck, err := CheckFiles(orig, cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Identical != 2048 || len(ck.Changed) != 0 {
		t.Errorf("check %+v", ck)
	}
	if testing.Short() {
		return
	}
	back, sc, err := LoadExport(cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	if err := Requantize(back, sc); err != nil {
		t.Fatal(err)
	}
	img, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	want, wantOut := detectQNN(t, orig, img)
	got, gotOut := detectQNN(t, back, img)
	if !bytes.Equal(wantOut, gotOut) {
		t.Errorf("engine outputs differ")
	}
	if len(got) != len(want) {
		t.Fatalf("%d detections, published model %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Class != want[i].Class || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-4 {
			t.Errorf("detection %d: %+v, published model %+v", i, got[i], want[i])
		}
	}
}
