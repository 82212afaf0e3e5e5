package todarknet

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// minBNVariance keeps the batch-norm divisor of a channel whose convolution output hardly
// varies away from darknet's epsilon.
const minBNVariance = 1e-4

// BNStats is what [CalibrateBN] measured.
type BNStats struct {
	Images int
	Layers int // threshold layers re-parametrized
}

// CalibrateBN prepares the exported float model for training in darknet. Darknet trains
// with batch statistics: it normalizes each convolution output by the batch's mean and
// variance, not the rolling ones the export writes (mean 0, [BNVariance]), so training
// would start from another function. CalibrateBN runs the float model on images (CHW,
// values in [0,1], the network's input size: letterbox them first), measures each
// threshold layer's per-channel mean and variance of the convolution output x, and
// rewrites its batch norm with those as rolling mean and variance, keeping the map
// y = A*acc + B (scale = A*sigma/s_in, bias = B + A*mean/s_in), so the thresholds and
// the inference function stay the same. threads <= 0 uses GOMAXPROCS goroutines.
func (r *Result) CalibrateBN(images [][]float32, threads int) (*BNStats, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("calibrate batch norms: no images")
	}
	m := r.Model
	var forward func(img []float32) (output func(i int) []float32, err error)
	if r.Sidecar.FloatActivation == FloatLHTan {
		// The float engine has no lhtan: run the layers one by one and apply it here.
		st, err := newStepper(m, r.Sidecar.quantizedLayers(), threads)
		if err != nil {
			return nil, fmt.Errorf("calibrate batch norms: %w", err)
		}
		forward = st.forward
	} else {
		e, err := floatengine.New(m, floatengine.Options{Threads: threads, KeepAll: true})
		if err != nil {
			return nil, fmt.Errorf("calibrate batch norms: %w", err)
		}
		forward = func(img []float32) (func(int) []float32, error) { return e.Output, e.Forward(img) }
	}
	probes := make([]*convProbe, len(r.Layers))
	for k, rep := range r.Layers {
		var err error
		if probes[k], err = newConvProbe(m.Layers[rep.Index], threads); err != nil {
			return nil, fmt.Errorf("calibrate batch norms: layer %d: %w", rep.Index, err)
		}
	}
	for n, img := range images {
		output, err := forward(img)
		if err != nil {
			return nil, fmt.Errorf("calibrate batch norms: image %d: %w", n, err)
		}
		for k, rep := range r.Layers {
			l := m.Layers[rep.Index]
			if err := probes[k].add(output(l.Inputs[0])); err != nil {
				return nil, fmt.Errorf("calibrate batch norms: image %d, layer %d: %w", n, rep.Index, err)
			}
		}
	}
	for k, rep := range r.Layers {
		if err := r.reparametrize(m.Layers[rep.Index], probes[k]); err != nil {
			return nil, fmt.Errorf("calibrate batch norms: layer %d (%s): %w", rep.Index, rep.Name, err)
		}
	}
	return &BNStats{Images: len(images), Layers: len(r.Layers)}, nil
}

// reparametrize sets l's rolling mean and variance to the probe's and adjusts scale and
// bias so that y = A*acc + B does not change; it checks that the thresholds a reader
// derives stay the same.
func (r *Result) reparametrize(l *quant.Layer, p *convProbe) error {
	sl := r.Sidecar.layer(l.Index)
	if sl == nil {
		return fmt.Errorf("not in the sidecar")
	}
	m, c := r.Model, l.Conv
	sIn := float64(sl.InputScale)
	reach, err := reaches(c, sl.InputBits)
	if err != nil {
		return err
	}
	bn := &quant.BatchNorm{Scale: make([]float32, c.Filters), Mean: make([]float32, c.Filters), Variance: make([]float32, c.Filters)}
	bias := make([]float32, c.Filters)
	for o := range bias {
		A, B := channelAffine(m, c, o, sIn)
		mean, variance := p.stats(o)
		sigma := bnSigma(m, float32(variance))
		bn.Mean[o], bn.Variance[o] = float32(mean), float32(variance)
		bn.Scale[o] = float32(A * sigma / sIn)
		bias[o] = float32(B + A*float64(bn.Mean[o])/sIn)
		t0, i0 := channelLevel(m, c, o, 1, sIn, sl.ActScale, sl.ActBits).Thresholds(int(reach[o]))
		nc := *c
		nc.BN, nc.Bias = bn, bias
		if t1, i1 := channelLevel(m, &nc, o, 1, sIn, sl.ActScale, sl.ActBits).Thresholds(int(reach[o])); !SameLevels(t0, i0, t1, i1, reach[o]) {
			return fmt.Errorf("channel %d: the measured statistics (mean %g, variance %g) would change its thresholds %v to %v in float32", o, mean, variance, t0, t1)
		}
	}
	c.BN, c.Bias = bn, bias
	return nil
}

