package onnx

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// Opset is the ONNX operator set the exporter writes; IRVersion the matching IR version.
const (
	Opset     = 13
	IRVersion = 7
	InputName = "input"
)

// ExportOptions tunes [Export].
type ExportOptions struct {
	// KeepBatchNorm writes BatchNormalization nodes (parameters converted to ONNX's
	// sqrt(var+epsilon) form) instead of folding batch norm into the conv weights.
	KeepBatchNorm bool
}

// ErrUnsupported is wrapped when a model or graph uses something this package cannot
// express.
var ErrUnsupported error = unsupported.Error("not supported")

// Export writes m as an opset-13 ONNX model. It runs shape inference on m first.
func Export(m *quant.Model, opt ExportOptions) (*onnxpb.ModelProto, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("export onnx: %w", err)
	}
	b := &exporter{m: m, opt: opt, g: &onnxpb.GraphProto{Name: onnxbuild.Ptr(graphName(m))}, used: map[string]bool{InputName: true}}
	b.g.Input = []*onnxpb.ValueInfoProto{{
		Name: onnxbuild.Ptr(InputName), Type: onnxbuild.TensorType(1, int64(m.Input.C), int64(m.Input.H), int64(m.Input.W)),
	}}
	b.tensor = make([]string, len(m.Layers))
	for i, l := range m.Layers {
		if err := b.layer(i, l); err != nil {
			return nil, fmt.Errorf("export onnx: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
	}
	props, err := b.metadata()
	if err != nil {
		return nil, fmt.Errorf("export onnx: %w", err)
	}
	return &onnxpb.ModelProto{
		IrVersion:       onnxbuild.Ptr(int64(IRVersion)),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: onnxbuild.Ptr(""), Version: onnxbuild.Ptr(int64(Opset))}},
		ProducerName:    onnxbuild.Ptr("pynq-agent"),
		ProducerVersion: onnxbuild.Ptr("quant/onnx"),
		DocString:       onnxbuild.Ptr("darknet model " + m.Name + " exported by pynqctl quant convert"),
		Graph:           b.g,
		MetadataProps:   props,
	}, nil
}

// WriteFile serializes mp to path.
func WriteFile(path string, mp *onnxpb.ModelProto) error {
	data, err := proto.Marshal(mp)
	if err != nil {
		return fmt.Errorf("encode onnx model: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write onnx model: %w", err)
	}
	return nil
}

func graphName(m *quant.Model) string {
	if m.Name != "" {
		return m.Name
	}
	return "darknet"
}

// HeadOutputName is the graph output that exposes the input of head layer i.
func HeadOutputName(i int) string { return "head_" + strconv.Itoa(i) }

type exporter struct {
	m       *quant.Model
	opt     ExportOptions
	g       *onnxpb.GraphProto
	tensor  []string // tensor holding layer i's output
	used    map[string]bool
	heads   []string // head output names
	headsOf []string // head layer (node) names
	binary  []string
	classes int
}

// in returns the tensor holding the output of layer index i (-1: the network input).
func (b *exporter) in(i int) string {
	if i < 0 {
		return InputName
	}
	return b.tensor[i]
}

// layerName picks a unique tensor/node name for layer i. Helper tensors and
// initializers are "<layer>/..." and "<layer>.<param>", so layer names with '/' or '.'
// fall back to "layer<i>" to keep all names apart.
func (b *exporter) layerName(i int, l *quant.Layer) string {
	name := l.Name
	if name == "" || b.used[name] || strings.ContainsAny(name, "/.") {
		name = "layer" + strconv.Itoa(i)
	}
	for b.used[name] {
		name += "_"
	}
	b.used[name] = true
	return name
}

func (b *exporter) node(op, name string, inputs []string, output string, at ...*onnxpb.AttributeProto) {
	b.g.Node = append(b.g.Node, onnxbuild.Node(op, name, inputs, output, at...))
}

func (b *exporter) initFloat(name string, dims []int64, data []float32) string {
	b.g.Initializer = append(b.g.Initializer, onnxbuild.FloatTensor(name, dims, data))
	return name
}

func (b *exporter) initInt64(name string, data ...int64) string {
	b.g.Initializer = append(b.g.Initializer, onnxbuild.Int64Tensor(name, []int64{int64(len(data))}, data))
	return name
}

