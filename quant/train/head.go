package train

import (
	"fmt"
	"slices"

	"github.com/fpgadetector/pynq-agent/quant"
)

// KeepClasses turns the model's [region] head into one for the given classes only
// (indices into the head's classes, in the order wanted): the convolution feeding the
// head keeps, per anchor, its box and objectness outputs and the kept classes' rows.
// A one-class chair head cut from a VOC head starts from the VOC model's box and
// objectness predictors, which already find chairs among other objects; fine-tuning
// then teaches objectness to prefer chairs.
func KeepClasses(m *quant.Model, keep []int) error {
	hi := len(m.Layers) - 1
	if hi < 1 || m.Layers[hi].Kind != quant.KindRegion {
		return fmt.Errorf("keep classes: %s has no [region] head as its last layer", m.Name)
	}
	head := m.Layers[hi].Head
	conv := m.Layers[hi-1]
	if conv.Kind != quant.KindConv || m.Layers[hi].Inputs[0] != hi-1 {
		return fmt.Errorf("keep classes: the [region] head of %s does not read a convolution", m.Name)
	}
	if len(keep) == 0 {
		return fmt.Errorf("keep classes: no class to keep")
	}
	for i, k := range keep {
		if k < 0 || k >= head.Classes || slices.Contains(keep[:i], k) {
			return fmt.Errorf("keep classes: class %d is not one of the head's %d classes or is repeated", k, head.Classes)
		}
	}
	per := head.Coords + 1 + head.Classes
	c := conv.Conv
	if c.Filters != head.Num*per {
		return fmt.Errorf("keep classes: %s has %d filters, the head wants %d x %d", conv.Name, c.Filters, head.Num, per)
	}
	var rows []int // kept filters, anchor by anchor
	for n := range head.Num {
		for r := 0; r <= head.Coords; r++ {
			rows = append(rows, n*per+r)
		}
		for _, k := range keep {
			rows = append(rows, n*per+head.Coords+1+k)
		}
	}
	size := len(c.Weights) / c.Filters
	w := make([]float32, 0, len(rows)*size)
	for _, r := range rows {
		w = append(w, c.Weights[r*size:(r+1)*size]...)
	}
	c.Weights, c.Bias = w, pick(c.Bias, rows)
	if c.BN != nil {
		c.BN.Scale, c.BN.Mean, c.BN.Variance = pick(c.BN.Scale, rows), pick(c.BN.Mean, rows), pick(c.BN.Variance, rows)
	}
	c.Filters = len(rows)
	if q := conv.Quant; q != nil && q.WeightScale != nil {
		q.WeightScale = pick(q.WeightScale, rows)
	}
	head.Classes = len(keep)
	return m.InferShapes()
}

func pick(v []float32, rows []int) []float32 {
	out := make([]float32, len(rows))
	for i, r := range rows {
		out[i] = v[r]
	}
	return out
}
