// Package quant owns the model: the intermediate representation (IR) that every importer
// (darknet, ONNX, QNN-MO parameter directories) produces and every engine, exporter and
// quantizer consumes. Subpackages hold the importers, the engines and the exporters.
//
// The IR is a list of layers in darknet order. Each layer reads the outputs of earlier
// layers (by index) and produces one NCHW tensor (batch 1) whose shape is inferred and
// checked by [Model.InferShapes]. Parameters are float32; quantization facts (bit widths,
// scales, integer thresholds) ride along in [LayerQuant] so that float and quantized
// engines read the same model.
package quant

import (
	"errors"
	"fmt"
	"math"
)

// Shape is the shape of one activation tensor, batch 1, NCHW.
type Shape struct {
	C, H, W int
}

// Size is the number of elements.
func (s Shape) Size() int { return s.C * s.H * s.W }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// Kind says what a layer computes.
type Kind string

const (
	KindConv     Kind = "convolutional"
	KindMaxPool  Kind = "maxpool"
	KindRoute    Kind = "route"
	KindShortcut Kind = "shortcut"
	KindUpsample Kind = "upsample"
	KindDropout  Kind = "dropout"
	KindRegion   Kind = "region" // YOLOv2 head
	KindYolo     Kind = "yolo"   // YOLOv3 head
)

// Activation is a darknet activation name.
type Activation string

const (
	ActLinear   Activation = "linear"
	ActLeaky    Activation = "leaky" // slope 0.1
	ActReLU     Activation = "relu"
	ActLogistic Activation = "logistic"
	ActMish     Activation = "mish"
	ActSwish    Activation = "swish"
	// ActLHTan is darknet's leaky hard tanh (pjreddie and AlexeyAB): x on [0,1], slope
	// 0.001 outside (0.001x below 0, 1+0.001(x-1) above 1). A 3-bit quantizer with scale
	// 1/7 after it sees QNN-MO's clip [0,1]: todarknet's lhtan export uses it.
	ActLHTan Activation = "lhtan"
)

// Dialect records which darknet a model came from, where their semantics differ.
type Dialect string

const (
	DialectPjreddie Dialect = "pjreddie"
	DialectAlexeyAB Dialect = "alexeyab"
)

// Model is a whole network.
type Model struct {
	Name    string
	Input   Shape // the network input (channels, height, width)
	Dialect Dialect
	Layers  []*Layer
	// BNEpsilon is added where darknet divides by the standard deviation:
	// pjreddie CPU: (x-mean)/(sqrt(var)+BNEpsilon) with 1e-6 (BNEpsInside false);
	// AlexeyAB and GPU builds: (x-mean)/sqrt(var+BNEpsilon) with 1e-5 (BNEpsInside true).
	BNEpsilon   float32
	BNEpsInside bool
}

// Layer is one node of the network. Only the fields of its Kind are meaningful.
type Layer struct {
	Index  int
	Kind   Kind
	Name   string // e.g. "conv3"; unique within a model
	Inputs []int  // absolute indices of the layers read; -1 is the network input
	In     Shape  // shape of Inputs[0] (or the concatenation, for route)
	Out    Shape

	Conv     *Conv
	Pool     *Pool
	Route    *Route
	Shortcut *Shortcut
	Upsample *Upsample
	Head     *Head // region and yolo

	Quant *LayerQuant // nil for float layers
}

// Conv is a 2-D convolution, optionally with batch norm, then an activation.
type Conv struct {
	Filters, Size, Stride, Pad, Groups int // Pad is the padding on each side, in pixels
	Activation                         Activation
	Weights                            []float32 // OIHW: Filters x (In.C/Groups) x Size x Size
	Bias                               []float32 // Filters
	BN                                 *BatchNorm
	Binary, XNOR                       bool // darknet binary=1 / xnor=1
}

// BatchNorm holds per-output-channel batch-norm parameters (bias lives in Conv.Bias).
type BatchNorm struct {
	Scale, Mean, Variance []float32
}

// Pool is a max pool. Darknet pads with -inf: Pad/2 on the top/left and the rest on the
// bottom/right (size 2 stride 1 pads right and bottom by one).
type Pool struct {
	Size, Stride, Pad int // Pad is the total padding per axis
}

// Route concatenates (or splits) earlier outputs along channels. With Groups > 1 each
// input contributes only its GroupID-th of Groups channel slices.
type Route struct {
	Groups, GroupID int
}

// Shortcut adds the output of layer Inputs[1] to Inputs[0], then an activation.
type Shortcut struct {
	Activation Activation
}

// Upsample repeats each pixel Stride x Stride times and multiplies by Scale.
type Upsample struct {
	Stride int
	Scale  float32
}

