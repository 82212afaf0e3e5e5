package qonnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
	"github.com/fpgadetector/pynq-agent/quant"
)

// ErrUnsupported is wrapped when a model uses something the QONNX files cannot express.
var ErrUnsupported error = unsupported.Error("not supported")

// Note is one line of a step's report about a layer.
type Note struct {
	Layer  string `json:"layer"`
	Bits   int    `json:"bits,omitempty"`
	Reason string `json:"reason"`
}

func (n Note) String() string { return n.Layer + ": " + n.Reason }

// FinnReport says what [Finn] found.
type FinnReport struct {
	Layers    int    // IR layers
	BatchNorm int    // convolutions with batch norm (kept as BatchNormalization nodes)
	Leaky     []Note // LeakyRelu layers: FINN has no handler (see QuantizeActivations)
	Notes     []Note // other things FINN will not convert (activations, grouped convs)
}

// Finn checks that m can be written as a clean QONNX model for FINN (opset 11, NCHW,
// explicit pads, UINT8 input with the 1/255 pixel scale as a Mul, batch norm kept as
// BatchNormalization nodes, which FINN folds into thresholds when it streamlines) and
// reports what FINN will not convert. It does not change m beyond shape inference.
func Finn(m *quant.Model) (*FinnReport, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("finn: %w", err)
	}
	r := &FinnReport{Layers: len(m.Layers)}
	for _, l := range m.Layers {
		act := quant.ActLinear
		switch l.Kind {
		case quant.KindConv:
			act = l.Conv.Activation
			if l.Conv.BN != nil {
				r.BatchNorm++
			}
			if g := l.Conv.Groups; g > 1 && (g != l.In.C || l.Conv.Filters != g) {
				r.Notes = append(r.Notes, Note{Layer: l.Name, Reason: fmt.Sprintf("grouped convolution (groups=%d) that is not depthwise: FINN converts standard and depthwise convolutions only", g)})
			}
			if l.Conv.Weights == nil {
				return nil, fmt.Errorf("finn: layer %s has no weights (load the .weights file)", l.Name)
			}
		case quant.KindShortcut:
			act = l.Shortcut.Activation
		}
		if !ActivationSupported(act) {
			return nil, fmt.Errorf("finn: layer %s: activation %q: %w (QONNX files take linear, relu, leaky, logistic, lhtan)", l.Name, act, ErrUnsupported)
		}
		if act == quant.ActLeaky {
			r.Leaky = append(r.Leaky, Note{Layer: l.Name, Reason: "LeakyRelu: FINN has no LeakyRelu handler (quant activations --leaky=relu replaces it)"})
		}
		if act == quant.ActLHTan {
			r.Notes = append(r.Notes, Note{Layer: l.Name, Reason: "lhtan written as Min(LeakyRelu(x, 0.001), 0.001x + 0.999), which FINN does not convert; quant activations puts an unsigned quantizer with clip [0, 1] after it, and then it is written as Relu + Quant (same levels)"})
		}
	}
	return r, nil
}

// WeightOptions tune [QuantizeWeights].
type WeightOptions struct {
	Bits int // weight bits of the quantized layers: 1 = bipolar (-1,+1) times a per-channel scale
	// KeepFirst and KeepLast keep the first convolution and the convolutions feeding a
	// detection head at KeepBits, as QNN-MO-PYNQ (float first and last layers on the CPU)
	// and FINN users do.
	KeepFirst, KeepLast bool
	KeepBits            int // 0 = float, 2..8 = signed narrow Quant; for kept and non-binarizable layers
	// Overrides sets the bits of named layers (0 float, 1 bipolar, 2..8), winning over
	// everything else.
	Overrides map[string]int
}

// WeightReport says what [QuantizeWeights] did.
type WeightReport struct {
	Quantized []Note // layers quantized to Bits
	Kept      []Note // layers kept (first/last/overrides) and their bits
	Refused   []Note // layers that cannot be binarized (grouped/depthwise), kept at KeepBits
}

// OverrideFile is the TOML form of the weight step's overrides:
//
//	keep_first = true
//	keep_last = true
//	keep_bits = 8
//	[layers]
//	conv0 = 8
//	conv13 = 0
type OverrideFile struct {
	KeepFirst *bool          `toml:"keep_first"`
	KeepLast  *bool          `toml:"keep_last"`
	KeepBits  *int           `toml:"keep_bits"`
	Layers    map[string]int `toml:"layers"`
}

