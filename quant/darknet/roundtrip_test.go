package darknet_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testmodel"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// roundTrip writes m as cfg + weights and reads them back.
func roundTrip(tb testing.TB, m *quant.Model, h darknet.Header) (*quant.Model, []byte, []byte) {
	tb.Helper()
	var cfg, weights bytes.Buffer
	if err := darknet.WriteCfg(&cfg, m); err != nil {
		tb.Fatal(err)
	}
	if err := darknet.WriteWeights(&weights, m, h); err != nil {
		tb.Fatal(err)
	}
	back, err := darknet.ParseCfg(bytes.NewReader(cfg.Bytes()), m.Name+".cfg", darknet.Options{})
	if err != nil {
		tb.Fatalf("%v\n%s", err, cfg.Bytes())
	}
	got, err := darknet.ReadWeights(bytes.NewReader(weights.Bytes()), m.Name+".weights", int64(weights.Len()), back)
	if err != nil {
		tb.Fatal(err)
	}
	if got != h {
		tb.Errorf("header %+v, wrote %+v", got, h)
	}
	return back, cfg.Bytes(), weights.Bytes()
}

func TestRoundTripYoloFastest(t *testing.T) {
	cfgPath, weightsPath := yoloFastest(t)
	m, err := darknet.LoadCfg(cfgPath, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(weightsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := darknet.ReadWeights(f, weightsPath, -1, m)
	if err != nil {
		t.Fatal(err)
	}
	if h != (darknet.Header{Major: 0, Minor: 2, Revision: 5, Seen: 14231680}) {
		t.Errorf("header %+v", h)
	}
	back, cfg, weights := roundTrip(t, m, h)
	if !reflect.DeepEqual(back, m) {
		for i := range m.Layers {
			if !reflect.DeepEqual(back.Layers[i], m.Layers[i]) {
				t.Fatalf("layer %d differs: %+v vs %+v\n%s", i, *back.Layers[i], *m.Layers[i], cfg)
			}
		}
		t.Fatalf("models differ: %+v vs %+v", *back, *m)
	}
	orig, err := os.ReadFile(weightsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(weights, orig) {
		t.Errorf("rewritten weights differ from the file (%d vs %d bytes)", len(weights), len(orig))
	}
	if !strings.Contains(string(cfg), "scale_x_y=1") {
		t.Error("AlexeyAB cfg lacks scale_x_y")
	}
	// Debian's pjreddie darknet reads the written cfg to the same shapes.
	if testing.Short() {
		return
	}
	written := filepath.Join(t.TempDir(), "written.cfg")
	if err := os.WriteFile(written, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	table := darknetTable(t, written)
	for i, want := range table {
		if got := m.Layers[i].Out; got != want {
			t.Errorf("layer %d (%s): %v, darknet reads the written cfg as %v", i, m.Layers[i].Name, got, want)
		}
	}
	if len(table) < 100 {
		t.Errorf("darknet printed %d shapes", len(table))
	}
}

func TestRoundTripTinierYOLO(t *testing.T) {
	m := testmodel.TinierYOLO(t)
	back, _, _ := roundTrip(t, m, darknet.Header{Major: 0, Minor: 1, Revision: 0, Seen: 7})
	if !reflect.DeepEqual(back, m) {
		t.Fatal("Tinier-YOLO round trip differs")
	}
}

// TestRoundTripFeatures covers what the fixtures do not: route groups, xnor/binary,
// explicit padding, upsample scale, a region head, the AlexeyAB marker without yolo.
func TestRoundTripFeatures(t *testing.T) {
	cfg := `[net]
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=1
padding=2
binary=1
xnor=1
activation=mish
[route]
layers=-1
groups=2
group_id=1
[convolutional]
batch_normalize=1
filters=4
size=5
groups=2
pad=1
activation=swish
[upsample]
stride=2
scale=0.5
[maxpool]
size=3
stride=2
padding=1
[shortcut]
from=-1
activation=logistic
[convolutional]
filters=30
size=1
activation=linear
[region]
anchors=1,2,3,4,5,6,7,8,9,10
classes=1
num=5
`
	for _, d := range []quant.Dialect{quant.DialectAlexeyAB} {
		m, err := darknet.ParseCfg(strings.NewReader(cfg), "features.cfg", darknet.Options{Dialect: d})
		if err != nil {
			t.Fatal(err)
		}
		testmodel.RandomizeWeights(m, 3)
		back, text, _ := roundTrip(t, m, darknet.Header{Major: 0, Minor: 2, Seen: 1 << 40})
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip differs:\n%s", text)
		}
	}
	// An AlexeyAB model without AlexeyAB-only keys still comes back AlexeyAB.
	m, err := darknet.ParseCfg(strings.NewReader(netHead+"[conv]\nfilters=4\n"), "plain.cfg", darknet.Options{Dialect: quant.DialectAlexeyAB})
	if err != nil {
		t.Fatal(err)
	}
	testmodel.RandomizeWeights(m, 4)
	if back, text, _ := roundTrip(t, m, darknet.Header{Major: 0, Minor: 2}); back.Dialect != quant.DialectAlexeyAB {
		t.Errorf("dialect %q:\n%s", back.Dialect, text)
	}
}

func TestWriteErrors(t *testing.T) {
	m, err := parse(t, smallCfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := darknet.WriteWeights(&b, m, darknet.Header{}); err == nil || !strings.Contains(err.Error(), "0 weights") {
		t.Errorf("weights of a cfg-only model: %v", err)
	}
	testmodel.RandomizeWeights(m, 1)
	if err := darknet.WriteWeights(&b, m, darknet.Header{Major: 0, Minor: 1, Seen: 1 << 33}); err == nil {
		t.Error("64-bit seen in a 32-bit header accepted")
	}
	m.Layers[2].Inputs = []int{0} // a maxpool reading a layer other than the previous one
	if err := darknet.WriteCfg(&b, m); err == nil || !strings.Contains(err.Error(), "insert a route") {
		t.Errorf("WriteCfg: %v", err)
	}
	m = &quant.Model{Input: quant.Shape{C: 3, H: 8, W: 8}, Layers: []*quant.Layer{
		{Kind: quant.KindRoute, Inputs: []int{-1}, Route: &quant.Route{Groups: 1}},
	}}
	if err := darknet.WriteCfg(&b, m); err == nil || !strings.Contains(err.Error(), "not the network input") {
		t.Errorf("WriteCfg route to the input: %v", err)
	}
}

// TestLHTan: both darknets read activation=lhtan (todarknet's float export of the W1A3
// model writes it); it parses in either dialect without changing the dialect and
// round-trips through WriteCfg.
func TestLHTan(t *testing.T) {
	cfg := netHead + "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=lhtan\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
	for _, d := range []quant.Dialect{"", quant.DialectPjreddie, quant.DialectAlexeyAB} {
		m, err := darknet.ParseCfg(strings.NewReader(cfg), "lhtan.cfg", darknet.Options{Dialect: d})
		if err != nil {
			t.Fatalf("dialect %q: %v", d, err)
		}
		if a := m.Layers[0].Conv.Activation; a != quant.ActLHTan {
			t.Fatalf("dialect %q: activation %q", d, a)
		}
		testmodel.RandomizeWeights(m, 5)
		back, text, _ := roundTrip(t, m, darknet.Header{Major: 0, Minor: 2})
		if !reflect.DeepEqual(back, m) || !strings.Contains(string(text), "activation=lhtan") {
			t.Fatalf("dialect %q: round trip differs:\n%s", d, text)
		}
	}
}
