package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// precisionFlags are the per-layer precision choices of the weights and activations
// steps, shared by `quant run` and `quant qat` so that quantization-aware training
// trains exactly the quantizers the flow then writes.
type precisionFlags struct {
	weights   qonnx.WeightOptions
	overrides string
	act       qonnx.ActOptions
}

func addPrecisionFlags(cmd *cobra.Command, p *precisionFlags) {
	fl := cmd.Flags()
	fl.IntVar(&p.weights.Bits, "weight-bits", 1, "weight bits of the quantized layers (as quant weights)")
	fl.BoolVar(&p.weights.KeepFirst, "keep-first", true, "keep the first convolution at --keep-bits (as quant weights)")
	fl.BoolVar(&p.weights.KeepLast, "keep-last", true, "keep the convolutions feeding a detection head at --keep-bits (as quant weights)")
	fl.IntVar(&p.weights.KeepBits, "keep-bits", 0, "bits of kept layers: 0 = float, 2..8 (as quant weights)")
	fl.StringVar(&p.overrides, "overrides", "", "TOML file of per-layer weight bits (as quant weights)")
	fl.IntVar(&p.act.Bits, "activation-bits", 3, "activation bits (as quant activations)")
	fl.StringVar(&p.act.Leaky, "leaky", "relu", "LeakyRelu layers: relu, keep or error (as quant activations)")
}

// annotate gives m the quantizers the weights and activations steps would, with the
// activation scales unset (quantization-aware training calibrates them on its first
// batch) except after lhtan. LeakyRelu layers become ReLU with --leaky=relu, as in the flow.
func (p precisionFlags) annotate(m *quant.Model) error {
	w := p.weights
	if p.overrides != "" {
		if err := qonnx.LoadOverrides(p.overrides, &w); err != nil {
			return err
		}
	}
	if _, err := qonnx.QuantizeWeights(m, w); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	if _, err := qonnx.QuantizeActivations(m, p.act); err != nil {
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
