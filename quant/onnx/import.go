package onnx

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// ReadFile reads and imports an ONNX model file.
func ReadFile(path string) (*quant.Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read onnx model: %w", err)
	}
	mp, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := Import(mp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Unmarshal decodes a serialized ModelProto.
func Unmarshal(data []byte) (*onnxpb.ModelProto, error) {
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, fmt.Errorf("decode onnx model (is it an .onnx file?): %w", err)
	}
	return mp, nil
}

// Import maps an ONNX graph onto the IR. It understands the node patterns [Export]
// writes (see the package documentation) and reports any other node by name and op
// type. Head layers come back from the "pynq.head.*" metadata; without it the graph
// outputs are not heads and the model has none.
func Import(mp *onnxpb.ModelProto) (*quant.Model, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("import onnx: model has no graph")
	}
	if err := checkOpset(mp); err != nil {
		return nil, fmt.Errorf("import onnx: %w", err)
	}
	mm, heads, hasMeta, err := Metadata(mp)
	if err != nil {
		return nil, fmt.Errorf("import onnx: %w", err)
	}
	im := &importer{
		g: g, heads: heads, values: map[string]value{}, consts: map[string]*onnxpb.TensorProto{},
		consumers: map[string][]*onnxpb.NodeProto{}, done: map[*onnxpb.NodeProto]bool{},
		outputs: map[string]bool{},
		m: &quant.Model{
			Name: mm.Name, Dialect: quant.Dialect(mm.Dialect),
			BNEpsilon: mm.BNEpsilon, BNEpsInside: mm.BNEpsInside,
		},
	}
	if !hasMeta {
		im.m.Name = g.GetName()
		im.m.Dialect = quant.DialectAlexeyAB
		im.m.BNEpsilon, im.m.BNEpsInside = 1e-5, true
	}
	if err := im.run(); err != nil {
		return nil, fmt.Errorf("import onnx: %w", err)
	}
	for _, name := range mm.BinaryLayers {
		for _, l := range im.m.Layers {
			if l.Name == name && l.Conv != nil {
				l.Conv.Binary = true
			}
		}
	}
	return im.m, nil
}

func checkOpset(mp *onnxpb.ModelProto) error {
	for _, o := range mp.GetOpsetImport() {
		if d := o.GetDomain(); d != "" && d != "ai.onnx" {
			continue // custom domains are reported per node
		}
		if v := o.GetVersion(); v < 7 {
			return fmt.Errorf("opset %d is older than 7 (re-export with a newer opset): %w", v, ErrUnsupported)
		}
	}
	return nil
}

// value is what a tensor holds in IR terms: a layer's output, or a channel slice of one
// that the consuming Concat turns into a route with groups.
type value struct {
	layer int // -1: network input
	slice *channelSlice
}

type channelSlice struct {
	from, groups, id int
	node             *onnxpb.NodeProto
}

type importer struct {
	g         *onnxpb.GraphProto
	m         *quant.Model
	heads     map[string]HeadMeta
	values    map[string]value
	consts    map[string]*onnxpb.TensorProto
	consumers map[string][]*onnxpb.NodeProto
	outputs   map[string]bool
	done      map[*onnxpb.NodeProto]bool
}

// nodeError names the node the importer could not map.
func nodeError(n *onnxpb.NodeProto, format string, args ...any) error {
	name := n.GetName()
	if name == "" && len(n.GetOutput()) > 0 {
		name = n.GetOutput()[0]
	}
	return fmt.Errorf("node %q (%s): %s", name, n.GetOpType(), fmt.Sprintf(format, args...))
}

func (im *importer) run() error {
	for _, t := range im.g.GetInitializer() {
		im.consts[t.GetName()] = t
	}
	if err := im.input(); err != nil {
		return err
	}
	for _, o := range im.g.GetOutput() {
		im.outputs[o.GetName()] = true
	}
	for _, n := range im.g.GetNode() {
		for _, in := range n.GetInput() {
			im.consumers[in] = append(im.consumers[in], n)
		}
	}
	for _, n := range im.g.GetNode() {
		if im.done[n] {
			continue
		}
		im.done[n] = true
		if err := im.node(n); err != nil {
			return err
		}
	}
	for _, o := range im.g.GetOutput() {
		if v, ok := im.values[o.GetName()]; ok && v.slice != nil {
			if _, err := im.materialize(o.GetName()); err != nil {
				return err
			}
		}
	}
	if len(im.m.Layers) == 0 {
		return fmt.Errorf("graph has no layers")
	}
	return nil
}

