package floatengine

import (
	"errors"
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Options tune an [Engine].
type Options struct {
	Threads int  // goroutines per layer; 0 = GOMAXPROCS
	KeepAll bool // keep every layer's output for inspection (else only the heads')
}

// Engine runs a model in float32. It is not safe for concurrent Forward calls; several
// engines may share one model, which they only read.
type Engine struct {
	m       *quant.Model
	w       *Workers
	convs   []*Conv     // per layer; nil for other kinds
	outs    [][]float32 // per layer output buffer (buffers are shared between layers whose lifetimes do not overlap)
	keep    []bool      // Output returns the buffer
	scratch []float32
}

// New prepares an engine: it checks that the model's shapes were inferred and its
// weights loaded, folds batch norm into private copies of the weights, packs them, and
// allocates every buffer Forward needs.
func New(m *quant.Model, opt Options) (*Engine, error) {
	if m == nil || len(m.Layers) == 0 {
		return nil, errors.New("engine: empty model")
	}
	if m.Input.Size() <= 0 {
		return nil, fmt.Errorf("engine: model input %v is empty (run InferShapes)", m.Input)
	}
	e := &Engine{m: m, w: NewWorkers(opt.Threads), convs: make([]*Conv, len(m.Layers)),
		keep: make([]bool, len(m.Layers))}
	scratch := 0
	for i, l := range m.Layers {
		if err := checkLayer(m, i, l); err != nil {
			return nil, fmt.Errorf("engine: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		if l.Kind == quant.KindConv {
			cv, err := NewConv(m, l)
			if err != nil {
				return nil, fmt.Errorf("engine: layer %d (%s): %w", i, l.Name, err)
			}
			e.convs[i] = cv
			scratch = max(scratch, cv.Scratch())
		}
		e.keep[i] = opt.KeepAll || l.Kind == quant.KindRegion || l.Kind == quant.KindYolo
	}
	e.scratch = make([]float32, scratch)
	e.allocate()
	return e, nil
}

// checkLayer verifies what Forward relies on: inferred shapes consistent with the
// inputs, and the parameters of the layer's kind.
func checkLayer(m *quant.Model, i int, l *quant.Layer) error {
	if len(l.Inputs) == 0 {
		return errors.New("no inputs")
	}
	for _, in := range l.Inputs {
		if in < -1 || in >= i {
			return fmt.Errorf("input %d is not an earlier layer", in)
		}
	}
	if l.Out.Size() <= 0 || l.In != m.OutputShape(l.Inputs[0]) {
		return errors.New("shapes not inferred (run Model.InferShapes)")
	}
	switch l.Kind {
	case quant.KindConv:
		if l.Conv == nil {
			return errors.New("missing convolution parameters")
		}
	case quant.KindMaxPool:
		p := l.Pool
		if p == nil || p.Size <= 0 || p.Stride <= 0 || p.Pad < 0 || l.Out != (quant.Shape{C: l.In.C, H: (l.In.H+p.Pad-p.Size)/p.Stride + 1, W: (l.In.W+p.Pad-p.Size)/p.Stride + 1}) {
			return errors.New("pool parameters do not match the shapes (run Model.InferShapes)")
		}
	case quant.KindRoute:
		r := l.Route
		if r == nil || r.Groups <= 0 || r.GroupID < 0 || r.GroupID >= r.Groups {
			return errors.New("bad route groups")
		}
		c := 0
		for _, in := range l.Inputs {
			s := m.OutputShape(in)
			if s.H != l.Out.H || s.W != l.Out.W || s.C%r.Groups != 0 {
				return fmt.Errorf("route input %d has shape %v, output %v", in, s, l.Out)
			}
			c += s.C / r.Groups
		}
		if c != l.Out.C {
			return fmt.Errorf("route inputs give %d channels, output has %d", c, l.Out.C)
		}
	case quant.KindShortcut:
		if l.Shortcut == nil || len(l.Inputs) != 2 || m.OutputShape(l.Inputs[1]) != l.In || l.Out != l.In {
			return errors.New("shortcut needs two inputs of equal shape")
		}
		return checkActivation(l.Shortcut.Activation)
	case quant.KindUpsample:
		u := l.Upsample
		if u == nil || u.Stride <= 0 || l.Out != (quant.Shape{C: l.In.C, H: l.In.H * u.Stride, W: l.In.W * u.Stride}) {
			return errors.New("bad upsample stride")
		}
	case quant.KindDropout:
		if l.Out != l.In {
			return errors.New("dropout changes the shape")
		}
	case quant.KindRegion, quant.KindYolo:
		h := l.Head
		if h == nil || h.Num <= 0 || h.Classes <= 0 || l.Out != l.In {
			return errors.New("bad head parameters")
		}
		coords := 4
		if l.Kind == quant.KindRegion {
			coords = h.Coords
		}
		if l.In.C != h.Num*(coords+1+h.Classes) {
			return fmt.Errorf("head input has %d channels, want %d", l.In.C, h.Num*(coords+1+h.Classes))
		}
	default:
		return fmt.Errorf("layer kind %q is not supported", l.Kind)
	}
	return nil
}

// allocate gives every layer an output buffer. Kept outputs get their own; the others
// reuse a buffer freed by a layer whose output nobody reads any more.
func (e *Engine) allocate() {
	layers := e.m.Layers
	lastUse := make([]int, len(layers))
	for i := range lastUse {
		lastUse[i] = i
	}
	for i, l := range layers {
		for _, in := range l.Inputs {
			if in >= 0 {
				lastUse[in] = i
			}
		}
	}
	var free [][]float32
	e.outs = make([][]float32, len(layers))
	for i, l := range layers {
		n := l.Out.Size()
		if e.keep[i] {
			e.outs[i] = make([]float32, n)
		} else {
			best := -1
			for k, b := range free {
				if cap(b) >= n && (best < 0 || cap(b) < cap(free[best])) {
					best = k
				}
			}
			if best >= 0 {
				e.outs[i] = free[best][:n]
				free = append(free[:best], free[best+1:]...)
			} else {
				e.outs[i] = make([]float32, n)
			}
		}
		// Release the buffers whose last reader is this layer (never before this
		// layer's own output was chosen: a layer must not write over its input).
		released := map[int]bool{}
		for _, in := range append([]int{i}, l.Inputs...) {
			if in >= 0 && lastUse[in] == i && !e.keep[in] && !released[in] {
				released[in] = true
				free = append(free, e.outs[in][:cap(e.outs[in])])
			}
		}
	}
}

// Model returns the model the engine runs.
func (e *Engine) Model() *quant.Model { return e.m }

// Output returns the output of layer i after Forward: always for detection heads, for
// every layer with Options.KeepAll, else nil. The slice is overwritten by the next
// Forward.
func (e *Engine) Output(i int) []float32 {
	if i < 0 || i >= len(e.outs) || !e.keep[i] {
		return nil
	}
	return e.outs[i]
}

// Forward runs the network on one input: m.Input.Size() values, CHW, pixel values in
// [0,1] as darknet feeds them.
func (e *Engine) Forward(input []float32) error {
	if len(input) != e.m.Input.Size() {
		return fmt.Errorf("engine: input has %d values, model %s needs %d (%v)", len(input), e.m.Name, e.m.Input.Size(), e.m.Input)
	}
	for i, l := range e.m.Layers {
		e.forwardLayer(i, l, input)
	}
	return nil
}

func (e *Engine) forwardLayer(i int, l *quant.Layer, input []float32) {
	get := func(k int) []float32 {
		if k < 0 {
			return input
		}
		return e.outs[k]
	}
	in, out := get(l.Inputs[0]), e.outs[i]
	switch l.Kind {
	case quant.KindConv:
		e.convs[i].Forward(in, out, e.scratch, e.w)
	case quant.KindMaxPool:
		maxPoolParallel(l, in, out, e.w)
	case quant.KindRoute:
		o := 0
		for _, k := range l.Inputs {
			src := get(k)
			part := len(src) / l.Route.Groups
			o += copy(out[o:], src[l.Route.GroupID*part:(l.Route.GroupID+1)*part])
		}
	case quant.KindShortcut:
		add := get(l.Inputs[1])
		add = add[:len(out)]
		for j, v := range in[:len(out)] {
			out[j] = v + add[j]
		}
		Activate(out, l.Shortcut.Activation)
	case quant.KindUpsample:
		scale := l.Upsample.Scale
		if scale == 0 {
			scale = 1 // unset: darknet's default
		}
		Upsample(in, l.In.C, l.In.H, l.In.W, l.Upsample.Stride, scale, out)
	case quant.KindDropout:
		copy(out, in)
	case quant.KindRegion, quant.KindYolo:
		e.head(l, in, out)
	}
}

// head copies a head's input and applies its activations, anchors split among the
// workers (each anchor's planes are contiguous).
func (e *Engine) head(l *quant.Layer, in, out []float32) {
	hw := l.In.H * l.In.W
	per := len(out) / l.Head.Num
	e.w.parallelFor(l.Head.Num, func(lo, hi int) {
		part := *l.Head
		part.Num = hi - lo
		o := out[lo*per : hi*per]
		copy(o, in[lo*per:hi*per])
		if l.Kind == quant.KindRegion {
			RegionActivate(o, &part, hw)
		} else {
			YoloActivate(o, &part, hw)
		}
	})
}
