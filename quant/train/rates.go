package train

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
)

// LayerRate scales the learning rate of the layers First..Last (model layer indices,
// inclusive). Scale 0 freezes them: no updates, batch norm with its rolling
// statistics (the layer computes what it computed before training), and no backward
// pass below the lowest trained layer, which is what makes training a head on a
// frozen backbone cheap.
type LayerRate struct {
	First, Last int
	Scale       float64
}

// ParseLayerRates reads a comma-separated list of LAYER=SCALE or FIRST-LAST=SCALE, e.g.
// "0-8=0,9-12=0.5,13=10".
func ParseLayerRates(spec string) ([]LayerRate, error) {
	var out []LayerRate
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		rng, scale, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("layer rates %q: want LAYER=SCALE or FIRST-LAST=SCALE", part)
		}
		s, err := strconv.ParseFloat(scale, 64)
		if err != nil || s < 0 || math.IsInf(s, 0) || math.IsNaN(s) {
			return nil, fmt.Errorf("layer rates %q: scale %q is not a non-negative number", part, scale)
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		first, err1 := strconv.Atoi(lo)
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || first < 0 || last < first {
			return nil, fmt.Errorf("layer rates %q: %q is not a layer index or an increasing range", part, rng)
		}
		out = append(out, LayerRate{First: first, Last: last, Scale: s})
	}
	return out, nil
}

// Freeze returns the rate that freezes layers 0..n-1 (none for n <= 0).
func Freeze(n int) []LayerRate {
	if n <= 0 {
		return nil
	}
	return []LayerRate{{First: 0, Last: n - 1, Scale: 0}}
}

// layerScales expands rates over a model of n layers (later entries win); an entry
// past the last layer is an error, since it names a layer the model lacks.
func layerScales(rates []LayerRate, n int) ([]float64, error) {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1
	}
	for _, r := range rates {
		if r.Last >= n {
			return nil, fmt.Errorf("train: layer rate %d-%d: the model has layers 0-%d", r.First, r.Last, n-1)
		}
		for i := r.First; i <= r.Last; i++ {
			s[i] = r.Scale
		}
	}
	return s, nil
}

// ScaleBinaryWeights sets the latent weights of the binary (binary=1) convolutions
// with batch norm whose learning rate scale is not 0 to magnitude (each weight
// +-magnitude, keeping its sign) and moves the rolling batch-norm statistics with
// them, so each layer computes what it computed before. Binary weights exported at
// +-1 barely move at darknet's learning rates (an update is ~1e-3 of the weight): at
// the magnitude darknet initialises (about sqrt(2/fan-in), 0.02-0.03 for Tinier-YOLO's
// 3x3x256..512 layers) fine-tuning can flip signs.
func ScaleBinaryWeights(m *quant.Model, rates []LayerRate, magnitude float64) (int, error) {
	if !(magnitude > 0) {
		return 0, fmt.Errorf("train: binary weight magnitude %g must be positive", magnitude)
	}
	s, err := layerScales(rates, len(m.Layers))
	if err != nil {
		return 0, err
	}
	done := 0
	for i, l := range m.Layers {
		c := l.Conv
		if l.Kind != quant.KindConv || !(c.Binary || (l.Quant != nil && l.Quant.WeightBits == 1)) || c.BN == nil || s[i] == 0 {
			continue
		}
		per := len(c.Weights) / c.Filters
		for f := range c.Filters {
			row := c.Weights[f*per : (f+1)*per]
			var sum float64
			for _, v := range row {
				sum += math.Abs(float64(v))
			}
			alpha := sum / float64(per) // the binarized layer's scale before
			if alpha == 0 {
				continue
			}
			k := magnitude / alpha
			for j, v := range row {
				// The sign the layer's forward pass takes: darknet's binarize (v > 0),
				// or QAT's bipolar quantizer (v >= 0).
				pos := v > 0 || (v == 0 && l.Quant != nil && l.Quant.WeightBits == 1)
				row[j] = float32(magnitude)
				if !pos {
					row[j] = -float32(magnitude)
				}
			}
			c.BN.Mean[f] *= float32(k)
			c.BN.Variance[f] *= float32(k * k)
		}
		done++
	}
	return done, nil
}
