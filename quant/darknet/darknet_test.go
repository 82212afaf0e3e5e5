package darknet_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

func yoloFastest(tb testing.TB) (cfg, weights string) {
	tb.Helper()
	return testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.cfg"), testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.weights")
}

func qnnTinierCfg(tb testing.TB) string {
	tb.Helper()
	return testutil.Fixture(tb, "qnn-mo-pynq", "params", "tinier-yolo-bwn-3bit-relu-nomaxpool.cfg")
}

// warnings collects Options.Warn messages.
func warnings(tb testing.TB) (darknet.Options, *[]string) {
	tb.Helper()
	var w []string
	return darknet.Options{Warn: func(s string) { w = append(w, s) }}, &w
}

func TestYoloFastestLoads(t *testing.T) {
	cfg, weights := yoloFastest(t)
	opt, warns := warnings(t)
	m, err := darknet.Load(cfg, weights, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(*warns) != 0 {
		t.Errorf("warnings: %q", *warns)
	}
	if len(m.Layers) != 131 {
		t.Fatalf("%d layers, darknet prints 0..130", len(m.Layers))
	}
	if m.Name != "yolo-fastest-1.1" || m.Dialect != quant.DialectAlexeyAB || m.BNEpsilon != 1e-5 || !m.BNEpsInside {
		t.Errorf("name %q dialect %q eps %g inside %v", m.Name, m.Dialect, m.BNEpsilon, m.BNEpsInside)
	}
	if got := m.Heads(); !reflect.DeepEqual(got, []int{121, 130}) {
		t.Fatalf("heads %v, want [121 130]", got)
	}
	h0, h1 := m.Layers[121], m.Layers[130]
	if h0.In != (quant.Shape{C: 255, H: 10, W: 10}) || h1.In != (quant.Shape{C: 255, H: 20, W: 20}) {
		t.Errorf("head inputs %v and %v, want 255x10x10 and 255x20x20", h0.In, h1.In)
	}
	wantAnchors := []float32{12, 18, 37, 49, 52, 132, 115, 73, 119, 199, 242, 238}
	if h := h0.Head; !reflect.DeepEqual(h.Mask, []int{3, 4, 5}) || !reflect.DeepEqual(h.Anchors, wantAnchors) || h.Classes != 80 || h.Num != 3 || h.ScaleXY != 1 {
		t.Errorf("first head %+v", *h)
	}
	if h := h1.Head; !reflect.DeepEqual(h.Mask, []int{0, 1, 2}) || h.Num != 3 {
		t.Errorf("second head %+v", *h)
	}
	// Spot checks against the cfg: a depthwise conv, the SPP route, the upsample route.
	if c := m.Layers[2].Conv; c.Groups != 8 || c.Filters != 8 || len(c.Weights) != 8*1*3*3 || c.BN == nil || c.Activation != quant.ActLeaky {
		t.Errorf("conv2 %+v", *c)
	}
	if l := m.Layers[114]; !reflect.DeepEqual(l.Inputs, []int{113, 111, 109, 108}) || l.Out.C != 4*48 {
		t.Errorf("SPP route reads %v -> %v", l.Inputs, l.Out)
	}
	if l := m.Layers[124]; !reflect.DeepEqual(l.Inputs, []int{123, 80}) || l.Out != (quant.Shape{C: 120, H: 20, W: 20}) {
		t.Errorf("route124 reads %v -> %v", l.Inputs, l.Out)
	}
	if l := m.Layers[8]; l.Kind != quant.KindShortcut || !reflect.DeepEqual(l.Inputs, []int{7, 3}) || l.Shortcut.Activation != quant.ActLinear {
		t.Errorf("shortcut8 %+v", *l)
	}
	if p := m.Layers[113].Pool; *p != (quant.Pool{Size: 9, Stride: 1, Pad: 8}) {
		t.Errorf("pool113 %+v", *p)
	}
	// Every parameter was read: the last conv's last weight is the file's last float.
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	last := m.Layers[129].Conv.Weights
	var want [4]byte
	copy(want[:], data[len(data)-4:])
	if got := float32bytes(last[len(last)-1]); got != want {
		t.Errorf("last weight bytes %x, file ends %x", got, want)
	}
}

func TestYoloFastestForcedPjreddie(t *testing.T) {
	cfg, _ := yoloFastest(t)
	m, err := darknet.LoadCfg(cfg, darknet.Options{Dialect: quant.DialectPjreddie})
	if err != nil {
		t.Fatal(err)
	}
	if m.Dialect != quant.DialectPjreddie || m.BNEpsilon != 1e-6 || m.BNEpsInside {
		t.Errorf("dialect %q eps %g inside %v", m.Dialect, m.BNEpsilon, m.BNEpsInside)
	}
	if len(m.Layers) != 131 {
		t.Errorf("%d layers", len(m.Layers))
	}
}

func TestQNNTinierCfg(t *testing.T) {
	opt, warns := warnings(t)
	m, err := darknet.LoadCfg(qnnTinierCfg(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(*warns) != 0 {
		t.Errorf("warnings %q", *warns)
	}
	if m.Dialect != quant.DialectPjreddie || m.BNEpsilon != 1e-6 || m.BNEpsInside {
		t.Errorf("dialect %q eps %g inside %v", m.Dialect, m.BNEpsilon, m.BNEpsInside)
	}
	type want struct {
		kind   quant.Kind
		out    quant.Shape
		binary bool
	}
	s := func(c, hw int) quant.Shape { return quant.Shape{C: c, H: hw, W: hw} }
	wants := []want{
		{quant.KindConv, s(16, 208), false}, {quant.KindConv, s(64, 208), true}, {quant.KindMaxPool, s(64, 104), false},
		{quant.KindConv, s(64, 104), true}, {quant.KindMaxPool, s(64, 52), false},
		{quant.KindConv, s(128, 52), true}, {quant.KindMaxPool, s(128, 26), false},
		{quant.KindConv, s(256, 26), true}, {quant.KindMaxPool, s(256, 13), false},
		{quant.KindConv, s(512, 13), true}, {quant.KindMaxPool, s(512, 13), false},
		{quant.KindConv, s(512, 13), true}, {quant.KindConv, s(512, 13), true},
		{quant.KindConv, s(125, 13), false}, {quant.KindRegion, s(125, 13), false},
	}
	if len(m.Layers) != len(wants) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(wants))
	}
	for i, w := range wants {
		l := m.Layers[i]
		binary := l.Conv != nil && l.Conv.Binary
		if l.Kind != w.kind || l.Out != w.out || binary != w.binary {
			t.Errorf("layer %d: %s %v binary %v; want %s %v binary %v", i, l.Kind, l.Out, binary, w.kind, w.out, w.binary)
		}
	}
	if p := m.Layers[10].Pool; *p != (quant.Pool{Size: 2, Stride: 1, Pad: 1}) {
		t.Errorf("pool10 %+v, want size 2 stride 1 pad 1", *p)
	}
	if c := m.Layers[0].Conv; c.Stride != 2 || c.Pad != 1 || c.Activation != quant.ActReLU || c.BN == nil {
		t.Errorf("conv0 %+v", *c)
	}
	if c := m.Layers[13].Conv; c.Pad != 0 || c.BN != nil || c.Activation != quant.ActLinear || len(c.Bias) != 125 {
		t.Errorf("conv13 %+v", *c)
	}
	h := m.Layers[14].Head
	wantAnchors := []float32{1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52}
	if h.Classes != 20 || h.Num != 5 || h.Coords != 4 || !h.Softmax || !reflect.DeepEqual(h.Anchors, wantAnchors) {
		t.Errorf("region %+v", *h)
	}
}

// darknetTable runs Debian's darknet (`darknet ops cfg`) and returns the output shape it
// prints for each conv, max, upsample and res (shortcut) layer.
func darknetTable(tb testing.TB, cfg string) map[int]quant.Shape {
	tb.Helper()
	bin, err := exec.LookPath("darknet")
	if err != nil {
		tb.Skip("darknet (Debian package darknet) not installed: skipping the comparison with its layer table")
	}
	// darknet allocates training buffers for the cfg's batch: run a batch=1 copy.
	text, err := os.ReadFile(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	text = regexp.MustCompile(`(?m)^\s*(batch|subdivisions)\s*=.*$`).ReplaceAll(text, []byte("$1=1"))
	tmp := filepath.Join(dir, "net.cfg")
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "ops", tmp)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("darknet ops %s: %v\n%s", cfg, err, out)
	}
	re := regexp.MustCompile(`(?m)^\s*(\d+) (?:conv|max|upsample|res).*->\s*(\d+) x\s*(\d+) x\s*(\d+)`)
	table := map[int]quant.Shape{}
	for _, g := range re.FindAllStringSubmatch(string(out), -1) {
		n := make([]int, 4)
		for i := range n {
			n[i], _ = strconv.Atoi(g[i+1])
		}
		table[n[0]] = quant.Shape{C: n[3], H: n[2], W: n[1]}
	}
	if len(table) == 0 {
		tb.Fatalf("no layer table in darknet's output:\n%s", out)
	}
	return table
}

