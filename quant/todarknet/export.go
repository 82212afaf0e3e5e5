package todarknet

import (
	"bytes"
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// BNVariance is the rolling variance written for every fitted batch norm. With it
// pjreddie's divisor sqrt(var)+1e-6 and AlexeyAB's sqrt(var+1e-5) agree (both 5.0000005:
// r + 1e-6 = sqrt(r^2 + 1e-5) for r = (1e-5 - 1e-12)/2e-6), so the exported model means
// the same in either darknet.
var BNVariance = float32(math.Pow((1e-5-1e-12)/2e-6, 2))

// LayerReport summarizes the batch norms fitted to one threshold layer.
type LayerReport struct {
	Index    int    // layer index (the same in the IR and the darknet model)
	Name     string // the IR's layer name
	Channels int
	Exact    int // channels reproduced exactly (FitExact, after float32 rounding)
	Constant int // channels whose level is constant over the reachable range
	Approx   int // channels no affine map reproduces (best fit written)
	Inverted int // channels with the invert flag (negative BN scale)
	// MinMargin is the smallest margin (acc units) among exact channels: how far float
	// error may move a crossing before a threshold changes.
	MinMargin float64
	// ApproxChannels lists the approximated channels; MaxLevelError is the largest
	// difference between their original and re-derived levels at any reachable acc.
	ApproxChannels []int
	MaxLevelError  int
}

// Result is an exported float model with its sidecar and the fit report.
type Result struct {
	Model   *quant.Model // the float model (darknet order; Quant annotations removed)
	Sidecar *Sidecar
	Layers  []LayerReport // one per threshold layer
	// TrainingCfg, when set, is a cfg (the one the model was trained with) whose training
	// options WriteFiles adds to the written cfg ([MergeTrainingKeys]); AddedKeys lists
	// what it added.
	TrainingCfg []byte
	AddedKeys   []string
}

// ExactFraction is the fraction of threshold channels reproduced exactly (constant
// channels count as exact; 1 when there are none).
func (r *Result) ExactFraction() float64 {
	total, exact := 0, 0
	for _, l := range r.Layers {
		total += l.Channels
		exact += l.Exact + l.Constant
	}
	if total == 0 {
		return 1
	}
	return float64(exact) / float64(total)
}

// Export turns m into a float model for darknet (see the package comment) and the
// sidecar that quantizes it back. m is not modified (its shapes are inferred); the
// result shares weight slices with m where it does not change them.
func Export(m *quant.Model) (*Result, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("export darknet: %w", err)
	}
	out := &quant.Model{Name: m.Name, Input: m.Input, Dialect: m.Dialect}
	switch m.Dialect {
	case quant.DialectAlexeyAB:
		out.BNEpsilon, out.BNEpsInside = 1e-5, true
	default:
		out.Dialect, out.BNEpsilon = quant.DialectPjreddie, 1e-6
	}
	res := &Result{Model: out, Sidecar: &Sidecar{Format: SidecarFormat, Model: m.Name}}
	for i, l := range m.Layers {
		nl := *l
		nl.Quant = nil
		nl.Inputs = append([]int(nil), l.Inputs...)
		if l.Conv != nil {
			c := *l.Conv
			if c.Bias == nil {
				c.Bias = make([]float32, c.Filters) // darknet files always hold biases
			}
			nl.Conv = &c
		}
		out.Layers = append(out.Layers, &nl)
		q := l.Quant
		if q == nil {
			continue
		}
		sl := SidecarLayer{Index: i, SourceName: l.Name, WeightBits: q.WeightBits, ActBits: q.ActBits, ActScale: q.ActScale}
		if l.Conv != nil {
			sl.Filters = l.Conv.Filters
		}
		if len(q.Thresholds) > 0 {
			rep, inBits, inScale, err := fitLayer(m, l, out, &nl)
			if err != nil {
				return nil, fmt.Errorf("export darknet: layer %d (%s): %w", i, l.Name, err)
			}
			sl.InputBits, sl.InputScale, sl.Thresholds = inBits, inScale, true
			sl.Fit = &FitSummary{Exact: rep.Exact, Constant: rep.Constant, Approx: rep.Approx, Inverted: rep.Inverted, MinMargin: rep.MinMargin}
			res.Layers = append(res.Layers, rep)
		}
		res.Sidecar.Layers = append(res.Sidecar.Layers, sl)
	}
	if err := out.InferShapes(); err != nil {
		return nil, fmt.Errorf("export darknet: exported model: %w", err)
	}
	if err := darknetNames(out, res.Sidecar); err != nil {
		return nil, err
	}
	return res, nil
}

