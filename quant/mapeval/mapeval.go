// Package mapeval owns detection accuracy: PASCAL VOC average precision per class and
// its mean (mAP), computed exactly as the VOC devkit's VOCevaldet.m and VOCap.m do,
// plus the precision-recall curves behind them and an SVG plot of those curves.
//
// The devkit's rules, which this package follows step by step:
//   - boxes are pixel coordinates with inclusive corners: widths and heights are
//     x2-x1+1 and y2-y1+1, for the intersection as well as for both boxes;
//   - a detection's overlap is intersection over union with the ground-truth objects
//     of its class in its image; only intersections with positive width and height
//     count, and the first object with the largest overlap is its candidate;
//   - detections are taken in decreasing confidence; ties keep their input order
//     (MATLAB's sort is stable);
//   - overlap >= the threshold (0.5) makes a detection a true positive unless the
//     object is difficult (then it is neither true nor false positive) or was already
//     claimed by a more confident detection (then it is a false positive, as is any
//     detection below the threshold);
//   - recall = TP / (non-difficult objects), precision = TP / (TP + FP);
//   - VOC2010+ ("voc2012") AP is the area under the precision envelope (the running
//     maximum of precision from the right) at every recall change, with sentinels
//     recall 0 / 1 and precision 0; VOC2007 AP is the mean of the maximum precision at
//     recall >= t for t = 0, 0.1, ..., 1 (the 11 points as numpy's arange(0, 1.1, 0.1)
//     produces them: t = k*0.1 in float64);
//   - mAP is the mean AP over the evaluated classes that have at least one
//     non-difficult object.
package mapeval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Metric selects the AP definition.
type Metric string

const (
	VOC2012 Metric = "voc2012" // all-point interpolated AP (VOC2010 and later), the default
	VOC2007 Metric = "voc2007" // 11-point interpolated AP
)

// ParseMetric accepts "voc2012" (also "voc2010", "all") and "voc2007" (also "11").
func ParseMetric(s string) (Metric, error) {
	switch s {
	case "", "voc2012", "voc2010", "all":
		return VOC2012, nil
	case "voc2007", "11", "11point":
		return VOC2007, nil
	}
	return "", fmt.Errorf("metric %q: want voc2012 or voc2007", s)
}

// Box is x1, y1, x2, y2 in VOC pixel coordinates (inclusive corners).
type Box [4]float64

// VOCBox converts a box in 0-based image pixels (x1, y1, x2, y2) to the VOC pixel
// coordinates darknet's validate_detector writes: every edge +1, clipped to [1, w] x
// [1, h] (no clipping when the image size is unknown, w or h 0). Every evaluation of
// this project's detections goes through it.
func VOCBox[F float32 | float64](b [4]F, w, h int) Box {
	v := Box{float64(b[0]) + 1, float64(b[1]) + 1, float64(b[2]) + 1, float64(b[3]) + 1}
	if w > 0 && h > 0 {
		fw, fh := float64(w), float64(h)
		v = Box{max(v[0], 1), max(v[1], 1), min(v[2], fw), min(v[3], fh)}
	}
	return v
}

// Object is one ground-truth object.
type Object struct {
	Class     string
	Box       Box
	Difficult bool
}

// ImageGT is the ground truth of one image (possibly without objects).
type ImageGT struct {
	ID      string
	Objects []Object
}

// Detection is one scored box for one class.
type Detection struct {
	Image string // image id
	Class string
	Score float64
	Box   Box
}

// Options tune [Evaluate].
type Options struct {
	Metric     Metric  // default VOC2012
	MinOverlap float64 // default 0.5
	// Classes restricts and orders the evaluated classes (e.g. the model's classes that
	// the dataset also has). Default: every class with a non-difficult object, sorted.
	Classes []string
}

