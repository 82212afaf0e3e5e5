package mapeval

import (
	"math"
	"strings"
	"testing"
)

func box(x1, y1, x2, y2 float64) Box { return Box{x1, y1, x2, y2} }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func evalOne(t *testing.T, gt []ImageGT, dets []Detection, m Metric) *Result {
	t.Helper()
	r, err := Evaluate(gt, dets, Options{Metric: m})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIoUInclusivePixels(t *testing.T) {
	a := box(1, 1, 10, 10)
	for _, c := range []struct {
		b    Box
		want float64
	}{
		{box(1, 1, 10, 10), 1},
		{box(6, 1, 15, 10), 50.0 / 150},     // 5 shared columns of 10 pixels
		{box(10, 1, 19, 10), 10.0 / 190},    // one shared pixel column still overlaps
		{box(11, 1, 20, 10), 0},             // adjacent: no overlap
		{box(1, 1, 10, 20), 100.0 / 200},    // exactly 0.5
		{box(3, 3, 2, 2), 0},                // degenerate box inside: iw = 0
		{box(-5, -5, 30, 30), 100.0 / 1296}, // contains a
	} {
		if got := IoU(a, c.b); !near(got, c.want) {
			t.Errorf("IoU(%v, %v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

func TestPerfectDetections(t *testing.T) {
	gt := []ImageGT{
		{ID: "a", Objects: []Object{{Class: "chair", Box: box(10, 10, 50, 80)}, {Class: "person", Box: box(100, 20, 150, 200)}}},
		{ID: "b", Objects: []Object{{Class: "chair", Box: box(5, 5, 40, 40)}}},
		{ID: "c"}, // no objects
	}
	var dets []Detection
	for _, im := range gt {
		for _, o := range im.Objects {
			dets = append(dets, Detection{Image: im.ID, Class: o.Class, Score: 0.9, Box: o.Box})
		}
	}
	for _, m := range []Metric{VOC2012, VOC2007} {
		r := evalOne(t, gt, dets, m)
		if !near(r.MAP, 1) || len(r.Classes) != 2 {
			t.Fatalf("%s: perfect detections: mAP %v over %d classes, want 1 over 2", m, r.MAP, len(r.Classes))
		}
	}
}

// knownCurve: 4 objects, detections in score order TP FP TP FP TP.
// recall .25 .25 .5 .5 .75, precision 1 .5 2/3 .5 .6.
func knownCurve() ([]ImageGT, []Detection) {
	var gt []ImageGT
	var dets []Detection
	hits := []bool{true, false, true, false, true}
	for i := range 4 {
		id := string(rune('a' + i))
		gt = append(gt, ImageGT{ID: id, Objects: []Object{{Class: "chair", Box: box(10, 10, 50, 50)}}})
	}
	hit := 0
	for i, h := range hits {
		d := Detection{Class: "chair", Score: 0.9 - 0.1*float64(i)}
		if h {
			d.Image, d.Box = gt[hit].ID, box(10, 10, 50, 50)
			hit++
		} else {
			d.Image, d.Box = "d", box(200, 200, 250, 250)
		}
		dets = append(dets, d)
	}
	// Shuffle input order: the score order must decide.
	dets[0], dets[4] = dets[4], dets[0]
	return gt, dets
}

func TestKnownCurveVOC2012(t *testing.T) {
	gt, dets := knownCurve()
	r := evalOne(t, gt, dets, VOC2012)
	c, _ := r.Class("chair")
	// envelope 1 | 2/3 | .6 over recall steps of .25: .25 + .25*2/3 + .25*.6
	if want := 0.25 + 0.25*2/3 + 0.25*0.6; !near(c.AP, want) {
		t.Errorf("AP %v, want %v", c.AP, want)
	}
	wantRec := []float64{.25, .25, .5, .5, .75}
	wantPrec := []float64{1, .5, 2.0 / 3, .5, .6}
	for i := range wantRec {
		if !near(c.Recall[i], wantRec[i]) || !near(c.Precision[i], wantPrec[i]) {
			t.Fatalf("curve point %d: (%v, %v), want (%v, %v)", i, c.Recall[i], c.Precision[i], wantRec[i], wantPrec[i])
		}
	}
	if c.TP != 3 || c.FP != 2 || c.Positives != 4 {
		t.Errorf("tp %d fp %d positives %d, want 3 2 4", c.TP, c.FP, c.Positives)
	}
}

func TestKnownCurveVOC2007(t *testing.T) {
	gt, dets := knownCurve()
	r := evalOne(t, gt, dets, VOC2007)
	// t = 0, .1, .2 -> 1; .3, .4, .5 -> 2/3; .6, .7 -> .6; .8, .9, 1 -> 0.
	if want := (3 + 3*2.0/3 + 2*0.6) / 11; !near(r.MAP, want) {
		t.Errorf("11-point AP %v, want %v", r.MAP, want)
	}
}

func TestVOC2007ElevenPointsAsNumpy(t *testing.T) {
	// recall exactly 0.3 (3/10) lies below numpy's 0.30000000000000004.
	rec := []float64{0.3}
	prec := []float64{1}
	if got, want := AP2007(rec, prec), 3.0/11; !near(got, want) {
		t.Errorf("AP2007 at recall 0.3 = %v, want %v (t = 0, .1, .2 only)", got, want)
	}
}

func TestDifficultIgnored(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{
		{Class: "chair", Box: box(10, 10, 50, 50), Difficult: true},
		{Class: "chair", Box: box(100, 100, 150, 150)},
	}}}
	dets := []Detection{
		{Image: "a", Class: "chair", Score: 0.9, Box: box(10, 10, 50, 50)},     // difficult: neither
		{Image: "a", Class: "chair", Score: 0.8, Box: box(10, 10, 50, 50)},     // difficult again: neither
		{Image: "a", Class: "chair", Score: 0.7, Box: box(100, 100, 150, 150)}, // TP
	}
	r := evalOne(t, gt, dets, VOC2012)
	c := r.Classes[0]
	if c.AP != 1 || c.TP != 1 || c.FP != 0 || c.Positives != 1 || c.Difficult != 1 {
		t.Errorf("difficult handling: %+v", c)
	}
	// A class with only difficult objects has no AP and is not in the mean.
	gt[0].Objects = append(gt[0].Objects, Object{Class: "sofa", Box: box(1, 1, 5, 5), Difficult: true})
	r, err := Evaluate(gt, dets, Options{Classes: []string{"chair", "sofa"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Classes) != 1 || len(r.Skipped) != 1 || r.Skipped[0] != "sofa" || r.MAP != 1 {
		t.Errorf("difficult-only class: classes %d skipped %v mAP %v", len(r.Classes), r.Skipped, r.MAP)
	}
}

func TestDuplicatesAreFalsePositives(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{
		{Class: "chair", Box: box(10, 10, 50, 50)},
		{Class: "chair", Box: box(100, 100, 150, 150)},
	}}}
	dets := []Detection{
		{Image: "a", Class: "chair", Score: 0.9, Box: box(10, 10, 50, 50)},
		{Image: "a", Class: "chair", Score: 0.8, Box: box(11, 11, 50, 50)}, // duplicate
		{Image: "a", Class: "chair", Score: 0.7, Box: box(100, 100, 150, 150)},
	}
	c := evalOne(t, gt, dets, VOC2012).Classes[0]
	// recall .5 .5 1, precision 1 .5 2/3 -> .5*1 + .5*2/3
	if want := 0.5 + 0.5*2/3.0; !near(c.AP, want) || c.FP != 1 {
		t.Errorf("AP %v fp %d, want %v and 1", c.AP, c.FP, want)
	}
}

func TestBestOverlapAlreadyClaimed(t *testing.T) {
	// The devkit picks the best-overlapping object; if it is claimed the detection is
	// a false positive even though another object overlaps above the threshold.
	gt := []ImageGT{{ID: "a", Objects: []Object{
		{Class: "chair", Box: box(1, 1, 10, 10)},
		{Class: "chair", Box: box(1, 1, 10, 11)},
	}}}
	dets := []Detection{
		{Image: "a", Class: "chair", Score: 0.9, Box: box(1, 1, 10, 10)},
		{Image: "a", Class: "chair", Score: 0.8, Box: box(1, 1, 10, 10)},
	}
	c := evalOne(t, gt, dets, VOC2012).Classes[0]
	if c.TP != 1 || c.FP != 1 || !near(c.AP, 0.5) {
		t.Errorf("tp %d fp %d AP %v, want 1 1 0.5", c.TP, c.FP, c.AP)
	}
}

func TestThresholdInclusive(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{{Class: "chair", Box: box(1, 1, 10, 20)}}}}
	dets := []Detection{{Image: "a", Class: "chair", Score: 0.5, Box: box(1, 1, 10, 10)}} // IoU exactly 0.5
	if c := evalOne(t, gt, dets, VOC2012).Classes[0]; c.TP != 1 {
		t.Errorf("IoU = 0.5 must be a true positive (devkit: ovmax >= minoverlap)")
	}
}

func TestTiesKeepInputOrder(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{{Class: "chair", Box: box(1, 1, 10, 10)}}}}
	miss := Detection{Image: "a", Class: "chair", Score: 0.5, Box: box(50, 50, 60, 60)}
	hit := Detection{Image: "a", Class: "chair", Score: 0.5, Box: box(1, 1, 10, 10)}
	if ap := evalOne(t, gt, []Detection{miss, hit}, VOC2012).MAP; !near(ap, 0.5) {
		t.Errorf("miss first: AP %v, want 0.5", ap)
	}
	if ap := evalOne(t, gt, []Detection{hit, miss}, VOC2012).MAP; ap != 1 {
		t.Errorf("hit first: AP %v, want 1", ap)
	}
}