// darknetNames records in the sidecar the names quant/darknet's reader gives the
// exported layers, by writing the cfg and parsing it back.
func darknetNames(m *quant.Model, sc *Sidecar) error {
	var cfg bytes.Buffer
	if err := darknet.WriteCfg(&cfg, m); err != nil {
		return err
	}
	back, err := darknet.ParseCfg(&cfg, m.Name+".cfg", darknet.Options{Dialect: m.Dialect})
	if err != nil {
		return fmt.Errorf("export darknet: the written cfg does not parse: %w", err)
	}
	if len(back.Layers) != len(m.Layers) {
		return fmt.Errorf("export darknet: the written cfg has %d layers, the model %d", len(back.Layers), len(m.Layers))
	}
	for i := range sc.Layers {
		sc.Layers[i].Name = back.Layers[sc.Layers[i].Index].Name
	}
	return nil
}

// inputLevels finds the quantized layer whose levels layer l reads, through max pools
// and dropouts (a max pool of levels is the level of the max pool).
func inputLevels(m *quant.Model, l *quant.Layer) (*quant.Layer, error) {
	i := l.Inputs[0]
	for i >= 0 && len(m.Layers[i].Inputs) == 1 && (m.Layers[i].Kind == quant.KindMaxPool || m.Layers[i].Kind == quant.KindDropout) {
		i = m.Layers[i].Inputs[0]
	}
	if len(l.Inputs) != 1 || i < 0 || m.Layers[i].Quant == nil || m.Layers[i].Quant.ActBits <= 0 || m.Layers[i].Quant.ActScale <= 0 {
		return nil, fmt.Errorf("integer thresholds need quantized input levels, but the input is not a quantized layer's output (give the layer before it ActBits and ActScale)")
	}
	return m.Layers[i], nil
}

// fitLayer replaces the thresholds of l by a batch norm in nl (the exported copy).
func fitLayer(m *quant.Model, l *quant.Layer, out *quant.Model, nl *quant.Layer) (rep LayerReport, inBits int, inScale float32, err error) {
	q, c := l.Quant, l.Conv
	rep = LayerReport{Index: l.Index, Name: l.Name, Channels: len(q.Thresholds)}
	if l.Kind != quant.KindConv || c == nil || c.Weights == nil {
		return rep, 0, 0, fmt.Errorf("thresholds on a %s without weights (only convolutions can carry them)", l.Kind)
	}
	if len(q.Thresholds) != c.Filters || (q.Invert != nil && len(q.Invert) != c.Filters) {
		return rep, 0, 0, fmt.Errorf("%d threshold rows and %d invert flags for %d filters", len(q.Thresholds), len(q.Invert), c.Filters)
	}
	if q.ActBits <= 0 || q.ActBits > 16 || q.ActScale <= 0 || c.BN != nil {
		return rep, 0, 0, fmt.Errorf("thresholds need ActBits 1..16, ActScale > 0 and no batch norm (have %d bits, scale %g)", q.ActBits, q.ActScale)
	}
	src, err := inputLevels(m, l)
	if err != nil {
		return rep, 0, 0, err
	}
	inBits, inScale = src.Quant.ActBits, src.Quant.ActScale
	reach, err := reaches(c, inBits)
	if err != nil {
		return rep, 0, 0, err
	}
	n := 1<<q.ActBits - 1
	sigma := bnSigma(out, BNVariance)
	nl.Conv.BN, nl.Conv.Bias = nil, nil
	bn := &quant.BatchNorm{Scale: make([]float32, c.Filters), Mean: make([]float32, c.Filters), Variance: make([]float32, c.Filters)}
	bias := make([]float32, c.Filters)
	rep.MinMargin = math.Inf(1)
	for o, t := range q.Thresholds {
		if len(t) != n {
			return rep, 0, 0, fmt.Errorf("channel %d has %d thresholds, %d bits need %d", o, len(t), q.ActBits, n)
		}
		inv := q.Invert != nil && q.Invert[o]
		f, err := FitChannel(t, inv, float64(q.ActScale), reach[o])
		if err != nil {
			return rep, 0, 0, fmt.Errorf("channel %d: %w", o, err)
		}
		f = SnapGain(f, t, inv, float64(q.ActScale), float64(inScale), reach[o])
		bn.Scale[o] = float32(f.A * sigma / float64(inScale))
		bn.Variance[o] = BNVariance
		bias[o] = float32(f.B)
		// Judge the fit by what a reader of the float32 file derives.
		nl.Conv.BN, nl.Conv.Bias = bn, bias
		got, ginv := channelLevel(out, nl.Conv, o, 1, float64(inScale), q.ActScale, q.ActBits).Thresholds(int(reach[o]))
		same := SameLevels(t, inv, got, ginv, reach[o])
		switch {
		case same && f.Kind == FitConstant:
			rep.Constant++
		case same:
			rep.Exact++
			rep.MinMargin = min(rep.MinMargin, f.Margin)
		default:
			rep.Approx++
			rep.ApproxChannels = append(rep.ApproxChannels, o)
			rep.MaxLevelError = max(rep.MaxLevelError, maxLevelError(t, inv, got, ginv, reach[o]))
		}
		if inv {
			rep.Inverted++
		}
	}
	if rep.Exact == 0 {
		rep.MinMargin = 0
	}
	nl.Conv.BN, nl.Conv.Bias, nl.Conv.Activation = bn, bias, quant.ActReLU
	nl.Conv.Binary = nl.Conv.Binary || q.WeightBits == 1
	return rep, inBits, inScale, nil
}