func (b *exporter) layer(i int, l *quant.Layer) error {
	if l.Kind == quant.KindDropout {
		b.tensor[i] = b.in(l.Inputs[0]) // inference-time identity
		return nil
	}
	name := b.layerName(i, l)
	b.tensor[i] = name
	switch l.Kind {
	case quant.KindConv:
		return b.conv(name, l)
	case quant.KindMaxPool:
		return b.maxpool(name, l)
	case quant.KindRoute:
		return b.route(name, l)
	case quant.KindShortcut:
		return b.activation(name, l.Shortcut.Activation, func(out string) {
			b.node("Add", name+"/add", []string{b.in(l.Inputs[0]), b.in(l.Inputs[1])}, out)
		})
	case quant.KindUpsample:
		return b.upsample(name, l)
	case quant.KindRegion, quant.KindYolo:
		return b.head(name, l)
	}
	return fmt.Errorf("layer kind %q: %w", l.Kind, ErrUnsupported)
}

// activation emits pre (which must write the tensor it is given) followed by act; the
// final tensor is name. With act linear pre writes name directly.
func (b *exporter) activation(name string, act quant.Activation, pre func(out string)) error {
	if act == quant.ActLinear || act == "" {
		pre(name)
		b.renameLast(name)
		return nil
	}
	x := name + "/pre"
	pre(x)
	switch act {
	case quant.ActLeaky:
		b.node("LeakyRelu", name, []string{x}, name, onnxbuild.AttrFloat("alpha", 0.1))
	case quant.ActReLU:
		b.node("Relu", name, []string{x}, name)
	case quant.ActLogistic:
		b.node("Sigmoid", name, []string{x}, name)
	case quant.ActMish: // x * tanh(softplus(x))
		b.node("Softplus", name+"/softplus", []string{x}, name+"/softplus")
		b.node("Tanh", name+"/tanh", []string{name + "/softplus"}, name+"/tanh")
		b.node("Mul", name, []string{x, name + "/tanh"}, name)
	case quant.ActSwish: // x * sigmoid(x)
		b.node("Sigmoid", name+"/sigmoid", []string{x}, name+"/sigmoid")
		b.node("Mul", name, []string{x, name + "/sigmoid"}, name)
	case quant.ActLHTan:
		b.lhtan(name, x)
	default:
		return fmt.Errorf("activation %q: %w", act, ErrUnsupported)
	}
	return nil
}

// LHTanSlope and LHTanTop are the constants of the exported lhtan: darknet's slope
// outside [0,1] and 1 - LHTanSlope.
const (
	LHTanSlope = float32(0.001)
	LHTanTop   = float32(0.999)
)

// lhtan writes darknet's leaky hard tanh with standard ops:
// Min(LeakyRelu(x, 0.001), 0.001*x + 0.999). Below 0 the LeakyRelu branch is the
// smaller (0.001x < 0.001x + 0.999), on [0,1] it is x <= 0.001x + 0.999 (equal at 1),
// above 1 the line 0.001(x-1) + 1 is: lhtan everywhere, up to float32 rounding.
func (b *exporter) lhtan(name, x string) {
	low, mul, high := name+"/lhtan_low", name+"/lhtan_mul", name+"/lhtan_high"
	b.node("LeakyRelu", low, []string{x}, low, onnxbuild.AttrFloat("alpha", LHTanSlope))
	b.node("Mul", mul, []string{x, b.initFloat(name+"/lhtan_slope", nil, []float32{LHTanSlope})}, mul)
	b.node("Add", high, []string{mul, b.initFloat(name+"/lhtan_top", nil, []float32{LHTanTop})}, high)
	b.node("Min", name, []string{low, high}, name)
}

// renameLast gives the layer's last node the layer's own name when it writes the
// layer's tensor, so node names follow layer names.
func (b *exporter) renameLast(name string) {
	if n := b.g.Node[len(b.g.Node)-1]; len(n.Output) == 1 && n.Output[0] == name {
		n.Name = onnxbuild.Ptr(name)
	}
}

