package qonnx

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// File-level constants.
const (
	Opset       = 11
	IRVersion   = 6
	Domain      = "qonnx.custom_op.general"
	InputName   = "input"
	MetaKey     = "pynq.qonnx"
	metaFormat  = 1
	annotKey    = "finn_datatype"
	scaledInput = "input/scaled"
)

// Options tune [Build] and [WriteFile].
type Options struct {
	// Streamlined writes FINN's streamlined form: every convolution with integer
	// thresholds becomes Conv(levels, ±1 weights) + MultiThreshold.
	Streamlined bool
	Stage       string // recorded in the metadata ("finn", "w1", "w1a3", "calibrated", ...)
	Doc         string // doc_string of the model
	// Metadata adds metadata_props entries (e.g. "pynq.calibration": the calibration
	// summary quant calibrate writes).
	Metadata map[string]string
}

// HeadOutputName is the graph output of head layer i.
func HeadOutputName(i int) string { return "head_" + strconv.Itoa(i) }

// WriteFile writes m as a QONNX file (see [Build]).
func WriteFile(path string, m *quant.Model, opt Options) error {
	mp, err := Build(m, opt)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		return fmt.Errorf("encode qonnx model: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write qonnx model: %w", err)
	}
	return nil
}

// produced is the tensor a layer's output lives in: values, or integer levels of a
// quantizer with the given scale.
type produced struct {
	name   string
	levels bool
	scale  float32
}

type builder struct {
	m       *quant.Model
	opt     Options
	g       *onnxpb.GraphProto
	out     []produced
	derived map[string]string // cache of converted tensors (values <-> levels)
	meta    fileMeta
}

// Build converts m into a QONNX ModelProto (layout in the package doc). m must have
// its weights; shapes are inferred.
func Build(m *quant.Model, opt Options) (*onnxpb.ModelProto, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("qonnx: %w", err)
	}
	b := &builder{m: m, opt: opt, g: &onnxpb.GraphProto{Name: onnxbuild.Ptr(graphName(m))}, derived: map[string]string{},
		out: make([]produced, len(m.Layers))}
	b.meta = fileMeta{Format: metaFormat, Stage: opt.Stage, Name: m.Name, Dialect: string(m.Dialect),
		Input: [3]int{m.Input.C, m.Input.H, m.Input.W}, BNEpsilon: 0, BNEpsInside: true}
	b.g.Input = []*onnxpb.ValueInfoProto{{Name: onnxbuild.Ptr(InputName),
		Type: onnxbuild.TensorType(1, int64(m.Input.C), int64(m.Input.H), int64(m.Input.W))}}
	b.annotate(InputName, "UINT8")
	b.node("Mul", "input/scale", []string{InputName, b.scalar("input/inv255", float32(1.0/255))}, scaledInput)
	for i, l := range m.Layers {
		lm, err := b.layer(i, l)
		if err != nil {
			return nil, fmt.Errorf("qonnx: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		b.meta.Layers = append(b.meta.Layers, lm)
	}
	js, err := json.Marshal(b.meta)
	if err != nil {
		return nil, fmt.Errorf("qonnx: metadata: %w", err)
	}
	doc := opt.Doc
	if doc == "" {
		doc = "QONNX model " + m.Name + " written by pynqctl quant"
	}
	return &onnxpb.ModelProto{
		IrVersion: onnxbuild.Ptr(int64(IRVersion)),
		OpsetImport: []*onnxpb.OperatorSetIdProto{
			{Domain: onnxbuild.Ptr(""), Version: onnxbuild.Ptr(int64(Opset))},
			{Domain: onnxbuild.Ptr(Domain), Version: onnxbuild.Ptr(int64(1))},
		},
		ProducerName:    onnxbuild.Ptr("pynq-agent"),
		ProducerVersion: onnxbuild.Ptr("quant/qonnx"),
		DocString:       onnxbuild.Ptr(doc),
		Graph:           b.g,
		MetadataProps:   metadataProps(string(js), opt.Metadata),
	}, nil
}

func metadataProps(meta string, extra map[string]string) []*onnxpb.StringStringEntryProto {
	props := []*onnxpb.StringStringEntryProto{{Key: onnxbuild.Ptr(MetaKey), Value: onnxbuild.Ptr(meta)}}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if k != MetaKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		props = append(props, &onnxpb.StringStringEntryProto{Key: onnxbuild.Ptr(k), Value: onnxbuild.Ptr(extra[k])})
	}
	return props
}