// Head describes a detection head; the engine passes its input through (region applies
// logistic/softmax as darknet's forward pass does) and the decoder reads these fields.
type Head struct {
	Classes int
	Coords  int       // region only; 4
	Num     int       // anchors used by this head
	Anchors []float32 // region: grid cells; yolo: pixels of the network input. Pairs (w,h).
	Mask    []int     // yolo: which anchor pairs this head uses
	Softmax bool      // region
	ScaleXY float32   // yolo scale_x_y (1 when absent)
}

// LayerQuant annotates a layer for quantized execution. Later passes fill more of it.
type LayerQuant struct {
	WeightBits  int       // 1 = bipolar (-1,+1); 0 = float
	WeightScale []float32 // per output channel, multiplies the bipolar weights
	ActBits     int       // bits of this layer's output activation; 0 = float
	ActScale    float32   // output level k means k*ActScale
	// ActSigned marks a signed output quantizer (levels -2^(ActBits-1) .. 2^(ActBits-1)-1),
	// used for leaky activations kept as they are; false (unsigned, levels 0 ..
	// 2^ActBits-1) is what ReLU layers and FINN's MultiThreshold use.
	ActSigned bool
	// Thresholds[c] holds the 2^ActBits-1 integer thresholds of output channel c
	// (output = count(acc >= T)); Invert[c] flips the comparison (acc <= T) for
	// channels whose combined scale is negative. For binary layers from the QNN-MO
	// engine (quant/qnnmo) acc is the integer sum of weight sign times input level (levels,
	// not scaled values) and Invert means output = 2^ActBits-1 - count(acc >= T), i.e.
	// count(acc < T), as the engine negates the output bits.
	Thresholds [][]int32
	Invert     []bool
}

// ErrShape is wrapped by shape-inference failures.
var ErrShape = errors.New("shape mismatch")