func (s *Sidecar) layer(index int) *SidecarLayer {
	for i := range s.Layers {
		if s.Layers[i].Index == index {
			return &s.Layers[i]
		}
	}
	return nil
}

// convProbe runs one layer's convolution alone (no batch norm, bias or activation) and
// accumulates per-channel sums of its output.
type convProbe struct {
	e          *floatengine.Engine
	hw         int
	sum, sumSq []float64
	count      int
}

func newConvProbe(l *quant.Layer, threads int) (*convProbe, error) {
	c := *l.Conv
	c.BN, c.Bias, c.Activation = nil, make([]float32, c.Filters), quant.ActLinear
	one := &quant.Layer{Kind: quant.KindConv, Name: l.Name, Inputs: []int{-1}, Conv: &c}
	m := &quant.Model{Name: l.Name, Input: l.In, Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6, Layers: []*quant.Layer{one}}
	if err := m.InferShapes(); err != nil {
		return nil, err
	}
	e, err := floatengine.New(m, floatengine.Options{Threads: threads, KeepAll: true})
	if err != nil {
		return nil, err
	}
	return &convProbe{e: e, hw: one.Out.H * one.Out.W, sum: make([]float64, c.Filters), sumSq: make([]float64, c.Filters)}, nil
}

func (p *convProbe) add(in []float32) error {
	if err := p.e.Forward(in); err != nil {
		return err
	}
	x := p.e.Output(0)
	for o := range p.sum {
		var s, s2 float64
		for _, v := range x[o*p.hw : (o+1)*p.hw] {
			s += float64(v)
			s2 += float64(v) * float64(v)
		}
		p.sum[o] += s
		p.sumSq[o] += s2
	}
	p.count += p.hw
	return nil
}

// stats returns channel o's mean and unbiased variance (as darknet's batch variance).
func (p *convProbe) stats(o int) (mean, variance float64) {
	n := float64(p.count)
	mean = p.sum[o] / n
	if p.count > 1 {
		variance = (p.sumSq[o] - n*mean*mean) / (n - 1)
	}
	return mean, max(variance, minBNVariance)
}

// stepper runs a chain of convolutions and pools layer by layer, applying darknet's
// lhtan after the quantized layers (which the float engine does not implement).
type stepper struct {
	engines []*floatengine.Engine
	lhtan   []bool
	outs    [][]float32
}

func newStepper(m *quant.Model, quantized map[int]bool, threads int) (*stepper, error) {
	last := -1
	for i := range quantized {
		last = max(last, i)
	}
	st := &stepper{}
	for i, l := range m.Layers[:last+1] {
		if len(l.Inputs) != 1 || l.Inputs[0] != i-1 || (l.Kind != quant.KindConv && l.Kind != quant.KindMaxPool && l.Kind != quant.KindDropout) {
			return nil, fmt.Errorf("layer %d (%s %s): batch-norm statistics of an lhtan export need a chain of convolutions and pools", i, l.Kind, l.Name)
		}
		one := *l
		one.Inputs = []int{-1}
		if l.Conv != nil && quantized[i] {
			c := *l.Conv
			c.Activation = quant.ActLinear
			one.Conv = &c
		}
		sm := &quant.Model{Name: l.Name, Input: l.In, Dialect: m.Dialect, BNEpsilon: m.BNEpsilon, BNEpsInside: m.BNEpsInside, Layers: []*quant.Layer{&one}}
		if err := sm.InferShapes(); err != nil {
			return nil, err
		}
		e, err := floatengine.New(sm, floatengine.Options{Threads: threads, KeepAll: true})
		if err != nil {
			return nil, err
		}
		st.engines = append(st.engines, e)
		st.lhtan = append(st.lhtan, l.Conv != nil && quantized[i])
	}
	st.outs = make([][]float32, len(st.engines))
	return st, nil
}

func (st *stepper) forward(img []float32) (func(int) []float32, error) {
	in := img
	for i, e := range st.engines {
		if err := e.Forward(in); err != nil {
			return nil, err
		}
		out := e.Output(0)
		if st.lhtan[i] {
			for j, x := range out {
				out[j] = lhtan(x)
			}
		}
		st.outs[i], in = out, out
	}
	return func(i int) []float32 { return st.outs[i] }, nil
}

// lhtan is darknet's leaky hard tanh (activations.h lhtan_activate).
func lhtan(x float32) float32 {
	switch {
	case x < 0:
		return .001 * x
	case x > 1:
		return .001*(x-1) + 1
	}
	return x
}