func graphName(m *quant.Model) string {
	if m.Name != "" {
		return m.Name
	}
	return "model"
}

func (b *builder) node(op, name string, inputs []string, output string, at ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	n := onnxbuild.Node(op, name, inputs, output, at...)
	switch op {
	case "Quant", "BipolarQuant", "MultiThreshold":
		n.Domain = onnxbuild.Ptr(Domain)
	}
	b.g.Node = append(b.g.Node, n)
	return n
}

func (b *builder) init(name string, dims []int64, data []float32) string {
	b.g.Initializer = append(b.g.Initializer, onnxbuild.FloatTensor(name, dims, data))
	return name
}

func (b *builder) scalar(name string, v float32) string { return b.init(name, nil, []float32{v}) }

func (b *builder) initInt64(name string, data ...int64) string {
	b.g.Initializer = append(b.g.Initializer, onnxbuild.Int64Tensor(name, []int64{int64(len(data))}, data))
	return name
}

func (b *builder) annotate(tensor, dtype string) {
	b.g.QuantizationAnnotation = append(b.g.QuantizationAnnotation, &onnxpb.TensorAnnotation{
		TensorName:                onnxbuild.Ptr(tensor),
		QuantParameterTensorNames: []*onnxpb.StringStringEntryProto{{Key: onnxbuild.Ptr(annotKey), Value: onnxbuild.Ptr(dtype)}},
	})
}

func levelType(bits int, signed bool) string {
	if signed {
		return "INT" + strconv.Itoa(bits)
	}
	return "UINT" + strconv.Itoa(bits)
}

// values returns a tensor holding layer i's output values.
func (b *builder) values(i int) string {
	if i < 0 {
		return scaledInput
	}
	p := b.out[i]
	if !p.levels {
		return p.name
	}
	key := p.name + "/value"
	if n, ok := b.derived[key]; ok {
		return n
	}
	b.node("Mul", key, []string{p.name, b.scalar(p.name+"/scale", p.scale)}, key)
	b.derived[key] = key
	return key
}

// levels returns a tensor holding layer i's output levels (i reads a quantizer).
func (b *builder) levels(i int) string {
	p := b.out[i]
	if p.levels {
		return p.name
	}
	key := p.name + "/levels"
	if n, ok := b.derived[key]; ok {
		return n
	}
	scale, _ := b.quantized(i)
	div := p.name + "/div"
	b.node("Div", div, []string{p.name, b.scalar(p.name+"/levelscale", scale)}, div)
	b.node("Round", key, []string{div}, key)
	b.derived[key] = key
	return key
}

// source returns the quantizer scale and bits behind layer i's output when it holds
// levels or quantized values (through pools), else ok false.
func (b *builder) quantized(i int) (scale float32, ok bool) {
	src := levelSource(b.m, i)
	if src < 0 {
		return 0, false
	}
	return b.m.Layers[src].Quant.ActScale, true
}