// debianCfgs lists Debian's darknet cfgs (pjreddie dialect) that are installed.
func debianCfgs() []string {
	var out []string
	for _, name := range []string{"yolov2-tiny-voc.cfg", "yolov2-tiny.cfg", "yolov3-tiny.cfg", "yolov3.cfg", "yolov3-spp.cfg", "yolov3-voc.cfg", "tiny-yolo-voc.cfg"} {
		p := filepath.Join("/usr/share/darknet/cfg", name)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func pjreddieCfgs(tb testing.TB) []string {
	tb.Helper()
	out := debianCfgs()
	if len(out) == 0 {
		tb.Skip("no Debian darknet cfgs in /usr/share/darknet/cfg (apt install darknet)")
	}
	return out
}

func TestShapesMatchDarknet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not running darknet")
	}
	cfgs := map[string]func(testing.TB) string{
		"yolo-fastest":    func(tb testing.TB) string { cfg, _ := yoloFastest(tb); return cfg },
		"qnn-tinier-yolo": qnnTinierCfg,
	}
	// One small Debian cfg (upsample and routes in the pjreddie dialect): darknet initialises
	// all weights, which takes seconds for larger nets (TestPjreddieCfgs parses the others).
	for _, p := range debianCfgs() {
		if filepath.Base(p) == "yolov3-tiny.cfg" {
			cfgs[filepath.Base(p)] = func(testing.TB) string { return p }
		}
	}
	cfgs["pools-and-routes"] = func(tb testing.TB) string {
		p := filepath.Join(tb.TempDir(), "pools.cfg")
		if err := os.WriteFile(p, []byte(poolsCfg), 0o644); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	for name, path := range cfgs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := path(t)
			m, err := darknet.LoadCfg(cfg, darknet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			table := darknetTable(t, cfg)
			for i, want := range table {
				if i >= len(m.Layers) {
					t.Fatalf("darknet has layer %d, the model only %d layers", i, len(m.Layers))
				}
				if got := m.Layers[i].Out; got != want {
					t.Errorf("layer %d (%s): %v, darknet %v", i, m.Layers[i].Name, got, want)
				}
			}
		})
	}
}

