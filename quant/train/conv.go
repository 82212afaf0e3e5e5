package train

import (
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// convLayer is a convolution (im2col + GEMM) with optional batch norm and activation.
type convLayer struct {
	l          *quant.Layer
	c          *quant.Conv
	k, hw, ihw int // im2col rows (inC*size*size), output and input pixels

	wUpd, bUpd, sUpd []float32 // accumulated deltas, then momentum (darknet's *_updates)

	// per worker scratch
	col, colT, dcol, tmp [][]float32
	dW, dB, dS           [][]float32

	// batch norm state of the last training forward pass
	x, xnorm  []float32 // pre-norm outputs and normalized outputs, Batch x F x HW
	mean, vr  []float32 // batch mean and (unbiased) variance
	trainPass bool
	// fixedBN normalizes with the rolling statistics in training too and leaves them
	// alone (Net.FixBatchNorm): the layer's scale and bias still learn.
	fixedBN   bool
	q         *layerQuant // nil: float layer
	wfwd      []float32   // the weights of the last forward pass (bipolar under QAT)
	wbin      []float32   // binary=1 without QAT: darknet's binarized weights
	eps       float32
	epsInside bool
}

func newConvLayer(m *quant.Model, l *quant.Layer) (*convLayer, error) {
	c := l.Conv
	if c.Groups != 1 {
		return nil, fmt.Errorf("groups %d: only groups=1 is supported", c.Groups)
	}
	if !supportedActivation(c.Activation) {
		return nil, fmt.Errorf("activation %s is not supported for training", c.Activation)
	}
	if c.Weights == nil {
		return nil, fmt.Errorf("no weights (load a .weights file or initialise them)")
	}
	cl := &convLayer{l: l, c: c, k: l.In.C * c.Size * c.Size, hw: l.Out.H * l.Out.W, ihw: l.In.H * l.In.W,
		eps: m.BNEpsilon, epsInside: m.BNEpsInside}
	if cl.eps == 0 {
		cl.eps = 1e-6
	}
	cl.q = newLayerQuant(l)
	cl.wUpd = make([]float32, len(c.Weights))
	cl.bUpd = make([]float32, c.Filters)
	if c.BN != nil {
		cl.sUpd = make([]float32, c.Filters)
	}
	return cl, nil
}

// direct says whether the input is its own im2col matrix (1x1, stride 1, no pad).
func (cl *convLayer) direct() bool { return cl.c.Size == 1 && cl.c.Stride == 1 && cl.c.Pad == 0 }

func (cl *convLayer) ensure(n *Net) {
	w := len(n.workers)
	if len(cl.col) == w {
		return
	}
	f := cl.c.Filters
	cl.col, cl.colT, cl.dcol, cl.tmp = make([][]float32, w), make([][]float32, w), make([][]float32, w), make([][]float32, w)
	cl.dW, cl.dB, cl.dS = make([][]float32, w), make([][]float32, w), make([][]float32, w)
	for i := 0; i < w; i++ {
		if !cl.direct() {
			cl.col[i] = make([]float32, cl.k*cl.hw)
		}
		cl.colT[i] = make([]float32, cl.k*cl.hw)
		cl.dcol[i] = make([]float32, cl.k*cl.hw)
		cl.tmp[i] = make([]float32, f*cl.k)
		cl.dW[i] = make([]float32, f*cl.k)
		cl.dB[i] = make([]float32, f)
		cl.dS[i] = make([]float32, f)
	}
}

// im2col expands one image (C x H x W) into rows (c, ky, kx) x output pixels, zero
// outside the image, as darknet's im2col_cpu.
func im2col(in []float32, c, h, w, size, stride, pad int, col []float32, oh, ow int) {
	for r := 0; r < c*size*size; r++ {
		kx, ky, ch := r%size, (r/size)%size, r/size/size
		plane := in[ch*h*w : (ch+1)*h*w]
		dst := col[r*oh*ow : (r+1)*oh*ow]
		for y := 0; y < oh; y++ {
			iy := ky + y*stride - pad
			row := dst[y*ow : (y+1)*ow]
			if iy < 0 || iy >= h {
				clear(row)
				continue
			}
			src := plane[iy*w : (iy+1)*w]
			for x := range row {
				ix := kx + x*stride - pad
				if ix < 0 || ix >= w {
					row[x] = 0
				} else {
					row[x] = src[ix]
				}
			}
		}
	}
}

// col2im adds the columns back onto the image positions they were read from.
func col2im(col []float32, c, h, w, size, stride, pad int, img []float32, oh, ow int) {
	for r := 0; r < c*size*size; r++ {
		kx, ky, ch := r%size, (r/size)%size, r/size/size
		plane := img[ch*h*w : (ch+1)*h*w]
		src := col[r*oh*ow : (r+1)*oh*ow]
		for y := 0; y < oh; y++ {
			iy := ky + y*stride - pad
			if iy < 0 || iy >= h {
				continue
			}
			dst := plane[iy*w : (iy+1)*w]
			row := src[y*ow : (y+1)*ow]
			for x, v := range row {
				if ix := kx + x*stride - pad; ix >= 0 && ix < w {
					dst[ix] += v
				}
			}
		}
	}
}

// transpose writes the rows x cols matrix a as cols x rows into t.
func transpose(a []float32, rows, cols int, t []float32) {
	const blk = 32
	for r0 := 0; r0 < rows; r0 += blk {
		for c0 := 0; c0 < cols; c0 += blk {
			for r := r0; r < min(r0+blk, rows); r++ {
				row := a[r*cols:]
				for c := c0; c < min(c0+blk, cols); c++ {
					t[c*rows+r] = row[c]
				}
			}
		}
	}
}

func (cl *convLayer) colOf(n *Net, worker int, in []float32) []float32 {
	if cl.direct() {
		return in
	}
	col := cl.col[worker]
	im2col(in, cl.l.In.C, cl.l.In.H, cl.l.In.W, cl.c.Size, cl.c.Stride, cl.c.Pad, col, cl.l.Out.H, cl.l.Out.W)
	return col
}

func (cl *convLayer) forward(n *Net, in, out []float32, train bool) {
	cl.ensure(n)
	f, isz, osz := cl.c.Filters, cl.l.In.Size(), cl.l.Out.Size()
	cl.wfwd = cl.c.Weights
	switch {
	case cl.q != nil:
		cl.wfwd = cl.q.quantizeWeights(cl.c.Weights, f)
	case cl.c.Binary || cl.c.XNOR:
		cl.wfwd = cl.binarized(f)
	}
	wp := floatengine.PackA(f, cl.k, cl.wfwd, cl.k)
	n.parallelImages(func(worker, b int) {
		col := cl.colOf(n, worker, in[b*isz:(b+1)*isz])
		floatengine.SgemmPacked(wp, cl.hw, col, out[b*osz:(b+1)*osz], n.workers[worker])
	})
	cl.trainPass = train
	if cl.c.BN != nil {
		cl.batchNormForward(n, out, train, train && cl.fixedBN)
	} else {
		cl.addBias(n, out)
	}
	n.parallelRange(n.Batch*f, func(lo, hi int) {
		activateForward(out[lo*cl.hw:hi*cl.hw], cl.c.Activation)
	})
	if cl.q != nil {
		cl.q.quantizeActivations(out, n.clipInit)
	}
}

// binarized returns darknet's binarize_weights of a binary=1 layer: per filter,
// mean |w| times the sign (w > 0). Darknet trains such a layer with these weights in
// both passes and applies the updates to the float ones, as QAT's bipolar quantizer.
func (cl *convLayer) binarized(f int) []float32 {
	if len(cl.wbin) != len(cl.c.Weights) {
		cl.wbin = make([]float32, len(cl.c.Weights))
	}
	quant.Binarize(cl.wbin, cl.c.Weights, f)
	return cl.wbin
}

func (cl *convLayer) addBias(n *Net, out []float32) {
	f := cl.c.Filters
	n.parallelRange(n.Batch*f, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			bias := cl.c.Bias[p%f]
			plane := out[p*cl.hw : (p+1)*cl.hw]
			for i := range plane {
				plane[i] += bias
			}
		}
	})
}