// ClassAP is the result for one class.
type ClassAP struct {
	Class      string  `json:"class"`
	AP         float64 `json:"ap"`
	Positives  int     `json:"positives"` // non-difficult ground-truth objects
	Difficult  int     `json:"difficult"`
	Detections int     `json:"detections"`
	TP         int     `json:"tp"` // at the lowest score
	FP         int     `json:"fp"`
	// Recall and Precision hold the curve, one point per detection in decreasing
	// confidence (detections matched to difficult objects add no point change).
	Recall    []float64 `json:"-"`
	Precision []float64 `json:"-"`
}

// Result is an evaluation.
type Result struct {
	Metric     Metric    `json:"metric"`
	MinOverlap float64   `json:"min_overlap"`
	MAP        float64   `json:"map"`
	Images     int       `json:"images"`
	Classes    []ClassAP `json:"classes"`
	// Skipped are requested classes without any non-difficult object: AP is
	// undefined for them, so they are not in the mean.
	Skipped []string `json:"skipped,omitempty"`
}

// Class returns the result of one class.
func (r *Result) Class(name string) (ClassAP, bool) {
	for _, c := range r.Classes {
		if c.Class == name {
			return c, true
		}
	}
	return ClassAP{}, false
}

// gtObject is a ground-truth object during matching.
type gtObject struct {
	box       Box
	difficult bool
	claimed   bool
}

// Evaluate computes AP per class and mAP. Detections for images that are not in gt
// are an error, as in the devkit ("unrecognized image").
func Evaluate(gt []ImageGT, dets []Detection, opt Options) (*Result, error) {
	if opt.Metric == "" {
		opt.Metric = VOC2012
	}
	if opt.Metric != VOC2012 && opt.Metric != VOC2007 {
		return nil, fmt.Errorf("mapeval: unknown metric %q", opt.Metric)
	}
	if opt.MinOverlap == 0 {
		opt.MinOverlap = 0.5
	}
	images := map[string]bool{}
	for _, im := range gt {
		if images[im.ID] {
			return nil, fmt.Errorf("mapeval: image %q appears twice in the ground truth", im.ID)
		}
		images[im.ID] = true
	}
	for _, d := range dets {
		if !images[d.Image] {
			return nil, fmt.Errorf("mapeval: detection for image %q, which has no ground truth (is it in the dataset?)", d.Image)
		}
	}
	classes := opt.Classes
	if classes == nil {
		classes = presentClasses(gt)
	}
	res := &Result{Metric: opt.Metric, MinOverlap: opt.MinOverlap, Images: len(gt)}
	byClass := map[string][]Detection{}
	for _, d := range dets {
		byClass[d.Class] = append(byClass[d.Class], d)
	}
	sum := 0.0
	for _, c := range classes {
		ca := evalClass(c, gt, byClass[c], opt)
		if ca.Positives == 0 {
			res.Skipped = append(res.Skipped, c)
			continue
		}
		res.Classes = append(res.Classes, ca)
		sum += ca.AP
	}
	if len(res.Classes) > 0 {
		res.MAP = sum / float64(len(res.Classes))
	}
	return res, nil
}

func presentClasses(gt []ImageGT) []string {
	var out []string
	for _, im := range gt {
		for _, o := range im.Objects {
			if !o.Difficult && !slices.Contains(out, o.Class) {
				out = append(out, o.Class)
			}
		}
	}
	slices.Sort(out)
	return out
}

