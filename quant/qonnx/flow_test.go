package qonnx_test

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testmodel"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// smallCfg is a Tinier-YOLO-like network small enough for the reference executor:
// a float first layer, binary hidden layers (one leaky), max pools (2/2 and 2/1), a
// route (so one binary layer reads a non-level tensor), a float 1x1 last layer.
const smallCfg = `[net]
width=64
height=64
channels=3

[convolutional]
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
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=relu

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=relu

[route]
layers=-1,-2

[convolutional]
batch_normalize=1
filters=32
size=1
stride=1
pad=0
activation=relu

[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=relu

[convolutional]
size=1
stride=1
pad=0
filters=30
activation=linear

[region]
anchors = 1.08,1.19, 3.42,4.41, 6.63,11.38, 9.42,5.11, 16.62,10.52
classes=1
coords=4
num=5
softmax=1
`

// smallModel returns the float small model with deterministic weights.
func smallModel(tb testing.TB) *quant.Model {
	tb.Helper()
	return smallModelCfg(tb, smallCfg)
}

// lhtanCfg is smallCfg with darknet's lhtan in place of every relu and after the last
// convolution (a float lhtan layer: written as the op chain).
var lhtanCfg = strings.Replace(strings.ReplaceAll(smallCfg, "activation=relu", "activation=lhtan"), "filters=30\nactivation=linear", "filters=30\nactivation=lhtan", 1)

func smallModelCfg(tb testing.TB, cfg string) *quant.Model {
	tb.Helper()
	m, err := darknet.ParseCfg(strings.NewReader(cfg), "small.cfg", darknet.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	testmodel.RandomizeWeights(m, 7)
	// Some negative batch-norm scales, for inverted thresholds (A < 0), and one zero
	// (constant channel).
	for _, l := range m.Layers {
		if l.Kind == quant.KindConv && l.Conv.BN != nil {
			for o := 0; o < l.Conv.Filters; o += 5 {
				l.Conv.BN.Scale[o] = -l.Conv.BN.Scale[o]
			}
			l.Conv.BN.Scale[1] = 0
		}
	}
	return m
}

// quantized runs the steps finn, weights (1 bit, first and last float), activations
// (3 bits, leaky -> relu) and calibrate on n chairs calibration images.
func quantized(tb testing.TB, n int) (*quant.Model, []string) {
	tb.Helper()
	return quantizedCfg(tb, smallCfg, n)
}

func quantizedCfg(tb testing.TB, cfg string, n int) (*quant.Model, []string) {
	tb.Helper()
	dir := testutil.Fixture(tb, "chairs", "calibration")
	imgs, err := calib.ListImages(dir)
	if err != nil {
		tb.Fatal(err)
	}
	imgs = imgs[:n]
	m := smallModelCfg(tb, cfg)
	fr, err := qonnx.Finn(m)
	if err != nil {
		tb.Fatal(err)
	}
	if len(fr.Leaky) != 1 || fr.Leaky[0].Layer != "conv1" {
		tb.Errorf("finn report leaky %v, want conv1", fr.Leaky)
	}
	wr, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true})
	if err != nil {
		tb.Fatal(err)
	}
	if len(wr.Quantized) != 5 || len(wr.Kept) != 2 {
		tb.Errorf("weights: quantized %v kept %v", wr.Quantized, wr.Kept)
	}
	if _, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3}); err == nil {
		tb.Error("activations without --leaky accepted a LeakyRelu layer")
	}
	ar, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3, Leaky: "relu"})
	if err != nil {
		tb.Fatal(err)
	}
	if len(ar.Quantized) != 6 || len(ar.Leaky) != 1 {
		tb.Errorf("activations: quantized %v leaky %v", ar.Quantized, ar.Leaky)
	}
	res, err := calib.Calibrate(m, imgs, calib.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	// Layers are named after their index: conv1 (after the float conv0), conv3 and
	// conv5 (after pools) and conv8 (after conv7) read levels; conv7 reads a route.
	if got := strings.Join(res.Thresholds.Layers, ","); got != "conv1,conv3,conv5,conv8" {
		tb.Errorf("threshold layers %s", got)
	}
	if res.Thresholds.Inverted == 0 || res.Thresholds.Constant == 0 {
		tb.Errorf("thresholds: %d inverted, %d constant channels; the model has both", res.Thresholds.Inverted, res.Thresholds.Constant)
	}
	return m, imgs
}

// TestExecutorMatchesEngine: the calibrated QONNX graph and its streamlined variant,
// executed with the QONNX op semantics, give the same quantized activations as
// qengine (bit-exact levels) and the same last-layer output, on calibration images.
func TestExecutorMatchesEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("executes the calibrated test model on photos with the reference executor; skipped in -short (qemu)")
	}
	m, imgs := quantized(t, 3)
	checkExecutorMatchesEngine(t, m, imgs[:2])
}

