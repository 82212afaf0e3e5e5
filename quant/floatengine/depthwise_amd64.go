//go:build amd64 && !purego && !goexperiment.simd

package floatengine

// Depthwise convolutions on AVX2: each channel plane is first copied into a zero-padded
// buffer whose rows are split into stride phases (phase p holds padded columns p, p+s,
// p+2s, ...), so that every tap of every output reads eight consecutive floats; then an
// assembly row kernel (depthwise_amd64.s) sums the taps for eight outputs per vector,
// adds the bias and applies linear/leaky/relu. Stride 1 runs the kernel once over the
// whole padded plane as if it were one row and drops the junk columns; other strides go
// row by row, and a row whose width is not a multiple of 8 ends with one vector
// overlapping the previous one (outputs are recomputed, not accumulated: harmless).

import "github.com/fpgadetector/pynq-agent/quant"

// depthwiseRowAVX2 computes nvec vectors of 8 outputs: dst[8v+i] = max(x, slope*x) with
// x = bias + sum over taps t of k[t]*src[offs[t]+8v+i]. Implemented in depthwise_amd64.s.
//
//go:noescape
func depthwiseRowAVX2(dst, src *float32, nvec int, offs *int, k *float32, taps int, bias, slope float32)

// maxVecTaps bounds the kernel size of the vector path (7x7).
const maxVecTaps = 49

// depthwisePadded is the padded plane's width and height for an oh x ow output.
func depthwisePadded(size, stride, oh, ow int) (wp, hp int) {
	return (ow-1)*stride + size, (oh-1)*stride + size
}

// depthwiseScratch is how many floats depthwisePlaneVec needs as buf.
func depthwiseScratch(size, stride, oh, ow int) int {
	if !useAVX2 || ow < 8 || size*size > maxVecTaps {
		return 0
	}
	wp, hp := depthwisePadded(size, stride, oh, ow)
	if stride != 1 {
		return wp * hp
	}
	plane, nv := wholePlane(size, oh, wp)
	return max(wp*hp, plane) + nv*8
}

// wholePlane sizes the stride-1 path that runs the kernel over the padded plane as one
// long row of oh*wp outputs (wp-ow of each wp are junk, dropped afterwards): nv vectors,
// reading plane floats.
func wholePlane(size, oh, wp int) (plane, nv int) {
	nv = (oh*wp + 7) / 8
	return nv*8 + (size-1)*(wp+1), nv
}

// depthwisePlaneVec is [DepthwisePlane] on AVX2, with buf of depthwiseScratch floats. It
// returns false, computing nothing, where the vector path does not apply (no AVX2, output
// narrower than eight, kernels larger than 7x7).
func depthwisePlaneVec(in []float32, h, w int, k []float32, size, stride, pad int, bias float32, act quant.Activation, out []float32, oh, ow int, buf []float32) bool {
	taps := size * size
	if !useAVX2 || ow < 8 || oh < 1 || taps > maxVecTaps || stride < 1 || len(k) < taps {
		return false
	}
	if len(buf) < depthwiseScratch(size, stride, oh, ow) || len(in) < h*w || len(out) < oh*ow {
		return false
	}
	wp, hp := depthwisePadded(size, stride, oh, ow)
	padPlane(buf[:wp*hp], in, h, w, pad, stride, wp)

	// Tap (ky, kx) of output column x reads padded row ky, column x*stride+kx: phase
	// kx%stride, index x + kx/stride inside the phase.
	var offs [maxVecTaps]int
	for ky := 0; ky < size; ky++ {
		for kx := 0; kx < size; kx++ {
			offs[ky*size+kx] = ky*wp + phaseStart(kx%stride, stride, wp) + kx/stride
		}
	}
	slope, simple := slopeOf(act)
	if !simple {
		slope = 1 // the kernel adds the bias; the activation runs below
	}
	if stride == 1 {
		// One call over the whole plane: small planes (10x10, 20x20) would otherwise
		// run one or two vectors per row, bound by the latency of the tap chain.
		plane, nv := wholePlane(size, oh, wp)
		clear(buf[wp*hp : plane]) // read by junk outputs only; kept finite
		tmp := buf[max(wp*hp, plane):][:nv*8]
		depthwiseRowAVX2(&tmp[0], &buf[0], nv, &offs[0], &k[0], taps, bias, slope)
		for oy := 0; oy < oh; oy++ {
			copy(out[oy*ow:(oy+1)*ow], tmp[oy*wp:])
		}
	} else {
		nvec := ow / 8
		for oy := 0; oy < oh; oy++ {
			src := buf[oy*stride*wp:]
			orow := out[oy*ow : (oy+1)*ow]
			depthwiseRowAVX2(&orow[0], &src[0], nvec, &offs[0], &k[0], taps, bias, slope)
			if tail := ow - 8; tail%8 != 0 {
				depthwiseRowAVX2(&orow[tail], &src[tail], 1, &offs[0], &k[0], taps, bias, slope)
			}
		}
	}
	if !simple {
		for i, v := range out[:oh*ow] {
			out[i] = activate1(v, act)
		}
	}
	return true
}

// phaseStart is where phase p (padded columns p, p+stride, ...) begins in a padded row of
// width wp.
func phaseStart(p, stride, wp int) int {
	start := 0
	for q := 0; q < p; q++ {
		start += (wp - q + stride - 1) / stride
	}
	return start
}

// padPlane writes the zero-padded, phase-split copy of the h x w plane in into dst (rows
// of width wp): padded (Y, X) holds in[Y-pad][X-pad], 0 outside the plane.
func padPlane(dst, in []float32, h, w, pad, stride, wp int) {
	rows := len(dst) / wp
	for y := 0; y < rows; y++ {
		d := dst[y*wp : (y+1)*wp]
		iy := y - pad
		if iy < 0 || iy >= h {
			clear(d)
			continue
		}
		src := in[iy*w : (iy+1)*w]
		if stride == 1 {
			lo := min(pad, wp)
			clear(d[:lo])
			n := copy(d[lo:], src)
			clear(d[lo+n:])
			continue
		}
		i := 0
		for p := 0; p < stride; p++ {
			// Padded columns x = p + stride*j; inside the plane for pad <= x < pad+w.
			n := (wp - p + stride - 1) / stride
			j0 := min(n, max(0, (pad-p+stride-1)/stride))
			j1 := max(j0, min(n, (pad+w-p+stride-1)/stride))
			seg := d[i : i+n]
			clear(seg[:j0])
			ix := p + stride*j0 - pad
			for j := j0; j < j1; j++ {
				seg[j] = src[ix]
				ix += stride
			}
			clear(seg[j1:])
			i += n
		}
	}
}
