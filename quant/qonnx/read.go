package qonnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// fileMeta is the JSON value of metadata_props["pynq.qonnx"].
type fileMeta struct {
	Format      int         `json:"format"`
	Stage       string      `json:"stage,omitempty"`
	Name        string      `json:"name,omitempty"`
	Dialect     string      `json:"dialect,omitempty"`
	Input       [3]int      `json:"input"`
	BNEpsilon   float32     `json:"bn_epsilon"`
	BNEpsInside bool        `json:"bn_eps_inside"`
	Layers      []layerMeta `json:"layers"`
}

type layerMeta struct {
	Name     string          `json:"name"`
	Kind     quant.Kind      `json:"kind"`
	Inputs   []int           `json:"inputs"`
	Conv     *convMeta       `json:"conv,omitempty"`
	Pool     *quant.Pool     `json:"pool,omitempty"`
	Route    *quant.Route    `json:"route,omitempty"`
	Shortcut *quant.Shortcut `json:"shortcut,omitempty"`
	Upsample *quant.Upsample `json:"upsample,omitempty"`
	Head     *quant.Head     `json:"head,omitempty"`
	Quant    *quantMeta      `json:"quant,omitempty"`
}

// convMeta holds a convolution's hyper-parameters and the initializers of its tensors.
// Flipped: the weights are ±1 signs with inverted channels negated (streamlined form).
type convMeta struct {
	Filters    int              `json:"filters"`
	Size       int              `json:"size"`
	Stride     int              `json:"stride"`
	Pad        int              `json:"pad"`
	Groups     int              `json:"groups"`
	Activation quant.Activation `json:"activation"`
	Binary     bool             `json:"binary,omitempty"`
	XNOR       bool             `json:"xnor,omitempty"`
	Weights    string           `json:"weights"`
	Bias       string           `json:"bias,omitempty"`
	BNScale    string           `json:"bn_scale,omitempty"`
	BNMean     string           `json:"bn_mean,omitempty"`
	BNVar      string           `json:"bn_var,omitempty"`
	Flipped    bool             `json:"flipped,omitempty"`
}

type quantMeta struct {
	WeightBits  int       `json:"weight_bits"`
	WeightScale string    `json:"weight_scale,omitempty"`
	ActBits     int       `json:"act_bits"`
	ActScale    float32   `json:"act_scale"`
	ActSigned   bool      `json:"act_signed,omitempty"`
	Thresholds  [][]int32 `json:"thresholds,omitempty"`
	Invert      []bool    `json:"invert,omitempty"`
}

// ReadFile reads a QONNX file written by these steps back into the IR, with LayerQuant
// filled (WeightBits, WeightScale, ActBits, ActScale, ActSigned, and Thresholds/Invert
// when present). A plain ONNX file (no "pynq.qonnx" metadata, e.g. from quant convert)
// is imported with quant/onnx.
func ReadFile(path string) (*quant.Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read qonnx: %w", err)
	}
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, fmt.Errorf("read qonnx %s: not an ONNX model: %w", path, err)
	}
	m, err := Read(mp)
	if err != nil {
		return nil, fmt.Errorf("read qonnx %s: %w", path, err)
	}
	return m, nil
}

// ErrNoMeta is returned by [Read] for a graph without the "pynq.qonnx" metadata.
var ErrNoMeta = errors.New("no pynq.qonnx metadata")

