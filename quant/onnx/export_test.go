package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

type variant struct {
	dialect quant.Dialect
	keepBN  bool
}

var variants = []variant{
	{quant.DialectPjreddie, false}, {quant.DialectPjreddie, true},
	{quant.DialectAlexeyAB, false}, {quant.DialectAlexeyAB, true},
}

func (v variant) String() string { return fmt.Sprintf("%s/keepbn=%v", v.dialect, v.keepBN) }

func mustExport(tb testing.TB, m *quant.Model, opt ExportOptions) *onnxpb.ModelProto {
	tb.Helper()
	mp, err := Export(m, opt)
	if err != nil {
		tb.Fatalf("export: %v", err)
	}
	return mp
}

func writeTemp(tb testing.TB, mp *onnxpb.ModelProto) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "model.onnx")
	if err := WriteFile(path, mp); err != nil {
		tb.Fatal(err)
	}
	return path
}

func nodeByName(mp *onnxpb.ModelProto, name string) *onnxpb.NodeProto {
	for _, n := range mp.GetGraph().GetNode() {
		if n.GetName() == name {
			return n
		}
	}
	return nil
}

func TestExportStructure(t *testing.T) {
	m := smallModel(t, quant.DialectAlexeyAB)
	mp := mustExport(t, m, ExportOptions{})
	if got := mp.GetOpsetImport()[0].GetVersion(); got != 13 {
		t.Errorf("opset %d, want 13", got)
	}
	g := mp.GetGraph()
	if in := g.GetInput(); len(in) != 1 || in[0].GetName() != "input" {
		t.Fatalf("inputs %v, want one named input", in)
	}
	var outs []string
	for _, o := range g.GetOutput() {
		outs = append(outs, o.GetName())
	}
	if !slices.Equal(outs, []string{"head_14", "head_19"}) {
		t.Errorf("outputs %v, want head_14 head_19", outs)
	}
	checks := []struct {
		node, op, attr string
		want           []int64
	}{
		{"maxp1", "MaxPool", "pads", []int64{0, 0, 1, 1}},
		{"maxp4", "MaxPool", "pads", []int64{0, 0, 1, 1}},
		{"maxp10", "MaxPool", "pads", []int64{2, 2, 2, 2}},
		{"conv2/conv", "Conv", "group", []int64{8}},
		{"conv5/conv", "Conv", "strides", []int64{2, 2}},
		{"conv0/conv", "Conv", "pads", []int64{1, 1, 1, 1}},
	}
	for _, c := range checks {
		n := nodeByName(mp, c.node)
		if n == nil || n.GetOpType() != c.op {
			t.Errorf("node %s: %v, want op %s", c.node, n, c.op)
			continue
		}
		a := onnxbuild.NodeAttrs(n)[c.attr]
		got := a.GetInts()
		if a.GetType() == onnxpb.AttributeProto_INT {
			got = []int64{a.GetI()}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("node %s %s = %v, want %v", c.node, c.attr, got, c.want)
		}
	}
	for _, n := range g.GetNode() {
		if _, ok := onnxbuild.NodeAttrs(n)["auto_pad"]; ok {
			t.Errorf("node %s has auto_pad", n.GetName())
		}
		if n.GetOpType() == "BatchNormalization" || n.GetOpType() == "Dropout" {
			t.Errorf("node %s: %s should be folded/omitted by default", n.GetName(), n.GetOpType())
		}
	}
	mm, heads, ok, err := Metadata(mp)
	if err != nil || !ok {
		t.Fatalf("metadata: ok=%v err=%v", ok, err)
	}
	if mm.Classes != 3 || !mm.BNFolded || mm.Dialect != "alexeyab" || mm.Input != [3]int{3, 13, 13} || !slices.Equal(mm.BinaryLayers, []string{"conv7"}) {
		t.Errorf("model metadata %+v", mm)
	}
	y, r := heads["head_14"], heads["head_19"]
	if y.Kind != "yolo" || y.Num != 3 || y.ScaleXY != 1.05 || !slices.Equal(y.Mask, []int{0, 1, 2}) || y.Shape != [3]int{21, 7, 7} || y.Name != "yolo14" {
		t.Errorf("yolo head metadata %+v", y)
	}
	if r.Kind != "region" || !r.Softmax || r.Coords != 4 || r.Classes != 3 || r.Shape != [3]int{16, 8, 8} {
		t.Errorf("region head metadata %+v", r)
	}
}

