package offload

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Layer types written to the layerType register (0x3C).
const (
	TypeConv     = 1
	TypeConvPool = 2
)

// Run is one compute run of the engine: one hidden convolution (or one MaxOFMCh-channel
// part of it), optionally fused with the max pool that follows it. The register fields
// hold the values QNN-MO's host library writes before starting the run.
type Run struct {
	Conv int // IR index of the convolution
	Pool int // IR index of the fused max pool, -1 if none
	// Part of Parts: layers with more than MaxOFMCh outputs run in Parts parts of
	// OFMCh channels each; part j computes output channels j*OFMCh .. (j+1)*OFMCh-1 and
	// the CPU concatenates the parts (see [Concat]).
	Part, Parts int
	// WeightIndex counts weight sets (one per part) from 0 over the engine layers; the
	// QNN-MO binparam files of this run are numbered from it.
	WeightIndex int

	Type, KernelDim, Log2Stride, IFMCh, OFMCh, IFMDim, PaddedDim, OFMDim uint32
	PoolInDim, PoolOutDim, Log2PoolStride                                uint32
	OutDim                                                               int // pixels per side of the run's output (after the pool)
}

// EngineLayers returns the IR indices of the first and last layer that run on the
// engine: the binary (WeightBits 1) convolutions and the max pools between and after
// them.
func EngineLayers(m *quant.Model) (first, last int, err error) {
	first, last = -1, -1
	for i, l := range m.Layers {
		if IsEngineConv(l) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0, fmt.Errorf("model has no binary (W1A3) convolution for the engine")
	}
	if last+1 < len(m.Layers) && m.Layers[last+1].Kind == quant.KindMaxPool {
		last++
	}
	return first, last, nil
}

// IsEngineConv says whether layer l is one the engine computes: a binary (WeightBits 1)
// convolution.
func IsEngineConv(l *quant.Layer) bool {
	return l.Kind == quant.KindConv && l.Quant != nil && l.Quant.WeightBits == 1
}

// Plan lists the engine runs for a model's hidden layers, checking every layer against
// the engine's limits. Shapes must be inferred.
func Plan(m *quant.Model, lim Limits) ([]Run, error) { return plan(m, lim, true) }

// PlanShapes is Plan for a model whose weights are not loaded yet: it checks the shapes
// only (for reading parameter files into the model).
func PlanShapes(m *quant.Model, lim Limits) ([]Run, error) { return plan(m, lim, false) }

// plan is Plan; without weights it only checks shapes.
func plan(m *quant.Model, lim Limits, weights bool) ([]Run, error) {
	if err := lim.Check(); err != nil {
		return nil, err
	}
	first, last, err := EngineLayers(m)
	if err != nil {
		return nil, err
	}
	var runs []Run
	weightIndex := 0
	for i := first; i <= last; i++ {
		l := m.Layers[i]
		if l.Kind == quant.KindMaxPool {
			if i == first || !IsEngineConv(m.Layers[i-1]) {
				return nil, fmt.Errorf("layer %d (%s): the engine fuses a max pool only directly after a binary convolution", i, l.Name)
			}
			continue
		}
		if !IsEngineConv(l) {
			return nil, fmt.Errorf("layer %d (%s %s) sits between engine layers but is not a binary convolution", i, l.Kind, l.Name)
		}
		if len(l.Inputs) != 1 || l.Inputs[0] != i-1 {
			return nil, fmt.Errorf("layer %d (%s): engine layers must form a chain", i, l.Name)
		}
		r, err := convRun(m, i, lim, weights)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Name, err)
		}
		for p := 0; p < r.Parts; p++ {
			rp := r
			rp.Part, rp.WeightIndex = p, weightIndex
			weightIndex++
			runs = append(runs, rp)
		}
	}
	return runs, nil
}