// TestExecutorMatchesEngineLHTan is TestExecutorMatchesEngine with lhtan layers: those
// whose quantizer stays within lhtan's saturation are written as Relu + Quant, one
// forced beyond it (conv7, scale 0.2: clip 1.4) and the float last layer as the lhtan
// op chain; the thresholds read through both.
func TestExecutorMatchesEngineLHTan(t *testing.T) {
	if testing.Short() {
		t.Skip("executes the calibrated lhtan test model on photos with the reference executor; skipped in -short (qemu)")
	}
	m, imgs := quantizedCfg(t, lhtanCfg, 3)
	for _, i := range qonnx.QuantizedLayers(m) {
		l := m.Layers[i]
		if l.Conv.Activation == quant.ActLHTan && !qonnx.LHTanAsReLU(l.Quant) {
			t.Errorf("%s: calibrated lhtan scale %g is not written as Relu", l.Name, l.Quant.ActScale)
		}
	}
	conv7 := m.Layers[7]
	if conv7.Name != "conv7" || conv7.Conv.Activation != quant.ActLHTan {
		t.Fatalf("layer 7 is %s %s", conv7.Name, conv7.Conv.Activation)
	}
	conv7.Quant.ActScale = 0.2
	if qonnx.LHTanAsReLU(conv7.Quant) || qonnx.WrittenActivation(conv7) != quant.ActLHTan {
		t.Fatal("clip 1.4 after lhtan is written as Relu")
	}
	if _, err := qonnx.SetThresholds(m); err != nil {
		t.Fatal(err)
	}
	cal, err := qonnx.Build(m, qonnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range cal.GetGraph().GetNode() {
		ops[n.GetOpType()]++
	}
	if ops["Min"] != 2 { // conv7 and the last layer
		t.Errorf("calibrated graph has %d Min nodes, want 2 (ops %v)", ops["Min"], ops)
	}
	checkExecutorMatchesEngine(t, m, imgs[:2])
}

func checkExecutorMatchesEngine(t *testing.T, m *quant.Model, imgs []string) {
	t.Helper()
	e, err := quantengine.New(m, quantengine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := qonnx.Build(m, qonnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	str, err := qonnx.Build(m, qonnx.Options{Streamlined: true})
	if err != nil {
		t.Fatal(err)
	}
	countOps(t, cal, str)
	last := len(m.Layers) - 2
	for _, img := range imgs {
		in, err := calib.LoadInput(img, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Forward(in); err != nil {
			t.Fatal(err)
		}
		px := make([]float32, len(in))
		qonnx.PixelLevels(px, in)
		for _, variant := range []struct {
			name string
			mp   *onnxpb.ModelProto
		}{{"calibrated", cal}, {"streamlined", str}} {
			env, err := qonnx.Execute(variant.mp, px)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range append(qonnx.QuantizedLayers(m), last) {
				l := m.Layers[i]
				got := env[l.Name]
				want := e.Output(i)
				if variant.name == "streamlined" && l.Quant != nil && len(l.Quant.Thresholds) > 0 {
					want = e.Levels(i)
				}
				if got == nil || len(got.Data) != len(want) {
					t.Fatalf("%s %s: tensor %s missing or wrong size", variant.name, filepath.Base(img), l.Name)
				}
				bad := 0
				for k := range want {
					if got.Data[k] != want[k] {
						bad++
					}
				}
				if bad > 0 {
					t.Errorf("%s %s: layer %s: %d of %d values differ from qengine", variant.name, filepath.Base(img), l.Name, bad, len(want))
				}
			}
		}
	}
}

func countOps(tb testing.TB, cal, str *onnxpb.ModelProto) {
	tb.Helper()
	ops := func(mp *onnxpb.ModelProto) map[string]int {
		n := map[string]int{}
		for _, nd := range mp.GetGraph().GetNode() {
			n[nd.GetOpType()]++
		}
		return n
	}
	for _, mp := range []*onnxpb.ModelProto{cal, str} {
		used := map[string]bool{}
		for _, o := range mp.GetGraph().GetOutput() {
			used[o.GetName()] = true
		}
		for _, nd := range mp.GetGraph().GetNode() {
			for _, in := range nd.GetInput() {
				used[in] = true
			}
		}
		for _, nd := range mp.GetGraph().GetNode() {
			if !used[nd.GetOutput()[0]] {
				tb.Errorf("node %s (%s): output %s is never read", nd.GetName(), nd.GetOpType(), nd.GetOutput()[0])
			}
		}
	}
	c, s := ops(cal), ops(str)
	if c["BipolarQuant"] != 5 || c["Quant"] != 6 || c["MultiThreshold"] != 0 || c["BatchNormalization"] != 6 {
		tb.Errorf("calibrated graph ops %v", c)
	}
	if s["MultiThreshold"] != 4 || s["BipolarQuant"] != 1 || s["Quant"] != 2 {
		tb.Errorf("streamlined graph ops %v", s)
	}
}

// TestRoundTrip: WriteFile then ReadFile gives a model that qengine runs to the same
// outputs, for the calibrated and the streamlined files.
func TestRoundTrip(t *testing.T) {
	m, imgs := quantized(t, 2)
	e, in := forwardImage(t, m, imgs[0])
	head := m.Heads()[0]
	want := append([]float32(nil), e.Output(head)...)
	for _, streamlined := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "m.onnx")
		if err := qonnx.WriteFile(path, m, qonnx.Options{Streamlined: streamlined}); err != nil {
			t.Fatal(err)
		}
		r, err := qonnx.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range r.Layers {
			if (l.Quant == nil) != (m.Layers[i].Quant == nil) {
				t.Fatalf("layer %s: quant lost", l.Name)
			}
			if l.Quant != nil && (l.Quant.ActScale != m.Layers[i].Quant.ActScale || len(l.Quant.Thresholds) != len(m.Layers[i].Quant.Thresholds)) {
				t.Errorf("layer %s: quant %+v, want %+v", l.Name, l.Quant, m.Layers[i].Quant)
			}
		}
		e2, err := quantengine.New(r, quantengine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e2.Forward(in); err != nil {
			t.Fatal(err)
		}
		for k, v := range e2.Output(head) {
			if v != want[k] {
				t.Fatalf("streamlined=%v: head value %d: %g, want %g", streamlined, k, v, want[k])
			}
		}
		checkONNX(t, path)
	}
}

// checkONNX runs onnx.checker.check_model(full_check=True) with Debian's python3-onnx
// when it is installed.
func checkONNX(tb testing.TB, path string) {
	tb.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		tb.Logf("onnx checker skipped: %s missing", py)
		return
	}
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		tb.Logf("onnx checker skipped: python3-onnx missing (apt install python3-onnx)")
		return
	}
	out, err := exec.Command(py, "-c", `import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print("ok")`, path).CombinedOutput()
	if err != nil {
		tb.Errorf("onnx checker on %s: %v\n%s", path, err, out)
	}
}

// TestThresholdsClosedForm: the thresholds found by evaluating the float graph equal
// DESIGN's closed form T_k = ceil(((k-1/2)*s - B)/A) (A > 0; for A < 0 the flipped
// channel's), except where the closed form lands within float rounding of an integer.
func TestThresholdsClosedForm(t *testing.T) {
	m, _ := quantized(t, 2)
	checked, ties := 0, 0
	for i, l := range m.Layers {
		q := l.Quant
		if q == nil || len(q.Thresholds) == 0 {
			continue
		}
		src := l.Inputs[0]
		for m.Layers[src].Kind == quant.KindMaxPool {
			src = m.Layers[src].Inputs[0]
		}
		sIn := float64(m.Layers[src].Quant.ActScale)
		bn := l.Conv.BN
		for o, th := range q.Thresholds {
			sd := float64(qonnx.BNStd(m, bn.Variance[o]))
			a := float64(q.WeightScale[o]) * sIn * float64(bn.Scale[o]) / sd
			b := float64(l.Conv.Bias[o]) - float64(bn.Scale[o])*float64(bn.Mean[o])/sd
			for k := 1; k <= len(th); k++ {
				x := ((float64(k)-0.5)*float64(q.ActScale) - b) / a
				var want float64
				if a > 0 {
					want = math.Ceil(x)
				} else {
					want = math.Floor(x) + 1 // acc <= x  iff  acc < floor(x)+1
				}
				if a == 0 {
					continue
				}
				if q.Invert[o] != (a < 0) {
					t.Fatalf("layer %d channel %d: invert %v with A = %g", i, o, q.Invert[o], a)
				}
				want = max(want, -7*float64(l.In.C*l.Conv.Size*l.Conv.Size))
				want = min(want, 7*float64(l.In.C*l.Conv.Size*l.Conv.Size)+1)
				checked++
				if float64(th[k-1]) != want {
					if math.Abs(x-math.Round(x)) < 1e-4 {
						ties++
						continue
					}
					t.Errorf("layer %s channel %d k=%d: threshold %d, closed form %g (x=%g)", l.Name, o, k, th[k-1], want, x)
				}
			}
		}
	}
	t.Logf("%d thresholds checked, %d at float ties", checked, ties)
	if checked == 0 {
		t.Fatal("no thresholds")
	}
}

// TestExecutorMatchesEngineYoloFastest: on the real Yolo-Fastest (binarized, leaky
// replaced, calibrated on 3 chairs images), the calibrated and streamlined graphs give
// qengine's activations bit for bit on a validation image.
func TestExecutorMatchesEngineYoloFastest(t *testing.T) {
	if testing.Short() {
		t.Skip("executes Yolo-Fastest with the reference executor; skipped in -short")
	}
	dir := testutil.Fixture(t, "yolo-fastest")
	m, err := darknet.Load(filepath.Join(dir, "yolo-fastest-1.1.cfg"), filepath.Join(dir, "yolo-fastest-1.1.weights"), darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3, Leaky: "relu"}); err != nil {
		t.Fatal(err)
	}
	imgs, err := calib.ListImages(testutil.Fixture(t, "chairs", "calibration"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := calib.Calibrate(m, imgs[:3], calib.Options{}); err != nil {
		t.Fatal(err)
	}
	vals, err := calib.ListImages(testutil.Fixture(t, "chairs", "val"))
	if err != nil {
		t.Fatal(err)
	}
	e, in := forwardImage(t, m, vals[0])
	px := make([]float32, len(in))
	qonnx.PixelLevels(px, in)
	for _, st := range []bool{false, true} {
		mp, err := qonnx.Build(m, qonnx.Options{Streamlined: st})
		if err != nil {
			t.Fatal(err)
		}
		env, err := qonnx.Execute(mp, px)
		if err != nil {
			t.Fatal(err)
		}
		n, bad := 0, 0
		for _, i := range qonnx.QuantizedLayers(m) {
			l := m.Layers[i]
			want := e.Output(i)
			if st && len(l.Quant.Thresholds) > 0 {
				want = e.Levels(i)
			}
			for k, v := range env[l.Name].Data {
				n++
				if v != want[k] {
					bad++
				}
			}
		}
		t.Logf("streamlined=%v: %d of %d activations differ", st, bad, n)
		if bad > 0 || n == 0 {
			t.Errorf("streamlined=%v: %d of %d activations differ from qengine", st, bad, n)
		}
	}
}

// TestLeakyKeep: --leaky=keep keeps LeakyRelu with a signed 3-bit quantizer (levels
// -4..3); that layer gets no thresholds, the layer reading its (pooled) signed levels
// does, and the executor still agrees with qengine bit for bit (with 8-bit first and
// last layers).
func TestLeakyKeep(t *testing.T) {
	imgs, err := calib.ListImages(testutil.Fixture(t, "chairs", "calibration"))
	if err != nil {
		t.Fatal(err)
	}
	m := smallModel(t)
	// First and last layers at 8 bits this time (signed narrow Quant weights).
	if _, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true, KeepBits: 8}); err != nil {
		t.Fatal(err)
	}
	ar, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3, Leaky: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ar.Leaky) != 1 || !m.Layers[1].Quant.ActSigned || m.Layers[1].Conv.Activation != quant.ActLeaky {
		t.Fatalf("leaky layer not kept signed: %+v", ar.Leaky)
	}
	res, err := calib.Calibrate(m, imgs[:2], calib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Thresholds.Layers, ","); got != "conv3,conv5,conv8" {
		t.Errorf("threshold layers %s, want conv3,conv5,conv8", got)
	}
	e, in := forwardImage(t, m, imgs[2])
	neg := 0
	for _, v := range e.Levels(1) {
		if v < 0 {
			neg++
		}
	}
	// Leaky negatives are 0.1x: few reach half a step below zero.
	t.Logf("signed layer: %d of %d levels negative", neg, len(e.Levels(1)))
	px := make([]float32, len(in))
	qonnx.PixelLevels(px, in)
	for _, st := range []bool{false, true} {
		mp, err := qonnx.Build(m, qonnx.Options{Streamlined: st})
		if err != nil {
			t.Fatal(err)
		}
		env, err := qonnx.Execute(mp, px)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range qonnx.QuantizedLayers(m) {
			l := m.Layers[i]
			want := e.Output(i)
			if st && len(l.Quant.Thresholds) > 0 {
				want = e.Levels(i)
			}
			for k, v := range env[l.Name].Data {
				if v != want[k] {
					t.Fatalf("streamlined=%v layer %s value %d: executor %g, qengine %g", st, l.Name, k, v, want[k])
				}
			}
		}
		last := len(m.Layers) - 2
		for k, v := range env[m.Layers[last].Name].Data {
			if v != e.Output(last)[k] {
				t.Fatalf("streamlined=%v: 8-bit last layer value %d: executor %g, qengine %g", st, k, v, e.Output(last)[k])
			}
		}
	}
}

// forwardImage runs qengine on one image file and returns the engine, holding every
// layer's output, and the network input it was given.
func forwardImage(tb testing.TB, m *quant.Model, img string) (*quantengine.Engine, []float32) {
	tb.Helper()
	in, err := calib.LoadInput(img, m)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := quantengine.New(m, quantengine.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Forward(in); err != nil {
		tb.Fatal(err)
	}
	return e, in
}
