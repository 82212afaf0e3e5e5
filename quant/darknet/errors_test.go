package darknet_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

const netHead = "[net]\nwidth=32\nheight=32\nchannels=3\n"

func TestCfgErrors(t *testing.T) {
	tests := []struct {
		name, cfg string
		line      int
		want      string // substring of the message
	}{
		{"empty", "", 0, "no sections"},
		{"comments only", "# nothing\n; here\n\n", 0, "no sections"},
		{"garbage", "\x00\x01\x02binary\xff", 1, "binary data"},
		{"option first", "width=3\n[net]\n", 1, "before the first section"},
		{"first not net", "[convolutional]\nfilters=3\n", 1, "first section must be [net]"},
		{"net without size", "[net]\nwidth=32\n[convolutional]\n", 1, "needs width, height and channels"},
		{"only net", netHead, 1, "no layers"},
		{"unknown section", netHead + "[convolution]\nfilters=3\n", 5, "unknown section [convolution]"},
		{"unsupported section", netHead + "[avgpool]\n", 5, "[avgpool] is not supported"},
		{"second net", netHead + "[network]\n", 5, "only the first section"},
		{"not key=value", netHead + "[conv]\nfilters 16\n", 6, `"filters16" is not key=value`},
		{"empty key", netHead + "[conv]\n=16\n", 6, "is not key=value"},
		{"bad filters", netHead + "[conv]\nfilters=sixteen\n", 6, "filters=sixteen: not an integer"},
		{"zero filters", netHead + "[conv]\nfilters=0\n", 6, "filters=0: out of range"},
		{"negative filters", netHead + "[conv]\nfilters=-3\n", 6, "filters=-3: out of range"},
		{"absurd filters", netHead + "[conv]\nfilters=100000000\n", 6, "out of range"},
		{"empty value", netHead + "[conv]\nfilters=\nsize=x\n", 7, "size=x: not an integer"},
		{"overflow int", netHead + "[conv]\nsize=99999999999999999999\n", 6, "not an integer"},
		{"bad activation", netHead + "[conv]\nactivation=tanh\n", 6, "activation=tanh: not supported"},
		{"pjreddie mish", netHead + "[conv]\nactivation=mish\n[route]\nlayers=-1\ngroups=1\n", 0, ""}, // auto: AlexeyAB, fine
		{"bad flag", netHead + "[conv]\nbatch_normalize=yes\n", 6, "batch_normalize=yes: not an integer"},
		{"groups mismatch", netHead + "[conv]\nfilters=8\ngroups=2\n", 5, "groups 2 do not divide 3 input"},
		{"dilation", netHead + "[conv]\nsize=3\ndilation=2\n", 7, "dilated convolution is not supported"},
		{"route missing layers", netHead + "[conv]\n[route]\n", 6, "needs layers="},
		{"route future", netHead + "[conv]\n[route]\nlayers=1\n", 7, "layer 1 does not exist"},
		{"route before net", netHead + "[conv]\n[route]\nlayers=-2\n", 7, "layer -1 does not exist"},
		{"route bad list", netHead + "[conv]\n[route]\nlayers=-1,x\n", 7, `"x" is not an integer`},
		{"route empty entry", netHead + "[conv]\n[route]\nlayers=-1,,0\n", 7, "empty entry"},
		{"route group id", netHead + "[conv]\n[route]\nlayers=-1\ngroups=2\ngroup_id=2\n", 9, "group_id=2: out of range"},
		{"route size mismatch", netHead + "[conv]\nstride=2\n[conv]\n[route]\nlayers=-1,-2\n", 0, ""}, // same size: fine
		{"route joins sizes", netHead + "[conv]\nstride=2\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n", 10, "route joins"},
		{"shortcut missing from", netHead + "[conv]\n[shortcut]\n", 6, "needs from="},
		{"shortcut several", netHead + "[conv]\n[conv]\n[shortcut]\nfrom=-2,-3\n", 8, "several layers is not supported"},
		{"shortcut shapes", netHead + "[conv]\nfilters=4\n[conv]\nfilters=8\n[shortcut]\nfrom=-2\n", 9, "shortcut adds"},
		{"upsample negative", netHead + "[conv]\n[upsample]\nstride=-2\n", 7, "stride=-2: must be at least 1"},
		{"upsample too big", netHead + "[conv]\n[upsample]\nstride=100\n", 7, "stride=100: out of range: must be from -64 to 64"},
		{"bom", "\ufeff" + netHead + "[conv]\n", 0, ""},
		{"upsample huge", netHead + "[conv]\n[upsample]\nstride=64\n[upsample]\nstride=64\n", 8, "upsampling by more than"},
		{"dropout probability", netHead + "[conv]\n[dropout]\nprobability=2\n", 7, "probability=2: out of range"},
		{"yolo channels", netHead + "[conv]\nfilters=20\n[yolo]\nclasses=80\nmask=0,1,2\nnum=6\n", 7, "head input has 20 channels"},
		{"yolo mask", netHead + "[conv]\nfilters=255\n[yolo]\nclasses=80\nmask=0,1,7\nnum=6\n", 9, "mask=0,1,7: anchor 7 does not exist"},
		{"yolo anchors", netHead + "[conv]\nfilters=255\n[yolo]\nmask=0,1,2\nanchors=1,2,3,x\nnum=3\n", 9, `"x" is not a finite number`},
		{"yolo nan", netHead + "[conv]\nfilters=255\n[yolo]\nmask=0,1,2\nanchors=1,2,3,nan\nnum=3\n", 9, "not a finite number"},
		{"yolo too many anchors", netHead + "[conv]\nfilters=75\n[yolo]\nanchors=1,2,3,4,5,6,7,8\nnum=3\n", 8, "8 values but num=3"},
		{"region coords", netHead + "[conv]\nfilters=125\n[region]\ncoords=5\n", 8, "coords=5: only 4 box coordinates"},
		{"region tree", netHead + "[conv]\nfilters=30\n[region]\nclasses=1\nnum=5\ntree=data/9k.tree\n", 10, "hierarchical softmax"},
		{"dontload", netHead + "[conv]\ndontload=1\n", 6, "skipping a layer's weights"},
		{"too big", "[net]\nwidth=16384\nheight=16384\nchannels=3\n[conv]\nfilters=16384\n", 5, "larger than the importer's limit"},
		{"too many params", "[net]\nwidth=8\nheight=8\nchannels=16384\n[conv]\nfilters=16384\nsize=3\n", 5, "parameters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed to %d layers, want an error with %q", len(m.Layers), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			var ce *darknet.CfgError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CfgError", err)
			}
			if ce.Line != tc.line || ce.File != "test.cfg" {
				t.Errorf("error at %s:%d, want test.cfg:%d (%v)", ce.File, ce.Line, tc.line, err)
			}
		})
	}
}

