package qnnmo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// FromQAT turns a W1A3 model trained with its quantizers in the loop (quant/train's
// QAT: batch-normalized convolutions, LayerQuant with WeightBits 1 on the hidden ones,
// ActBits 3 and the trained ActScale on all but the last) into the IR [LoadDir]
// returns, which the engine runs:
//
//   - the first convolution: batch norm folded into weights and bias, both scaled by
//     FirstActScale/ActScale so that its fixed quantizer round(clip(x,0,4)/4*7) gives
//     the trained levels round(y/ActScale);
//   - each hidden convolution: weights +1/-1 and integer thresholds on the sum of
//     weight sign times input level, from the input scale s_in (the quantized layer
//     before it), the filter's mean |w| alpha as training rounds it, the batch norm,
//     activation and quantizer: quant/qonnx's one derivation
//     ([qonnx.LevelFunc.Thresholds]), so the engine gives the float graph's level
//     round(y/s) of y = A*acc + B (A = gamma*alpha*s_in/sigma, B = beta - gamma*mu/sigma)
//     at every acc, ties included, and quant calibrate derives the same thresholds from
//     the same model. A < 0 gives an inverted channel, A = 0 a constant one;
//   - the last convolution: weights times the last hidden layer's ActScale (the engine
//     hands it levels, ActScale 1 as in QNN-MO's pipeline).
//
// m is not modified.
func FromQAT(m *quant.Model) (*quant.Model, error) {
	out := &quant.Model{Name: m.Name, Input: m.Input, Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6}
	var inScale float32 // scale of the levels the next convolution reads
	var convs []int
	for i, l := range m.Layers {
		if l.Kind == quant.KindConv {
			convs = append(convs, i)
		}
	}
	if len(convs) < 3 {
		return nil, fmt.Errorf("qat model: %d convolutions, want a first, hidden and last one", len(convs))
	}
	for i, l := range m.Layers {
		nl := &quant.Layer{Kind: l.Kind, Name: l.Name, Inputs: append([]int(nil), l.Inputs...)}
		switch {
		case l.Kind == quant.KindMaxPool:
			p := *l.Pool
			nl.Pool = &p
		case l.Kind == quant.KindRegion:
			h := *l.Head
			h.Anchors = append([]float32(nil), h.Anchors...)
			nl.Head = &h
		case l.Kind == quant.KindConv && i == convs[0]:
			if err := foldFirst(m, l, nl); err != nil {
				return nil, err
			}
			inScale = l.Quant.ActScale
		case l.Kind == quant.KindConv && i == convs[len(convs)-1]:
			if l.Quant != nil || l.Conv.BN != nil || l.Conv.Activation != quant.ActLinear {
				return nil, fmt.Errorf("qat model: last convolution %s must be float, linear, without batch norm", l.Name)
			}
			c := *l.Conv
			c.Weights = scaled(l.Conv.Weights, inScale)
			c.Bias = append([]float32(nil), l.Conv.Bias...)
			nl.Conv = &c
		case l.Kind == quant.KindConv:
			if err := thresholdLayer(m, l, nl, inScale); err != nil {
				return nil, err
			}
			inScale = l.Quant.ActScale
		default:
			return nil, fmt.Errorf("qat model: layer %s (%s) has no place in a QNN-MO model", l.Name, l.Kind)
		}
		out.Layers = append(out.Layers, nl)
	}
	if err := out.InferShapes(); err != nil {
		return nil, err
	}
	return out, nil
}

// bnSigma is the batch norm's divisor for channel o under m's convention.
func bnSigma(m *quant.Model, v float32) float64 {
	if m.BNEpsInside {
		return math.Sqrt(float64(v) + float64(m.BNEpsilon))
	}
	return math.Sqrt(math.Max(float64(v), 0)) + float64(m.BNEpsilon)
}

// bnAffine returns the per-channel gain and offset of a convolution's batch norm and
// bias: y = g*conv + b.
func bnAffine(m *quant.Model, c *quant.Conv) (g, b []float64) {
	g, b = make([]float64, c.Filters), make([]float64, c.Filters)
	for o := range g {
		g[o] = 1
		if c.Bias != nil {
			b[o] = float64(c.Bias[o])
		}
		if bn := c.BN; bn != nil {
			s := bnSigma(m, bn.Variance[o])
			g[o] = float64(bn.Scale[o]) / s
			b[o] -= g[o] * float64(bn.Mean[o])
		}
	}
	return g, b
}

