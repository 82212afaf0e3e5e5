package todarknet

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// Float activations of the quantized layers in the exported darknet model.
const (
	// FloatReLU: plain relu. Every reader of this project (quant/darknet, the float
	// engine, ONNX) takes it, but without the quantizer's clip the float model computes
	// something else than the quantized one.
	FloatReLU = "relu"
	// FloatLHTan: darknet's "lhtan" (leaky hard tanh: x for 0 <= x <= 1, slope 0.001
	// outside), with every quantizer's scale set to 1/(2^bits-1) so that its top level
	// sits at 1: the float model is then the quantized one without rounding (on dog.jpg
	// it finds what the W1A3 model finds), the better start for fine-tuning in darknet.
	// pjreddie's and AlexeyAB's darknet have it; quant/darknet does not, so read such
	// an export with [LoadExport].
	FloatLHTan = "lhtan"
)

// Options steer [ExportWith].
type Options struct {
	// FloatActivation is FloatReLU ("" too) or FloatLHTan.
	FloatActivation string
}

// ExportWith is [Export] with a choice of float activation. With FloatLHTan every
// unsigned activation quantizer gets scale 1/(2^bits-1) (the levels and thresholds do
// not change: a binary layer's thresholds do not depend on the scales, and a float
// layer's weights and bias are rescaled to match: the first Tinier-YOLO layer by 1/4,
// the last by 7), and the cfg says activation=lhtan for the quantized layers.
func ExportWith(m *quant.Model, opt Options) (*Result, error) {
	switch opt.FloatActivation {
	case "", FloatReLU:
		return Export(m)
	case FloatLHTan:
	default:
		return nil, fmt.Errorf("export darknet: float activation %q (want %s or %s)", opt.FloatActivation, FloatReLU, FloatLHTan)
	}
	sm, err := unitScales(m)
	if err != nil {
		return nil, fmt.Errorf("export darknet: %s: %w", FloatLHTan, err)
	}
	res, err := Export(sm)
	if err != nil {
		return nil, err
	}
	res.Sidecar.FloatActivation = FloatLHTan
	return res, nil
}

// unitScales returns a copy of m whose unsigned activation quantizers have scale
// 1/(2^bits-1), float layers rescaled so that the network computes the same levels and
// the same outputs after the last quantized layer.
func unitScales(m *quant.Model) (*quant.Model, error) {
	if err := m.InferShapes(); err != nil {
		return nil, err
	}
	out := *m
	out.Layers = make([]*quant.Layer, len(m.Layers))
	r := make([]float64, len(m.Layers)) // factor by which layer i's output is scaled
	factor := func(in int) float64 {
		if in < 0 {
			return 1
		}
		return r[in]
	}
	for i, l := range m.Layers {
		nl := *l
		out.Layers[i] = &nl
		rIn := factor(l.Inputs[0])
		for _, in := range l.Inputs[1:] {
			if factor(in) != rIn {
				return nil, fmt.Errorf("layer %d (%s) joins outputs of different scales", i, l.Name)
			}
		}
		r[i] = rIn
		switch l.Kind {
		case quant.KindConv:
			r[i] = rescaleConv(&nl, rIn)
		case quant.KindMaxPool, quant.KindDropout, quant.KindRoute:
		default:
			if rIn != 1 {
				return nil, fmt.Errorf("layer %d (%s %s) reads a quantized layer's output directly (only convolutions, pools and routes may)", i, l.Kind, l.Name)
			}
		}
	}
	return &out, nil
}

// rescaleConv rewrites a copied layer for input scaled by rIn and returns its output
// factor: s'/s for an unsigned quantized layer, else 1.
func rescaleConv(l *quant.Layer, rIn float64) float64 {
	rOut := 1.0
	if q := l.Quant; q != nil && q.ActBits > 0 && !q.ActSigned && q.ActScale > 0 {
		nq := *q
		nq.ActScale = float32(1 / float64(int(1)<<q.ActBits-1))
		rOut = float64(nq.ActScale) / float64(q.ActScale)
		l.Quant = &nq
		if len(q.Thresholds) > 0 {
			return rOut // integer layer: acc and thresholds do not depend on scales
		}
	}
	if rOut == 1 && rIn == 1 {
		return 1
	}
	c := *l.Conv
	l.Conv = &c
	wf := rOut / rIn
	if c.BN != nil {
		wf = 1 / rIn // the batch norm sees the same conv output; scale its output
		bn := *c.BN
		bn.Scale = scaled(bn.Scale, rOut)
		c.BN = &bn
	}
	c.Weights = scaled(c.Weights, wf)
	c.Bias = scaled(c.Bias, rOut)
	return rOut
}

func scaled(v []float32, f float64) []float32 {
	if v == nil || f == 1 {
		return v
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * f)
	}
	return out
}

// setActivations rewrites the activation= lines of the cfg sections of the given layer
// indices (sections after [net], from 0).
func setActivations(cfg []byte, layers map[int]bool, act string) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	idx := -1
	for sc.Scan() {
		line := sc.Text()
		if k, ok := sectionKind(line); ok && k != "net" {
			idx++
		}
		if key, _, ok := strings.Cut(line, "="); ok && layers[idx] && strings.TrimSpace(key) == "activation" {
			line = "activation=" + act
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// quantizedLayers returns the indices of the sidecar's layers with an activation
// quantizer.
func (s *Sidecar) quantizedLayers() map[int]bool {
	out := map[int]bool{}
	for _, l := range s.Layers {
		if l.ActBits > 0 {
			out[l.Index] = true
		}
	}
	return out
}

// LoadExport reads an exported float model and its sidecar (beside the cfg). A
// FloatLHTan export is read with relu in place of lhtan, which quant/darknet does not
// know: quantized, the two are the same (the quantizer clips), so the model is fit for
// [Requantize] and [ApplyScales], not for float inference.
func LoadExport(cfgPath, weightsPath string) (*quant.Model, *Sidecar, error) {
	sc, err := ReadSidecar(SidecarPath(cfgPath))
	if err != nil {
		return nil, nil, err
	}
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load export: %w", err)
	}
	if sc.FloatActivation == FloatLHTan {
		cfg = setActivations(cfg, sc.quantizedLayers(), FloatReLU)
	}
	m, err := darknet.ParseCfg(bytes.NewReader(cfg), cfgPath, darknet.Options{})
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(weightsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load export: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("load export: %w", err)
	}
	if _, err := darknet.ReadWeights(bufio.NewReaderSize(f, 1<<16), weightsPath, st.Size(), m); err != nil {
		return nil, nil, err
	}
	return m, sc, nil
}
