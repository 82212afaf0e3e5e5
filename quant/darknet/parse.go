package darknet

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Options steers the cfg parser.
type Options struct {
	// Dialect forces a darknet dialect. "" detects it: AlexeyAB when the cfg uses a key or
	// activation only AlexeyAB's darknet reads (route groups, scale_x_y, nms_kind, mish,
	// ...), else pjreddie.
	Dialect quant.Dialect
	// Warn, when set, receives warnings ("file:line: ..."): keys darknet would not
	// recognise, repeated keys, AlexeyAB keys a forced pjreddie dialect ignores.
	Warn func(msg string)
}

// BN epsilons of the two darknets' CPU inference.
const (
	pjreddieBNEps = 1e-6 // (x-mean)/(sqrt(var)+eps)
	alexeyABBNEps = 1e-5 // (x-mean)/sqrt(var+eps)
)

// LoadCfg parses the darknet cfg at path.
func LoadCfg(path string, opt Options) (*quant.Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open darknet cfg: %w", err)
	}
	defer f.Close()
	return ParseCfg(f, path, opt)
}

// ParseCfg parses a darknet cfg into a model with inferred shapes. name is used in error
// messages (file:line) and, without directory and extension, as the model name.
//
// Convolutions get their biases and batch-norm parameters allocated with darknet's
// initial values (bias 0, scale 1, mean 0, variance 1) but no Weights: ReadWeights (or a
// test's randomizer) fills them. Layers are named by kind and index ("conv3", "pool4",
// "route12", "yolo30"); Inputs are absolute layer indices, -1 for the network input.
func ParseCfg(r io.Reader, name string, opt Options) (*quant.Model, error) {
	secs, err := readSections(r, name, opt.Warn)
	if err != nil {
		return nil, err
	}
	if secs[0].kind != "net" {
		return nil, &CfgError{File: name, Line: secs[0].line, Section: secs[0].name, Msg: "the first section must be [net] or [network]"}
	}
	dialect := opt.Dialect
	switch dialect {
	case "":
		dialect, _ = detectDialect(name, secs)
	case quant.DialectPjreddie, quant.DialectAlexeyAB:
	default:
		return nil, fmt.Errorf("darknet cfg %s: unknown dialect %q (use %q or %q)", name, dialect, quant.DialectPjreddie, quant.DialectAlexeyAB)
	}
	warnKeys(name, secs, opt.Warn)
	b := &builder{file: name, dialect: dialect, warn: opt.Warn, growth: 1}
	m, err := b.build(secs)
	if err != nil {
		return nil, err
	}
	m.Name = modelName(name)
	return m, nil
}

func modelName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// builder turns sections into IR layers.
type builder struct {
	file    string
	dialect quant.Dialect
	warn    func(string)
	m       *quant.Model
	secs    []*section // the section of each layer
	bn      []bool     // batch_normalize of each layer
	growth  int        // product of upsample strides so far
}

func (b *builder) build(secs []*section) (*quant.Model, error) {
	b.m = &quant.Model{Dialect: b.dialect, BNEpsilon: pjreddieBNEps}
	if b.dialect == quant.DialectAlexeyAB {
		b.m.BNEpsilon, b.m.BNEpsInside = alexeyABBNEps, true
	}
	if err := b.net(secs[0]); err != nil {
		return nil, err
	}
	if len(secs) == 1 {
		return nil, &CfgError{File: b.file, Line: secs[0].line, Section: secs[0].name, Msg: "no layers after [net]"}
	}
	for _, s := range secs[1:] {
		if err := b.layer(s); err != nil {
			return nil, err
		}
	}
	if err := b.inferShapes(); err != nil {
		return nil, err
	}
	b.allocParams()
	return b.m, nil
}

func (b *builder) net(s *section) error {
	f := &fields{file: b.file, s: s}
	w := f.int("width", 0, 0, maxInputDim)
	h := f.int("height", 0, 0, maxInputDim)
	c := f.int("channels", 0, 0, maxInputDim)
	if f.err == nil && (w == 0 || h == 0 || c == 0) {
		f.failSection("needs width, height and channels (got %d, %d, %d)", w, h, c)
	}
	b.m.Input = quant.Shape{C: c, H: h, W: w}
	return f.err
}

