package quantengine_test

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// TestQNNMOBitExact runs QNN-MO-PYNQ's published W1A3 Tinier-YOLO on dog.jpg through
// qengine and checks that every hidden (engine) layer's levels equal quant/qnnmo's host
// engine's, fed with the same first-layer levels; the first layer's levels are compared
// with qnnmo.FirstLayer (float rounding at exact quantizer ties may differ: counted).
func TestQNNMOBitExact(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the published Tinier-YOLO on dog.jpg through both engines (50 s under qemu); skipped in -short (qemu)")
	}
	dir := testutil.Fixture(t, "qnn-mo-pynq", "params")
	img := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	m, err := qnnmo.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := quantengine.New(m, quantengine.Options{FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	im, err := imageio.Load(img)
	if err != nil {
		t.Fatal(err)
	}
	in := imageio.Letterbox(im, m.Input.W, m.Input.H).Data
	if err := e.Forward(in); err != nil {
		t.Fatal(err)
	}
	first, err := qnnmo.NewFirstLayer(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	want0, err := first.Levels(in)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	conv0 := m.Layers[runs[0].Conv].Inputs[0]
	got0 := e.Levels(conv0)
	lv := make([]uint8, len(got0))
	diff := 0
	for i, v := range got0 {
		lv[i] = uint8(v)
		if lv[i] != want0[i] {
			diff++
		}
	}
	if diff*100000 > len(got0) {
		t.Errorf("first layer: %d of %d levels differ from qnnmo.FirstLayer", diff, len(got0))
	}
	t.Logf("first layer: %d of %d levels differ from qnnmo.FirstLayer (quantizer ties)", diff, len(got0))

	eng, err := qnnmo.NewEngine(m, offload.W1A3, 0)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := offload.Pack(lv, eng.InLayout())
	if err != nil {
		t.Fatal(err)
	}
	outs, err := eng.RunTrace(packed)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for _, r := range runs {
		if r.Part != 0 {
			continue
		}
		idx := r.Conv
		if r.Pool >= 0 {
			idx = r.Pool
		}
		l := m.Layers[idx]
		want, err := offload.Unpack(outs[k], offload.DDRLayout(l.Out.C, l.Out.H))
		if err != nil {
			t.Fatal(err)
		}
		k++
		got := e.Levels(idx)
		bad := 0
		for i := range want {
			if float32(want[i]) != got[i] {
				if bad < 3 {
					t.Errorf("%s: level %d: qengine %v, qnn %d", l.Name, i, got[i], want[i])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d levels differ", l.Name, bad, len(want))
		}
	}
	if k != 7 {
		t.Errorf("compared %d engine layers, want 7", k)
	}
}

// TestQNNMODogDetections: quantengine is a detector.Engine; its detections on dog.jpg equal
// quant/qnnmo's host pipeline's and are within quant/qnnmo's tolerance (5.5 points: the
// JPEG decoder differs from the published run's stb_image) of the published car 86 %,
// dog 86 %, bicycle 78 %.
func TestQNNMODogDetections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the published Tinier-YOLO on dog.jpg through both pipelines (60 s under qemu); skipped in -short (qemu)")
	}
	dir := testutil.Fixture(t, "qnn-mo-pynq", "params")
	img := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	names, err := boxes.LoadNames(testutil.Fixture(t, "qnn-mo-pynq", "voc.names"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := qnnmo.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := quantengine.New(m, quantengine.Options{FloatInput: true})
	if err != nil {
		t.Fatal(err)
	}
	im, err := imageio.Load(img)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := detector.Objects(detector.NewFloatWith(m, e, 0.45), im, 0.3, names)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float32{}
	for _, o := range objs {
		found[o.Name] = max(found[o.Name], o.Score)
	}
	t.Logf("detections: %v", found)
	published := map[string]float32{"car": 0.86, "dog": 0.86, "bicycle": 0.78}
	for name, want := range published {
		if got := found[name]; got < want-0.055 || got > want+0.055 {
			t.Errorf("%s: score %.3f, published %.2f", name, got, want)
		}
	}
	net, err := qnnmo.NewNetwork(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.NewQNN(net, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	dets, err := d.Detect(im, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	ref := map[string]float32{}
	for _, o := range boxes.Objects(dets, 0.3, names, im.W, im.H) {
		ref[o.Name] = max(ref[o.Name], o.Score)
	}
	if len(ref) != len(found) {
		t.Errorf("qengine found %v, qnn's pipeline %v", found, ref)
	}
	for name, p := range ref {
		if d := found[name] - p; d > 1e-4 || d < -1e-4 {
			t.Errorf("%s: qengine %.5f, qnn's pipeline %.5f", name, found[name], p)
		}
	}
}