func (b *exporter) conv(name string, l *quant.Layer) error {
	c := l.Conv
	if c.XNOR {
		return fmt.Errorf("xnor convolution (binarized inputs): %w", ErrUnsupported)
	}
	if c.Weights == nil {
		return fmt.Errorf("convolution has no weights (load the .weights file)")
	}
	weights := c.Weights
	if c.Binary {
		weights = binarize(weights, c.Filters)
		b.binary = append(b.binary, name)
	}
	bias := c.Bias
	if bias == nil {
		bias = make([]float32, c.Filters)
	}
	wdims := []int64{int64(c.Filters), int64(l.In.C / c.Groups), int64(c.Size), int64(c.Size)}
	p := int64(c.Pad)
	at := []*onnxpb.AttributeProto{
		onnxbuild.AttrInts("kernel_shape", int64(c.Size), int64(c.Size)),
		onnxbuild.AttrInts("strides", int64(c.Stride), int64(c.Stride)),
		onnxbuild.AttrInts("pads", p, p, p, p),
		onnxbuild.AttrInts("dilations", 1, 1),
		onnxbuild.AttrInt("group", int64(c.Groups)),
	}
	if c.BN != nil && b.opt.KeepBatchNorm {
		w := b.initFloat(name+".weight", wdims, weights)
		scale, beta, mean, variance, eps := onnxBatchNorm(b.m, c.BN, bias)
		return b.activation(name, c.Activation, func(out string) {
			b.node("Conv", name+"/conv", []string{b.in(l.Inputs[0]), w}, name+"/conv", at...)
			ins := []string{name + "/conv",
				b.initFloat(name+".bn.scale", []int64{int64(c.Filters)}, scale),
				b.initFloat(name+".bn.bias", []int64{int64(c.Filters)}, beta),
				b.initFloat(name+".bn.mean", []int64{int64(c.Filters)}, mean),
				b.initFloat(name+".bn.var", []int64{int64(c.Filters)}, variance)}
			b.node("BatchNormalization", name+"/bn", ins, out, onnxbuild.AttrFloat("epsilon", eps))
		})
	}
	if c.BN != nil {
		weights, bias = foldBatchNorm(b.m, c.BN, weights, bias)
	}
	w := b.initFloat(name+".weight", wdims, weights)
	bb := b.initFloat(name+".bias", []int64{int64(c.Filters)}, bias)
	return b.activation(name, c.Activation, func(out string) {
		b.node("Conv", name+"/conv", []string{b.in(l.Inputs[0]), w, bb}, out, at...)
	})
}

// binarize applies darknet's binary=1 forward pass to OIHW weights ([quant.Binarize]).
func binarize(w []float32, filters int) []float32 {
	out := make([]float32, len(w))
	quant.Binarize(out, w, filters)
	return out
}

// bnStd is the divisor darknet uses for one channel's batch norm.
func bnStd(m *quant.Model, variance float32) float64 {
	eps := float64(m.BNEpsilon)
	if m.BNEpsInside {
		return math.Sqrt(float64(variance) + eps)
	}
	return math.Sqrt(float64(variance)) + eps
}

// foldBatchNorm returns the weights and bias of a conv computing
// scale*(conv(x)-mean)/std + bias in one step.
func foldBatchNorm(m *quant.Model, bn *quant.BatchNorm, w, bias []float32) ([]float32, []float32) {
	filters := len(bias)
	per := len(w) / filters
	fw := make([]float32, len(w))
	fb := make([]float32, filters)
	for f := 0; f < filters; f++ {
		k := float64(bn.Scale[f]) / bnStd(m, bn.Variance[f])
		for j := f * per; j < (f+1)*per; j++ {
			fw[j] = float32(float64(w[j]) * k)
		}
		fb[f] = float32(float64(bias[f]) - k*float64(bn.Mean[f]))
	}
	return fw, fb
}

// onnxBatchNorm converts darknet batch norm to ONNX's
// scale*(x-mean)/sqrt(var+epsilon) + bias. AlexeyAB's formula is ONNX's with the model's
// epsilon. pjreddie divides by sqrt(var)+eps instead; var' = (sqrt(var)+eps)^2 with
// epsilon 0 gives the same divisor exactly, whereas keeping epsilon and subtracting it
// from var' cancels catastrophically in float32 for channels with var near 0.
func onnxBatchNorm(m *quant.Model, bn *quant.BatchNorm, bias []float32) (scale, beta, mean, variance []float32, eps float32) {
	if m.BNEpsInside {
		return bn.Scale, bias, bn.Mean, bn.Variance, m.BNEpsilon
	}
	variance = make([]float32, len(bn.Variance))
	for i, v := range bn.Variance {
		s := bnStd(m, v)
		variance[i] = float32(s * s)
	}
	return bn.Scale, bias, bn.Mean, variance, 0
}

func (b *exporter) maxpool(name string, l *quant.Layer) error {
	p := l.Pool
	begin, end := int64(p.Pad/2), int64(p.Pad-p.Pad/2)
	if end >= int64(p.Size) {
		// onnxruntime rejects pads that reach a whole window into the padding.
		return fmt.Errorf("maxpool padding %d with size %d: %w", p.Pad, p.Size, ErrUnsupported)
	}
	// ONNX: floor((H + begin + end - size) / stride) + 1, the IR's formula.
	if oh := (int64(l.In.H)+begin+end-int64(p.Size))/int64(p.Stride) + 1; oh != int64(l.Out.H) {
		return fmt.Errorf("maxpool output height %d in onnx, %d in darknet", oh, l.Out.H)
	}
	b.node("MaxPool", name, []string{b.in(l.Inputs[0])}, name,
		onnxbuild.AttrInts("kernel_shape", int64(p.Size), int64(p.Size)),
		onnxbuild.AttrInts("strides", int64(p.Stride), int64(p.Stride)),
		onnxbuild.AttrInts("pads", begin, begin, end, end))
	return nil
}

