package train

import (
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// Box is one ground-truth box: centre and size relative to the network input (0..1),
// and its class. A box with X == 0 ends a list, as in darknet's truth arrays.
type Box struct {
	X, Y, W, H float32
	Class      int
}

// RegionStats are the averages darknet's region layer prints.
type RegionStats struct {
	AvgIoU, Class, Obj, NoObj, Recall float64
	Count                             int
}

// regionLayer is the YOLOv2 head of pjreddie darknet (forward_region_layer): the output
// holds logistic x, y, objectness and softmax classes; in training its delta is the
// negative gradient of: logistic cross-entropy on x, y and objectness (the delta is
// target - output, without the logistic's derivative), squared error on the raw w, h,
// and softmax cross-entropy on the classes, each weighted by the cfg's scales.
type regionLayer struct {
	l *quant.Layer
}

func (r *regionLayer) forward(n *Net, in, out []float32, train bool) {
	copy(out, in)
	sz := r.l.Out.Size()
	hw := r.l.Out.H * r.l.Out.W
	for b := 0; b < n.Batch; b++ {
		floatengine.RegionActivate(out[b*sz:(b+1)*sz], r.l.Head, hw)
	}
	if train {
		delta := n.deltas[len(n.deltas)-1]
		n.Stats = regionDeltas(r.l, n.Region, out, delta, n.truths, n.Batch, n.Seen)
		var cost float64
		for _, d := range delta {
			cost += float64(d) * float64(d)
		}
		n.Loss = cost
	}
}

func (r *regionLayer) backward(n *Net, in, out, delta, inDelta []float32) {
	for i, d := range delta {
		inDelta[i] += d
	}
}

type rbox struct{ x, y, w, h float32 }

func overlap(x1, w1, x2, w2 float32) float32 {
	l := max(x1-w1/2, x2-w2/2)
	r := min(x1+w1/2, x2+w2/2)
	return r - l
}

func boxIoU(a, b rbox) float32 {
	w, h := overlap(a.x, a.w, b.x, b.w), overlap(a.y, a.h, b.y, b.h)
	if w < 0 || h < 0 {
		return 0
	}
	inter := w * h
	union := a.w*a.h + b.w*b.h - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// regionDeltas fills delta for the activated output of a batch, as forward_region_layer.
func regionDeltas(l *quant.Layer, p RegionParams, out, delta []float32, truths [][]Box, batch int, seen uint64) RegionStats {
	clear(delta)
	hd := l.Head
	W, H := l.Out.W, l.Out.H
	hw := W * H
	per := 5 + hd.Classes
	sz := l.Out.Size()
	entry := func(b, n, e, loc int) int { return b*sz + (n*per+e)*hw + loc }
	predBox := func(b, n, loc int) rbox {
		i, j := loc%W, loc/W
		return rbox{
			x: (float32(i) + out[entry(b, n, 0, loc)]) / float32(W),
			y: (float32(j) + out[entry(b, n, 1, loc)]) / float32(H),
			w: float32(math.Exp(float64(out[entry(b, n, 2, loc)]))) * hd.Anchors[2*n] / float32(W),
			h: float32(math.Exp(float64(out[entry(b, n, 3, loc)]))) * hd.Anchors[2*n+1] / float32(H),
		}
	}
	boxDelta := func(t rbox, b, n, loc int, scale float32) float32 {
		pred := predBox(b, n, loc)
		iou := boxIoU(pred, t)
		i, j := loc%W, loc/W
		tx := t.x*float32(W) - float32(i)
		ty := t.y*float32(H) - float32(j)
		tw := float32(math.Log(float64(t.w * float32(W) / hd.Anchors[2*n])))
		th := float32(math.Log(float64(t.h * float32(H) / hd.Anchors[2*n+1])))
		delta[entry(b, n, 0, loc)] = scale * (tx - out[entry(b, n, 0, loc)])
		delta[entry(b, n, 1, loc)] = scale * (ty - out[entry(b, n, 1, loc)])
		delta[entry(b, n, 2, loc)] = scale * (tw - out[entry(b, n, 2, loc)])
		delta[entry(b, n, 3, loc)] = scale * (th - out[entry(b, n, 3, loc)])
		return iou
	}
	var st RegionStats
	var classCount int
	for b := 0; b < batch; b++ {
		var ts []Box
		if b < len(truths) {
			ts = truths[b]
		}
		if len(ts) > p.MaxBoxes {
			ts = ts[:p.MaxBoxes]
		}
		for loc := 0; loc < hw; loc++ {
			for n := 0; n < hd.Num; n++ {
				pred := predBox(b, n, loc)
				var best float32
				for _, t := range ts {
					if t.X == 0 {
						break
					}
					best = max(best, boxIoU(pred, rbox{t.X, t.Y, t.W, t.H}))
				}
				oi := entry(b, n, 4, loc)
				st.NoObj += float64(out[oi])
				delta[oi] = float32(p.NoObjectScale) * (0 - out[oi])
				if float64(best) > p.Thresh {
					delta[oi] = 0
				}
				if priorTerm(p, seen) {
					prior := rbox{(float32(loc%W) + .5) / float32(W), (float32(loc/W) + .5) / float32(H),
						hd.Anchors[2*n] / float32(W), hd.Anchors[2*n+1] / float32(H)}
					boxDelta(prior, b, n, loc, .01)
				}
			}
		}
		for _, t := range ts {
			if t.X == 0 {
				break
			}
			if t.Class < 0 || t.Class >= hd.Classes {
				continue
			}
			i, j := int(t.X*float32(W)), int(t.Y*float32(H))
			i, j = min(max(i, 0), W-1), min(max(j, 0), H-1)
			loc := j*W + i
			tb := rbox{t.X, t.Y, t.W, t.H}
			shift := rbox{0, 0, t.W, t.H}
			var bestIoU float32
			bestN := 0
			for n := 0; n < hd.Num; n++ {
				pred := predBox(b, n, loc)
				if p.BiasMatch {
					pred.w, pred.h = hd.Anchors[2*n]/float32(W), hd.Anchors[2*n+1]/float32(H)
				}
				pred.x, pred.y = 0, 0
				if iou := boxIoU(pred, shift); iou > bestIoU {
					bestIoU, bestN = iou, n
				}
			}
			iou := boxDelta(tb, b, bestN, loc, float32(p.CoordScale)*(2-t.W*t.H))
			if iou > .5 {
				st.Recall++
			}
			st.AvgIoU += float64(iou)
			oi := entry(b, bestN, 4, loc)
			st.Obj += float64(out[oi])
			target := float32(1)
			if p.Rescore {
				target = iou
			}
			delta[oi] = float32(p.ObjectScale) * (target - out[oi])
			for c := 0; c < hd.Classes; c++ {
				ci := entry(b, bestN, 5+c, loc)
				var want float32
				if c == t.Class {
					want = 1
					st.Class += float64(out[ci])
				}
				delta[ci] = float32(p.ClassScale) * (want - out[ci])
			}
			st.Count++
			classCount++
		}
	}
	if st.Count > 0 {
		st.AvgIoU /= float64(st.Count)
		st.Recall /= float64(st.Count)
		st.Obj /= float64(st.Count)
		st.Class /= float64(classCount)
	}
	st.NoObj /= float64(hw * hd.Num * batch)
	return st
}

// priorTerm says whether the prior-matching term runs after seen images.
func priorTerm(p RegionParams, seen uint64) bool {
	switch {
	case p.PriorImages < 0:
		return false
	case p.PriorImages == 0:
		return seen < 12800
	}
	return seen < uint64(p.PriorImages)
}