// InferShapes fills In and Out of every layer from the model input and the layer
// parameters, checking that parameters match (weight counts, route shapes, ...).
func (m *Model) InferShapes() error {
	if m.Input.Size() <= 0 {
		return fmt.Errorf("model input %v: %w", m.Input, ErrShape)
	}
	for i, l := range m.Layers {
		l.Index = i
		if err := m.inferLayer(l); err != nil {
			return fmt.Errorf("layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
	}
	return nil
}

// OutputShape returns the shape produced by layer i (-1: the network input).
func (m *Model) OutputShape(i int) Shape {
	if i < 0 {
		return m.Input
	}
	return m.Layers[i].Out
}

func (m *Model) inferLayer(l *Layer) error {
	if len(l.Inputs) == 0 {
		return fmt.Errorf("no inputs: %w", ErrShape)
	}
	for _, in := range l.Inputs {
		if in < -1 || in >= l.Index {
			return fmt.Errorf("input %d is not an earlier layer: %w", in, ErrShape)
		}
	}
	l.In = m.OutputShape(l.Inputs[0])
	in := l.In
	switch l.Kind {
	case KindConv:
		return inferConv(l)
	case KindMaxPool:
		p := l.Pool
		if p == nil || p.Size <= 0 || p.Stride <= 0 || p.Pad < 0 {
			return fmt.Errorf("bad pool parameters: %w", ErrShape)
		}
		l.Out = Shape{in.C, (in.H+p.Pad-p.Size)/p.Stride + 1, (in.W+p.Pad-p.Size)/p.Stride + 1}
	case KindRoute:
		return m.inferRoute(l)
	case KindShortcut:
		if len(l.Inputs) != 2 {
			return fmt.Errorf("shortcut needs 2 inputs, has %d: %w", len(l.Inputs), ErrShape)
		}
		if from := m.OutputShape(l.Inputs[1]); from != in {
			return fmt.Errorf("shortcut adds %v to %v (only equal shapes are supported): %w", from, in, ErrShape)
		}
		l.Out = in
	case KindUpsample:
		u := l.Upsample
		if u == nil || u.Stride <= 0 {
			return fmt.Errorf("bad upsample stride: %w", ErrShape)
		}
		l.Out = Shape{in.C, in.H * u.Stride, in.W * u.Stride}
	case KindDropout:
		l.Out = in
	case KindRegion, KindYolo:
		return inferHead(l)
	default:
		return fmt.Errorf("unknown layer kind %q", l.Kind)
	}
	if l.Out.H <= 0 || l.Out.W <= 0 {
		return fmt.Errorf("output %v is empty: %w", l.Out, ErrShape)
	}
	return nil
}

func inferConv(l *Layer) error {
	c, in := l.Conv, l.In
	if c == nil || c.Filters <= 0 || c.Size <= 0 || c.Stride <= 0 || c.Pad < 0 || c.Groups <= 0 {
		return fmt.Errorf("bad convolution parameters: %w", ErrShape)
	}
	if in.C%c.Groups != 0 || c.Filters%c.Groups != 0 {
		return fmt.Errorf("groups %d do not divide %d input and %d output channels: %w", c.Groups, in.C, c.Filters, ErrShape)
	}
	l.Out = Shape{c.Filters, (in.H+2*c.Pad-c.Size)/c.Stride + 1, (in.W+2*c.Pad-c.Size)/c.Stride + 1}
	if l.Out.H <= 0 || l.Out.W <= 0 {
		return fmt.Errorf("output %v is empty: %w", l.Out, ErrShape)
	}
	if want := c.Filters * in.C / c.Groups * c.Size * c.Size; c.Weights != nil && len(c.Weights) != want {
		return fmt.Errorf("%d weights, want %d: %w", len(c.Weights), want, ErrShape)
	}
	if c.Bias != nil && len(c.Bias) != c.Filters {
		return fmt.Errorf("%d biases, want %d: %w", len(c.Bias), c.Filters, ErrShape)
	}
	if bn := c.BN; bn != nil && (len(bn.Scale) != c.Filters || len(bn.Mean) != c.Filters || len(bn.Variance) != c.Filters) {
		return fmt.Errorf("batch norm has %d/%d/%d values, want %d: %w", len(bn.Scale), len(bn.Mean), len(bn.Variance), c.Filters, ErrShape)
	}
	return nil
}

func (m *Model) inferRoute(l *Layer) error {
	r := l.Route
	if r == nil || r.Groups <= 0 || r.GroupID < 0 || r.GroupID >= r.Groups {
		return fmt.Errorf("bad route groups: %w", ErrShape)
	}
	out := Shape{}
	for k, in := range l.Inputs {
		s := m.OutputShape(in)
		if s.C%r.Groups != 0 {
			return fmt.Errorf("route groups %d do not divide %d channels of layer %d: %w", r.Groups, s.C, in, ErrShape)
		}
		if k > 0 && (s.H != out.H || s.W != out.W) {
			return fmt.Errorf("route joins %dx%d with %dx%d (layer %d): %w", out.H, out.W, s.H, s.W, in, ErrShape)
		}
		out.C += s.C / r.Groups
		out.H, out.W = s.H, s.W
	}
	l.Out = out
	return nil
}

func inferHead(l *Layer) error {
	h, in := l.Head, l.In
	if h == nil || h.Classes <= 0 || h.Num <= 0 {
		return fmt.Errorf("bad head parameters: %w", ErrShape)
	}
	per := 4 + 1 + h.Classes
	if l.Kind == KindRegion {
		if h.Coords != 4 {
			return fmt.Errorf("region coords %d (only 4 is supported): %w", h.Coords, ErrShape)
		}
		if len(h.Anchors) < 2*h.Num {
			return fmt.Errorf("region has %d anchor values, needs %d: %w", len(h.Anchors), 2*h.Num, ErrShape)
		}
	} else {
		if len(h.Mask) != h.Num {
			return fmt.Errorf("yolo mask has %d entries, num says %d: %w", len(h.Mask), h.Num, ErrShape)
		}
		for _, k := range h.Mask {
			if k < 0 || 2*k+1 >= len(h.Anchors) {
				return fmt.Errorf("yolo mask %d has no anchor: %w", k, ErrShape)
			}
		}
	}
	if in.C != h.Num*per {
		return fmt.Errorf("head input has %d channels, want num*(5+classes) = %d: %w", in.C, h.Num*per, ErrShape)
	}
	l.Out = in
	return nil
}

// Heads returns the indices of the detection-head layers, in order.
func (m *Model) Heads() []int {
	var out []int
	for i, l := range m.Layers {
		if l.Kind == KindRegion || l.Kind == KindYolo {
			out = append(out, i)
		}
	}
	return out
}

// Classes is the class count of the first detection head (0 without a head).
func (m *Model) Classes() int {
	if h := m.Heads(); len(h) > 0 {
		return m.Layers[h[0]].Head.Classes
	}
	return 0
}

// Binarize writes darknet's binary=1 weights of OIHW weights w into dst (same length):
// each filter becomes sign(w) times the filter's mean absolute weight, w <= 0 mapping
// to -mean (binarize_weights).
func Binarize(dst, w []float32, filters int) {
	per := len(w) / filters
	for f := range filters {
		fw := w[f*per : (f+1)*per]
		var sum float64
		for _, v := range fw {
			sum += math.Abs(float64(v))
		}
		mean := float32(sum / float64(per))
		for j, v := range fw {
			if v > 0 {
				dst[f*per+j] = mean
			} else {
				dst[f*per+j] = -mean
			}
		}
	}
}
