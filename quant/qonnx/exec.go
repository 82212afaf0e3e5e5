package qonnx

import (
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// Tensor is a float32 tensor of the executor (integers are stored as floats).
type Tensor struct {
	Dims []int
	Data []float32
}

func (t *Tensor) size() int {
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Execute runs a QONNX graph with the op semantics of QONNX and ONNX on one input (the
// graph's first input; for files of this package the UINT8 pixel values 0..255, see
// [PixelLevels]) and returns every tensor by name. It is a reference, written for
// clarity: convolutions sum in float64 in input order (channel, kernel row, kernel
// column) and round to float32 once, the rest is float32. It knows the ops this
// package writes: Conv, BatchNormalization, Relu, LeakyRelu, Sigmoid, MaxPool, Add,
// Mul, Div, Min, Round, Concat, Slice, Resize (nearest), Identity, Quant, BipolarQuant,
// MultiThreshold.
func Execute(mp *onnxpb.ModelProto, input []float32) (map[string]*Tensor, error) {
	g := mp.GetGraph()
	if len(g.GetInput()) == 0 {
		return nil, fmt.Errorf("execute: graph has no input")
	}
	env := map[string]*Tensor{}
	for _, t := range g.GetInitializer() {
		var data []float32
		switch t.GetDataType() {
		case int32(onnxpb.TensorProto_FLOAT):
			v, err := onnxbuild.Floats(t)
			if err != nil {
				return nil, fmt.Errorf("execute: %w", err)
			}
			data = v
		case int32(onnxpb.TensorProto_INT64):
			v, err := onnxbuild.Int64s(t)
			if err != nil {
				return nil, fmt.Errorf("execute: %w", err)
			}
			for _, x := range v {
				data = append(data, float32(x))
			}
		default:
			return nil, fmt.Errorf("execute: initializer %q has data type %d", t.GetName(), t.GetDataType())
		}
		dims := make([]int, len(t.GetDims()))
		for i, d := range t.GetDims() {
			dims[i] = int(d)
		}
		env[t.GetName()] = &Tensor{Dims: dims, Data: data}
	}
	in := g.GetInput()[0]
	var dims []int
	for _, d := range in.GetType().GetTensorType().GetShape().GetDim() {
		dims = append(dims, int(d.GetDimValue()))
	}
	it := &Tensor{Dims: dims, Data: input}
	if it.size() != len(input) {
		return nil, fmt.Errorf("execute: input has %d values, graph input %v", len(input), dims)
	}
	env[in.GetName()] = it
	for _, n := range g.GetNode() {
		args := make([]*Tensor, len(n.GetInput()))
		for k, name := range n.GetInput() {
			if name == "" {
				continue
			}
			t, ok := env[name]
			if !ok {
				return nil, fmt.Errorf("execute: node %s (%s): input %q is not computed yet", n.GetName(), n.GetOpType(), name)
			}
			args[k] = t
		}
		out, err := execNode(n, args)
		if err != nil {
			return nil, fmt.Errorf("execute: node %s (%s): %w", n.GetName(), n.GetOpType(), err)
		}
		env[n.GetOutput()[0]] = out
	}
	return env, nil
}

func execNode(n *onnxpb.NodeProto, in []*Tensor) (*Tensor, error) {
	a := onnxbuild.NodeAttrs(n)
	need := func(k int) error {
		if len(in) < k {
			return fmt.Errorf("%d inputs, want %d", len(in), k)
		}
		for i := 0; i < k; i++ {
			if in[i] == nil {
				return fmt.Errorf("input %d is empty", i)
			}
		}
		return nil
	}
	switch n.GetOpType() {
	case "Identity":
		if err := need(1); err != nil {
			return nil, err
		}
		return in[0], nil
	case "Relu", "LeakyRelu", "Sigmoid", "Round":
		if err := need(1); err != nil {
			return nil, err
		}
		alpha := a.Float("alpha", 0.01)
		out := &Tensor{Dims: in[0].Dims, Data: make([]float32, len(in[0].Data))}
		for i, x := range in[0].Data {
			switch n.GetOpType() {
			case "Relu":
				out.Data[i] = max(x, 0)
			case "LeakyRelu":
				if x < 0 {
					x = float32(alpha * x)
				}
				out.Data[i] = x
			case "Sigmoid":
				out.Data[i] = float32(1 / (1 + math.Exp(-float64(x))))
			case "Round":
				out.Data[i] = float32(math.RoundToEven(float64(x)))
			}
		}
		return out, nil
	case "Min":
		if err := need(2); err != nil {
			return nil, err
		}
		return broadcast(in[0], in[1], func(x, y float32) float32 { return min(x, y) })
	case "Add", "Mul", "Div":
		if err := need(2); err != nil {
			return nil, err
		}
		op := n.GetOpType()
		return broadcast(in[0], in[1], func(x, y float32) float32 {
			switch op {
			case "Add":
				return x + y
			case "Mul":
				return x * y
			}
			return x / y
		})
	case "Conv":
		if err := need(2); err != nil {
			return nil, err
		}
		var bias *Tensor
		if len(in) > 2 {
			bias = in[2]
		}
		return conv(in[0], in[1], bias, a)
	case "BatchNormalization":
		if err := need(5); err != nil {
			return nil, err
		}
		return batchNorm(in[0], in[1], in[2], in[3], in[4], a.Float("epsilon", 1e-5))
	case "MaxPool":
		if err := need(1); err != nil {
			return nil, err
		}
		return maxPool(in[0], a)
	case "Concat":
		return concat(in, int(a.Int("axis", 1)))
	case "Slice":
		if err := need(3); err != nil {
			return nil, err
		}
		return slice(in)
	case "Resize":
		if err := need(3); err != nil {
			return nil, err
		}
		if a.Str("mode", "nearest") != "nearest" || a.Str("coordinate_transformation_mode", "half_pixel") != "asymmetric" || a.Str("nearest_mode", "round_prefer_floor") != "floor" {
			return nil, fmt.Errorf("only nearest / asymmetric / floor resize is supported")
		}
		return resize(in[0], in[2])
	case "Quant":
		if err := need(4); err != nil {
			return nil, err
		}
		return quantOp(in[0], in[1], in[2], in[3], a.Int("signed", 1) != 0, a.Int("narrow", 0) != 0, a.Str("rounding_mode", "ROUND"))
	case "BipolarQuant":
		if err := need(2); err != nil {
			return nil, err
		}
		return broadcast(in[0], in[1], func(x, s float32) float32 { return BipolarSign(x) * s })
	case "MultiThreshold":
		if err := need(2); err != nil {
			return nil, err
		}
		if l := a.Str("data_layout", "NCHW"); l != "NCHW" {
			return nil, fmt.Errorf("data_layout %s: only NCHW", l)
		}
		return multiThreshold(in[0], in[1], a.Float("out_scale", 1), a.Float("out_bias", 0))
	}
	return nil, fmt.Errorf("op %s is not supported by the executor", n.GetOpType())
}

// broadcast applies f elementwise with numpy broadcasting (up to 4 dimensions).
func broadcast(x, y *Tensor, f func(a, b float32) float32) (*Tensor, error) {
	r := max(len(x.Dims), len(y.Dims))
	if r > 4 {
		return nil, fmt.Errorf("rank %d", r)
	}
	pad := func(d []int) [4]int {
		out := [4]int{1, 1, 1, 1}
		copy(out[4-len(d):], d)
		return out
	}
	xd, yd := pad(x.Dims), pad(y.Dims)
	var od [4]int
	for i := range od {
		switch {
		case xd[i] == yd[i], yd[i] == 1:
			od[i] = xd[i]
		case xd[i] == 1:
			od[i] = yd[i]
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", x.Dims, y.Dims)
		}
	}
	strides := func(d [4]int) [4]int {
		var s [4]int
		acc := 1
		for i := 3; i >= 0; i-- {
			if d[i] == 1 {
				s[i] = 0
			} else {
				s[i] = acc
			}
			acc *= d[i]
		}
		return s
	}
	xs, ys := strides(xd), strides(yd)
	out := &Tensor{Dims: od[4-r:], Data: make([]float32, od[0]*od[1]*od[2]*od[3])}
	k := 0
	for i0 := 0; i0 < od[0]; i0++ {
		for i1 := 0; i1 < od[1]; i1++ {
			for i2 := 0; i2 < od[2]; i2++ {
				xb := i0*xs[0] + i1*xs[1] + i2*xs[2]
				yb := i0*ys[0] + i1*ys[1] + i2*ys[2]
				for i3 := 0; i3 < od[3]; i3++ {
					out.Data[k] = f(x.Data[xb+i3*xs[3]], y.Data[yb+i3*ys[3]])
					k++
				}
			}
		}
	}
	return out, nil
}

func dims4(t *Tensor) (n, c, h, w int, err error) {
	if len(t.Dims) != 4 || t.Dims[0] != 1 {
		return 0, 0, 0, 0, fmt.Errorf("tensor %v is not 1xCxHxW", t.Dims)
	}
	return 1, t.Dims[1], t.Dims[2], t.Dims[3], nil
}

func conv(x, w, b *Tensor, a onnxbuild.Attrs) (*Tensor, error) {
	_, c, h, wd, err := dims4(x)
	if err != nil {
		return nil, err
	}
	if len(w.Dims) != 4 {
		return nil, fmt.Errorf("weights %v", w.Dims)
	}
	f, cg, k := w.Dims[0], w.Dims[1], w.Dims[2]
	if w.Dims[3] != k {
		return nil, fmt.Errorf("non-square kernel %v", w.Dims)
	}
	groups := int(a.Int("group", 1))
	st := a.Ints("strides", []int64{1, 1})
	pads := a.Ints("pads", []int64{0, 0, 0, 0})
	if _, ok := a["auto_pad"]; ok && a.Str("auto_pad", "NOTSET") != "NOTSET" {
		return nil, fmt.Errorf("auto_pad is not supported")
	}
	if len(st) != 2 || len(pads) != 4 || st[0] != st[1] || groups <= 0 || c != cg*groups || f%groups != 0 {
		return nil, fmt.Errorf("unsupported conv: strides %v pads %v group %d, input %d channels, weights %v", st, pads, groups, c, w.Dims)
	}
	stride := int(st[0])
	pt, pl, pb, pr := int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
	oh, ow := (h+pt+pb-k)/stride+1, (wd+pl+pr-k)/stride+1
	out := &Tensor{Dims: []int{1, f, oh, ow}, Data: make([]float32, f*oh*ow)}
	fg := f / groups
	for o := 0; o < f; o++ {
		g := o / fg
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var s float64
				for ch := 0; ch < cg; ch++ {
					for ky := 0; ky < k; ky++ {
						y := oy*stride + ky - pt
						if y < 0 || y >= h {
							continue
						}
						for kx := 0; kx < k; kx++ {
							xx := ox*stride + kx - pl
							if xx < 0 || xx >= wd {
								continue
							}
							s += float64(w.Data[((o*cg+ch)*k+ky)*k+kx]) * float64(x.Data[((g*cg+ch)*h+y)*wd+xx])
						}
					}
				}
				if b != nil {
					s += float64(b.Data[o])
				}
				out.Data[(o*oh+oy)*ow+ox] = float32(s)
			}
		}
	}
	return out, nil
}

func batchNorm(x, scale, bias, mean, variance *Tensor, eps float32) (*Tensor, error) {
	_, c, h, w, err := dims4(x)
	if err != nil {
		return nil, err
	}
	if len(scale.Data) != c || len(bias.Data) != c || len(mean.Data) != c || len(variance.Data) != c {
		return nil, fmt.Errorf("batch norm parameters do not have %d channels", c)
	}
	out := &Tensor{Dims: x.Dims, Data: make([]float32, len(x.Data))}
	for ch := 0; ch < c; ch++ {
		sd := float32(math.Sqrt(float64(float32(variance.Data[ch] + eps))))
		for i := ch * h * w; i < (ch+1)*h*w; i++ {
			out.Data[i] = BNApply(x.Data[i], scale.Data[ch], bias.Data[ch], mean.Data[ch], sd)
		}
	}
	return out, nil
}

func maxPool(x *Tensor, a onnxbuild.Attrs) (*Tensor, error) {
	_, c, h, w, err := dims4(x)
	if err != nil {
		return nil, err
	}
	ks := a.Ints("kernel_shape", nil)
	st := a.Ints("strides", []int64{1, 1})
	pads := a.Ints("pads", []int64{0, 0, 0, 0})
	if len(ks) != 2 || len(st) != 2 || len(pads) != 4 {
		return nil, fmt.Errorf("kernel %v strides %v pads %v", ks, st, pads)
	}
	kh, kw, sh, sw := int(ks[0]), int(ks[1]), int(st[0]), int(st[1])
	pt, pl, pb, pr := int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
	oh, ow := (h+pt+pb-kh)/sh+1, (w+pl+pr-kw)/sw+1
	out := &Tensor{Dims: []int{1, c, oh, ow}, Data: make([]float32, c*oh*ow)}
	for ch := 0; ch < c; ch++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				m := float32(math.Inf(-1))
				for ky := 0; ky < kh; ky++ {
					y := oy*sh + ky - pt
					if y < 0 || y >= h {
						continue
					}
					for kx := 0; kx < kw; kx++ {
						xx := ox*sw + kx - pl
						if xx >= 0 && xx < w {
							m = max(m, x.Data[(ch*h+y)*w+xx])
						}
					}
				}
				out.Data[(ch*oh+oy)*ow+ox] = m
			}
		}
	}
	return out, nil
}