// input finds the one graph input that is not an initializer.
func (im *importer) input() error {
	var found *onnxpb.ValueInfoProto
	for _, in := range im.g.GetInput() {
		if _, isConst := im.consts[in.GetName()]; isConst {
			continue
		}
		if found != nil {
			return fmt.Errorf("graph has inputs %q and %q; only one image input is supported", found.GetName(), in.GetName())
		}
		found = in
	}
	if found == nil {
		return fmt.Errorf("graph has no input")
	}
	tt := found.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return fmt.Errorf("input %q is not a float tensor", found.GetName())
	}
	var dims []int64
	for _, d := range tt.GetShape().GetDim() {
		dims = append(dims, d.GetDimValue())
	}
	if len(dims) != 4 || dims[0] > 1 || slices.ContainsFunc(dims[1:], func(d int64) bool { return d <= 0 || d > 1<<16 }) {
		return fmt.Errorf("input %q has shape %v, want [1,C,H,W] with fixed C, H, W", found.GetName(), dims)
	}
	im.m.Input = quant.Shape{C: int(dims[1]), H: int(dims[2]), W: int(dims[3])}
	im.values[found.GetName()] = value{layer: -1}
	return nil
}

// add appends a layer whose tensor is out and checks its shapes at once, so errors
// name the node that built it.
func (im *importer) add(n *onnxpb.NodeProto, l *quant.Layer, out string) error {
	l.Index = len(im.m.Layers)
	l.Name = out
	im.m.Layers = append(im.m.Layers, l)
	if err := im.m.InferShapes(); err != nil {
		return nodeError(n, "%v", err)
	}
	im.values[out] = value{layer: l.Index}
	return nil
}

// layerInput returns the layer index held by tensor name, turning slices into routes.
func (im *importer) layerInput(n *onnxpb.NodeProto, name string) (int, error) {
	v, ok := im.values[name]
	if !ok {
		if _, isConst := im.consts[name]; isConst {
			return 0, nodeError(n, "input %q is a constant, want an activation tensor", name)
		}
		return 0, nodeError(n, "input %q is not produced by an earlier node", name)
	}
	if v.slice != nil {
		return im.materialize(name)
	}
	return v.layer, nil
}

func (im *importer) materialize(name string) (int, error) {
	s := im.values[name].slice
	l := &quant.Layer{Kind: quant.KindRoute, Inputs: []int{s.from}, Route: &quant.Route{Groups: s.groups, GroupID: s.id}}
	if err := im.add(s.node, l, name); err != nil {
		return 0, err
	}
	return l.Index, nil
}

func (im *importer) node(n *onnxpb.NodeProto) error {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return nodeError(n, "custom domain %q: %v", d, ErrUnsupported)
	}
	if len(n.GetOutput()) == 0 || len(n.GetInput()) == 0 {
		return nodeError(n, "no inputs or outputs")
	}
	switch n.GetOpType() {
	case "Conv":
		return im.conv(n)
	case "MaxPool":
		return im.maxpool(n)
	case "Concat":
		return im.concat(n)
	case "Identity":
		return im.identity(n)
	case "Slice":
		return im.slice(n)
	case "Add":
		return im.shortcut(n)
	case "Resize", "Upsample":
		return im.upsample(n)
	case "Dropout":
		if _, ok := im.values[n.GetInput()[0]]; !ok {
			return nodeError(n, "input %q is not produced by an earlier node", n.GetInput()[0])
		}
		im.values[n.GetOutput()[0]] = im.values[n.GetInput()[0]]
		return nil
	case "Constant":
		return im.constant(n)
	}
	return nodeError(n, "no IR layer for this op (supported: Conv, BatchNormalization, activations after Conv/Add, MaxPool, Concat, Slice, Identity, Add, Resize, Dropout): %v", ErrUnsupported)
}

func (im *importer) constant(n *onnxpb.NodeProto) error {
	a := onnxbuild.NodeAttrs(n)
	at, ok := a["value"]
	if !ok || at.GetT() == nil {
		return nodeError(n, "only the tensor form (attribute value) is supported: %v", ErrUnsupported)
	}
	t := proto.Clone(at.GetT()).(*onnxpb.TensorProto)
	t.Name = onnxbuild.Ptr(n.GetOutput()[0])
	im.consts[n.GetOutput()[0]] = t
	return nil
}