// TestExportFoldsLikeDarknet checks the folded and kept batch-norm graphs' parameters
// against the reference evaluator through the importer (structure) and the pure-Go
// reference (values): import(export(m)) must compute what m computes.
func TestRoundTrip(t *testing.T) {
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			m := smallModel(t, v.dialect)
			data, err := proto.Marshal(mustExport(t, m, ExportOptions{KeepBatchNorm: v.keepBN}))
			if err != nil {
				t.Fatal(err)
			}
			mp, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Import(mp)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			want := withoutDropout(m)
			compareStructure(t, want, got, v.keepBN)
			input := randomInput(m.Input, 3)
			wantOut, gotOut := refForward(want, input), refForward(got, input)
			for i := range want.Layers {
				if d := relDiff(wantOut[i], gotOut[i]); d > 1e-5 {
					t.Errorf("layer %d (%s): outputs differ by %g after the round trip", i, want.Layers[i].Name, d)
				}
			}
		})
	}
}

// withoutDropout returns a copy of m's layer list with dropout layers removed and the
// inputs renumbered, which is what an export drops.
func withoutDropout(m *quant.Model) *quant.Model {
	out := *m
	out.Layers = nil
	newIndex := make([]int, len(m.Layers))
	for i, l := range m.Layers {
		if l.Kind == quant.KindDropout {
			newIndex[i] = remap(newIndex, l.Inputs[0])
			continue
		}
		c := *l
		c.Inputs = nil
		for _, in := range l.Inputs {
			c.Inputs = append(c.Inputs, remap(newIndex, in))
		}
		newIndex[i] = len(out.Layers)
		out.Layers = append(out.Layers, &c)
	}
	if err := out.InferShapes(); err != nil {
		panic(err)
	}
	return &out
}

func remap(idx []int, in int) int {
	if in < 0 {
		return in
	}
	return idx[in]
}

func compareStructure(t *testing.T, want, got *quant.Model, keptBN bool) {
	t.Helper()
	if got.Input != want.Input || got.Dialect != want.Dialect || got.Name != want.Name ||
		got.BNEpsilon != want.BNEpsilon || got.BNEpsInside != want.BNEpsInside {
		t.Errorf("model header %q %v %s eps %g/%v, want %q %v %s eps %g/%v", got.Name, got.Input, got.Dialect, got.BNEpsilon, got.BNEpsInside,
			want.Name, want.Input, want.Dialect, want.BNEpsilon, want.BNEpsInside)
	}
	if len(got.Layers) != len(want.Layers) {
		t.Fatalf("%d layers, want %d (%s vs %s)", len(got.Layers), len(want.Layers), Summary(got), Summary(want))
	}
	for i, w := range want.Layers {
		g := got.Layers[i]
		if g.Kind != w.Kind || g.Name != w.Name || !slices.Equal(g.Inputs, w.Inputs) || g.Out != w.Out {
			t.Errorf("layer %d: %s %q %v -> %v, want %s %q %v -> %v", i, g.Kind, g.Name, g.Inputs, g.Out, w.Kind, w.Name, w.Inputs, w.Out)
			continue
		}
		switch w.Kind {
		case quant.KindConv:
			gc, wc := *g.Conv, *w.Conv
			if (gc.BN != nil) != (keptBN && wc.BN != nil) || gc.Binary != wc.Binary {
				t.Errorf("layer %d: BN %v binary %v, want BN %v binary %v", i, gc.BN != nil, gc.Binary, keptBN && wc.BN != nil, wc.Binary)
			}
			gc.Weights, wc.Weights, gc.Bias, wc.Bias, gc.BN, wc.BN = nil, nil, nil, nil, nil, nil
			if fmt.Sprintf("%+v", gc) != fmt.Sprintf("%+v", wc) {
				t.Errorf("layer %d: conv %+v, want %+v", i, gc, wc)
			}
		case quant.KindMaxPool:
			if *g.Pool != *w.Pool {
				t.Errorf("layer %d: pool %+v, want %+v", i, *g.Pool, *w.Pool)
			}
		case quant.KindRoute:
			if *g.Route != *w.Route {
				t.Errorf("layer %d: route %+v, want %+v", i, *g.Route, *w.Route)
			}
		case quant.KindShortcut:
			if *g.Shortcut != *w.Shortcut {
				t.Errorf("layer %d: shortcut %+v, want %+v", i, *g.Shortcut, *w.Shortcut)
			}
		case quant.KindUpsample:
			if *g.Upsample != *w.Upsample {
				t.Errorf("layer %d: upsample %+v, want %+v", i, *g.Upsample, *w.Upsample)
			}
		case quant.KindRegion, quant.KindYolo:
			gh, wh := fmt.Sprintf("%+v", *g.Head), fmt.Sprintf("%+v", *w.Head)
			if gh != wh {
				t.Errorf("layer %d: head %s, want %s", i, gh, wh)
			}
		}
	}
}

