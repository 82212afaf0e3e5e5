package train

import "github.com/fpgadetector/pynq-agent/quant"

// snapshot is a copy of a model's trainable state: every convolution's weights,
// biases, batch norm and activation scale, so that a run can end on its best
// validation checkpoint without reading it back.
type snapshot struct {
	m      *quant.Model
	params [][]float32
	scales []float32
}

// takeSnapshot copies m's state, reusing prev's buffers when given.
func takeSnapshot(m *quant.Model, prev *snapshot) *snapshot {
	s := prev
	if s == nil {
		s = &snapshot{m: m}
	}
	s.params, s.scales = s.params[:0], s.scales[:0]
	for _, sl := range stateSlices(m) {
		s.params = append(s.params, append([]float32(nil), sl...))
	}
	for _, l := range m.Layers {
		if l.Quant != nil {
			s.scales = append(s.scales, l.Quant.ActScale)
		}
	}
	return s
}

// restore writes the copied state back into the model.
func (s *snapshot) restore() {
	for i, sl := range stateSlices(s.m) {
		copy(sl, s.params[i])
	}
	k := 0
	for _, l := range s.m.Layers {
		if l.Quant != nil {
			l.Quant.ActScale = s.scales[k]
			k++
		}
	}
}

// stateSlices lists the model's trained parameter slices in a fixed order.
func stateSlices(m *quant.Model) [][]float32 {
	var out [][]float32
	for _, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		c := l.Conv
		out = append(out, c.Weights, c.Bias)
		if c.BN != nil {
			out = append(out, c.BN.Scale, c.BN.Mean, c.BN.Variance)
		}
	}
	return out
}
