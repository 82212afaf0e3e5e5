package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// loadQNNModel reads the model of a qnn-kind config: a QNN-MO parameter directory
// (qnnmo.LoadDir) or the QONNX file `pynqctl quant calibrate` / `quant run` writes
// (<name>-w1a3-calibrated.onnx or its -streamlined variant), which must fit the engine.
func loadQNNModel(path string) (*quant.Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return qnnmo.LoadDir(path)
	}
	if !strings.EqualFold(filepath.Ext(path), ".onnx") {
		return nil, fmt.Errorf("%s is neither a QNN-MO parameter directory nor a .onnx file from pynqctl quant", path)
	}
	m, err := qonnx.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := checkEngineFit(m); err != nil {
		return nil, fmt.Errorf("%s does not fit the QNN engine: %w", path, err)
	}
	return m, nil
}

// checkEngineFit checks that a model read from QONNX has QNN-MO's structure, which the
// host layers (quant/qnnmo) and the engine compute: a float first convolution on the
// input with an unsigned 3-bit quantizer, binary hidden convolutions with integer
// thresholds (and engine pools), a float linear 1x1 last convolution and one region
// head. It names the first layer that does not fit, so that the user knows what to
// change in the model or which quantization step is missing.
func checkEngineFit(m *quant.Model) error {
	first, last, err := offload.EngineLayers(m)
	if err != nil {
		return fmt.Errorf("%w (run pynqctl quant weights --weight-bits=1 on the hidden layers)", err)
	}
	if err := checkFirstLayer(m, first); err != nil {
		return err
	}
	for _, l := range m.Layers[first : last+1] {
		if err := checkHiddenLayer(l); err != nil {
			return err
		}
	}
	if _, err := offload.Plan(m, offload.W1A3); err != nil {
		return err
	}
	if last+2 >= len(m.Layers) {
		return fmt.Errorf("no float last convolution and region head after the engine layers")
	}
	if l := m.Layers[last+1]; l.Kind != quant.KindConv || l.Quant != nil && (l.Quant.WeightBits != 0 || l.Quant.ActBits != 0) {
		return fmt.Errorf("layer %s after the engine layers must be a float convolution (keep the last layer float: pynqctl quant weights --keep-last)", l.Name)
	}
	if l := m.Layers[last+2]; l.Kind != quant.KindRegion || last+3 != len(m.Layers) {
		return fmt.Errorf("layer %s (%s): the model must end in one region head after the last convolution", l.Name, l.Kind)
	}
	return nil
}

// checkFirstLayer checks the float convolution that feeds the engine: qnnmo.FirstLayer
// computes clip(x, 0, 7*ActScale) quantized to 3 bits, which is the model's activation
// plus quantizer only when the activation is the identity on [0, clip] and at most 0
// below it.
func checkFirstLayer(m *quant.Model, first int) error {
	in := m.Layers[first].Inputs
	if len(in) != 1 || in[0] < 0 || in[0] != first-1 || first != 1 {
		return fmt.Errorf("layer %s: the engine's first layer must read one float convolution on the network input (layer 0)", m.Layers[first].Name)
	}
	l := m.Layers[0]
	c, q := l.Conv, l.Quant
	switch {
	case l.Kind != quant.KindConv:
		return fmt.Errorf("layer %s (%s): the first layer must be a float convolution", l.Name, l.Kind)
	case q == nil || q.ActBits != offload.W1A3.ActBits || q.ActSigned || !(q.ActScale > 0):
		return fmt.Errorf("layer %s: the first layer needs an unsigned %d-bit output quantizer (pynqctl quant activations --activation-bits=%d, then calibrate)", l.Name, offload.W1A3.ActBits, offload.W1A3.ActBits)
	case q.WeightBits != 0:
		return fmt.Errorf("layer %s: %d-bit first-layer weights; the CPU first layer is float (pynqctl quant weights --keep-first --keep-bits=0)", l.Name, q.WeightBits)
	case c.BN != nil:
		return fmt.Errorf("layer %s: batch norm in the first layer; the CPU first layer takes it folded (pynqctl quant convert without --keep-bn)", l.Name)
	case c.Groups != 1 || c.XNOR || c.Binary:
		return fmt.Errorf("layer %s: the first layer must be an ungrouped float convolution", l.Name)
	}
	switch c.Activation {
	case quant.ActReLU, quant.ActLinear, quant.ActLeaky:
	case quant.ActLHTan:
		if !qonnx.LHTanAsReLU(q) {
			return fmt.Errorf("layer %s: lhtan with a clip of %g above its saturation at 1; the CPU first layer clips as ReLU does", l.Name, 7*q.ActScale)
		}
	default:
		return fmt.Errorf("layer %s: activation %q before the quantizer; the CPU first layer supports relu, leaky, linear and lhtan", l.Name, c.Activation)
	}
	return nil
}

// checkHiddenLayer checks one engine layer: the engine computes binary convolutions
// only through their integer thresholds, which pynqctl quant calibrate writes.
func checkHiddenLayer(l *quant.Layer) error {
	if l.Kind != quant.KindConv {
		return nil // pools: offload.Plan checks them
	}
	q := l.Quant
	switch {
	case q == nil || q.WeightBits != 1:
		return fmt.Errorf("layer %s: a float convolution between binary ones; the engine computes only binary (W1) hidden layers", l.Name)
	case l.Conv.XNOR:
		return fmt.Errorf("layer %s: xnor (binarized input) convolutions are not what the engine computes", l.Name)
	case q.ActSigned:
		return fmt.Errorf("layer %s: signed output quantizer; the engine's levels are unsigned (pynqctl quant activations --leaky=relu)", l.Name)
	case q.ActBits != offload.W1A3.ActBits:
		return fmt.Errorf("layer %s: %d-bit activations, the engine computes %d-bit", l.Name, q.ActBits, offload.W1A3.ActBits)
	case len(q.Thresholds) == 0:
		return fmt.Errorf("layer %s: no integer thresholds (use the calibrated model: pynqctl quant calibrate writes <name>-w1a3-calibrated.onnx)", l.Name)
	}
	if l.Conv.Size > offload.W1A3.MaxK {
		return fmt.Errorf("layer %s: %dx%d kernels exceed the engine's MAX_K %d", l.Name, l.Conv.Size, l.Conv.Size, offload.W1A3.MaxK)
	}
	return nil
}