func concat(in []*Tensor, axis int) (*Tensor, error) {
	if axis != 1 {
		return nil, fmt.Errorf("concat axis %d: only channels", axis)
	}
	var c int
	var h, w int
	for k, t := range in {
		_, tc, th, tw, err := dims4(t)
		if err != nil {
			return nil, err
		}
		if k > 0 && (th != h || tw != w) {
			return nil, fmt.Errorf("concat of %v and %v", in[0].Dims, t.Dims)
		}
		c, h, w = c+tc, th, tw
	}
	out := &Tensor{Dims: []int{1, c, h, w}}
	for _, t := range in {
		out.Data = append(out.Data, t.Data...)
	}
	return out, nil
}

func slice(in []*Tensor) (*Tensor, error) {
	x := in[0]
	_, c, h, w, err := dims4(x)
	if err != nil {
		return nil, err
	}
	if len(in) < 4 || in[3] == nil || len(in[3].Data) != 1 || in[3].Data[0] != 1 || len(in[1].Data) != 1 || len(in[2].Data) != 1 {
		return nil, fmt.Errorf("only a channel slice (axes [1]) is supported")
	}
	s, e := int(in[1].Data[0]), min(int(in[2].Data[0]), c)
	if s < 0 || s >= e {
		return nil, fmt.Errorf("channel slice %d:%d of %d", s, e, c)
	}
	return &Tensor{Dims: []int{1, e - s, h, w}, Data: append([]float32(nil), x.Data[s*h*w:e*h*w]...)}, nil
}