// LoadOverrides reads an [OverrideFile] and applies it to opt.
func LoadOverrides(path string, opt *WeightOptions) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("overrides: %w", err)
	}
	return ParseOverrides(data, path, opt)
}

// ParseOverrides is [LoadOverrides] on the file's contents (name is for errors).
func ParseOverrides(data []byte, name string, opt *WeightOptions) error {
	var f OverrideFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return fmt.Errorf("overrides %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("overrides %s: unknown key %q (want keep_first, keep_last, keep_bits, [layers])", name, und[0].String())
	}
	if f.KeepBits != nil {
		if err := checkBits(name+": keep_bits", *f.KeepBits); err != nil {
			return err
		}
	}
	for k, v := range f.Layers {
		if err := checkBits(name+": layer "+k, v); err != nil {
			return err
		}
	}
	if f.KeepFirst != nil {
		opt.KeepFirst = *f.KeepFirst
	}
	if f.KeepLast != nil {
		opt.KeepLast = *f.KeepLast
	}
	if f.KeepBits != nil {
		opt.KeepBits = *f.KeepBits
	}
	if opt.Overrides == nil {
		opt.Overrides = map[string]int{}
	}
	for k, v := range f.Layers {
		opt.Overrides[k] = v
	}
	return nil
}

func checkBits(what string, b int) error {
	if b < 0 || b > 8 {
		return fmt.Errorf("%s %d: want 0 (float), 1 (bipolar) or 2..8", what, b)
	}
	return nil
}

// convIndices returns the first convolution and the convolutions that feed a head.
func edgeConvs(m *quant.Model) (first int, last map[int]bool) {
	first = -1
	for i, l := range m.Layers {
		if l.Kind == quant.KindConv {
			first = i
			break
		}
	}
	last = map[int]bool{}
	for _, h := range m.Heads() {
		for _, in := range m.Layers[h].Inputs {
			if in >= 0 && m.Layers[in].Kind == quant.KindConv {
				last[in] = true
			}
		}
	}
	return first, last
}

// QuantizeWeights quantizes the convolution weights of m in place (the IR keeps the
// float weights; LayerQuant.WeightBits and WeightScale say how they are quantized):
// bipolar layers get alpha = mean |W| per output channel (rounded to
// [WeightScaleBits] significant bits), multi-bit layers max |W| / (2^(b-1)-1).
func QuantizeWeights(m *quant.Model, opt WeightOptions) (*WeightReport, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("quantize weights: %w", err)
	}
	if err := checkBits("--weight-bits", opt.Bits); err != nil {
		return nil, err
	}
	if err := checkBits("keep bits", opt.KeepBits); err != nil {
		return nil, err
	}
	if opt.KeepBits == 1 {
		return nil, errors.New("keep bits 1: kept layers are float (0) or 2..8 bits")
	}
	names := map[string]bool{}
	for _, l := range m.Layers {
		names[l.Name] = true
	}
	for k, b := range opt.Overrides {
		if !names[k] {
			return nil, fmt.Errorf("override for layer %q: no such layer", k)
		}
		if err := checkBits("override "+k, b); err != nil {
			return nil, err
		}
	}
	first, last := edgeConvs(m)
	r := &WeightReport{}
	for i, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		bits, why := opt.Bits, ""
		switch {
		case i == first && opt.KeepFirst:
			bits, why = opt.KeepBits, "first layer"
		case last[i] && opt.KeepLast:
			bits, why = opt.KeepBits, "last layer (feeds a head)"
		}
		if b, ok := opt.Overrides[l.Name]; ok {
			bits, why = b, "override"
		}
		if bits == 1 && l.Conv.Groups > 1 {
			r.Refused = append(r.Refused, Note{Layer: l.Name, Bits: opt.KeepBits,
				Reason: fmt.Sprintf("grouped convolution (groups=%d, %d input channels per filter) cannot be binarized", l.Conv.Groups, l.In.C/l.Conv.Groups)})
			bits = opt.KeepBits
		} else if why != "" {
			r.Kept = append(r.Kept, Note{Layer: l.Name, Bits: bits, Reason: why})
		} else {
			r.Quantized = append(r.Quantized, Note{Layer: l.Name, Bits: bits, Reason: "quantized"})
		}
		setWeightQuant(l, bits)
	}
	return r, nil
}