func (b *exporter) route(name string, l *quant.Layer) error {
	r := l.Route
	var ins []string
	for k, from := range l.Inputs {
		x := b.in(from)
		if r.Groups > 1 {
			c := int64(b.m.OutputShape(from).C / r.Groups)
			s := fmt.Sprintf("%s/slice%d", name, k)
			out := s
			if len(l.Inputs) == 1 {
				out = name
			}
			b.node("Slice", s, []string{x,
				b.initInt64(s+".starts", c*int64(r.GroupID)),
				b.initInt64(s+".ends", c*int64(r.GroupID+1)),
				b.initInt64(s+".axes", 1)}, out)
			x = out
		}
		ins = append(ins, x)
	}
	switch {
	case len(ins) == 1 && r.Groups > 1:
		b.renameLast(name)
	case len(ins) == 1:
		b.node("Identity", name, ins, name)
	default:
		b.node("Concat", name, ins, name, onnxbuild.AttrInt("axis", 1))
	}
	return nil
}

func (b *exporter) upsample(name string, l *quant.Layer) error {
	u := l.Upsample
	s := float32(u.Stride)
	resize := func(out string) {
		b.node("Resize", name+"/resize", []string{b.in(l.Inputs[0]), "",
			b.initFloat(name+".scales", []int64{4}, []float32{1, 1, s, s})}, out,
			onnxbuild.AttrString("mode", "nearest"),
			onnxbuild.AttrString("coordinate_transformation_mode", "asymmetric"),
			onnxbuild.AttrString("nearest_mode", "floor"))
	}
	if u.Scale == 1 || u.Scale == 0 {
		resize(name)
		b.renameLast(name)
		return nil
	}
	resize(name + "/resize")
	b.node("Mul", name, []string{name + "/resize", b.initFloat(name+".scale", nil, []float32{u.Scale})}, name)
	return nil
}

func (b *exporter) head(name string, l *quant.Layer) error {
	out := HeadOutputName(l.Index)
	if b.used[out] {
		return fmt.Errorf("head output %q clashes with a layer name", out)
	}
	b.used[out] = true
	b.node("Identity", name, []string{b.in(l.Inputs[0])}, out)
	b.tensor[l.Index] = out
	s := l.In
	b.g.Output = append(b.g.Output, &onnxpb.ValueInfoProto{
		Name: onnxbuild.Ptr(out), Type: onnxbuild.TensorType(1, int64(s.C), int64(s.H), int64(s.W)),
		DocString: onnxbuild.Ptr(fmt.Sprintf("raw input of %s layer %d (%s); decode with metadata %s%s", l.Kind, l.Index, l.Name, MetaHeadPrefix, out)),
	})
	b.heads = append(b.heads, out)
	b.headsOf = append(b.headsOf, name)
	b.classes = max(b.classes, l.Head.Classes)
	return nil
}

func (b *exporter) metadata() ([]*onnxpb.StringStringEntryProto, error) {
	m := b.m
	if len(b.heads) == 0 {
		return nil, fmt.Errorf("model has no region or yolo head, so the graph would have no output")
	}
	mm := ModelMeta{
		Format: metaFormat, Name: m.Name, Dialect: string(m.Dialect), Input: shape3(m.Input),
		Classes: b.classes, BNEpsilon: m.BNEpsilon, BNEpsInside: m.BNEpsInside,
		BNFolded: !b.opt.KeepBatchNorm, Heads: b.heads, BinaryLayers: b.binary,
	}
	p, err := metaProp(MetaModel, mm)
	if err != nil {
		return nil, err
	}
	props := []*onnxpb.StringStringEntryProto{p}
	k := 0
	for _, l := range m.Layers {
		if l.Kind != quant.KindRegion && l.Kind != quant.KindYolo {
			continue
		}
		hm := headMeta(m, l)
		hm.Name = b.headsOf[k]
		p, err := metaProp(MetaHeadPrefix+b.heads[k], hm)
		if err != nil {
			return nil, err
		}
		props = append(props, p)
		k++
	}
	return props, nil
}