func TestNoDetectionsAndUnknownImage(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{{Class: "chair", Box: box(1, 1, 10, 10)}}}}
	if r := evalOne(t, gt, nil, VOC2012); r.MAP != 0 || len(r.Classes) != 1 {
		t.Errorf("no detections: %+v", r)
	}
	_, err := Evaluate(gt, []Detection{{Image: "zzz", Class: "chair", Score: 1}}, Options{})
	if err == nil || !strings.Contains(err.Error(), `"zzz"`) {
		t.Errorf("unknown image: err %v", err)
	}
	if _, err := ParseMetric("coco"); err == nil {
		t.Error("ParseMetric(coco) accepted")
	}
}

func TestClassesOrderAndRestriction(t *testing.T) {
	gt := []ImageGT{{ID: "a", Objects: []Object{
		{Class: "sofa", Box: box(1, 1, 10, 10)}, {Class: "chair", Box: box(20, 20, 30, 30)}, {Class: "doll", Box: box(1, 1, 5, 5)},
	}}}
	dets := []Detection{{Image: "a", Class: "chair", Score: 1, Box: box(20, 20, 30, 30)}}
	r, err := Evaluate(gt, dets, Options{Classes: []string{"chair", "sofa"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Classes) != 2 || r.Classes[0].Class != "chair" || r.Classes[1].Class != "sofa" || !near(r.MAP, 0.5) {
		t.Errorf("restricted classes: %+v", r)
	}
	r = evalOne(t, gt, dets, VOC2012)
	if len(r.Classes) != 3 || r.Classes[0].Class != "chair" || r.Classes[1].Class != "doll" {
		t.Errorf("default classes must be every present class, sorted: %+v", r.Classes)
	}
}