func resize(x, scales *Tensor) (*Tensor, error) {
	_, c, h, w, err := dims4(x)
	if err != nil {
		return nil, err
	}
	if len(scales.Data) != 4 || scales.Data[0] != 1 || scales.Data[1] != 1 {
		return nil, fmt.Errorf("resize scales %v", scales.Data)
	}
	sh, sw := scales.Data[2], scales.Data[3]
	oh, ow := int(float32(h)*sh), int(float32(w)*sw)
	out := &Tensor{Dims: []int{1, c, oh, ow}, Data: make([]float32, c*oh*ow)}
	for ch := 0; ch < c; ch++ {
		for y := 0; y < oh; y++ {
			sy := min(int(math.Floor(float64(float32(y)/sh))), h-1)
			for xx := 0; xx < ow; xx++ {
				sx := min(int(math.Floor(float64(float32(xx)/sw))), w-1)
				out.Data[(ch*oh+y)*ow+xx] = x.Data[(ch*h+sy)*w+sx]
			}
		}
	}
	return out, nil
}

func quantOp(x, scale, zeropt, bitwidth *Tensor, signed, narrow bool, mode string) (*Tensor, error) {
	if mode != "ROUND" {
		return nil, fmt.Errorf("rounding_mode %s: only ROUND", mode)
	}
	if len(bitwidth.Data) != 1 || len(zeropt.Data) != 1 {
		return nil, fmt.Errorf("bitwidth and zeropt must be scalars")
	}
	bits := int(bitwidth.Data[0])
	if float32(bits) != bitwidth.Data[0] || bits < 1 || bits > 24 {
		return nil, fmt.Errorf("bitwidth %g", bitwidth.Data[0])
	}
	zp := zeropt.Data[0]
	lo, hi := LevelRange(bits, signed, narrow)
	return broadcast(x, scale, func(v, s float32) float32 {
		// As QONNX's reference: scale, add the zero point, clamp, then round.
		y := float32(float32(v/s) + zp)
		y = max(lo, min(y, hi))
		q := float32(math.RoundToEven(float64(y)))
		return float32(q-zp) * s
	})
}

func multiThreshold(v, t *Tensor, outScale, outBias float32) (*Tensor, error) {
	_, c, h, w, err := dims4(v)
	if err != nil {
		return nil, err
	}
	if len(t.Dims) != 2 || (t.Dims[0] != c && t.Dims[0] != 1) {
		return nil, fmt.Errorf("thresholds %v for %d channels", t.Dims, c)
	}
	n := t.Dims[1]
	out := &Tensor{Dims: v.Dims, Data: make([]float32, len(v.Data))}
	for ch := 0; ch < c; ch++ {
		row := t.Data[0:n]
		if t.Dims[0] == c {
			row = t.Data[ch*n : (ch+1)*n]
		}
		for i := ch * h * w; i < (ch+1)*h*w; i++ {
			cnt := 0
			for _, th := range row {
				if v.Data[i] >= th {
					cnt++
				}
			}
			out.Data[i] = float32(float32(outScale*float32(cnt)) + outBias)
		}
	}
	return out, nil
}