func (im *importer) constFloats(n *onnxpb.NodeProto, name string) ([]float32, []int64, error) {
	t, ok := im.consts[name]
	if !ok {
		return nil, nil, nodeError(n, "input %q must be an initializer or Constant", name)
	}
	v, err := onnxbuild.Floats(t)
	if err != nil {
		return nil, nil, nodeError(n, "%v", err)
	}
	return v, t.GetDims(), nil
}

func (im *importer) constInt64s(n *onnxpb.NodeProto, name string) ([]int64, error) {
	t, ok := im.consts[name]
	if !ok {
		return nil, nodeError(n, "input %q must be an initializer or Constant", name)
	}
	v, err := onnxbuild.Int64s(t)
	if err != nil {
		return nil, nodeError(n, "%v", err)
	}
	return v, nil
}

// sole returns the only consumer of tensor t, or nil when t has several or is a graph
// output (then it must stay a tensor of its own).
func (im *importer) sole(t string) *onnxpb.NodeProto {
	c := im.consumers[t]
	if len(c) != 1 || im.outputs[t] || im.done[c[0]] {
		return nil
	}
	return c[0]
}

func allEqual(v []int64, want int64) bool {
	return !slices.ContainsFunc(v, func(x int64) bool { return x != want })
}

func (im *importer) conv(n *onnxpb.NodeProto) error {
	a := onnxbuild.NodeAttrs(n)
	in := n.GetInput()
	if len(in) < 2 {
		return nodeError(n, "no weight input")
	}
	w, wdims, err := im.constFloats(n, in[1])
	if err != nil {
		return err
	}
	if len(wdims) != 4 || wdims[2] != wdims[3] || wdims[2] <= 0 || wdims[0] <= 0 {
		return nodeError(n, "weights %v are not square 2-D OIHW: %v", wdims, ErrUnsupported)
	}
	size := wdims[2]
	if p := a.Str("auto_pad", "NOTSET"); p != "NOTSET" && p != "" {
		return nodeError(n, "auto_pad %s (re-export with explicit pads): %v", p, ErrUnsupported)
	}
	if k := a.Ints("kernel_shape", []int64{size, size}); !slices.Equal(k, []int64{size, size}) {
		return nodeError(n, "kernel_shape %v disagrees with weights %v", k, wdims)
	}
	if d := a.Ints("dilations", nil); !allEqual(d, 1) {
		return nodeError(n, "dilations %v: %v", d, ErrUnsupported)
	}
	strides := a.Ints("strides", []int64{1, 1})
	if len(strides) != 2 || strides[0] != strides[1] || strides[0] <= 0 || strides[0] > 1<<16 {
		return nodeError(n, "strides %v (only equal positive strides): %v", strides, ErrUnsupported)
	}
	pads := a.Ints("pads", []int64{0, 0, 0, 0})
	if len(pads) != 4 || !allEqual(pads, pads[0]) || pads[0] < 0 || pads[0] > 1<<16 {
		return nodeError(n, "pads %v (darknet pads all sides equally): %v", pads, ErrUnsupported)
	}
	group := a.Int("group", 1)
	if group <= 0 || group > 1<<20 || wdims[0] > 1<<20 || size > 1<<16 {
		return nodeError(n, "group %d out of range", group)
	}
	from, err := im.layerInput(n, in[0])
	if err != nil {
		return err
	}
	c := &quant.Conv{
		Filters: int(wdims[0]), Size: int(size), Stride: int(strides[0]), Pad: int(pads[0]),
		Groups: int(group), Activation: quant.ActLinear, Weights: w,
	}
	if len(in) > 2 && in[2] != "" {
		if c.Bias, _, err = im.constFloats(n, in[2]); err != nil {
			return err
		}
	}
	out := n.GetOutput()[0]
	if bn := im.sole(out); bn != nil && bn.GetOpType() == "BatchNormalization" {
		im.done[bn] = true
		if err := im.batchNorm(bn, c); err != nil {
			return err
		}
		out = bn.GetOutput()[0]
	}
	if c.Bias == nil {
		c.Bias = make([]float32, c.Filters)
	}
	act, actOut, err := im.activation(out)
	if err != nil {
		return err
	}
	c.Activation = act
	return im.add(n, &quant.Layer{Kind: quant.KindConv, Inputs: []int{from}, Conv: c}, actOut)
}