// Read rebuilds the IR from a ModelProto: from the "pynq.qonnx" metadata and the
// initializers it names, else (plain ONNX) through quant/onnx's importer.
func Read(mp *onnxpb.ModelProto) (*quant.Model, error) {
	var raw string
	for _, p := range mp.GetMetadataProps() {
		if p.GetKey() == MetaKey {
			raw = p.GetValue()
		}
	}
	if raw == "" {
		m, err := onnx.Import(mp)
		if err != nil {
			return nil, fmt.Errorf("%w (%w)", ErrNoMeta, err)
		}
		return m, nil
	}
	var fm fileMeta
	if err := json.Unmarshal([]byte(raw), &fm); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", MetaKey, err)
	}
	if fm.Format != metaFormat {
		return nil, fmt.Errorf("metadata %s: format %d (this build reads %d)", MetaKey, fm.Format, metaFormat)
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range mp.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	floats := func(name string, want int) ([]float32, error) {
		if name == "" {
			return nil, nil
		}
		t, ok := inits[name]
		if !ok {
			return nil, fmt.Errorf("initializer %q is missing", name)
		}
		v, err := onnxbuild.Floats(t)
		if err == nil && want >= 0 && len(v) != want {
			err = fmt.Errorf("initializer %q has %d values, want %d", name, len(v), want)
		}
		return v, err
	}
	m := &quant.Model{Name: fm.Name, Dialect: quant.Dialect(fm.Dialect), BNEpsilon: fm.BNEpsilon, BNEpsInside: fm.BNEpsInside,
		Input: quant.Shape{C: fm.Input[0], H: fm.Input[1], W: fm.Input[2]}}
	for i, lm := range fm.Layers {
		l := &quant.Layer{Index: i, Kind: lm.Kind, Name: lm.Name, Inputs: lm.Inputs, Pool: lm.Pool, Route: lm.Route,
			Shortcut: lm.Shortcut, Upsample: lm.Upsample, Head: lm.Head}
		if len(l.Inputs) == 0 {
			return nil, fmt.Errorf("layer %d (%s): no inputs", i, lm.Name)
		}
		if !kindParams(lm) {
			return nil, fmt.Errorf("layer %d (%s): %s without its parameters", i, lm.Name, lm.Kind)
		}
		if cm := lm.Conv; cm != nil {
			l.Conv = &quant.Conv{Filters: cm.Filters, Size: cm.Size, Stride: cm.Stride, Pad: cm.Pad, Groups: cm.Groups,
				Activation: cm.Activation, Binary: cm.Binary, XNOR: cm.XNOR}
		}
		if qm := lm.Quant; qm != nil {
			l.Quant = &quant.LayerQuant{WeightBits: qm.WeightBits, ActBits: qm.ActBits, ActScale: qm.ActScale,
				ActSigned: qm.ActSigned, Thresholds: qm.Thresholds, Invert: qm.Invert}
		}
		m.Layers = append(m.Layers, l)
	}
	// Shapes first (they size the tensors), then the tensors.
	for _, l := range m.Layers {
		if l.Kind == quant.KindConv && l.Conv == nil {
			return nil, fmt.Errorf("layer %s: convolution without parameters", l.Name)
		}
	}
	if err := m.InferShapes(); err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		cm := fm.Layers[i].Conv
		if cm == nil {
			continue
		}
		c := l.Conv
		per := l.In.C / c.Groups * c.Size * c.Size
		var err error
		if c.Weights, err = floats(cm.Weights, c.Filters*per); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
		if c.Bias, err = floats(cm.Bias, c.Filters); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
		if cm.BNScale != "" {
			bn := &quant.BatchNorm{}
			if bn.Scale, err = floats(cm.BNScale, c.Filters); err == nil {
				if bn.Mean, err = floats(cm.BNMean, c.Filters); err == nil {
					bn.Variance, err = floats(cm.BNVar, c.Filters)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Name, err)
			}
			c.BN = bn
		}
		if q := l.Quant; q != nil {
			if q.WeightScale, err = floats(fm.Layers[i].Quant.WeightScale, c.Filters); err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Name, err)
			}
			if err := checkQuant(l); err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Name, err)
			}
			if cm.Flipped && len(q.Invert) == c.Filters {
				for o, inv := range q.Invert {
					if inv {
						for k := o * per; k < (o+1)*per; k++ {
							c.Weights[k] = -c.Weights[k]
						}
					}
				}
			}
		}
	}
	return m, nil
}

// kindParams reports whether a layer carries the parameters of its kind.
func kindParams(lm layerMeta) bool {
	switch lm.Kind {
	case quant.KindConv:
		return lm.Conv != nil
	case quant.KindMaxPool:
		return lm.Pool != nil
	case quant.KindRoute:
		return lm.Route != nil
	case quant.KindShortcut:
		return lm.Shortcut != nil
	case quant.KindUpsample:
		return lm.Upsample != nil
	case quant.KindRegion, quant.KindYolo:
		return lm.Head != nil
	}
	return true
}

func checkQuant(l *quant.Layer) error {
	q := l.Quant
	if q.WeightBits < 0 || q.WeightBits > 8 || q.ActBits < 0 || q.ActBits > 8 {
		return fmt.Errorf("weight bits %d / activation bits %d out of range", q.WeightBits, q.ActBits)
	}
	if q.Invert != nil && (l.Conv == nil || len(q.Invert) != l.Conv.Filters) {
		return fmt.Errorf("%d invert flags do not match the filters", len(q.Invert))
	}
	if q.ActBits > 0 && !(q.ActScale > 0) {
		return fmt.Errorf("activation scale %g is not positive", q.ActScale)
	}
	if len(q.Thresholds) == 0 {
		return nil
	}
	if l.Conv == nil || len(q.Thresholds) != l.Conv.Filters || len(q.Invert) != l.Conv.Filters {
		return fmt.Errorf("%d threshold rows / %d invert flags do not match the filters", len(q.Thresholds), len(q.Invert))
	}
	for o, t := range q.Thresholds {
		if len(t) != 1<<q.ActBits-1 {
			return fmt.Errorf("channel %d has %d thresholds, want %d", o, len(t), 1<<q.ActBits-1)
		}
	}
	return nil
}