func convRun(m *quant.Model, i int, lim Limits, weights bool) (Run, error) {
	l := m.Layers[i]
	c, q := l.Conv, l.Quant
	r := Run{Conv: i, Pool: -1, Type: TypeConv}
	switch {
	case l.In.H != l.In.W:
		return r, fmt.Errorf("input %v is not square (the engine takes square maps)", l.In)
	case c.Groups != 1:
		return r, fmt.Errorf("grouped convolution (groups %d) is not supported by the engine", c.Groups)
	case c.Size > lim.MaxK:
		return r, fmt.Errorf("kernel %d exceeds the engine's MAX_K %d", c.Size, lim.MaxK)
	case c.Stride != 1:
		return r, fmt.Errorf("stride %d: the engine's window generator is built for stride 1", c.Stride)
	case l.In.C > lim.MaxIFMCh:
		return r, fmt.Errorf("%d input channels exceed MAX_IFM_CH %d", l.In.C, lim.MaxIFMCh)
	case l.In.H+2*c.Pad > lim.MaxIFMDim:
		return r, fmt.Errorf("padded input %d exceeds MAX_IFM_DIM %d", l.In.H+2*c.Pad, lim.MaxIFMDim)
	case q.ActBits != lim.ActBits:
		return r, fmt.Errorf("%d-bit activations, the engine computes %d-bit", q.ActBits, lim.ActBits)
	case len(q.Thresholds) != c.Filters || len(q.Invert) != c.Filters:
		return r, fmt.Errorf("%d threshold sets and %d invert flags for %d filters", len(q.Thresholds), len(q.Invert), c.Filters)
	case weights && len(c.Weights) != c.Filters*l.In.C*c.Size*c.Size:
		return r, fmt.Errorf("%d weights, want %d (weights not loaded?)", len(c.Weights), c.Filters*l.In.C*c.Size*c.Size)
	}
	parts := (c.Filters + lim.MaxOFMCh - 1) / lim.MaxOFMCh
	if c.Filters%parts != 0 || (c.Filters/parts)%lim.MaxPEConv != 0 {
		return r, fmt.Errorf("%d filters do not split into equal parts of a multiple of %d PEs", c.Filters, lim.MaxPEConv)
	}
	r.Parts = parts
	r.KernelDim, r.Log2Stride = uint32(c.Size), 0
	r.IFMCh, r.OFMCh = uint32(l.In.C), uint32(c.Filters/parts)
	r.IFMDim, r.PaddedDim, r.OFMDim = uint32(l.In.H), uint32(l.In.H+2*c.Pad), uint32(l.Out.H)
	r.PoolInDim, r.PoolOutDim, r.OutDim = r.OFMDim, r.OFMDim, l.Out.H
	if i+1 < len(m.Layers) && m.Layers[i+1].Kind == quant.KindMaxPool {
		if err := fusePool(&r, m.Layers[i+1], lim); err != nil {
			return r, err
		}
		r.Pool = i + 1
	}
	return r, nil
}

// fusePool sets the pool registers. The engine pools MAX_POOL_SIZE windows; for stride 1
// it pads the conv output on the bottom and right with level 0 up to PoolInDim = OFMDim+1
// (darknet pads with -inf there, the same maximum for levels >= 0).
func fusePool(r *Run, p *quant.Layer, lim Limits) error {
	pp := p.Pool
	if pp.Size != lim.MaxPoolSize {
		return fmt.Errorf("max pool size %d: the engine pools %dx%d windows", pp.Size, lim.MaxPoolSize, lim.MaxPoolSize)
	}
	if pp.Stride > lim.MaxPoolStride {
		return fmt.Errorf("max pool stride %d exceeds MAX_POOL_STRIDE %d", pp.Stride, lim.MaxPoolStride)
	}
	in, out := int(r.OFMDim), p.Out.H
	switch {
	case pp.Stride == 2 && in%2 == 0 && out == in/2:
		r.PoolInDim, r.Log2PoolStride = uint32(in), 1
	case pp.Stride == 1 && pp.Pad == 1 && out == in:
		r.PoolInDim, r.Log2PoolStride = uint32(in+1), 0
	default:
		return fmt.Errorf("max pool %d/%d with padding %d from %d to %d pixels is not an engine pool (2/2 on even maps, or 2/1 padded to the same size)", pp.Size, pp.Stride, pp.Pad, in, out)
	}
	r.Type = TypeConvPool
	r.PoolOutDim = uint32(out)
	r.OutDim = out
	return nil
}