// std is the divisor of the normalization for variance v, as the model's darknet
// computes it, and its derivative by v.
func (cl *convLayer) std(v float32) (s, ds float32) {
	if cl.epsInside {
		s = float32(math.Sqrt(float64(v + cl.eps)))
		return s, 1 / (2 * s)
	}
	r := float32(math.Sqrt(float64(max(v, 0))))
	if r == 0 {
		return cl.eps, 0
	}
	return r + cl.eps, 1 / (2 * r)
}

// batchNormForward is darknet's forward_batchnorm_layer: in training, batch mean and
// variance (divided by N-1) normalize, and the rolling statistics move by .01 towards
// them; in inference the rolling statistics normalize. Then scale and bias.
//
// With fixed set (training with frozen statistics) the rolling statistics normalize
// and stay, and the normalized outputs are kept for the backward pass.
func (cl *convLayer) batchNormForward(n *Net, out []float32, train, fixed bool) {
	f, hw, bn := cl.c.Filters, cl.hw, cl.c.BN
	keep := train
	if train && len(cl.x) != len(out) {
		cl.x, cl.xnorm = make([]float32, len(out)), make([]float32, len(out))
		cl.mean, cl.vr = make([]float32, f), make([]float32, f)
	}
	if fixed {
		train = false
	}
	if train {
		copy(cl.x, out)
		cnt := float64(n.Batch * hw)
		n.parallelRange(f, func(lo, hi int) {
			for c := lo; c < hi; c++ {
				var s float64
				for b := 0; b < n.Batch; b++ {
					for _, v := range out[(b*f+c)*hw : (b*f+c+1)*hw] {
						s += float64(v)
					}
				}
				mean := s / cnt
				var q float64
				for b := 0; b < n.Batch; b++ {
					for _, v := range out[(b*f+c)*hw : (b*f+c+1)*hw] {
						d := float64(v) - mean
						q += d * d
					}
				}
				cl.mean[c] = float32(mean)
				cl.vr[c] = float32(q / max(cnt-1, 1))
				bn.Mean[c] = .99*bn.Mean[c] + .01*cl.mean[c]
				bn.Variance[c] = .99*bn.Variance[c] + .01*cl.vr[c]
			}
		})
	}
	n.parallelRange(n.Batch*f, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			c := p % f
			mean, vr := bn.Mean[c], bn.Variance[c]
			if train {
				mean, vr = cl.mean[c], cl.vr[c]
			}
			s, _ := cl.std(vr)
			plane := out[p*hw : (p+1)*hw]
			for i, v := range plane {
				xn := (v - mean) / s
				if keep {
					cl.xnorm[p*hw+i] = xn
				}
				plane[i] = xn*bn.Scale[c] + cl.c.Bias[c]
			}
		}
	})
}