func (b *builder) layer(s *section) error {
	idx := len(b.m.Layers)
	f := &fields{file: b.file, s: s}
	l := &quant.Layer{Index: idx, Inputs: []int{idx - 1}}
	bn := false
	switch s.kind {
	case "convolutional":
		l.Kind, l.Name = quant.KindConv, fmt.Sprint("conv", idx)
		l.Conv, bn = b.conv(f)
	case "maxpool":
		l.Kind, l.Name = quant.KindMaxPool, fmt.Sprint("pool", idx)
		l.Pool = b.maxpool(f)
	case "route":
		l.Kind, l.Name = quant.KindRoute, fmt.Sprint("route", idx)
		l.Inputs, l.Route = b.route(f, idx)
	case "shortcut":
		l.Kind, l.Name = quant.KindShortcut, fmt.Sprint("shortcut", idx)
		l.Inputs, l.Shortcut = b.shortcut(f, idx)
	case "upsample":
		l.Kind, l.Name = quant.KindUpsample, fmt.Sprint("upsample", idx)
		l.Upsample = b.upsample(f)
	case "dropout":
		l.Kind, l.Name = quant.KindDropout, fmt.Sprint("dropout", idx)
		// Dropout is the identity at inference; darknet still reads the probability.
		f.float("probability", 0.5, 0, 1)
	case "region":
		l.Kind, l.Name = quant.KindRegion, fmt.Sprint("region", idx)
		l.Head = b.region(f)
	case "yolo":
		l.Kind, l.Name = quant.KindYolo, fmt.Sprint("yolo", idx)
		l.Head = b.yolo(f)
	default: // [net] again
		f.failSection("only the first section may be %s", s.name)
	}
	b.layerCommon(f)
	if f.err != nil {
		return f.err
	}
	b.m.Layers = append(b.m.Layers, l)
	b.secs = append(b.secs, s)
	b.bn = append(b.bn, bn)
	return nil
}

// layerCommon checks keys darknet reads for every layer that change what is loaded.
func (b *builder) layerCommon(f *fields) {
	f.unsupported("dontload", "0", "skipping a layer's weights")
	f.unsupported("dontloadscales", "0", "skipping batch-norm weights")
	f.unsupported("numload", "0", "loading part of a layer's filters")
}

func (b *builder) activation(f *fields, def string) quant.Activation {
	o := f.find("activation")
	name := def
	if o != nil {
		name = o.val
	}
	switch a := quant.Activation(name); a {
	case quant.ActLeaky, quant.ActReLU, quant.ActLinear, quant.ActLogistic, quant.ActLHTan:
		return a // both darknets read these (lhtan: activations.c get_activation)
	case quant.ActMish, quant.ActSwish:
		if b.dialect == quant.DialectPjreddie {
			f.fail(o, "activation", "pjreddie darknet has no %s activation (AlexeyAB darknet has)", name)
		}
		return a
	}
	f.fail(o, "activation", "not supported (supported: leaky, relu, linear, logistic, lhtan, mish, swish)")
	return quant.ActLinear
}

func (b *builder) conv(f *fields) (*quant.Conv, bool) {
	c := &quant.Conv{}
	c.Filters = f.int("filters", 1, 1, maxFilters)
	c.Size = f.int("size", 1, 1, maxKernel)
	c.Stride = f.int("stride", 1, 1, maxStride)
	pad := f.int("pad", 0, 0, maxPadding)
	c.Pad = f.int("padding", 0, 0, maxPadding)
	if pad != 0 {
		c.Pad = c.Size / 2 // darknet: pad=1 overrides padding
	}
	c.Groups = f.int("groups", 1, 1, maxFilters)
	c.Activation = b.activation(f, "logistic")
	bn := f.flag("batch_normalize")
	c.Binary = f.flag("binary")
	c.XNOR = f.flag("xnor")
	if o := f.find("stride_x"); o != nil && o.val != "-1" {
		f.unsupported("stride_x", fmt.Sprint(c.Stride), "a different horizontal stride")
	}
	if o := f.find("stride_y"); o != nil && o.val != "-1" {
		f.unsupported("stride_y", fmt.Sprint(c.Stride), "a different vertical stride")
	}
	if c.Size > 1 {
		f.unsupported("dilation", "1", "dilated convolution")
	}
	f.unsupported("antialiasing", "0", "antialiasing")
	f.unsupported("flipped", "0", "transposed weights")
	f.unsupported("cbn", "0", "cross-iteration batch norm")
	f.unsupported("coordconv", "0", "coordconv")
	for _, k := range []string{"sway", "rotate", "stretch", "stretch_sway"} {
		f.unsupported(k, "0", "deformable convolution")
	}
	if o := f.find("share_index"); o != nil {
		f.fail(o, "share_index", "shared weights are not supported")
	}
	return c, bn
}

