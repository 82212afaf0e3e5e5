package floatengine

import (
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
)

// MaxPool is darknet's forward_maxpool_layer: output (in+pad-size)/stride+1 per axis,
// windows start at -pad/2, and positions outside the input never win (darknet reads
// them as -FLT_MAX). in is c x h x w, out c x oh x ow.
func MaxPool(in []float32, c, h, w int, size, stride, pad int, out []float32, oh, ow int) {
	off := -(pad / 2)
	for ch := 0; ch < c; ch++ {
		plane := in[ch*h*w : (ch+1)*h*w]
		o := out[ch*oh*ow : (ch+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			if size == 2 && stride == 2 && off == 0 && 2*oy+1 < h {
				maxPool2x2Row(o[oy*ow:(oy+1)*ow], plane[2*oy*w:(2*oy+1)*w], plane[(2*oy+1)*w:(2*oy+2)*w])
				continue
			}
			y0 := oy*stride + off
			ylo, yhi := max(y0, 0), min(y0+size, h)
			for ox := 0; ox < ow; ox++ {
				x0 := ox*stride + off
				xlo, xhi := max(x0, 0), min(x0+size, w)
				m := float32(-math.MaxFloat32)
				for y := ylo; y < yhi; y++ {
					for _, v := range plane[y*w+xlo : y*w+xhi] {
						if v > m {
							m = v
						}
					}
				}
				o[oy*ow+ox] = m
			}
		}
	}
}

// maxPool2x2Row is one output row of a size 2 stride 2 pool whose two input rows r0, r1
// exist; a last column whose window sticks out of the row takes the one in-row column.
func maxPool2x2Row(o, r0, r1 []float32) {
	for ox := range o {
		x := 2 * ox
		if x+1 >= len(r0) || x+1 >= len(r1) {
			o[ox] = max(r0[x], r1[x])
			continue
		}
		o[ox] = max(max(r0[x], r0[x+1]), max(r1[x], r1[x+1]))
	}
}

// maxPoolParallel runs MaxPool over channel ranges on the workers.
func maxPoolParallel(l *quant.Layer, in, out []float32, w *Workers) {
	p, s, o := l.Pool, l.In, l.Out
	w.parallelFor(s.C, func(lo, hi int) {
		MaxPool(in[lo*s.H*s.W:hi*s.H*s.W], hi-lo, s.H, s.W, p.Size, p.Stride, p.Pad,
			out[lo*o.H*o.W:hi*o.H*o.W], o.H, o.W)
	})
}

// Upsample is darknet's upsample_cpu (forward): nearest neighbour, each pixel repeated
// stride x stride times, times scale.
func Upsample(in []float32, c, h, w, stride int, scale float32, out []float32) {
	ow := w * stride
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			src := in[(ch*h+y)*w : (ch*h+y+1)*w]
			row := out[(ch*h*stride+y*stride)*ow : (ch*h*stride+y*stride+1)*ow]
			for x, v := range src {
				v *= scale
				for k := x * stride; k < (x+1)*stride; k++ {
					row[k] = v
				}
			}
			for r := 1; r < stride; r++ {
				copy(out[(ch*h*stride+y*stride+r)*ow:], row)
			}
		}
	}
}

// RegionActivate applies darknet's (pjreddie) forward_region_layer on CPU to x, laid out
// per anchor as planes [x, y, w, h, obj, classes...] of h*w values: logistic on x, y and
// objectness; softmax over the classes when softmax is set (stride h*w), else logistic.
// w and h stay raw.
func RegionActivate(x []float32, hd *quant.Head, hw int) {
	per := hd.Coords + 1 + hd.Classes
	for n := 0; n < hd.Num; n++ {
		a := x[n*per*hw : (n+1)*per*hw]
		Activate(a[:2*hw], quant.ActLogistic)
		Activate(a[hd.Coords*hw:(hd.Coords+1)*hw], quant.ActLogistic)
		cls := a[(hd.Coords+1)*hw:]
		if !hd.Softmax {
			Activate(cls, quant.ActLogistic)
			continue
		}
		for p := 0; p < hw; p++ {
			softmaxStrided(cls[p:], hd.Classes, hw)
		}
	}
}

// softmaxStrided is darknet's softmax with temperature 1 over n values at stride.
func softmaxStrided(x []float32, n, stride int) {
	largest := float32(-math.MaxFloat32)
	for i := 0; i < n; i++ {
		largest = max(largest, x[i*stride])
	}
	var sum float32
	for i := 0; i < n; i++ {
		e := float32(math.Exp(float64(x[i*stride] - largest)))
		sum += e
		x[i*stride] = e
	}
	for i := 0; i < n; i++ {
		x[i*stride] /= sum
	}
}

// YoloActivate applies forward_yolo_layer on CPU to x, laid out per anchor as planes
// [x, y, w, h, obj, classes...] of hw values: logistic on x, y, objectness and classes,
// then x, y scaled by scale_x_y as x*s - (s-1)/2 (identity for s = 1 or unset).
func YoloActivate(x []float32, hd *quant.Head, hw int) {
	per := 4 + 1 + hd.Classes
	s := hd.ScaleXY
	for n := 0; n < hd.Num; n++ {
		a := x[n*per*hw : (n+1)*per*hw]
		Activate(a[:2*hw], quant.ActLogistic)
		Activate(a[4*hw:], quant.ActLogistic)
		if s != 0 && s != 1 {
			b := float32(-0.5 * (float64(s) - 1))
			for i := range a[:2*hw] {
				a[i] = a[i]*s + b
			}
		}
	}
}