func (cl *convLayer) backward(n *Net, in, out, delta, inDelta []float32) {
	f, hw := cl.c.Filters, cl.hw
	if cl.q != nil && cl.q.q.ActBits > 0 {
		cl.q.activationBackward(delta, cl.c.Activation)
	} else {
		n.parallelRange(n.Batch*f, func(lo, hi int) {
			activateBackward(out[lo*hw:hi*hw], delta[lo*hw:hi*hw], cl.c.Activation)
		})
	}
	cl.biasScaleUpdates(n, delta)
	switch {
	case cl.c.BN != nil && cl.fixedBN:
		cl.fixedNormBackward(n, delta)
	case cl.c.BN != nil:
		cl.batchNormBackward(n, delta)
	}
	isz, osz := cl.l.In.Size(), cl.l.Out.Size()
	var wtp *floatengine.PackedA
	if inDelta != nil {
		wt := make([]float32, f*cl.k)
		transpose(cl.wfwd, f, cl.k, wt)
		wtp = floatengine.PackA(cl.k, f, wt, f)
	}
	for w := range cl.dW {
		clear(cl.dW[w])
	}
	n.parallelImages(func(worker, b int) {
		d := delta[b*osz : (b+1)*osz]
		col := cl.colOf(n, worker, in[b*isz:(b+1)*isz])
		colT := cl.colT[worker]
		transpose(col, cl.k, hw, colT)
		tmp := cl.tmp[worker]
		floatengine.SgemmPacked(floatengine.PackA(f, hw, d, hw), cl.k, colT, tmp, n.workers[worker])
		dw := cl.dW[worker]
		for i, v := range tmp {
			dw[i] += v
		}
		if inDelta == nil {
			return
		}
		id := inDelta[b*isz : (b+1)*isz]
		if cl.direct() {
			floatengine.SgemmPacked(wtp, hw, d, cl.dcol[worker], n.workers[worker])
			for i, v := range cl.dcol[worker][:isz] {
				id[i] += v
			}
			return
		}
		dcol := cl.dcol[worker]
		floatengine.SgemmPacked(wtp, hw, d, dcol, n.workers[worker])
		col2im(dcol, cl.l.In.C, cl.l.In.H, cl.l.In.W, cl.c.Size, cl.c.Stride, cl.c.Pad, id, cl.l.Out.H, cl.l.Out.W)
	})
	for _, dw := range cl.dW { // fixed order: deterministic sums
		for i, v := range dw {
			cl.wUpd[i] += v
		}
	}
}