func (b *builder) maxpool(f *fields) *quant.Pool {
	p := &quant.Pool{}
	p.Stride = f.int("stride", 1, 1, maxStride)
	p.Size = f.int("size", p.Stride, 1, maxKernel)
	p.Pad = f.int("padding", p.Size-1, 0, maxPadding)
	f.unsupported("stride_x", fmt.Sprint(p.Stride), "a different horizontal stride")
	f.unsupported("stride_y", fmt.Sprint(p.Stride), "a different vertical stride")
	f.unsupported("maxpool_depth", "0", "max over channels")
	f.unsupported("antialiasing", "0", "antialiasing")
	return p
}

// layerRef resolves a route/shortcut reference: negative values count back from idx.
func (b *builder) layerRef(f *fields, key string, idx, v int) int {
	abs := v
	if v < 0 {
		abs = idx + v
	}
	if abs < 0 || abs >= idx {
		f.fail(f.find(key), key, "layer %d does not exist: layer %d can read layers 0 to %d (or -1 to -%d)", abs, idx, idx-1, idx)
		return 0
	}
	return abs
}

func (b *builder) route(f *fields, idx int) ([]int, *quant.Route) {
	refs := f.ints("layers", maxRouteInputs)
	if refs == nil && f.err == nil {
		f.failSection("needs layers= (the layers to concatenate)")
	}
	in := make([]int, len(refs))
	for i, v := range refs {
		in[i] = b.layerRef(f, "layers", idx, v)
	}
	r := &quant.Route{Groups: f.int("groups", 1, 1, maxChannels)}
	r.GroupID = f.int("group_id", 0, 0, r.Groups-1)
	if r.Groups > 1 && b.dialect == quant.DialectPjreddie {
		f.fail(f.find("groups"), "groups", "route groups need the AlexeyAB dialect (pjreddie darknet ignores them)")
	}
	return in, r
}

func (b *builder) shortcut(f *fields, idx int) ([]int, *quant.Shortcut) {
	refs := f.ints("from", maxRouteInputs)
	switch {
	case f.err != nil:
	case refs == nil:
		f.failSection("needs from= (the layer to add)")
	case len(refs) > 1:
		f.fail(f.find("from"), "from", "adding several layers is not supported")
	}
	in := []int{idx - 1, 0}
	if len(refs) > 0 {
		in[1] = b.layerRef(f, "from", idx, refs[0])
	}
	s := &quant.Shortcut{Activation: b.activation(f, "linear")}
	f.unsupported("alpha", "1", "scaling the shortcut output")
	f.unsupported("beta", "1", "scaling the added layer")
	f.unsupported("weights_type", "none", "weighted shortcut")
	return in, s
}

func (b *builder) upsample(f *fields) *quant.Upsample {
	u := &quant.Upsample{}
	o := f.find("stride")
	u.Stride = f.int("stride", 2, -maxStride, maxStride)
	if u.Stride <= 0 && f.err == nil {
		f.fail(o, "stride", "must be at least 1 (darknet's negative stride downsamples; not supported)")
	}
	u.Scale = float32(f.float("scale", 1, -math.MaxFloat32, math.MaxFloat32))
	if f.err == nil {
		b.growth *= u.Stride
		if b.growth > maxGrowth {
			f.failSection("upsampling by more than %d in total", maxGrowth)
		}
	}
	return u
}

// anchors reads the anchors of a head with total anchor pairs; missing values keep
// darknet's initial .5.
func (b *builder) anchors(f *fields, total int) []float32 {
	a := make([]float32, 2*total)
	for i := range a {
		a[i] = 0.5
	}
	vals := f.floats("anchors", 2*maxAnchors)
	if len(vals) > len(a) {
		f.fail(f.find("anchors"), "anchors", "%d values but num=%d uses only %d", len(vals), total, len(a))
		return a
	}
	if vals != nil && len(vals) < len(a) && b.warn != nil {
		b.warn(fmt.Sprintf("%s:%d: %s anchors has %d values, num=%d needs %d: the rest stay 0.5", f.file, f.find("anchors").line, f.s.name, len(vals), total, len(a)))
	}
	copy(a, vals)
	return a
}