// batchNorm moves a BatchNormalization after conv c into c.BN, converting ONNX's
// sqrt(var+epsilon) into the model's darknet formula and any conv bias into the mean.
func (im *importer) batchNorm(n *onnxpb.NodeProto, c *quant.Conv) error {
	in := n.GetInput()
	if len(in) != 5 || len(n.GetOutput()) != 1 {
		return nodeError(n, "want 5 inputs and 1 output (inference form)")
	}
	var p [4][]float32
	for i := range p {
		v, _, err := im.constFloats(n, in[i+1])
		if err != nil {
			return err
		}
		if len(v) != c.Filters {
			return nodeError(n, "input %q has %d values for %d channels", in[i+1], len(v), c.Filters)
		}
		p[i] = v
	}
	eps := float64(onnxbuild.NodeAttrs(n).Float("epsilon", 1e-5))
	modelEps := float64(im.m.BNEpsilon)
	bn := &quant.BatchNorm{Scale: p[0], Mean: p[2], Variance: make([]float32, c.Filters)}
	for i, v := range p[3] {
		std := math.Sqrt(float64(v) + eps)
		if im.m.BNEpsInside {
			bn.Variance[i] = float32(std*std - modelEps)
		} else {
			d := max(std-modelEps, 0)
			bn.Variance[i] = float32(d * d)
		}
		if c.Bias != nil { // BN(conv + b) = BN with mean - b
			bn.Mean[i] -= c.Bias[i]
		}
	}
	c.BN, c.Bias = bn, p[1]
	return nil
}

// activation recognises the activation patterns the exporter writes after tensor x.
// It returns linear and x itself when none follows.
func (im *importer) activation(x string) (quant.Activation, string, error) {
	c := im.consumers[x]
	if im.outputs[x] {
		return quant.ActLinear, x, nil
	}
	if len(c) == 1 && !im.done[c[0]] {
		n := c[0]
		switch n.GetOpType() {
		case "LeakyRelu":
			if alpha := onnxbuild.NodeAttrs(n).Float("alpha", 0.01); math.Abs(float64(alpha)-0.1) > 1e-6 {
				return "", "", nodeError(n, "alpha %g (darknet leaky is 0.1): %v", alpha, ErrUnsupported)
			}
			return im.fused(quant.ActLeaky, n)
		case "Relu":
			return im.fused(quant.ActReLU, n)
		case "Sigmoid":
			return im.fused(quant.ActLogistic, n)
		}
	}
	if len(c) == 2 && !im.done[c[0]] && !im.done[c[1]] {
		if act, nodes, ok := im.gatedActivation(x, c[0], c[1]); ok {
			return im.fused(act, nodes...)
		}
		if act, nodes, ok := im.gatedActivation(x, c[1], c[0]); ok {
			return im.fused(act, nodes...)
		}
		if nodes, ok := im.lhtan(x, c[0], c[1]); ok {
			return im.fused(quant.ActLHTan, nodes...)
		}
		if nodes, ok := im.lhtan(x, c[1], c[0]); ok {
			return im.fused(quant.ActLHTan, nodes...)
		}
	}
	return quant.ActLinear, x, nil
}

// gatedActivation matches x*sigmoid(x) (swish) and x*tanh(softplus(x)) (mish) where
// first is the branch that starts the gate and mul the final product.
func (im *importer) gatedActivation(x string, first, mul *onnxpb.NodeProto) (quant.Activation, []*onnxpb.NodeProto, bool) {
	if mul.GetOpType() != "Mul" || len(mul.GetInput()) != 2 || len(first.GetOutput()) != 1 {
		return "", nil, false
	}
	gate := first.GetOutput()[0]
	chain := []*onnxpb.NodeProto{first}
	act := quant.ActSwish
	switch first.GetOpType() {
	case "Sigmoid":
	case "Softplus":
		t := im.sole(gate)
		if t == nil || t.GetOpType() != "Tanh" || len(t.GetOutput()) != 1 {
			return "", nil, false
		}
		gate = t.GetOutput()[0]
		chain = append(chain, t)
		act = quant.ActMish
	default:
		return "", nil, false
	}
	if im.sole(gate) != mul {
		return "", nil, false
	}
	ins := mul.GetInput()
	if !(ins[0] == x && ins[1] == gate) && !(ins[0] == gate && ins[1] == x) {
		return "", nil, false
	}
	return act, append(chain, mul), true
}