// setWeightQuant records bits and per-channel scales for l's weights.
func setWeightQuant(l *quant.Layer, bits int) {
	c := l.Conv
	if bits == 0 {
		if l.Quant != nil {
			l.Quant.WeightBits, l.Quant.WeightScale = 0, nil
			dropEmptyQuant(l)
		}
		return
	}
	if l.Quant == nil {
		l.Quant = &quant.LayerQuant{}
	}
	q := l.Quant
	q.WeightBits = bits
	q.WeightScale = WeightScales(c.Weights, c.Filters, bits)
	q.Thresholds, q.Invert = nil, nil
}

// WeightScales are the per-output-channel scales of bits-bit weights (w holds filters
// equal rows): bits 1, alpha = mean |w| rounded by [RoundWeightScale]; 2..8, the
// narrow signed range's max |w| / (2^(bits-1)-1), 1 for an all-zero row.
func WeightScales(w []float32, filters, bits int) []float32 {
	scales := make([]float32, filters)
	per := len(w) / filters
	_, hi := LevelRange(bits, true, true)
	for o := range filters {
		var sum, mx float64
		for _, v := range w[o*per : (o+1)*per] {
			a := math.Abs(float64(v))
			sum += a
			mx = max(mx, a)
		}
		switch {
		case bits == 1:
			scales[o] = RoundWeightScale(float32(sum / float64(per)))
		case mx == 0:
			scales[o] = 1
		default:
			scales[o] = float32(mx / float64(hi))
		}
	}
	return scales
}

func dropEmptyQuant(l *quant.Layer) {
	if q := l.Quant; q != nil && q.WeightBits == 0 && q.ActBits == 0 && len(q.Thresholds) == 0 {
		l.Quant = nil
	}
}

// ActOptions tune [QuantizeActivations].
type ActOptions struct {
	Bits int // activation bits (3)
	// Leaky says what to do with LeakyRelu layers, which FINN cannot convert:
	// "relu" replaces the activation by ReLU (then unsigned quantizer; changes the
	// network, best followed by retraining), "keep" keeps LeakyRelu with a signed
	// quantizer (levels -2^(b-1)..2^(b-1)-1; no MultiThreshold for those layers),
	// "" or "error" refuses.
	Leaky string
	// Scale is the placeholder activation scale until calibration (0: 4/(2^b-1), the
	// [0,4] range QNN-MO's first layer uses).
	Scale float32
}

// ActReport says what [QuantizeActivations] did.
type ActReport struct {
	Quantized []Note // layers with an unsigned quantizer after ReLU
	Leaky     []Note // leaky layers: replaced by ReLU, or kept with a signed quantizer
	Float     []Note // layers left float and why
}

