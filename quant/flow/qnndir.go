package flow

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// QNNDir writes a darknet model trained by QAT (cfg, weights, and the sidecar with the
// trained activation scales) as the QNN-MO parameter directory dir that the engine,
// pynqctl detect --model and pynq-agent load (see quant/qnnmo.FromQAT), named name
// (default: the cfg's base name). It returns the model written.
func QNNDir(cfg, weights, sidecar, dir, name string) (*quant.Model, error) {
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		return nil, err
	}
	sc, err := todarknet.ReadSidecar(sidecar)
	if err != nil {
		return nil, err
	}
	if err := applySidecarScales(m, sc); err != nil {
		return nil, fmt.Errorf("%s: %w", sidecar, err)
	}
	if name != "" {
		m.Name = name
	}
	qm, err := qnnmo.FromQAT(m)
	if err != nil {
		return nil, err
	}
	return qm, qnnmo.WriteDir(qm, dir, offload.W1A3)
}

// applySidecarScales annotates m's convolutions with the sidecar's quantizers.
func applySidecarScales(m *quant.Model, sc *todarknet.Sidecar) error {
	for _, sl := range sc.Layers {
		if sl.Index >= len(m.Layers) || m.Layers[sl.Index].Kind != quant.KindConv {
			return fmt.Errorf("layer %d is not a convolution of the cfg", sl.Index)
		}
		l := m.Layers[sl.Index]
		if l.Conv.Filters != sl.Filters {
			return fmt.Errorf("layer %d: %d filters, the cfg has %d", sl.Index, sl.Filters, l.Conv.Filters)
		}
		l.Quant = &quant.LayerQuant{WeightBits: sl.WeightBits, ActBits: sl.ActBits, ActScale: sl.ActScale}
	}
	return nil
}