// TestImportErrors edits an export into graphs the importer cannot map and checks that
// the error names the node and its op type.
func TestImportErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(g *onnxpb.GraphProto)
		want string
	}{
		{"unknown op", func(g *onnxpb.GraphProto) { findNode(g, "maxp1").OpType = onnxbuild.Ptr("AveragePool") }, `node "maxp1" (AveragePool)`},
		{"leaky slope", func(g *onnxpb.GraphProto) {
			onnxbuild.NodeAttrs(findNode(g, "conv0"))["alpha"].F = onnxbuild.Ptr(float32(0.2))
		}, `node "conv0" (LeakyRelu): alpha 0.2`},
		{"auto_pad", func(g *onnxpb.GraphProto) {
			n := findNode(g, "conv0/conv")
			n.Attribute = append(n.Attribute, onnxbuild.AttrString("auto_pad", "SAME_UPPER"))
		}, `node "conv0/conv" (Conv): auto_pad SAME_UPPER`},
		{"asymmetric conv pads", func(g *onnxpb.GraphProto) {
			onnxbuild.NodeAttrs(findNode(g, "conv0/conv"))["pads"].Ints = []int64{0, 0, 1, 1}
		}, `(Conv): pads [0 0 1 1]`},
		{"pool pads not darknet's", func(g *onnxpb.GraphProto) {
			onnxbuild.NodeAttrs(findNode(g, "maxp4"))["pads"].Ints = []int64{1, 1, 0, 0}
		}, `node "maxp4" (MaxPool): pads [1 1 0 0]`},
		{"weights not constant", func(g *onnxpb.GraphProto) { findNode(g, "conv0/conv").Input[1] = "input" }, `node "conv0/conv" (Conv): input "input" must be an initializer`},
		{"dangling input", func(g *onnxpb.GraphProto) { findNode(g, "maxp1").Input[0] = "nowhere" }, `node "maxp1" (MaxPool): input "nowhere" is not produced`},
		{"resize mode", func(g *onnxpb.GraphProto) {
			onnxbuild.NodeAttrs(findNode(g, "upsa16/resize"))["mode"].S = []byte("linear")
		}, `node "upsa16/resize" (Resize): mode "linear"`},
		{"custom domain", func(g *onnxpb.GraphProto) { findNode(g, "maxp1").Domain = onnxbuild.Ptr("qonnx.custom_op.general") }, `custom domain "qonnx.custom_op.general"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mp := mustExport(t, smallModel(t, quant.DialectAlexeyAB), ExportOptions{})
			c.edit(mp.Graph)
			_, err := Import(mp)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %s", err, c.want)
			}
		})
	}
}

func findNode(g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
	for _, n := range g.GetNode() {
		if n.GetName() == name {
			return n
		}
	}
	panic("no node " + name)
}

func TestExportRejects(t *testing.T) {
	m := smallModel(t, quant.DialectAlexeyAB)
	m.Layers[0].Conv.XNOR = true
	if _, err := Export(m, ExportOptions{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "layer 0") {
		t.Errorf("xnor: %v, want ErrUnsupported naming layer 0", err)
	}
	m = smallModel(t, quant.DialectAlexeyAB)
	m.Layers[0].Conv.Activation = "selu"
	if _, err := Export(m, ExportOptions{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown activation: %v, want ErrUnsupported", err)
	}
	m = smallModel(t, quant.DialectAlexeyAB)
	m.Layers = m.Layers[:3]
	if _, err := Export(m, ExportOptions{}); err == nil || !strings.Contains(err.Error(), "no region or yolo head") {
		t.Errorf("headless model: %v", err)
	}
}

// TestONNXChecker validates exports with the reference onnx checker (Debian
// python3-onnx), full_check including shape inference.
func TestONNXChecker(t *testing.T) {
	py := onnxPython(t)
	for _, v := range []variant{{quant.DialectPjreddie, true}, {quant.DialectAlexeyAB, false}} {
		path := writeTemp(t, mustExport(t, smallModel(t, v.dialect), ExportOptions{KeepBatchNorm: v.keepBN}))
		checkONNX(t, py, path)
	}
}

// onnxPython finds a python3 that imports onnx: Debian's /usr/bin/python3 first, since
// a pyenv or venv python3 on PATH does not see Debian's python3-onnx.
func onnxPython(tb testing.TB) string {
	tb.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import onnx").Run() == nil {
			return py
		}
	}
	tb.Skip("no python3 with the onnx module (apt-get install -y python3-onnx)")
	return ""
}

func checkONNX(tb testing.TB, py, path string) {
	tb.Helper()
	var out bytes.Buffer
	cmd := exec.Command(py, "-c", "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Errorf("onnx checker rejects %s: %v\n%s", path, err, out.String())
	}
}

func TestReadFile(t *testing.T) {
	m := smallModel(t, quant.DialectPjreddie)
	path := writeTemp(t, mustExport(t, m, ExportOptions{}))
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Heads() == nil || len(got.Heads()) != 2 {
		t.Errorf("heads %v, want 2", got.Heads())
	}
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("garbage file: %v, want an error naming the file", err)
	}
}

func FuzzImport(f *testing.F) {
	for _, v := range variants {
		data, err := proto.Marshal(mustExport(f, smallModel(f, v.dialect), ExportOptions{KeepBatchNorm: v.keepBN}))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("\x08\x07\x12\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mp, err := Unmarshal(data)
		if err != nil {
			return
		}
		m, err := Import(mp)
		if err != nil {
			return
		}
		if err := m.InferShapes(); err != nil {
			t.Fatalf("import returned a model that fails shape inference: %v", err)
		}
	})
}

// FuzzImportEdits applies one structured edit to an export (op type, attribute values,
// wiring, initializer dims, metadata) so that the fuzzer reaches the importer's graph
// logic, which random bytes seldom get past the protobuf decoder to.
func FuzzImportEdits(f *testing.F) {
	base, err := proto.Marshal(mustExport(f, smallModel(f, quant.DialectAlexeyAB), ExportOptions{KeepBatchNorm: true}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(0), uint8(0), int64(0), "Relu")
	f.Add(uint16(3), uint8(1), int64(-1), "")
	f.Add(uint16(7), uint8(2), int64(5), "conv0")
	f.Add(uint16(2), uint8(4), int64(1<<40), "")
	f.Add(uint16(0), uint8(5), int64(0), `{"kind":"yolo","num":-1}`)
	f.Fuzz(func(t *testing.T, node uint16, field uint8, v int64, s string) {
		mp, err := Unmarshal(base)
		if err != nil {
			t.Fatal(err)
		}
		g := mp.Graph
		n := g.Node[int(node)%len(g.Node)]
		switch field % 7 {
		case 0:
			n.OpType = &s
		case 1:
			for _, a := range n.Attribute {
				for i := range a.Ints {
					a.Ints[i] = v
				}
				a.I = &v
			}
		case 2:
			if len(n.Input) > 0 {
				n.Input[int(uint64(v)%uint64(len(n.Input)))] = s
			}
		case 3:
			n.Output[0] = s
		case 4:
			t0 := g.Initializer[int(node)%len(g.Initializer)]
			if len(t0.Dims) > 0 {
				t0.Dims[int(uint64(v)%uint64(len(t0.Dims)))] = v
			}
		case 5:
			mp.MetadataProps[int(node)%len(mp.MetadataProps)].Value = &s
		case 6:
			g.Node = append(g.Node[:int(node)%len(g.Node)], g.Node[int(node)%len(g.Node)+1:]...)
		}
		if m, err := Import(mp); err == nil {
			if err := m.InferShapes(); err != nil {
				t.Fatalf("import returned a model that fails shape inference: %v", err)
			}
		}
	})
}

// TestExportNameFallback checks that empty, duplicate and reserved-character layer
// names still give a valid, importable graph.
func TestExportNameFallback(t *testing.T) {
	m := smallModel(t, quant.DialectAlexeyAB)
	m.Layers[0].Name = "a/b"
	m.Layers[1].Name = ""
	m.Layers[3].Name = "conv2"
	got, err := Import(mustExport(t, m, ExportOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range got.Layers[:4] {
		names = append(names, l.Name)
	}
	if want := []string{"layer0", "layer1", "conv2", "layer3"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}