// reaches returns, per output channel, the largest |acc| = max input level * sum |w|,
// requiring integer weights (acc must be an integer for integer thresholds).
func reaches(c *quant.Conv, inBits int) ([]int64, error) {
	if inBits <= 0 || inBits > 16 {
		return nil, fmt.Errorf("input levels of %d bits (1..16 supported)", inBits)
	}
	per := len(c.Weights) / c.Filters
	maxLevel := int64(1)<<inBits - 1
	out := make([]int64, c.Filters)
	for o := range out {
		var sum int64
		for _, w := range c.Weights[o*per : (o+1)*per] {
			if w != float32(math.Trunc(float64(w))) || math.Abs(float64(w)) > 1<<15 {
				return nil, fmt.Errorf("filter %d has weight %g: integer thresholds need integer weights (+1/-1 for binary layers)", o, w)
			}
			sum += int64(math.Abs(float64(w)))
		}
		out[o] = sum * maxLevel
	}
	return out, nil
}

// bnSigma is the divisor darknet applies for variance v under m's epsilon rule.
func bnSigma(m *quant.Model, v float32) float64 {
	if m.BNEpsInside {
		return math.Sqrt(float64(v) + float64(m.BNEpsilon))
	}
	return math.Sqrt(float64(v)) + float64(m.BNEpsilon)
}

// channelLevel is the float level of channel o of c in model m, with weights sign*alpha
// over input levels of scale sIn and the sidecar's quantizer of the given scale and bits:
// clip(round(y/scale), 0, 2^bits-1) of the batch norm's output y, which is ReLU followed
// by the graph's quantizer. Its Thresholds are the one derivation quant calibrate and
// quant qnn-dir use.
func channelLevel(m *quant.Model, c *quant.Conv, o int, alpha, sIn float64, scale float32, bits int) *qonnx.LevelFunc {
	return qonnx.ChannelLevel(m, c, o, alpha, sIn, quant.ActReLU, scale, bits)
}

// channelAffine returns y = A*acc + B of channel o of c in model m: its batch norm
// (none: identity) and bias applied to x = sIn*acc (acc: the integer sum of weights
// times input levels; sIn: the input level scale): A = gamma*sIn/sigma,
// B = beta - gamma*mu/sigma, sigma per m's epsilon rule.
func channelAffine(m *quant.Model, c *quant.Conv, o int, sIn float64) (A, B float64) {
	beta := 0.0
	if c.Bias != nil {
		beta = float64(c.Bias[o])
	}
	bn := c.BN
	if bn == nil {
		return sIn, beta
	}
	g, sigma := float64(bn.Scale[o]), bnSigma(m, bn.Variance[o])
	return g * sIn / sigma, beta - g*float64(bn.Mean[o])/sigma
}

// maxLevelError is the largest difference between two channels' levels over acc in
// [-reach, reach] (levels change only at thresholds, so it looks around them).
func maxLevelError(t1 []int32, inv1 bool, t2 []int32, inv2 bool, reach int64) int {
	worst := 0
	for _, p := range breakpoints(reach, t1, t2) {
		d := Level(t1, inv1, p) - Level(t2, inv2, p)
		worst = max(worst, d, -d)
	}
	return worst
}
