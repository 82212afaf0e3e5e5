package label

import (
	"cmp"
	"slices"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
)

// Box is one teacher box already mapped to a target class, in pixels of the image.
type Box struct {
	Class   int        // target class index
	Score   float32    // the teacher's class probability
	Rect    [4]float32 // x1, y1, x2, y2
	Teacher int        // index of the teacher that proposed it
}

// Fused is one box after fusion.
type Fused struct {
	Class    int
	Score    float32    // mean over all teachers of each one's best score in the cluster
	Rect     [4]float32 // score-weighted mean of the cluster's boxes
	Teachers []int      // teachers with a box in the cluster, ascending
}

// cluster accumulates the boxes fused into one.
type cluster struct {
	class  int
	sum    [4]float32 // score-weighted corner sums
	weight float32    // sum of scores
	best   []float32  // best score per teacher
}

func (c *cluster) rect() [4]float32 {
	var r [4]float32
	for i := range r {
		r[i] = c.sum[i] / c.weight
	}
	return r
}

func (c *cluster) add(b Box) {
	for i := range c.sum {
		c.sum[i] += b.Score * b.Rect[i]
	}
	c.weight += b.Score
	c.best[b.Teacher] = max(c.best[b.Teacher], b.Score)
}

// Fuse clusters boxes of the same class across teachers (a box joins the cluster whose
// fused box overlaps it most, if that IoU is at least iou; boxes are visited by
// descending score) and returns one box per cluster, sorted by descending score. in
// is not modified. Boxes with a non-positive score or an empty rectangle are ignored.
func Fuse(in []Box, teachers int, iou float32) []Fused {
	order := make([]Box, 0, len(in))
	for _, b := range in {
		if b.Score > 0 && b.Rect[2] > b.Rect[0] && b.Rect[3] > b.Rect[1] && b.Teacher >= 0 && b.Teacher < teachers {
			order = append(order, b)
		}
	}
	// Stable, so equal scores keep the teachers' order: the result is deterministic.
	slices.SortStableFunc(order, func(a, b Box) int { return cmp.Compare(b.Score, a.Score) })
	var cs []*cluster
	for _, b := range order {
		var into *cluster
		bestIoU := iou
		for _, c := range cs {
			if c.class != b.Class {
				continue
			}
			if v := boxes.IoU(c.rect(), b.Rect); v >= bestIoU {
				into, bestIoU = c, v
			}
		}
		if into == nil {
			into = &cluster{class: b.Class, best: make([]float32, teachers)}
			cs = append(cs, into)
		}
		into.add(b)
	}
	out := make([]Fused, 0, len(cs))
	for _, c := range cs {
		f := Fused{Class: c.class, Rect: c.rect()}
		for t, s := range c.best {
			if s > 0 {
				f.Score += s
				f.Teachers = append(f.Teachers, t)
			}
		}
		f.Score /= float32(teachers)
		out = append(out, f)
	}
	sortFused(out)
	return out
}

// sortFused orders boxes by descending score, then class and position, so that box
// indices (which rejection lists refer to) do not depend on anything but the boxes.
func sortFused(fs []Fused) {
	slices.SortStableFunc(fs, func(a, b Fused) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Class, b.Class); c != 0 {
			return c
		}
		for i := range a.Rect {
			if c := cmp.Compare(a.Rect[i], b.Rect[i]); c != 0 {
				return c
			}
		}
		return 0
	})
}