// biasScaleUpdates accumulates the bias deltas and, with batch norm, the scale deltas
// (delta times the normalized output), as backward_bias and backward_scale_cpu.
func (cl *convLayer) biasScaleUpdates(n *Net, delta []float32) {
	f, hw := cl.c.Filters, cl.hw
	n.parallelRange(f, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var sb, ss float64
			for b := 0; b < n.Batch; b++ {
				off := (b*f + c) * hw
				for i, d := range delta[off : off+hw] {
					sb += float64(d)
					if cl.c.BN != nil {
						ss += float64(d * cl.xnorm[off+i])
					}
				}
			}
			cl.bUpd[c] += float32(sb)
			if cl.c.BN != nil {
				cl.sUpd[c] += float32(ss)
			}
		}
	})
}

// batchNormBackward turns the delta of the BN output into the delta of the convolution
// output through scale and the batch normalization (the exact derivative of the forward
// pass: darknet's normalize_delta_cpu divides the variance term by N instead of N-1,
// a 1/N difference).
func (cl *convLayer) batchNormBackward(n *Net, delta []float32) {
	f, hw, bn := cl.c.Filters, cl.hw, cl.c.BN
	cnt := float64(n.Batch * hw)
	n.parallelRange(f, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean := cl.mean[c]
			s, ds := cl.std(cl.vr[c])
			scale := bn.Scale[c]
			var sg, sgx float64 // sum of g and of g*(x-mean), g = delta*scale
			for b := 0; b < n.Batch; b++ {
				off := (b*f + c) * hw
				for i := off; i < off+hw; i++ {
					g := float64(delta[i] * scale)
					sg += g
					sgx += g * float64(cl.x[i]-mean)
				}
			}
			dstd := -sgx / float64(s*s)
			dvar := dstd * float64(ds)
			dmean := -sg / float64(s)
			kv := 2 * dvar / max(cnt-1, 1)
			km := dmean / cnt
			for b := 0; b < n.Batch; b++ {
				off := (b*f + c) * hw
				for i := off; i < off+hw; i++ {
					g := float64(delta[i] * scale)
					delta[i] = float32(g/float64(s) + kv*float64(cl.x[i]-mean) + km)
				}
			}
		}
	})
}

// fixedNormBackward is the backward pass of a normalization by constants: delta times
// scale / std.
func (cl *convLayer) fixedNormBackward(n *Net, delta []float32) {
	f, hw, bn := cl.c.Filters, cl.hw, cl.c.BN
	n.parallelRange(n.Batch*f, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			c := p % f
			s, _ := cl.std(bn.Variance[c])
			k := bn.Scale[c] / s
			for i := p * hw; i < (p+1)*hw; i++ {
				delta[i] *= k
			}
		}
	})
}

func (cl *convLayer) update(lrb, momentum, decayb float32, learnClip bool) {
	if q := cl.q; q != nil && q.q.ActBits > 0 {
		if learnClip {
			// At most 10% per step: a clip scale that jumps wipes out a layer.
			step := min(max(lrb*float32(q.clipUp), -.1*q.q.ActScale), .1*q.q.ActScale)
			q.q.ActScale = qonnx.RoundActScale(max(q.q.ActScale+step, 1e-6), q.q.ActBits)
		}
		q.clipUp *= float64(momentum)
	}
	for i := range cl.bUpd {
		cl.c.Bias[i] += lrb * cl.bUpd[i]
		cl.bUpd[i] *= momentum
	}
	if cl.c.BN != nil {
		for i := range cl.sUpd {
			cl.c.BN.Scale[i] += lrb * cl.sUpd[i]
			cl.sUpd[i] *= momentum
		}
	}
	w := cl.c.Weights
	for i := range cl.wUpd {
		cl.wUpd[i] -= decayb * w[i]
		w[i] += lrb * cl.wUpd[i]
		cl.wUpd[i] *= momentum
	}
}