func foldFirst(m *quant.Model, l, nl *quant.Layer) error {
	q := l.Quant
	if q == nil || q.ActBits != 3 || q.WeightBits != 0 || !(q.ActScale > 0) || l.Conv.Groups > 1 {
		return fmt.Errorf("qat model: first convolution %s needs float weights and a 3-bit activation quantizer", l.Name)
	}
	if a := qonnx.WrittenActivation(l); a != quant.ActReLU && a != quant.ActLeaky && a != quant.ActLinear {
		return fmt.Errorf("qat model: first convolution %s: activation %s (the engine's input quantizer clips at 0)", l.Name, a)
	}
	g, b := bnAffine(m, l.Conv)
	k := float64(FirstActScale) / float64(q.ActScale)
	c := *l.Conv
	c.BN, c.Activation = nil, quant.ActReLU
	c.Weights = make([]float32, len(l.Conv.Weights))
	c.Bias = make([]float32, c.Filters)
	per := len(c.Weights) / c.Filters
	for o := 0; o < c.Filters; o++ {
		for j := 0; j < per; j++ {
			c.Weights[o*per+j] = float32(float64(l.Conv.Weights[o*per+j]) * g[o] * k)
		}
		c.Bias[o] = float32(b[o] * k)
	}
	nl.Conv = &c
	nl.Quant = &quant.LayerQuant{ActBits: 3, ActScale: FirstActScale}
	return nil
}

func thresholdLayer(m *quant.Model, l, nl *quant.Layer, inScale float32) error {
	q := l.Quant
	if q == nil || q.WeightBits != 1 || q.ActBits != 3 || q.ActSigned || !(q.ActScale > 0) || !(inScale > 0) {
		return fmt.Errorf("qat model: hidden convolution %s needs binary weights and an unsigned 3-bit quantizer after a quantized layer", l.Name)
	}
	// lhtan with its top level inside [0, 1] gives relu's levels (qonnx.LHTanAsReLU).
	if a := qonnx.WrittenActivation(l); a != quant.ActReLU && a != quant.ActLeaky && a != quant.ActLinear {
		return fmt.Errorf("qat model: hidden convolution %s: activation %s (thresholds need relu levels)", l.Name, a)
	}
	src := l.Conv
	c := &quant.Conv{Filters: src.Filters, Size: src.Size, Stride: src.Stride, Pad: src.Pad, Groups: 1,
		Activation: quant.ActReLU, Binary: true, Weights: make([]float32, len(src.Weights))}
	nq := &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 1,
		Thresholds: make([][]int32, c.Filters), Invert: make([]bool, c.Filters)}
	per := len(src.Weights) / c.Filters
	// The inputs are 3-bit levels, so |acc| <= 7 * fan-in and the thresholds lie in
	// [-reach, reach+1]. No clamp to the engine's int16: for every layer the engine
	// runs (MAX_IFM_CH 512, MAX_K 3) reach is at most 32256, and where thresholds go to
	// the engine (WriteBinparams, NewEngine) one that does not fit is refused with its
	// layer and channel.
	reach := 7 * per
	// The scales training used (and the QONNX flow writes): rounded mean |w|.
	alphas := qonnx.WeightScales(src.Weights, c.Filters, 1)
	act := qonnx.WrittenActivation(l)
	for o := 0; o < c.Filters; o++ {
		for j, v := range src.Weights[o*per : (o+1)*per] {
			c.Weights[o*per+j] = qonnx.BipolarSign(v)
		}
		f := qonnx.ChannelLevel(m, src, o, float64(alphas[o]), float64(inScale), act, q.ActScale, q.ActBits)
		nq.Thresholds[o], nq.Invert[o] = f.Thresholds(reach)
	}
	nl.Conv, nl.Quant = c, nq
	return nil
}

func scaled(w []float32, s float32) []float32 {
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = v * s
	}
	return out
}