func TestShapeErrorsWrapErrShape(t *testing.T) {
	_, err := parse(t, netHead+"[conv]\nfilters=20\n[yolo]\nclasses=80\nmask=0,1,2\nnum=6\n")
	if !errors.Is(err, quant.ErrShape) {
		t.Fatalf("error %v does not wrap quant.ErrShape", err)
	}
}

func TestForcedPjreddieRejectsAlexeyABSemantics(t *testing.T) {
	opt := darknet.Options{Dialect: quant.DialectPjreddie}
	for _, cfg := range []string{
		netHead + "[conv]\nfilters=4\n[route]\nlayers=-1\ngroups=2\ngroup_id=1\n",
		netHead + "[conv]\nactivation=mish\n",
	} {
		if _, err := darknet.ParseCfg(strings.NewReader(cfg), "p.cfg", opt); err == nil || !strings.Contains(err.Error(), "AlexeyAB") {
			t.Errorf("error %v, want one naming AlexeyAB", err)
		}
	}
	if _, err := darknet.ParseCfg(strings.NewReader(netHead+"[conv]\n"), "p.cfg", darknet.Options{Dialect: "caffe"}); err == nil {
		t.Error("unknown dialect accepted")
	}
}

func TestDialectDetection(t *testing.T) {
	tests := []struct {
		cfg  string
		want quant.Dialect
	}{
		{netHead + "[conv]\nfilters=4\n", quant.DialectPjreddie},
		{netHead + "mosaic=1\n[conv]\n", quant.DialectAlexeyAB},
		{netHead + "[conv]\nfilters=4\n[route]\nlayers=-1\ngroups=2\ngroup_id=1\n", quant.DialectAlexeyAB},
		{netHead + "[conv]\nactivation=swish\n", quant.DialectAlexeyAB},
		{netHead + "[conv]\nfilters=255\n[yolo]\nmask=0,1,2\nnum=3\nclasses=80\nnms_kind=greedynms\n", quant.DialectAlexeyAB},
		{netHead + "[conv]\nfilters=255\n[yolo]\nmask=0,1,2\nnum=3\nclasses=80\njitter=.3\nignore_thresh=.7\n", quant.DialectPjreddie},
	}
	for i, tc := range tests {
		m, err := parse(t, tc.cfg)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if m.Dialect != tc.want {
			t.Errorf("%d: dialect %q, want %q", i, m.Dialect, tc.want)
		}
	}
}