func TestPjreddieCfgs(t *testing.T) {
	for _, cfg := range pjreddieCfgs(t) {
		opt, warns := warnings(t)
		m, err := darknet.LoadCfg(cfg, opt)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if m.Dialect != quant.DialectPjreddie {
			t.Errorf("%s: dialect %q", cfg, m.Dialect)
		}
		if len(*warns) != 0 {
			t.Errorf("%s: warnings %q", cfg, *warns)
		}
	}
}

func TestTinierTestdata(t *testing.T) {
	m, err := darknet.LoadCfg(testutil.Testdata(t, "tinier-yolo-voc.cfg"), darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 15 || m.Layers[0].Out != (quant.Shape{C: 16, H: 208, W: 208}) || m.Layers[14].Kind != quant.KindRegion {
		t.Fatalf("unexpected model: %d layers", len(m.Layers))
	}
	for _, l := range m.Layers {
		if c := l.Conv; c != nil {
			if c.Binary || (c.Activation != quant.ActLeaky && l.Index != 13) {
				t.Errorf("%s: binary %v activation %s", l.Name, c.Binary, c.Activation)
			}
			if c.Weights != nil || len(c.Bias) != c.Filters {
				t.Errorf("%s: cfg-only model has %d weights, %d biases", l.Name, len(c.Weights), len(c.Bias))
			}
		}
	}
}

func float32bytes(v float32) [4]byte {
	var b bytes.Buffer
	m := &quant.Model{Input: quant.Shape{C: 1, H: 1, W: 1}, Layers: []*quant.Layer{{Kind: quant.KindConv, Inputs: []int{-1},
		Conv: &quant.Conv{Filters: 1, Size: 1, Stride: 1, Groups: 1, Activation: quant.ActLinear, Weights: []float32{v}, Bias: []float32{0}}}}}
	if err := darknet.WriteWeights(&b, m, darknet.Header{Major: 0, Minor: 2}); err != nil {
		panic(err)
	}
	var out [4]byte
	copy(out[:], b.Bytes()[b.Len()-4:])
	return out
}

func parse(tb testing.TB, cfg string) (*quant.Model, error) {
	tb.Helper()
	return darknet.ParseCfg(strings.NewReader(cfg), "test.cfg", darknet.Options{})
}

// poolsCfg exercises darknet's maxpool defaults (size 2 stride 1, odd sizes up to 13,
// explicit padding), [max] and [conv] aliases, routes, shortcut and upsample, in the
// pjreddie dialect.
const poolsCfg = `[net]
width=52
height=52
channels=3
[conv]
filters=8
size=3
stride=2
pad=1
activation=leaky
[max]
size=2
stride=1
[maxpool]
size=5
stride=1
[route]
layers=-2
[maxpool]
size=13
stride=1
[route]
layers=-1,-3,-4
[maxpool]
size=3
stride=2
[maxpool]
stride=2
padding=0
[maxpool]
size=3
stride=3
padding=1
[convolutional]
filters=24
size=1
stride=1
activation=lhtan
[shortcut]
from=-2
activation=leaky
[upsample]
stride=2
[convolutional]
filters=16
size=5
stride=1
padding=1
activation=linear
[maxpool]
size=9
stride=1
`
