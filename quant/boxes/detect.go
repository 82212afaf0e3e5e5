// Package boxes owns the last step of the darknet-compatible pipeline: decoding the
// outputs of [region] (YOLOv2) and [yolo] (YOLOv3) heads into boxes the way darknet's
// get_network_boxes does, undoing the letterbox, darknet's per-class NMS (do_nms_sort),
// and the output formats of `pynqctl detect` (darknet's "name: NN%" lines and JSON).
package boxes

import (
	"fmt"
	"math"
	"sort"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Detection is one candidate box. Decode returns one per anchor cell whose objectness
// passes the threshold, with Probs holding objectness*class probability per class (0
// where that product is not above the threshold, as darknet stores it); NMS zeroes the
// entries it suppresses. Class and Score are the best class and its probability.
// [Objects] turns candidates into the final per-class list darknet prints.
type Detection struct {
	Class      int
	Name       string
	Score      float32
	Box        [4]float32 // x1, y1, x2, y2 in pixels of the original image (not clipped)
	Objectness float32
	Probs      []float32
}

// Options are the decoding parameters that are not in the model.
type Options struct {
	// Thresh drops candidates whose objectness is not above it and zeroes class
	// probabilities that are not above it (darknet -thresh, 0.24 / 0.25 by default).
	Thresh float32
	// NoLetterbox says the image was stretched to the network size instead of
	// letterboxed (AlexeyAB darknet's default); boxes are then only scaled.
	NoLetterbox bool
}

// relBox is darknet's box: centre and size relative to the network input, later to
// the original image.
type relBox struct{ x, y, w, h float32 }

// DarknetNMS is the overlap threshold of darknet's detector (do_nms_sort with .45).
const DarknetNMS = 0.45

// Decode is [DecodeWith] for a letterboxed image with darknet's threshold thresh.
func Decode(m *quant.Model, heads map[int][]float32, origW, origH int, thresh float32) ([]Detection, error) {
	return DecodeWith(m, heads, origW, origH, Options{Thresh: thresh})
}

// DecodeWith turns head outputs (layer index -> that layer's output after the engine's
// region/yolo activations) into candidate boxes on an origW x origH image, in darknet's
// order (heads in layer order; cells row-major, anchors inner for yolo; anchors outer for
// region).
func DecodeWith(m *quant.Model, heads map[int][]float32, origW, origH int, opt Options) ([]Detection, error) {
	if origW <= 0 || origH <= 0 {
		return nil, fmt.Errorf("decode: image size %dx%d", origW, origH)
	}
	var dets []Detection
	for _, idx := range m.Heads() {
		out, ok := heads[idx]
		if !ok {
			return nil, fmt.Errorf("decode: no output for head layer %d (%s)", idx, m.Layers[idx].Name)
		}
		l := m.Layers[idx]
		if len(out) != l.Out.Size() {
			return nil, fmt.Errorf("decode: head layer %d output has %d values, want %v = %d", idx, len(out), l.Out, l.Out.Size())
		}
		var boxes []relBox
		var cands []Detection
		if l.Kind == quant.KindRegion {
			boxes, cands = decodeRegion(l, out, opt.Thresh)
		} else {
			boxes, cands = decodeYolo(l, out, m.Input, opt.Thresh)
		}
		for i := range cands {
			cands[i].Box = toPixels(boxes[i], m.Input, origW, origH, !opt.NoLetterbox)
			cands[i].setBest()
		}
		dets = append(dets, cands...)
	}
	return dets, nil
}

// at reads entry (anchor n, field f, cell i) of a head output laid out
// [anchor][field][cell], which is darknet's entry_index for batch 1.
func at(out []float32, per, cells, n, f, i int) float32 {
	return out[(n*per+f)*cells+i]
}

// decodeRegion follows darknet's get_region_detections (YOLOv2): anchors in grid cells,
// objectness = logistic(to) kept when above thresh, prob = objectness * softmax.
func decodeRegion(l *quant.Layer, out []float32, thresh float32) ([]relBox, []Detection) {
	h := l.Head
	gw, gh := l.Out.W, l.Out.H
	cells, per := gw*gh, h.Coords+1+h.Classes
	var boxes []relBox
	var dets []Detection
	for n := 0; n < h.Num; n++ {
		for i := 0; i < cells; i++ {
			obj := at(out, per, cells, n, h.Coords, i)
			if !(obj > thresh) {
				continue
			}
			row, col := i/gw, i%gw
			boxes = append(boxes, relBox{
				x: (float32(col) + at(out, per, cells, n, 0, i)) / float32(gw),
				y: (float32(row) + at(out, per, cells, n, 1, i)) / float32(gh),
				w: float32(math.Exp(float64(at(out, per, cells, n, 2, i)))) * h.Anchors[2*n] / float32(gw),
				h: float32(math.Exp(float64(at(out, per, cells, n, 3, i)))) * h.Anchors[2*n+1] / float32(gh),
			})
			dets = append(dets, candidate(out, per, cells, n, h.Coords+1, i, obj, h.Classes, thresh))
		}
	}
	return boxes, dets
}

// decodeYolo follows darknet's get_yolo_detections (YOLOv3): anchors in pixels of the
// network input selected by the mask, prob = objectness * logistic(class). AlexeyAB's
// scale_x_y is not applied here: like darknet's forward pass, the engine has already
// stretched the x/y offsets by it.
func decodeYolo(l *quant.Layer, out []float32, net quant.Shape, thresh float32) ([]relBox, []Detection) {
	h := l.Head
	gw, gh := l.Out.W, l.Out.H
	cells, per := gw*gh, 4+1+h.Classes
	var boxes []relBox
	var dets []Detection
	for i := 0; i < cells; i++ {
		row, col := i/gw, i%gw
		for n := 0; n < h.Num; n++ {
			obj := at(out, per, cells, n, 4, i)
			if !(obj > thresh) {
				continue
			}
			a := h.Mask[n]
			tx, ty := at(out, per, cells, n, 0, i), at(out, per, cells, n, 1, i)
			boxes = append(boxes, relBox{
				x: (float32(col) + tx) / float32(gw),
				y: (float32(row) + ty) / float32(gh),
				w: float32(math.Exp(float64(at(out, per, cells, n, 2, i)))) * h.Anchors[2*a] / float32(net.W),
				h: float32(math.Exp(float64(at(out, per, cells, n, 3, i)))) * h.Anchors[2*a+1] / float32(net.H),
			})
			dets = append(dets, candidate(out, per, cells, n, 5, i, obj, h.Classes, thresh))
		}
	}
	return boxes, dets
}

func candidate(out []float32, per, cells, n, first, i int, obj float32, classes int, thresh float32) Detection {
	d := Detection{Objectness: obj, Probs: make([]float32, classes)}
	for j := range d.Probs {
		if p := obj * at(out, per, cells, n, first+j, i); p > thresh {
			d.Probs[j] = p
		}
	}
	return d
}

// toPixels undoes the letterbox (darknet's correct_region_boxes / correct_yolo_boxes,
// with their integer letterbox size) and converts to corner pixels of the original.
func toPixels(b relBox, net quant.Shape, origW, origH int, letterboxed bool) [4]float32 {
	if letterboxed {
		newW, newH := net.W, net.H
		if float32(net.W)/float32(origW) < float32(net.H)/float32(origH) {
			newH = origH * net.W / origW
		} else {
			newW = origW * net.H / origH
		}
		// darknet computes the offsets in double and the ratios in float.
		b.x = float32((float64(b.x) - float64(net.W-newW)/2/float64(net.W)) / float64(float32(newW)/float32(net.W)))
		b.y = float32((float64(b.y) - float64(net.H-newH)/2/float64(net.H)) / float64(float32(newH)/float32(net.H)))
		b.w *= float32(net.W) / float32(newW)
		b.h *= float32(net.H) / float32(newH)
	}
	w, h := float32(origW), float32(origH)
	return [4]float32{(b.x - b.w/2) * w, (b.y - b.h/2) * h, (b.x + b.w/2) * w, (b.y + b.h/2) * h}
}

// setBest sets Class and Score to the most probable class (Score 0 when every class was
// suppressed or below the threshold).
func (d *Detection) setBest() {
	d.Class, d.Score = 0, 0
	for j, p := range d.Probs {
		if p > d.Score {
			d.Class, d.Score = j, p
		}
	}
}

// IoU is the intersection over union of two corner boxes (0 when they do not overlap).
func IoU(a, b [4]float32) float32 {
	iw := min(a[2], b[2]) - max(a[0], b[0])
	ih := min(a[3], b[3]) - max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// NMS applies darknet's do_nms_sort: candidates with zero objectness go last and are
// ignored; then for each class the candidates are sorted by that class's probability
// (descending) and every box overlapping a more probable one by IoU > iou loses that
// class. The slice is reordered in place (finally by the last class, as darknet leaves
// it) and returned without the zero-objectness tail.
func NMS(dets []Detection, iou float32) []Detection {
	live := dets[:0:0]
	for _, d := range dets {
		if d.Objectness != 0 {
			live = append(live, d)
		}
	}
	copy(dets, live)
	dets = dets[:len(live)]
	classes := 0
	for _, d := range dets {
		classes = max(classes, len(d.Probs))
	}
	prob := func(d *Detection, k int) float32 {
		if k < len(d.Probs) {
			return d.Probs[k]
		}
		return 0
	}
	for k := 0; k < classes; k++ {
		sort.SliceStable(dets, func(i, j int) bool { return prob(&dets[i], k) > prob(&dets[j], k) })
		for i := range dets {
			if prob(&dets[i], k) == 0 {
				continue
			}
			for j := i + 1; j < len(dets); j++ {
				if prob(&dets[j], k) != 0 && IoU(dets[i].Box, dets[j].Box) > iou {
					dets[j].Probs[k] = 0
				}
			}
		}
	}
	for i := range dets {
		dets[i].setBest()
	}
	return dets
}

// Objects lists what darknet prints: for each candidate (in order) every class whose
// probability is above thresh, as its own Detection with Class, Name, Score and the box
// clipped to the image. names may be short or nil (Name is then "class N").
func Objects(dets []Detection, thresh float32, names []string, origW, origH int) []Detection {
	var out []Detection
	for _, d := range dets {
		for j, p := range d.Probs {
			if !(p > thresh) {
				continue
			}
			o := d
			o.Class, o.Score, o.Name = j, p, ClassName(names, j)
			o.Box = Clip(d.Box, origW, origH)
			o.Probs = nil
			out = append(out, o)
		}
	}
	return out
}

// Clip limits a box to the image.
func Clip(b [4]float32, w, h int) [4]float32 {
	fw, fh := float32(w), float32(h)
	return [4]float32{clampF(b[0], 0, fw), clampF(b[1], 0, fh), clampF(b[2], 0, fw), clampF(b[3], 0, fh)}
}

func clampF(v, lo, hi float32) float32 { return max(lo, min(v, hi)) }

// ClassName returns names[i], or "class i" when the names file is short.
func ClassName(names []string, i int) string {
	if i >= 0 && i < len(names) && names[i] != "" {
		return names[i]
	}
	return fmt.Sprintf("class %d", i)
}