// QuantizeActivations puts a Bits-bit quantizer after the activation of every hidden
// convolution (not the ones that feed a head) whose activation is ReLU or lhtan
// (unsigned) or leaky (see ActOptions.Leaky). The scale is a placeholder until
// calibration, except after lhtan: 1/(2^Bits-1), the clip [0, 1] where lhtan saturates.
func QuantizeActivations(m *quant.Model, opt ActOptions) (*ActReport, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("quantize activations: %w", err)
	}
	if opt.Bits < 2 || opt.Bits > 8 {
		return nil, fmt.Errorf("--activation-bits %d: want 2..8", opt.Bits)
	}
	switch opt.Leaky {
	case "", "error", "relu", "keep":
	default:
		return nil, fmt.Errorf("--leaky %q: want relu, keep or error", opt.Leaky)
	}
	_, last := edgeConvs(m)
	r := &ActReport{}
	var leaky []string
	for i, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		if last[i] {
			r.Float = append(r.Float, Note{Layer: l.Name, Reason: "feeds a detection head"})
			clearAct(l)
			continue
		}
		signed, lhtan := false, false
		switch l.Conv.Activation {
		case quant.ActReLU:
		case quant.ActLHTan:
			lhtan = true
		case quant.ActLeaky:
			switch opt.Leaky {
			case "relu":
				l.Conv.Activation = quant.ActReLU
				r.Leaky = append(r.Leaky, Note{Layer: l.Name, Reason: "LeakyRelu replaced by Relu"})
			case "keep":
				signed = true
				r.Leaky = append(r.Leaky, Note{Layer: l.Name, Reason: "LeakyRelu kept, signed quantizer"})
			default:
				leaky = append(leaky, l.Name)
				continue
			}
		default:
			r.Float = append(r.Float, Note{Layer: l.Name, Reason: fmt.Sprintf("activation %s (only relu/lhtan/leaky outputs are quantized)", l.Conv.Activation)})
			clearAct(l)
			continue
		}
		if l.Quant == nil {
			l.Quant = &quant.LayerQuant{}
		}
		q := l.Quant
		q.ActBits, q.ActSigned = opt.Bits, signed
		q.Thresholds, q.Invert = nil, nil
		q.ActScale = opt.Scale
		if q.ActScale <= 0 {
			_, hi := LevelRange(opt.Bits, signed, false)
			q.ActScale = 4 / hi
		}
		if lhtan && opt.Scale <= 0 {
			// lhtan saturates at 1: levels 0..2^b-1 at scale 1/(2^b-1) cover [0, 1],
			// QNN-MO's clip (calibration may lower it, never raises it past 1).
			_, hi := LevelRange(opt.Bits, false, false)
			q.ActScale = 1 / hi
		}
		q.ActScale = RoundActScale(q.ActScale, opt.Bits)
		switch {
		case lhtan && LHTanAsReLU(q):
			r.Quantized = append(r.Quantized, Note{Layer: l.Name, Bits: opt.Bits, Reason: fmt.Sprintf("unsigned quantizer after lhtan, clip [0, %.4g]: written as Relu + Quant (FINN's MultiThreshold pattern; the same levels as lhtan + Quant, lhtan being the identity below 1 and the top level lying below 1)", float64(q.ActScale)*float64(int(1)<<opt.Bits-1))})
		case lhtan:
			r.Quantized = append(r.Quantized, Note{Layer: l.Name, Bits: opt.Bits, Reason: "unsigned quantizer after lhtan (clip beyond lhtan's saturation at 1: written as the lhtan op chain + Quant, which FINN does not convert)"})
		case !signed:
			r.Quantized = append(r.Quantized, Note{Layer: l.Name, Bits: opt.Bits, Reason: "unsigned quantizer after ReLU"})
		}
	}
	if len(leaky) > 0 {
		sort.Strings(leaky)
		return r, fmt.Errorf("quantize activations: %d LeakyRelu layers (%s): FINN has no LeakyRelu handler; use --leaky=relu (replace by ReLU) or --leaky=keep (signed quantizer, no MultiThreshold)", len(leaky), strings.Join(leaky, ", "))
	}
	return r, nil
}

func clearAct(l *quant.Layer) {
	if l.Quant != nil {
		l.Quant.ActBits, l.Quant.ActScale, l.Quant.ActSigned = 0, 0, false
		l.Quant.Thresholds, l.Quant.Invert = nil, nil
		dropEmptyQuant(l)
	}
}

// QuantizedLayers returns the indices of the layers with an activation quantizer.
func QuantizedLayers(m *quant.Model) []int {
	var out []int
	for i, l := range m.Layers {
		if l.Quant != nil && l.Quant.ActBits > 0 {
			out = append(out, i)
		}
	}
	return out
}

// Clone returns a deep copy of m (the steps modify models in place).
func Clone(m *quant.Model) *quant.Model {
	c := *m
	c.Layers = make([]*quant.Layer, len(m.Layers))
	for i, l := range m.Layers {
		x := *l
		x.Inputs = slices.Clone(l.Inputs)
		if l.Conv != nil {
			cv := *l.Conv
			cv.Weights, cv.Bias = slices.Clone(cv.Weights), slices.Clone(cv.Bias)
			if cv.BN != nil {
				cv.BN = &quant.BatchNorm{Scale: slices.Clone(cv.BN.Scale), Mean: slices.Clone(cv.BN.Mean), Variance: slices.Clone(cv.BN.Variance)}
			}
			x.Conv = &cv
		}
		if l.Quant != nil {
			q := *l.Quant
			q.WeightScale = slices.Clone(q.WeightScale)
			q.Invert = slices.Clone(q.Invert)
			q.Thresholds = make([][]int32, len(l.Quant.Thresholds))
			for k, t := range l.Quant.Thresholds {
				q.Thresholds[k] = slices.Clone(t)
			}
			if l.Quant.Thresholds == nil {
				q.Thresholds = nil
			}
			x.Quant = &q
		}
		c.Layers[i] = &x
	}
	return &c
}