// lhtan matches the exporter's Min(LeakyRelu(x, 0.001), x*0.001 + 0.999) (operands of
// Mul, Add and Min in either order), leaky being x's LeakyRelu consumer and mul its Mul.
func (im *importer) lhtan(x string, leaky, mul *onnxpb.NodeProto) ([]*onnxpb.NodeProto, bool) {
	if leaky.GetOpType() != "LeakyRelu" || mul.GetOpType() != "Mul" || len(leaky.GetOutput()) != 1 || len(mul.GetOutput()) != 1 {
		return nil, false
	}
	if !near(onnxbuild.NodeAttrs(leaky).Float("alpha", 0.01), LHTanSlope) || !im.scalarOperand(mul, x, LHTanSlope) {
		return nil, false
	}
	add := im.sole(mul.GetOutput()[0])
	if add == nil || add.GetOpType() != "Add" || len(add.GetOutput()) != 1 || !im.scalarOperand(add, mul.GetOutput()[0], LHTanTop) {
		return nil, false
	}
	minNode := im.sole(leaky.GetOutput()[0])
	if minNode == nil || minNode.GetOpType() != "Min" || im.sole(add.GetOutput()[0]) != minNode {
		return nil, false
	}
	ins := minNode.GetInput()
	lo, hi := leaky.GetOutput()[0], add.GetOutput()[0]
	if len(ins) != 2 || !(ins[0] == lo && ins[1] == hi) && !(ins[0] == hi && ins[1] == lo) {
		return nil, false
	}
	return []*onnxpb.NodeProto{leaky, mul, add, minNode}, true
}

// scalarOperand says whether binary node n reads tensor x and a one-element constant
// equal to want (either order).
func (im *importer) scalarOperand(n *onnxpb.NodeProto, x string, want float32) bool {
	ins := n.GetInput()
	if len(ins) != 2 || (ins[0] != x && ins[1] != x) {
		return false
	}
	other := ins[1]
	if ins[1] == x {
		other = ins[0]
	}
	t, ok := im.consts[other]
	if !ok {
		return false
	}
	v, err := onnxbuild.Floats(t)
	return err == nil && len(v) == 1 && near(v[0], want)
}

func near(a, b float32) bool { return math.Abs(float64(a)-float64(b)) <= 1e-6 }

// fused marks the activation nodes as consumed; the last one writes the layer tensor.
func (im *importer) fused(act quant.Activation, nodes ...*onnxpb.NodeProto) (quant.Activation, string, error) {
	last := nodes[len(nodes)-1]
	if len(last.GetOutput()) != 1 {
		return "", "", nodeError(last, "want one output")
	}
	for _, n := range nodes {
		im.done[n] = true
	}
	return act, last.GetOutput()[0], nil
}

func (im *importer) maxpool(n *onnxpb.NodeProto) error {
	a := onnxbuild.NodeAttrs(n)
	if p := a.Str("auto_pad", "NOTSET"); p != "NOTSET" && p != "" {
		return nodeError(n, "auto_pad %s (re-export with explicit pads): %v", p, ErrUnsupported)
	}
	if a.Int("ceil_mode", 0) != 0 || !allEqual(a.Ints("dilations", nil), 1) || len(n.GetOutput()) != 1 {
		return nodeError(n, "ceil_mode, dilations or an indices output: %v", ErrUnsupported)
	}
	k := a.Ints("kernel_shape", nil)
	if len(k) != 2 || k[0] != k[1] || k[0] <= 0 || k[0] > 1<<16 {
		return nodeError(n, "kernel_shape %v (only square): %v", k, ErrUnsupported)
	}
	s := a.Ints("strides", []int64{1, 1})
	if len(s) != 2 || s[0] != s[1] || s[0] <= 0 || s[0] > 1<<16 {
		return nodeError(n, "strides %v (only equal positive strides): %v", s, ErrUnsupported)
	}
	p := a.Ints("pads", []int64{0, 0, 0, 0})
	// darknet pads pad/2 before and the rest after, equally on both axes.
	if len(p) != 4 || p[0] != p[1] || p[2] != p[3] || p[0] < 0 || p[2] > 1<<16 || p[0] != (p[0]+p[2])/2 {
		return nodeError(n, "pads %v do not follow darknet's [pad/2, pad/2, pad-pad/2, pad-pad/2]: %v", p, ErrUnsupported)
	}
	from, err := im.layerInput(n, n.GetInput()[0])
	if err != nil {
		return err
	}
	l := &quant.Layer{Kind: quant.KindMaxPool, Inputs: []int{from}, Pool: &quant.Pool{Size: int(k[0]), Stride: int(s[0]), Pad: int(p[0] + p[2])}}
	return im.add(n, l, n.GetOutput()[0])
}