func (b *builder) layer(i int, l *quant.Layer) (layerMeta, error) {
	name := l.Name
	if name == "" {
		name = "layer" + strconv.Itoa(i)
	}
	lm := layerMeta{Name: name, Kind: l.Kind, Inputs: l.Inputs, Pool: l.Pool, Route: l.Route,
		Shortcut: l.Shortcut, Upsample: l.Upsample, Head: l.Head}
	b.out[i] = produced{name: name}
	switch l.Kind {
	case quant.KindConv:
		return lm, b.conv(i, name, l, &lm)
	case quant.KindMaxPool:
		p := l.Pool
		in := l.Inputs[0]
		var x string
		if in >= 0 && b.out[in].levels {
			x = b.out[in].name
			b.out[i] = produced{name: name, levels: true, scale: b.out[in].scale}
			if q := b.m.Layers[levelSource(b.m, in)].Quant; q != nil {
				b.annotate(name, levelType(q.ActBits, q.ActSigned))
			}
		} else {
			x = b.values(in)
		}
		b.node("MaxPool", name, []string{x}, name,
			onnxbuild.AttrInts("kernel_shape", int64(p.Size), int64(p.Size)), onnxbuild.AttrInts("strides", int64(p.Stride), int64(p.Stride)),
			onnxbuild.AttrInts("pads", int64(p.Pad/2), int64(p.Pad/2), int64(p.Pad-p.Pad/2), int64(p.Pad-p.Pad/2)))
	case quant.KindRoute:
		var ins []string
		for _, k := range l.Inputs {
			x := b.values(k)
			if l.Route.Groups > 1 {
				c := int64(b.m.OutputShape(k).C / l.Route.Groups)
				s := fmt.Sprintf("%s/slice%d", name, len(ins))
				start := c * int64(l.Route.GroupID)
				b.node("Slice", s, []string{x, b.initInt64(s+"/starts", start), b.initInt64(s+"/ends", start+c), b.initInt64(s+"/axes", 1)}, s)
				x = s
			}
			ins = append(ins, x)
		}
		if len(ins) == 1 {
			b.node("Identity", name, ins, name)
		} else {
			b.node("Concat", name, ins, name, onnxbuild.AttrInt("axis", 1))
		}
	case quant.KindShortcut:
		sum := name
		if l.Shortcut.Activation != quant.ActLinear {
			sum = name + "/add"
		}
		b.node("Add", sum, []string{b.values(l.Inputs[0]), b.values(l.Inputs[1])}, sum)
		if err := b.activation(name, sum, l.Shortcut.Activation); err != nil {
			return lm, err
		}
	case quant.KindUpsample:
		u := l.Upsample
		s := float32(u.Stride)
		out := name
		if u.Scale != 0 && u.Scale != 1 {
			out = name + "/resize"
		}
		b.node("Resize", out, []string{b.values(l.Inputs[0]), b.init(name+"/roi", []int64{0}, nil),
			b.init(name+"/scales", []int64{4}, []float32{1, 1, s, s})}, out,
			onnxbuild.AttrString("mode", "nearest"), onnxbuild.AttrString("coordinate_transformation_mode", "asymmetric"),
			onnxbuild.AttrString("nearest_mode", "floor"))
		if out != name {
			b.node("Mul", name, []string{out, b.scalar(name+"/scale", u.Scale)}, name)
		}
	case quant.KindDropout:
		b.node("Identity", name, []string{b.values(l.Inputs[0])}, name)
	case quant.KindRegion, quant.KindYolo:
		out := HeadOutputName(i)
		b.node("Identity", name, []string{b.values(l.Inputs[0])}, out)
		b.out[i] = produced{name: out}
		s := l.Out
		b.g.Output = append(b.g.Output, &onnxpb.ValueInfoProto{Name: onnxbuild.Ptr(out), Type: onnxbuild.TensorType(1, int64(s.C), int64(s.H), int64(s.W))})
	default:
		return lm, fmt.Errorf("layer kind %q: %w", l.Kind, ErrUnsupported)
	}
	return lm, nil
}

func (b *builder) activation(name, x string, a quant.Activation) error {
	switch a {
	case quant.ActLinear, "":
		if x != name {
			b.node("Identity", name, []string{x}, name)
		}
	case quant.ActReLU:
		b.node("Relu", name, []string{x}, name)
	case quant.ActLeaky:
		b.node("LeakyRelu", name, []string{x}, name, onnxbuild.AttrFloat("alpha", LeakySlope))
	case quant.ActLogistic:
		b.node("Sigmoid", name, []string{x}, name)
	case quant.ActLHTan: // quant/onnx's chain; [Activate] evaluates it op by op
		low, mul, high := name+"/lhtan_low", name+"/lhtan_mul", name+"/lhtan_high"
		b.node("LeakyRelu", low, []string{x}, low, onnxbuild.AttrFloat("alpha", onnx.LHTanSlope))
		b.node("Mul", mul, []string{x, b.scalar(name+"/lhtan_slope", onnx.LHTanSlope)}, mul)
		b.node("Add", high, []string{mul, b.scalar(name+"/lhtan_top", onnx.LHTanTop)}, high)
		b.node("Min", name, []string{low, high}, name)
	default:
		return fmt.Errorf("activation %q: %w", a, ErrUnsupported)
	}
	return nil
}