// WriteDir writes m (the IR [LoadDir] returns, e.g. from [FromQAT]) as a QNN-MO
// parameter directory that LoadDir reads back: <network>.cfg, <network>-layers.json,
// <network>-conv<N>-W.npy (HWIO) and -bias.npy for the float convolutions, and the
// engine's binparam-<network>/ files ([WriteBinparams]). network is m.Name.
func WriteDir(m *quant.Model, dir string, lim offload.Limits) error {
	if m.Name == "" || strings.ContainsAny(m.Name, `/\`) {
		return fmt.Errorf("write qnn dir: model name %q is not a file name", m.Name)
	}
	if _, err := offload.Plan(m, lim); err != nil {
		return fmt.Errorf("write qnn dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, lj, err := qnnCfg(m)
	if err != nil {
		return fmt.Errorf("write qnn dir: %w", err)
	}
	js, err := json.MarshalIndent(lj, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{m.Name + ".cfg": cfg, m.Name + "-layers.json": append(js, '\n')}
	conv := 0
	for _, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		if !offload.IsEngineConv(l) {
			var w, b bytes.Buffer
			c := l.Conv
			if err := WriteNpy(&w, []int{c.Size, c.Size, l.In.C, c.Filters}, oihwToHWIO(c.Weights, c.Filters, l.In.C, c.Size)); err != nil {
				return err
			}
			bias := c.Bias
			if bias == nil {
				bias = make([]float32, c.Filters)
			}
			if err := WriteNpy(&b, []int{c.Filters}, bias); err != nil {
				return err
			}
			base := fmt.Sprintf("%s-conv%d", m.Name, conv)
			files[base+"-W.npy"], files[base+"-bias.npy"] = w.Bytes(), b.Bytes()
		}
		conv++
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return WriteBinparams(m, filepath.Join(dir, lj.Binparam), lim)
}

func oihwToHWIO(w []float32, outC, inC, k int) []float32 {
	out := make([]float32, len(w))
	for o := 0; o < outC; o++ {
		for c := 0; c < inC; c++ {
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					out[((ky*k+kx)*inC+c)*outC+o] = w[((o*inC+c)*k+ky)*k+kx]
				}
			}
		}
	}
	return out
}

// qnnCfg renders m as the darknet cfg and layers json of a QNN-MO parameter directory
// (names as LoadDir gives them: conv<N> counting convolutions, pool<N> after conv<N>).
func qnnCfg(m *quant.Model) ([]byte, *layersJSON, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "[net]\nbatch=1\nsubdivisions=1\nwidth=%d\nheight=%d\nchannels=%d\n", m.Input.W, m.Input.H, m.Input.C)
	lj := &layersJSON{Network: m.Name, Binparam: "binparam-" + m.Name, BinparamSkip: BinparamSkip}
	first, last, err := offload.EngineLayers(m)
	if err != nil {
		return nil, nil, err
	}
	conv := -1
	for i, l := range m.Layers {
		if len(l.Inputs) != 1 || l.Inputs[0] != i-1 {
			return nil, nil, fmt.Errorf("layer %s does not read the layer before it", l.Name)
		}
		switch l.Kind {
		case quant.KindConv:
			conv++
			c := l.Conv
			if c.Pad != 0 && c.Pad != c.Size/2 {
				return nil, nil, fmt.Errorf("layer %s: padding %d is not size/2 or 0", l.Name, c.Pad)
			}
			pad := 0
			if c.Pad == c.Size/2 && c.Pad > 0 {
				pad = 1
			}
			fmt.Fprintf(&b, "\n[convolutional]\nfilters=%d\nsize=%d\nstride=%d\npad=%d\nactivation=%s\n", c.Filters, c.Size, c.Stride, pad, c.Activation)
			if offload.IsEngineConv(l) {
				b.WriteString("batch_normalize=1\nbinary=1\n")
			}
		case quant.KindMaxPool:
			p := l.Pool
			fmt.Fprintf(&b, "\n[maxpool]\nsize=%d\nstride=%d\n", p.Size, p.Stride)
			if p.Pad != p.Size-1 {
				fmt.Fprintf(&b, "padding=%d\n", p.Pad)
			}
		case quant.KindRegion:
			h := l.Head
			anchors := make([]string, len(h.Anchors))
			for j, a := range h.Anchors {
				anchors[j] = fmt.Sprint(a)
			}
			softmax := 0
			if h.Softmax {
				softmax = 1
			}
			fmt.Fprintf(&b, "\n[region]\nanchors=%s\nclasses=%d\ncoords=%d\nnum=%d\nsoftmax=%d\n", strings.Join(anchors, ","), h.Classes, h.Coords, h.Num, softmax)
		default:
			return nil, nil, fmt.Errorf("layer %s (%s) has no place in a QNN-MO model", l.Name, l.Kind)
		}
		if i < first || i > last {
			continue
		}
		jl := jsonLayer{InputBits: 3, OutputBits: 3, Input: []int{l.In.C, l.In.H, l.In.W}, Output: []int{l.Out.C, l.Out.H, l.Out.W}}
		if l.Kind == quant.KindConv {
			jl.Name, jl.Func, jl.WeightBits = fmt.Sprintf("conv%d", conv), "conv_layer", 1
			jl.KernelShape, jl.KernelStride, jl.Padding = l.Conv.Size, l.Conv.Stride, l.Conv.Pad
		} else {
			jl.Name, jl.Func = fmt.Sprintf("pool%d", conv), "maxpool_layer"
			jl.KernelShape, jl.KernelStride = l.Pool.Size, l.Pool.Stride
		}
		lj.Layers = append(lj.Layers, jl)
	}
	return []byte(b.String()), lj, nil
}

// WriteNpy writes float32 data of the given shape as a version 1.0 .npy file ('<f4',
// C order), the format [ParseNpy] reads and numpy.load accepts.
func WriteNpy(w io.Writer, shape []int, data []float32) error {
	n := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		n *= d
		dims[i] = fmt.Sprint(d)
	}
	if n != len(data) {
		return fmt.Errorf("write npy: shape %v holds %d values, got %d", shape, n, len(data))
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
	pad := 64 - (10+len(header)+1)%64
	if pad == 64 {
		pad = 0
	}
	header += strings.Repeat(" ", pad) + "\n"
	buf := make([]byte, 0, 10+len(header)+4*len(data))
	buf = append(buf, npyMagic...)
	buf = append(buf, 1, 0)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	buf = append(buf, header...)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	_, err := w.Write(buf)
	return err
}