func (im *importer) slice(n *onnxpb.NodeProto) error {
	in := n.GetInput()
	if len(in) < 4 || len(in) > 5 {
		return nodeError(n, "want data, starts, ends, axes[, steps] inputs")
	}
	from, err := im.layerInput(n, in[0])
	if err != nil {
		return err
	}
	var v [4][]int64
	for i := 1; i < len(in); i++ {
		if v[i-1], err = im.constInt64s(n, in[i]); err != nil {
			return err
		}
	}
	starts, ends, axes, steps := v[0], v[1], v[2], v[3]
	if len(starts) != 1 || len(ends) != 1 || (len(axes) != 1 || (axes[0] != 1 && axes[0] != -3)) || (steps != nil && !slices.Equal(steps, []int64{1})) {
		return nodeError(n, "only a unit-step slice of the channel axis maps to a route group: %v", ErrUnsupported)
	}
	c := int64(im.m.OutputShape(from).C)
	start, end := min(max(starts[0], 0), c), min(max(ends[0], 0), c)
	size := end - start
	if size <= 0 || c%size != 0 || start%size != 0 {
		return nodeError(n, "channels [%d,%d) of %d are not one of equal route groups: %v", start, end, c, ErrUnsupported)
	}
	out := n.GetOutput()[0]
	im.values[out] = value{slice: &channelSlice{from: from, groups: int(c / size), id: int(start / size), node: n}}
	if next := im.sole(out); next != nil && next.GetOpType() == "Concat" {
		return nil // the Concat makes one route of all its slices
	}
	_, err = im.materialize(out) // a route with groups and one input
	return err
}

func (im *importer) concat(n *onnxpb.NodeProto) error {
	if axis := onnxbuild.NodeAttrs(n).Int("axis", 0); axis != 1 && axis != -3 {
		return nodeError(n, "axis %d (routes concatenate channels, axis 1): %v", axis, ErrUnsupported)
	}
	r := &quant.Route{Groups: 1}
	var from []int
	sliced := true
	for k, in := range n.GetInput() {
		v := im.values[in]
		s := v.slice
		if s == nil || (k > 0 && (s.groups != r.Groups || s.id != r.GroupID)) || len(im.consumers[in]) != 1 || im.outputs[in] {
			sliced = false
			break
		}
		r.Groups, r.GroupID = s.groups, s.id
		from = append(from, s.from)
	}
	if !sliced {
		r, from = &quant.Route{Groups: 1}, nil
		for _, in := range n.GetInput() {
			i, err := im.layerInput(n, in)
			if err != nil {
				return err
			}
			from = append(from, i)
		}
	}
	return im.add(n, &quant.Layer{Kind: quant.KindRoute, Inputs: from, Route: r}, n.GetOutput()[0])
}

func (im *importer) identity(n *onnxpb.NodeProto) error {
	out := n.GetOutput()[0]
	from, err := im.layerInput(n, n.GetInput()[0])
	if err != nil {
		return err
	}
	h, isHead := im.heads[out]
	if !isHead {
		return im.add(n, &quant.Layer{Kind: quant.KindRoute, Inputs: []int{from}, Route: &quant.Route{Groups: 1}}, out)
	}
	l := &quant.Layer{Kind: quant.Kind(h.Kind), Inputs: []int{from}, Head: &quant.Head{
		Classes: h.Classes, Coords: h.Coords, Num: h.Num, Anchors: h.Anchors, Mask: h.Mask,
		Softmax: h.Softmax, ScaleXY: h.ScaleXY,
	}}
	if l.Kind != quant.KindRegion && l.Kind != quant.KindYolo {
		return nodeError(n, "head metadata kind %q, want region or yolo", h.Kind)
	}
	if err := im.add(n, l, out); err != nil {
		return err
	}
	if h.Name != "" {
		l.Name = h.Name
	}
	return nil
}