// evalClass is VOCevaldet for one class.
func evalClass(class string, gt []ImageGT, dets []Detection, opt Options) ClassAP {
	ca := ClassAP{Class: class, Detections: len(dets)}
	objs := map[string][]*gtObject{}
	for _, im := range gt {
		for _, o := range im.Objects {
			if o.Class != class {
				continue
			}
			objs[im.ID] = append(objs[im.ID], &gtObject{box: o.Box, difficult: o.Difficult})
			if o.Difficult {
				ca.Difficult++
			} else {
				ca.Positives++
			}
		}
	}
	sorted := slices.Clone(dets)
	slices.SortStableFunc(sorted, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	tp := make([]int, len(sorted))
	fp := make([]int, len(sorted))
	for i, d := range sorted {
		tp[i], fp[i] = match(d.Box, objs[d.Image], opt.MinOverlap)
	}
	ca.Recall, ca.Precision = curve(tp, fp, ca.Positives)
	ca.TP, ca.FP = total(tp), total(fp)
	if ca.Positives > 0 {
		if opt.Metric == VOC2007 {
			ca.AP = AP2007(ca.Recall, ca.Precision)
		} else {
			ca.AP = AP2012(ca.Recall, ca.Precision)
		}
	}
	return ca
}

func total(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

// match assigns one detection: (1,0) true positive, (0,1) false positive, (0,0) a
// difficult object (ignored).
func match(bb Box, objs []*gtObject, minOverlap float64) (tp, fp int) {
	ovmax := math.Inf(-1)
	var best *gtObject
	for _, g := range objs {
		if ov, ok := overlap(bb, g.box); ok && ov > ovmax {
			ovmax, best = ov, g
		}
	}
	switch {
	case ovmax < minOverlap: // also when nothing intersects (-inf)
		return 0, 1
	case best.difficult:
		return 0, 0
	case best.claimed:
		return 0, 1 // multiple detection
	}
	best.claimed = true
	return 1, 0
}

// overlap is the devkit's IoU; ok is false when the boxes do not intersect with a
// positive width and height (the devkit then skips the object).
func overlap(bb, gt Box) (float64, bool) {
	iw := math.Min(bb[2], gt[2]) - math.Max(bb[0], gt[0]) + 1
	ih := math.Min(bb[3], gt[3]) - math.Max(bb[1], gt[1]) + 1
	if !(iw > 0 && ih > 0) {
		return 0, false
	}
	// float64() around each product keeps the compiler from fusing multiply-adds,
	// so the arithmetic is the devkit's on every architecture.
	inter := float64(iw * ih)
	ua := float64((bb[2]-bb[0]+1)*(bb[3]-bb[1]+1)) + float64((gt[2]-gt[0]+1)*(gt[3]-gt[1]+1)) - inter
	return inter / ua, true
}

// IoU is the devkit's intersection over union of two pixel boxes (0 when they do not
// overlap).
func IoU(a, b Box) float64 {
	ov, _ := overlap(a, b)
	return ov
}

// curve turns per-detection TP/FP flags into recall and precision.
// Precision is 0 where no detection counted yet (0/0), which changes no AP.
func curve(tp, fp []int, npos int) (rec, prec []float64) {
	rec = make([]float64, len(tp))
	prec = make([]float64, len(tp))
	ctp, cfp := 0, 0
	for i := range tp {
		ctp += tp[i]
		cfp += fp[i]
		if npos > 0 {
			rec[i] = float64(ctp) / float64(npos)
		}
		if ctp+cfp > 0 {
			prec[i] = float64(ctp) / float64(ctp+cfp)
		}
	}
	return rec, prec
}

// AP2012 is VOCap.m: the area under the precision envelope.
func AP2012(rec, prec []float64) float64 {
	n := len(rec) + 2
	mrec := make([]float64, 0, n)
	mpre := make([]float64, 0, n)
	mrec = append(append(append(mrec, 0), rec...), 1)
	mpre = append(append(append(mpre, 0), prec...), 0)
	for i := n - 2; i >= 0; i-- {
		mpre[i] = math.Max(mpre[i], mpre[i+1])
	}
	ap := 0.0
	for i := 1; i < n; i++ {
		if mrec[i] != mrec[i-1] {
			ap += (mrec[i] - mrec[i-1]) * mpre[i]
		}
	}
	return ap
}

// AP2007 is the VOC2007 11-point AP.
func AP2007(rec, prec []float64) float64 {
	ap := 0.0
	for k := 0; k <= 10; k++ {
		t := float64(k) * 0.1
		p := 0.0
		for i, r := range rec {
			if r >= t && prec[i] > p {
				p = prec[i]
			}
		}
		ap += p / 11
	}
	return ap
}
