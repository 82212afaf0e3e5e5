package floatengine

import (
	"errors"
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Conv is a convolutional layer prepared for execution: batch norm (and darknet's
// binary=1 weight binarization) folded into the weights and biases, weights packed for
// the GEMM, or kept per channel for the direct depthwise kernel. Its weights are read
// only, but Forward keeps per-call state: do not run one Conv's Forward concurrently.
type Conv struct {
	In, Out                   quant.Shape
	size, stride, pad, groups int
	act                       quant.Activation
	xnor                      bool // binarize the input (x > 0 ? 1 : -1) first
	bias                      []float32
	packed                    []*PackedA     // one per group (GEMM path)
	wino                      [][16]*PackedA // one set per group (Winograd path)
	eps                       []Epilogue     // one per group (GEMM path)
	col                       im2col         // the im2col view of the current input (reused)
	dw                        []float32      // depthwise path: Filters x Size*Size
}

// NewConv prepares convolutional layer l of model m. It does not modify the model.
func NewConv(m *quant.Model, l *quant.Layer) (*Conv, error) {
	c := l.Conv
	if c == nil {
		return nil, errors.New("convolutional layer without parameters")
	}
	if err := checkActivation(c.Activation); err != nil {
		return nil, err
	}
	if c.Filters <= 0 || c.Size <= 0 || c.Stride <= 0 || c.Pad < 0 || c.Groups <= 0 ||
		l.In.C%c.Groups != 0 || c.Filters%c.Groups != 0 {
		return nil, fmt.Errorf("bad convolution parameters (filters %d size %d stride %d pad %d groups %d on %d channels)",
			c.Filters, c.Size, c.Stride, c.Pad, c.Groups, l.In.C)
	}
	if c.Bias != nil && len(c.Bias) != c.Filters {
		return nil, fmt.Errorf("%d biases, want %d", len(c.Bias), c.Filters)
	}
	if bn := c.BN; bn != nil && (len(bn.Scale) != c.Filters || len(bn.Mean) != c.Filters || len(bn.Variance) != c.Filters) {
		return nil, fmt.Errorf("batch norm has %d/%d/%d values, want %d", len(bn.Scale), len(bn.Mean), len(bn.Variance), c.Filters)
	}
	cg := l.In.C / c.Groups
	kk := cg * c.Size * c.Size
	if len(c.Weights) != c.Filters*kk {
		return nil, fmt.Errorf("%d weights, want %d (load the .weights file)", len(c.Weights), c.Filters*kk)
	}
	if l.Out != (quant.Shape{C: c.Filters, H: (l.In.H+2*c.Pad-c.Size)/c.Stride + 1, W: (l.In.W+2*c.Pad-c.Size)/c.Stride + 1}) {
		return nil, fmt.Errorf("output shape %v does not match the parameters (run InferShapes)", l.Out)
	}
	w, b := foldWeights(m, c, kk)
	cv := &Conv{In: l.In, Out: l.Out, size: c.Size, stride: c.Stride, pad: c.Pad, groups: c.Groups,
		act: c.Activation, xnor: c.XNOR, bias: b}
	if c.Groups == l.In.C && c.Filters == c.Groups && !c.XNOR {
		cv.dw = w
		return cv, nil
	}
	fg := c.Filters / c.Groups
	if useWinograd(c, l.In.C) {
		for g := 0; g < c.Groups; g++ {
			cv.wino = append(cv.wino, winogradFilters(w[g*fg*kk:(g+1)*fg*kk], fg, cg))
		}
		return cv, nil
	}
	for g := 0; g < c.Groups; g++ {
		cv.packed = append(cv.packed, PackA(fg, kk, w[g*fg*kk:], kk))
		cv.eps = append(cv.eps, Epilogue{Bias: b[g*fg : (g+1)*fg], Activation: c.Activation})
	}
	return cv, nil
}

// foldWeights returns the effective weights and biases of a convolution: darknet's
// binary/xnor weight binarization (per filter: sign * mean |w|), then batch norm
// folded in, y = s*(x-mean)/sd + bias with sd = sqrt(var)+eps (pjreddie CPU) or
// sqrt(var+eps) (AlexeyAB).
func foldWeights(m *quant.Model, c *quant.Conv, kk int) (w, b []float32) {
	w = append([]float32(nil), c.Weights...)
	b = make([]float32, c.Filters)
	copy(b, c.Bias)
	if c.Binary || c.XNOR {
		for f := 0; f < c.Filters; f++ {
			row := w[f*kk : (f+1)*kk]
			var sum float32
			for _, v := range row {
				sum += float32(math.Abs(float64(v)))
			}
			mean := sum / float32(kk)
			for i, v := range row {
				if v > 0 {
					row[i] = mean
				} else {
					row[i] = -mean
				}
			}
		}
	}
	if bn := c.BN; bn != nil {
		for f := 0; f < c.Filters; f++ {
			v := float64(bn.Variance[f])
			var sd float64
			if m.BNEpsInside {
				sd = math.Sqrt(v + float64(m.BNEpsilon))
			} else {
				sd = math.Sqrt(v) + float64(m.BNEpsilon)
			}
			k := float64(bn.Scale[f]) / sd
			for i := f * kk; i < (f+1)*kk; i++ {
				w[i] = float32(float64(w[i]) * k)
			}
			b[f] = float32(float64(b[f]) - float64(bn.Mean[f])*k)
		}
	}
	return w, b
}

// Scratch returns how many floats of scratch [Conv.Forward] needs (the binarized input
// of an xnor layer), 0 for most layers.
func (cv *Conv) Scratch() int {
	if cv.xnor {
		return cv.In.Size()
	}
	return 0
}

// Forward computes the layer: in holds In.Size() values, out receives Out.Size().
// scratch must hold [Conv.Scratch] floats.
func (cv *Conv) Forward(in, out, scratch []float32, w *Workers) {
	in, out = in[:cv.In.Size()], out[:cv.Out.Size()]
	if cv.xnor {
		bin := scratch[:len(in)]
		for i, v := range in {
			if v > 0 {
				bin[i] = 1
			} else {
				bin[i] = -1
			}
		}
		in = bin
	}
	if cv.dw != nil {
		cv.depthwise(in, out, w)
		return
	}
	if cv.wino != nil {
		cv.winograd(in, out, w)
		return
	}
	hw := cv.Out.H * cv.Out.W
	cg := cv.In.C / cv.groups
	inPlane := cv.In.H * cv.In.W
	for g, pa := range cv.packed {
		fg := pa.M
		o := out[g*fg*hw : (g+1)*fg*hw]
		src := cv.source(in[g*cg*inPlane:(g+1)*cg*inPlane], &cv.col)
		w.gemm(pa, src, o, hw, &cv.eps[g])
	}
}

// source returns the GEMM right-hand side for one group's input channels.
func (cv *Conv) source(in []float32, col *im2col) bSource {
	if cv.size == 1 && cv.stride == 1 && cv.pad == 0 {
		return denseB(in, cv.In.H*cv.In.W)
	}
	*col = im2col{in: in, h: cv.In.H, w: cv.In.W, outW: cv.Out.W, size: cv.size, stride: cv.stride, pad: cv.pad}
	return bSource{col: col}
}

// im2col expands an input (channels x h x w) into darknet's column matrix on the fly:
// row (ch, ky, kx), column (oy, ox) holds in[ch][oy*stride-pad+ky][ox*stride-pad+kx], 0
// outside the image.
type im2col struct {
	in                []float32
	h, w, outW        int
	size, stride, pad int
}

func (s im2col) pack(dst []float32, k0, kc, j0, nc int) {
	ks2 := s.size * s.size
	step := kc * nr
	for kk := 0; kk < kc; kk++ {
		k := k0 + kk
		ch, r := k/ks2, k%ks2
		ky, kx := r/s.size, r%s.size
		plane := s.in[ch*s.h*s.w : (ch+1)*s.h*s.w]
		d := dst[kk*nr:]
		// Columns go in pieces that stay inside one output row and one B panel: each
		// piece is a contiguous run of dst, filled by copy where the stride is 1.
		for col := 0; col < nc; {
			j := j0 + col
			oy, ox := j/s.outW, j%s.outW
			cnt := min(s.outW-ox, nc-col, nr-col%nr)
			piece := d[(col/nr)*step+col%nr:][:cnt]
			iy := oy*s.stride - s.pad + ky
			ix := ox*s.stride - s.pad + kx
			switch {
			case iy < 0 || iy >= s.h:
				clear(piece)
			case s.stride == 1:
				row := plane[iy*s.w : (iy+1)*s.w]
				lo := min(max(0, -ix), cnt)     // columns left of the image
				hi := max(lo, min(cnt, s.w-ix)) // end of the columns inside it
				clear(piece[:lo])
				if hi > lo {
					copy(piece[lo:hi], row[ix+lo:])
				}
				clear(piece[hi:])
			default:
				row := plane[iy*s.w : (iy+1)*s.w]
				for c := range piece {
					var v float32
					if uint(ix) < uint(len(row)) {
						v = row[ix]
					}
					piece[c] = v
					ix += s.stride
				}
			}
			col += cnt
		}
		if nc%nr != 0 {
			p := (nc / nr) * step
			clear(d[p+nc%nr : p+nr])
		}
	}
}

// depthwise runs a groups == channels == filters convolution directly, one channel
// plane at a time, in parallel over channels.
func (cv *Conv) depthwise(in, out []float32, w *Workers) {
	inPlane := cv.In.H * cv.In.W
	outPlane := cv.Out.H * cv.Out.W
	ks2 := cv.size * cv.size
	w.parallelForWorker(cv.Out.C, func(worker, lo, hi int) {
		buf := w.scratch(worker, depthwiseScratch(cv.size, cv.stride, cv.Out.H, cv.Out.W))
		for ch := lo; ch < hi; ch++ {
			o := out[ch*outPlane : (ch+1)*outPlane]
			if depthwisePlaneVec(in[ch*inPlane:(ch+1)*inPlane], cv.In.H, cv.In.W, cv.dw[ch*ks2:(ch+1)*ks2],
				cv.size, cv.stride, cv.pad, cv.bias[ch], cv.act, o, cv.Out.H, cv.Out.W, buf) {
				continue // amd64 assembly
			}
			DepthwisePlane(in[ch*inPlane:(ch+1)*inPlane], cv.In.H, cv.In.W, cv.dw[ch*ks2:(ch+1)*ks2],
				cv.size, cv.stride, cv.pad, cv.bias[ch], cv.act, o, cv.Out.H, cv.Out.W)
		}
	})
}

// DepthwisePlane convolves one h x w plane with one size x size kernel k (stride, zero
// padding pad on each side), adds bias and applies act, into the oh x ow plane out.
func DepthwisePlane(in []float32, h, w int, k []float32, size, stride, pad int, bias float32, act quant.Activation, out []float32, oh, ow int) {
	// Output columns [ox0, ox1) read only inside the row for every kx: no checks there.
	ox0 := min(ow, (pad+stride-1)/stride)
	ox1 := ox0
	if w-size+pad >= 0 {
		ox1 = max(ox0, min(ow, (w-size+pad)/stride+1))
	}
	for oy := 0; oy < oh; oy++ {
		orow := out[oy*ow : (oy+1)*ow]
		if iy := oy*stride - pad; size == 3 && iy >= 0 && iy+2 < h && ox1 > ox0 {
			depthwise3x3Row(orow, in[iy*w:(iy+3)*w], w, (*[9]float32)(k), stride, pad, ox0, ox1, bias, act)
			continue
		}
		if iy := oy*stride - pad; iy >= 0 && iy+size <= h && ox1 > ox0 {
			depthwiseRow(orow, in[iy*w:(iy+size)*w], w, k, size, stride, pad, ox0, ox1, bias, act)
			continue
		}
		clear(orow)
		for ky := 0; ky < size; ky++ {
			iy := oy*stride - pad + ky
			if iy < 0 || iy >= h {
				continue
			}
			row := in[iy*w : (iy+1)*w]
			for kx := 0; kx < size; kx++ {
				kv := k[ky*size+kx]
				edge := func(ox int) {
					if ix := ox*stride - pad + kx; ix >= 0 && ix < w {
						orow[ox] += kv * row[ix]
					}
				}
				for ox := 0; ox < ox0; ox++ {
					edge(ox)
				}
				base := ox0*stride - pad + kx
				switch {
				case ox1 == ox0: // no interior columns
				case stride == 1:
					src := row[base : base+ox1-ox0]
					dst := orow[ox0:ox1]
					for i := range dst {
						dst[i] += kv * src[i]
					}
				default:
					ix := base
					for ox := ox0; ox < ox1; ox++ {
						orow[ox] += kv * row[ix]
						ix += stride
					}
				}
				for ox := ox1; ox < ow; ox++ {
					edge(ox)
				}
			}
		}
		biasActivate(orow, bias, act)
	}
}

// depthwise3x3Row computes one output row of a 3x3 depthwise convolution whose three
// input rows rows (3 x w) all lie inside the image: columns [ox0, ox1) with all nine taps
// in one pass, the border columns tap by tap; then bias and activation. Taps are summed in
// darknet's order.
func depthwise3x3Row(orow, rows []float32, w int, k *[9]float32, stride, pad, ox0, ox1 int, bias float32, act quant.Activation) {
	r0, r1, r2 := rows[:w], rows[w:2*w], rows[2*w:3*w]
	slope, simple := slopeOf(act)
	border := func(ox int) {
		var acc float32
		for kx := 0; kx < 3; kx++ {
			if ix := ox*stride - pad + kx; ix >= 0 && ix < w {
				acc += k[kx] * r0[ix]
				acc += k[3+kx] * r1[ix]
				acc += k[6+kx] * r2[ix]
			}
		}
		orow[ox] = activate1(acc+bias, act)
	}
	for ox := 0; ox < ox0; ox++ {
		border(ox)
	}
	base := ox0*stride - pad
	a, b, c := r0[base:], r1[base:], r2[base:]
	dst := orow[ox0:ox1]
	i := 0
	if stride == 1 && simple {
		// Vector lanes where the build has them (GOEXPERIMENT=simd); 0 outputs otherwise.
		i = depthwise3x3Vec(dst, a, b, c, k, bias, slope)
		a, b, c = a[i:], b[i:], c[i:]
	}
	// Two outputs per iteration: their tap chains are independent, so they overlap.
	for ; i+1 < len(dst); i += 2 {
		if len(a) < stride+3 || len(b) < stride+3 || len(c) < stride+3 {
			break // only near the row end; the loop below finishes
		}
		a2, b2, c2 := a[stride:stride+3], b[stride:stride+3], c[stride:stride+3]
		acc := k[0] * a[0]
		acc2 := k[0] * a2[0]
		acc += k[1] * a[1]
		acc2 += k[1] * a2[1]
		acc += k[2] * a[2]
		acc2 += k[2] * a2[2]
		acc += k[3] * b[0]
		acc2 += k[3] * b2[0]
		acc += k[4] * b[1]
		acc2 += k[4] * b2[1]
		acc += k[5] * b[2]
		acc2 += k[5] * b2[2]
		acc += k[6] * c[0]
		acc2 += k[6] * c2[0]
		acc += k[7] * c[1]
		acc2 += k[7] * c2[1]
		acc += k[8] * c[2]
		acc2 += k[8] * c2[2]
		acc += bias
		acc2 += bias
		if simple {
			acc, acc2 = max(acc, slope*acc), max(acc2, slope*acc2)
		} else {
			acc, acc2 = activate1(acc, act), activate1(acc2, act)
		}
		dst[i], dst[i+1] = acc, acc2
		if len(a) < 2*stride || len(b) < 2*stride || len(c) < 2*stride {
			i += 2
			break
		}
		a, b, c = a[2*stride:], b[2*stride:], c[2*stride:]
	}
	for ; i < len(dst); i++ {
		if len(a) < 3 || len(b) < 3 || len(c) < 3 {
			break // unreachable: [ox0, ox1) reads inside the rows
		}
		acc := k[0] * a[0]
		acc += k[1] * a[1]
		acc += k[2] * a[2]
		acc += k[3] * b[0]
		acc += k[4] * b[1]
		acc += k[5] * b[2]
		acc += k[6] * c[0]
		acc += k[7] * c[1]
		acc += k[8] * c[2]
		acc += bias
		if simple {
			acc = max(acc, slope*acc)
		} else {
			acc = activate1(acc, act)
		}
		dst[i] = acc
		if len(a) > stride {
			a, b, c = a[stride:], b[stride:], c[stride:]
		}
	}
	for ox := ox1; ox < len(orow); ox++ {
		border(ox)
	}
}

// depthwiseRow computes one output row of a size x size depthwise convolution whose
// input rows (size x w) all lie inside the image, output by output with the taps in
// darknet's order, then bias and activation.
func depthwiseRow(orow, rows []float32, w int, k []float32, size, stride, pad, ox0, ox1 int, bias float32, act quant.Activation) {
	for ox := range orow {
		base := ox*stride - pad
		var acc float32
		if ox >= ox0 && ox < ox1 { // every tap inside the row
			for ky := 0; ky < size; ky++ {
				kr := k[ky*size : (ky+1)*size]
				r := rows[ky*w+base : ky*w+base+size]
				for kx, v := range r[:len(kr)] {
					acc += kr[kx] * v
				}
			}
		} else {
			for ky := 0; ky < size; ky++ {
				for kx := 0; kx < size; kx++ {
					if ix := base + kx; ix >= 0 && ix < w {
						acc += k[ky*size+kx] * rows[ky*w+ix]
					}
				}
			}
		}
		orow[ox] = activate1(acc+bias, act)
	}
}