func TestSyntaxAndDefaults(t *testing.T) {
	cfg := "# comment\r\n[network]\r\n width = 64 \r\nheight=32\r\nchannels = 3\r\nlearning_rate=0.001\r\n" +
		"; another comment\r\n[conv]\r\nsize = 3\r\n\t\r\n[max]\r\n[convolutional]\r\nfilters=6\r\nsize=3\r\nstride=2\r\npadding=1\r\n" +
		"[maxpool]\r\nsize=2\r\n[upsample]\r\n[dropout]\r\n[conv]\r\nfilters=6\r\nsize=3\r\npad=1\r\nactivation=linear\r\n" +
		"[route]\r\nlayers=-1\r\n"
	opt, warns := warnings(t)
	m, err := darknet.ParseCfg(strings.NewReader(cfg), "w.cfg", opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(*warns) != 0 {
		t.Errorf("warnings %q", *warns)
	}
	if m.Input != (quant.Shape{C: 3, H: 32, W: 64}) {
		t.Errorf("input %v", m.Input)
	}
	c0 := m.Layers[0].Conv
	if c0.Filters != 1 || c0.Size != 3 || c0.Stride != 1 || c0.Pad != 0 || c0.Groups != 1 || c0.Activation != quant.ActLogistic || c0.BN != nil {
		t.Errorf("conv defaults %+v", *c0)
	}
	if p := m.Layers[1].Pool; *p != (quant.Pool{Size: 1, Stride: 1, Pad: 0}) {
		t.Errorf("maxpool defaults %+v", *p)
	}
	if c := m.Layers[2].Conv; c.Pad != 1 || m.Layers[2].Out != (quant.Shape{C: 6, H: 15, W: 31}) {
		t.Errorf("explicit padding %+v -> %v", *c, m.Layers[2].Out)
	}
	if p := m.Layers[3].Pool; *p != (quant.Pool{Size: 2, Stride: 1, Pad: 1}) {
		t.Errorf("maxpool size 2 %+v", *p)
	}
	if u := m.Layers[4].Upsample; *u != (quant.Upsample{Stride: 2, Scale: 1}) {
		t.Errorf("upsample defaults %+v", *u)
	}
	if l := m.Layers[5]; l.Kind != quant.KindDropout || l.Out != m.Layers[4].Out {
		t.Errorf("dropout %v", l.Out)
	}
	if c := m.Layers[6].Conv; c.Pad != 1 {
		t.Errorf("pad=1 size 3 gives padding %d", c.Pad)
	}
	wantNames := []string{"conv0", "pool1", "conv2", "pool3", "upsample4", "dropout5", "conv6", "route7"}
	for i, l := range m.Layers {
		if l.Name != wantNames[i] || l.Index != i {
			t.Errorf("layer %d named %q (index %d), want %q", i, l.Name, l.Index, wantNames[i])
		}
	}
	if !reflect.DeepEqual(m.Layers[7].Inputs, []int{6}) || !reflect.DeepEqual(m.Layers[0].Inputs, []int{-1}) {
		t.Errorf("inputs %v %v", m.Layers[7].Inputs, m.Layers[0].Inputs)
	}
}

func TestWarnings(t *testing.T) {
	cfg := netHead + "momentum=0.9\nfoo=1\nbar=\n[conv]\nfilters=255\nfilters=8\nsizee=3\n[yolo]\nmask=0\nnum=1\nclasses=3\nanchors=10\nignore_thresh=.5\n"
	opt, warns := warnings(t)
	if _, err := darknet.ParseCfg(strings.NewReader(cfg), "w.cfg", opt); err == nil {
		// filters=255 (the first) wins, so the yolo head (needs 8) fails: darknet uses the first.
		t.Fatal("want a shape error: the first filters= wins")
	}
	cfg = strings.Replace(cfg, "filters=255\n", "", 1)
	opt, warns = warnings(t)
	if _, err := darknet.ParseCfg(strings.NewReader(cfg), "w.cfg", opt); err != nil {
		t.Fatal(err)
	}
	want := []string{"w.cfg:7: [net] bar has no value", `w.cfg:6: [net] unknown key "foo"`, `w.cfg:10: [conv] unknown key "sizee"`, "w.cfg:15: [yolo] anchors has 1 values"}
	if len(*warns) != len(want) {
		t.Fatalf("warnings %q, want %d", *warns, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix((*warns)[i], w) {
			t.Errorf("warning %q, want prefix %q", (*warns)[i], w)
		}
	}
}

// smallCfg is a little net with every weighted layer variant: BN, no BN, groups.
const smallCfg = `[net]
width=8
height=8
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=4
groups=4
size=3
pad=1
activation=relu
[maxpool]
size=2
stride=2
[convolutional]
filters=18
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=10,14,23,27,37,58
classes=1
num=3
`

// smallWeights returns a weights file for smallCfg with value i/1000 at float i.
func smallWeights(tb testing.TB, major, minor int32) []byte {
	tb.Helper()
	m, err := parse(tb, smallCfg)
	if err != nil {
		tb.Fatal(err)
	}
	k := 0
	next := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(k) / 1000
			k++
		}
		return v
	}
	for _, l := range m.Layers {
		if c := l.Conv; c != nil {
			c.Bias = next(c.Filters)
			if c.BN != nil {
				c.BN.Scale, c.BN.Mean, c.BN.Variance = next(c.Filters), next(c.Filters), next(c.Filters)
			}
			c.Weights = next(c.Filters * l.In.C / c.Groups * c.Size * c.Size)
		}
	}
	var b bytes.Buffer
	if err := darknet.WriteWeights(&b, m, darknet.Header{Major: major, Minor: minor, Revision: 5, Seen: 12345}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func TestSmallWeights(t *testing.T) {
	// 4*(1+3) + 4*3*9, 4*(1+3) + 4*1*9, 18 + 18*4 = 124 + 52 + 90 = 266 floats.
	for _, v := range []struct {
		major, minor int32
		header       int
	}{{0, 2, 20}, {0, 1, 16}, {1, 0, 20}, {1000, 2, 16}} {
		data := smallWeights(t, v.major, v.minor)
		if len(data) != v.header+266*4 {
			t.Fatalf("version %d.%d: %d bytes, want %d", v.major, v.minor, len(data), v.header+266*4)
		}
		m, _ := parse(t, smallCfg)
		h, err := darknet.ReadWeights(bytes.NewReader(data), "small.weights", int64(len(data)), m)
		if err != nil {
			t.Fatal(err)
		}
		if h != (darknet.Header{Major: v.major, Minor: v.minor, Revision: 5, Seen: 12345}) {
			t.Errorf("header %+v", h)
		}
		c1 := m.Layers[1].Conv
		if c1.Bias[0] != 0.124 || c1.BN.Variance[3] != 0.139 || c1.Weights[35] != 0.175 {
			t.Errorf("conv1 order: bias %g var %g w %g", c1.Bias[0], c1.BN.Variance[3], c1.Weights[35])
		}
		if w := m.Layers[3].Conv.Weights; w[len(w)-1] != 0.265 {
			t.Errorf("last weight %g", w[len(w)-1])
		}
	}
}

func TestWeightsErrors(t *testing.T) {
	good := smallWeights(t, 0, 2)
	tests := []struct {
		name string
		data []byte
		size int64 // -2: use len(data)
		want string
	}{
		{"empty", nil, -2, "too short for the 12-byte header"},
		{"header only", good[:12], -2, "too short for the 20-byte header"},
		{"truncated in conv0 weights", good[:20+4*20], -2, "data ends in layer 0 (conv0) weights"},
		{"truncated in conv1 scales", good[:20+4*(124+5)], -2, "data ends in layer 1 (conv1) scales"},
		{"truncated last float", good[:len(good)-1], -2, "data ends in layer 3 (conv3) weights"},
		{"stream truncated", good[:20+4*(124+5)], -1, "data ends in layer 1 (conv1) scales"},
		{"stream truncated odd", good[:len(good)-2], -1, "data ends in layer 3 (conv3) weights"},
		{"extra bytes", append(append([]byte{}, good...), 1, 2, 3, 4), -2, "4 bytes too many"},
		{"stream extra", append(append([]byte{}, good...), 0), -1, "more bytes than the 1084"},
		{"size lies", good[:100], int64(len(good)), "truncated"},
		{"garbage", bytes.Repeat([]byte("garbage!"), 50), -2, "the cfg needs 1080"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := parse(t, smallCfg)
			before, _ := parse(t, smallCfg)
			size := tc.size
			if size == -2 {
				size = int64(len(tc.data))
			}
			_, err := darknet.ReadWeights(bytes.NewReader(tc.data), "bad.weights", size, m)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "darknet weights bad.weights: ") {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !errors.Is(err, darknet.ErrSize) {
				t.Errorf("error %v does not wrap ErrSize", err)
			}
			if !reflect.DeepEqual(m, before) {
				t.Error("the model changed on error")
			}
		})
	}
}

func TestYoloFastestWrongCfg(t *testing.T) {
	cfg, weights := yoloFastest(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(weights)
	if err != nil {
		t.Fatal(err)
	}
	readInto := func(cfgText, name string) error {
		t.Helper()
		m, err := darknet.ParseCfg(strings.NewReader(cfgText), name, darknet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(weights)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = darknet.ReadWeights(f, weights, st.Size(), m)
		return err
	}
	// An extra conv before the first head: the file runs out in the last conv.
	extra := strings.Replace(string(text), "[yolo]", "[convolutional]\nfilters=255\nsize=1\nactivation=linear\n\n[yolo]", 1)
	err = readInto(extra, "extra.cfg")
	if err == nil || !strings.Contains(err.Error(), "truncated: 1384268 bytes, the cfg needs 1645388; data ends in layer 126 (conv126) weights") {
		t.Errorf("extra layer: %v", err)
	}
	// The last conv and head missing: the file has that conv's bytes left over.
	cut := strings.LastIndex(string(text), "[convolutional]")
	err = readInto(string(text[:cut]), "fewer.cfg")
	if want := 4 * (255 + 255*120); err == nil || !strings.Contains(err.Error(), fmt.Sprintf(": %d bytes too many", want)) {
		t.Errorf("missing layer: %v", err)
	}
	// Another model's cfg entirely.
	tinier, err := os.ReadFile(testutil.Testdata(t, "tinier-yolo-voc.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := readInto(string(tinier), "tinier.cfg"); !errors.Is(err, darknet.ErrSize) {
		t.Errorf("wrong cfg: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := darknet.LoadCfg("/nonexistent.cfg", darknet.Options{}); err == nil || !strings.Contains(err.Error(), "open darknet cfg") {
		t.Errorf("error %v", err)
	}
	cfg := testutil.Testdata(t, "tinier-yolo-voc.cfg")
	if _, err := darknet.Load(cfg, "/nonexistent.weights", darknet.Options{}); err == nil || !strings.Contains(err.Error(), "open darknet weights") {
		t.Errorf("error %v", err)
	}
}