func (b *builder) region(f *fields) *quant.Head {
	h := &quant.Head{ScaleXY: 1}
	h.Coords = f.int("coords", 4, 0, maxClasses)
	if h.Coords != 4 && f.err == nil {
		f.fail(f.find("coords"), "coords", "only 4 box coordinates are supported")
	}
	h.Classes = f.int("classes", 20, 1, maxClasses)
	h.Num = f.int("num", 1, 1, maxAnchors)
	h.Softmax = f.flag("softmax")
	h.Anchors = b.anchors(f, h.Num)
	if o := f.find("tree"); o != nil {
		f.fail(o, "tree", "hierarchical softmax (YOLO9000) is not supported")
	}
	return h
}

func (b *builder) yolo(f *fields) *quant.Head {
	h := &quant.Head{}
	h.Classes = f.int("classes", 20, 1, maxClasses)
	total := f.int("num", 1, 1, maxAnchors)
	h.Mask = f.ints("mask", maxAnchors)
	if h.Mask == nil {
		for i := 0; i < total; i++ {
			h.Mask = append(h.Mask, i)
		}
	}
	for _, k := range h.Mask {
		if k < 0 || k >= total {
			f.fail(f.find("mask"), "mask", "anchor %d does not exist: num=%d anchors are 0 to %d", k, total, total-1)
			break
		}
	}
	h.Num = len(h.Mask)
	h.Anchors = b.anchors(f, total)
	h.ScaleXY = float32(f.float("scale_x_y", 1, 0, 1e6))
	if h.ScaleXY != 1 && b.dialect == quant.DialectPjreddie {
		if b.warn != nil {
			b.warn(fmt.Sprintf("%s:%d: %s scale_x_y=%g ignored: pjreddie darknet does not read it", f.file, f.find("scale_x_y").line, f.s.name, h.ScaleXY))
		}
		h.ScaleXY = 1
	}
	f.unsupported("new_coords", "0", "new_coords (scaled-YOLOv4 decoding)")
	return h
}

// inferShapes runs the IR's shape inference, maps a failure to the layer's cfg section,
// and bounds activation and parameter sizes.
func (b *builder) inferShapes() error {
	m := b.m
	if err := m.InferShapes(); err != nil {
		// Layers before the failing one have non-empty outputs.
		for i, l := range m.Layers {
			if l.Out == (quant.Shape{}) {
				s := b.secs[i]
				return &CfgError{File: b.file, Line: s.line, Section: s.name, Msg: fmt.Sprintf("layer %d", i), Err: unwrapLayer(err)}
			}
		}
		return &CfgError{File: b.file, Msg: "shapes", Err: err}
	}
	// int64: on the board's 32-bit ARM these products overflow int for hostile cfgs.
	var params, filters int64
	for i, l := range m.Layers {
		o := l.Out
		if o.C > maxChannels || o.H > maxSpatial || o.W > maxSpatial || int64(o.C)*int64(o.H)*int64(o.W) > maxActivation {
			s := b.secs[i]
			return &CfgError{File: b.file, Line: s.line, Section: s.name, Msg: fmt.Sprintf("layer %d output %v is larger than the importer's limit", i, o)}
		}
		if c := l.Conv; c != nil {
			params += int64(c.Filters) * (int64(l.In.C/c.Groups)*int64(c.Size*c.Size) + 4)
			filters += int64(c.Filters) // ParseCfg allocates 4 values per filter
			if params > maxParams || filters > maxTotalFilters {
				s := b.secs[i]
				return &CfgError{File: b.file, Line: s.line, Section: s.name, Msg: fmt.Sprintf("more than %d parameters or %d filters up to layer %d: larger than the importer's limit", maxParams, maxTotalFilters, i)}
			}
		}
	}
	return nil
}

// unwrapLayer drops the "layer N (kind name): " prefix InferShapes adds, since the
// CfgError already says where.
func unwrapLayer(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}

// allocParams gives every convolution its biases and, with batch_normalize, batch-norm
// parameters at darknet's initial values.
func (b *builder) allocParams() {
	for i, l := range b.m.Layers {
		c := l.Conv
		if c == nil {
			continue
		}
		c.Bias = make([]float32, c.Filters)
		if b.bn[i] {
			c.BN = &quant.BatchNorm{Scale: fill(c.Filters, 1), Mean: make([]float32, c.Filters), Variance: fill(c.Filters, 1)}
		}
	}
}

func fill(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}
