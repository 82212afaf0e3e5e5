package flow

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// Precision is the per-layer precision of the weights and activations steps, shared
// by Run and QAT so that quantization-aware training trains exactly the quantizers the
// flow then writes.
type Precision struct {
	Weights   qonnx.WeightOptions
	Overrides string // TOML file of per-layer weight bits (see WeightsOptions)
	Act       qonnx.ActOptions
}

// DefaultPrecision is W1A3 with the first and last layers float, as QNN-MO-PYNQ.
func DefaultPrecision() Precision {
	return Precision{Weights: qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true},
		Act: qonnx.ActOptions{Bits: 3, Leaky: "relu"}}
}

// Annotate gives m the quantizers the weights and activations steps would, with the
// activation scales unset (quantization-aware training calibrates them on its first
// batch) except after lhtan. LeakyRelu layers become ReLU with Leaky "relu", as in
// the flow.
func (p Precision) Annotate(m *quant.Model) error {
	w := p.Weights
	if p.Overrides != "" {
		if err := qonnx.LoadOverrides(p.Overrides, &w); err != nil {
			return err
		}
	}
	if _, err := qonnx.QuantizeWeights(m, w); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	if _, err := qonnx.QuantizeActivations(m, p.Act); err != nil {
		return fmt.Errorf("activations: %w", err)
	}
	for _, l := range m.Layers {
		// After lhtan the scale is lhtan's saturation at 1 over the levels (what
		// QuantizeActivations set); the others calibrate on the first batch.
		if q := l.Quant; q != nil && q.ActBits > 0 && (l.Kind != quant.KindConv || l.Conv.Activation != quant.ActLHTan) {
			q.ActScale = 0
		}
	}
	return nil
}