func (b *builder) conv(i int, name string, l *quant.Layer, lm *layerMeta) error {
	c, q := l.Conv, l.Quant
	if c.Weights == nil {
		return fmt.Errorf("no weights (load the .weights file)")
	}
	cm := &convMeta{Filters: c.Filters, Size: c.Size, Stride: c.Stride, Pad: c.Pad, Groups: c.Groups,
		Activation: c.Activation, Binary: c.Binary, XNOR: c.XNOR}
	lm.Conv = cm
	if q != nil {
		lm.Quant = &quantMeta{WeightBits: q.WeightBits, ActBits: q.ActBits, ActScale: q.ActScale, ActSigned: q.ActSigned,
			Thresholds: q.Thresholds, Invert: q.Invert}
	}
	wdims := []int64{int64(c.Filters), int64(l.In.C / c.Groups), int64(c.Size), int64(c.Size)}
	pads := int64(c.Pad)
	convAttrs := []*onnxpb.AttributeProto{
		onnxbuild.AttrInts("kernel_shape", int64(c.Size), int64(c.Size)), onnxbuild.AttrInts("strides", int64(c.Stride), int64(c.Stride)),
		onnxbuild.AttrInts("pads", pads, pads, pads, pads), onnxbuild.AttrInts("dilations", 1, 1), onnxbuild.AttrInt("group", int64(c.Groups)),
	}
	if q != nil && len(q.Thresholds) > 0 && (b.opt.Streamlined || !thresholdsDerived(b.m, i)) {
		return b.thresholdConv(i, name, l, cm, wdims, convAttrs)
	}
	if !ActivationSupported(c.Activation) {
		return fmt.Errorf("activation %q: %w", c.Activation, ErrUnsupported)
	}
	cm.Weights = b.init(name+"/W", wdims, c.Weights)
	w := cm.Weights
	if q != nil && q.WeightBits > 0 {
		if len(q.WeightScale) != c.Filters {
			return fmt.Errorf("%d weight scales for %d filters", len(q.WeightScale), c.Filters)
		}
		lm.Quant.WeightScale = b.init(name+"/W_scale", []int64{int64(c.Filters), 1, 1, 1}, q.WeightScale)
		w = name + "/Wq"
		if q.WeightBits == 1 {
			b.node("BipolarQuant", w, []string{cm.Weights, lm.Quant.WeightScale}, w)
		} else {
			b.node("Quant", w, []string{cm.Weights, lm.Quant.WeightScale, b.scalar(name+"/W_zeropt", 0),
				b.scalar(name+"/W_bitwidth", float32(q.WeightBits))}, w,
				onnxbuild.AttrInt("signed", 1), onnxbuild.AttrInt("narrow", 1), onnxbuild.AttrString("rounding_mode", "ROUND"))
		}
	}
	inputs := []string{b.values(l.Inputs[0]), w}
	if c.Bias != nil {
		cm.Bias = b.init(name+"/B", []int64{int64(c.Filters)}, c.Bias)
		if c.BN == nil {
			inputs = append(inputs, cm.Bias)
		}
	}
	x := name + "/conv"
	b.node("Conv", x, inputs, x, convAttrs...)
	if bn := c.BN; bn != nil {
		v := make([]float32, c.Filters)
		for o := range v {
			sd := BNStd(b.m, bn.Variance[o])
			v[o] = float32(float64(sd) * float64(sd))
		}
		bias := cm.Bias
		if bias == "" {
			bias = b.init(name+"/B", []int64{int64(c.Filters)}, make([]float32, c.Filters))
			cm.Bias = bias
		}
		cm.BNScale = b.init(name+"/bn_scale", []int64{int64(c.Filters)}, bn.Scale)
		cm.BNMean = b.init(name+"/bn_mean", []int64{int64(c.Filters)}, bn.Mean)
		cm.BNVar = b.init(name+"/bn_var", []int64{int64(c.Filters)}, v)
		y := name + "/bn"
		b.node("BatchNormalization", y, []string{x, cm.BNScale, bias, cm.BNMean, cm.BNVar}, y,
			onnxbuild.AttrFloat("epsilon", 0), onnxbuild.AttrFloat("momentum", 0.9))
		x = y
	}
	act := name
	if q != nil && q.ActBits > 0 {
		act = name + "/act"
		if c.Activation == quant.ActLinear {
			act = x
		}
	}
	if err := b.activation(act, x, WrittenActivation(l)); err != nil {
		return err
	}
	if q != nil && q.ActBits > 0 {
		b.node("Quant", name, []string{act, b.scalar(name+"/act_scale", q.ActScale), b.scalar(name+"/act_zeropt", 0),
			b.scalar(name+"/act_bitwidth", float32(q.ActBits))}, name,
			onnxbuild.AttrInt("signed", boolInt(q.ActSigned)), onnxbuild.AttrInt("narrow", 0), onnxbuild.AttrString("rounding_mode", "ROUND"))
		if b.opt.Streamlined && !q.ActSigned {
			// Downstream streamlined layers read levels: expose them (exact: the scale
			// keeps few enough bits that value/scale is the level).
			b.out[i] = produced{name: name, levels: false, scale: q.ActScale}
		}
	}
	return nil
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// thresholdConv writes Conv(levels, ±1) + MultiThreshold for layer i.
func (b *builder) thresholdConv(i int, name string, l *quant.Layer, cm *convMeta, wdims []int64, convAttrs []*onnxpb.AttributeProto) error {
	c, q := l.Conv, l.Quant
	src := levelSource(b.m, l.Inputs[0])
	if src < 0 || c.Groups != 1 {
		return fmt.Errorf("thresholds need a quantized input and an ungrouped convolution")
	}
	n := 1<<q.ActBits - 1
	if len(q.Thresholds) != c.Filters || len(q.Invert) != c.Filters {
		return fmt.Errorf("%d threshold rows / %d invert flags for %d filters", len(q.Thresholds), len(q.Invert), c.Filters)
	}
	per := len(c.Weights) / c.Filters
	w := make([]float32, len(c.Weights))
	t := make([]float32, c.Filters*n)
	for o := range c.Filters {
		sign := float32(1)
		if q.Invert[o] {
			sign = -1
		}
		for k, v := range c.Weights[o*per : (o+1)*per] {
			w[o*per+k] = sign * BipolarSign(v)
		}
		if len(q.Thresholds[o]) != n {
			return fmt.Errorf("channel %d has %d thresholds, want %d", o, len(q.Thresholds[o]), n)
		}
		for k, v := range q.Thresholds[o] {
			if q.Invert[o] {
				v = 1 - v // acc' = -acc >= 1-T  iff  acc < T
			}
			t[o*n+k] = float32(v)
		}
	}
	cm.Weights = b.init(name+"/Wbin", wdims, w)
	cm.Flipped = true
	b.annotate(cm.Weights, "BIPOLAR")
	acc := name + "/acc"
	b.node("Conv", acc, []string{b.levels(l.Inputs[0]), cm.Weights}, acc, convAttrs...)
	th := b.init(name+"/thresholds", []int64{int64(c.Filters), int64(n)}, t)
	b.node("MultiThreshold", name, []string{acc, th}, name,
		onnxbuild.AttrString("out_dtype", levelType(q.ActBits, false)), onnxbuild.AttrFloat("out_scale", 1), onnxbuild.AttrFloat("out_bias", 0),
		onnxbuild.AttrString("data_layout", "NCHW"))
	b.annotate(name, levelType(q.ActBits, false))
	b.out[i] = produced{name: name, levels: true, scale: q.ActScale}
	return nil
}