func (im *importer) shortcut(n *onnxpb.NodeProto) error {
	in := n.GetInput()
	if len(in) != 2 {
		return nodeError(n, "want 2 inputs")
	}
	var from [2]int
	for k := range from {
		i, err := im.layerInput(n, in[k])
		if err != nil {
			return err
		}
		from[k] = i
	}
	act, out, err := im.activation(n.GetOutput()[0])
	if err != nil {
		return err
	}
	l := &quant.Layer{Kind: quant.KindShortcut, Inputs: from[:], Shortcut: &quant.Shortcut{Activation: act}}
	return im.add(n, l, out)
}

func (im *importer) upsample(n *onnxpb.NodeProto) error {
	a := onnxbuild.NodeAttrs(n)
	in := n.GetInput()
	if m := a.Str("mode", "nearest"); m != "nearest" {
		return nodeError(n, "mode %q (darknet upsample is nearest): %v", m, ErrUnsupported)
	}
	if n.GetOpType() == "Resize" {
		if ct := a.Str("coordinate_transformation_mode", "half_pixel"); ct != "asymmetric" {
			return nodeError(n, "coordinate_transformation_mode %q, want asymmetric: %v", ct, ErrUnsupported)
		}
		if nm := a.Str("nearest_mode", "round_prefer_floor"); nm != "floor" {
			return nodeError(n, "nearest_mode %q, want floor: %v", nm, ErrUnsupported)
		}
	}
	from, err := im.layerInput(n, in[0])
	if err != nil {
		return err
	}
	stride, err := im.upsampleStride(n, im.m.OutputShape(from))
	if err != nil {
		return err
	}
	u := &quant.Upsample{Stride: stride, Scale: 1}
	out := n.GetOutput()[0]
	if mul := im.sole(out); mul != nil && mul.GetOpType() == "Mul" && len(mul.GetInput()) == 2 && len(mul.GetOutput()) == 1 {
		other := mul.GetInput()[1]
		if other == out {
			other = mul.GetInput()[0]
		}
		if t, ok := im.consts[other]; ok {
			if v, err := onnxbuild.Floats(t); err == nil && len(v) == 1 {
				u.Scale = v[0]
				im.done[mul] = true
				out = mul.GetOutput()[0]
			}
		}
	}
	return im.add(n, &quant.Layer{Kind: quant.KindUpsample, Inputs: []int{from}, Upsample: u}, out)
}

// upsampleStride reads the integer scale of a nearest Resize from its scales (or sizes)
// input, or from the old Upsample op's scales input or attribute.
func (im *importer) upsampleStride(n *onnxpb.NodeProto, in quant.Shape) (int, error) {
	ins := n.GetInput()
	var scales []float64
	addFloats := func(name string) error {
		v, _, err := im.constFloats(n, name)
		for _, f := range v {
			scales = append(scales, float64(f))
		}
		return err
	}
	var err error
	switch {
	case n.GetOpType() == "Upsample" && len(ins) == 1:
		for _, f := range onnxbuild.NodeAttrs(n)["scales"].GetFloats() {
			scales = append(scales, float64(f))
		}
	case n.GetOpType() == "Upsample":
		err = addFloats(ins[1])
	case len(ins) >= 3 && ins[2] != "":
		err = addFloats(ins[2])
	case len(ins) == 4 && ins[3] != "":
		var sizes []int64
		sizes, err = im.constInt64s(n, ins[3])
		if len(sizes) == 4 {
			for i, d := range []int{1, in.C, in.H, in.W} {
				scales = append(scales, float64(sizes[i])/float64(d))
			}
		}
	}
	if err != nil {
		return 0, err
	}
	if len(scales) != 4 || scales[0] != 1 || scales[1] != 1 || scales[2] != scales[3] || scales[2] < 1 || scales[2] > 1<<10 || scales[2] != math.Trunc(scales[2]) {
		return 0, nodeError(n, "scales %v (darknet upsamples H and W by one integer): %v", scales, ErrUnsupported)
	}
	return int(scales[2]), nil
}

// Summary counts a model's layers by kind, e.g. "13 convolutional, 2 maxpool".
func Summary(m *quant.Model) string {
	counts := map[quant.Kind]int{}
	var order []quant.Kind
	for _, l := range m.Layers {
		if counts[l.Kind] == 0 {
			order = append(order, l.Kind)
		}
		counts[l.Kind]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}
