package boxes

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/internal/headtest"
)

var vocAnchors = []float32{1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func checkBox(t *testing.T, got [4]float32, want [4]float64) {
	t.Helper()
	for i := range want {
		if !near(float64(got[i]), want[i], 1e-3) {
			t.Fatalf("box %v, want %v", got, want)
		}
	}
}

func TestDecodeRegionHandComputed(t *testing.T) {
	h := &quant.Head{Classes: 2, Coords: 4, Num: 5, Anchors: vocAnchors, Softmax: true}
	m := headtest.Model(quant.KindRegion, h, 416, 13, 13)
	out := make([]float32, m.Layers[0].Out.Size())
	// anchor 2 at row 6, col 4: x 0.5, y 0.25, tw 0, th ln 2, objectness 0.9, softmax 0.2/0.8
	for f, v := range []float32{0.5, 0.25, 0, float32(math.Ln2), 0.9, 0.2, 0.8} {
		headtest.SetEntry(out, h, 13, 13, 2, f, 6, 4, v)
	}
	headtest.SetEntry(out, h, 13, 13, 0, 4, 0, 0, 0.25) // objectness not above thresh: dropped
	dets, err := Decode(m, map[int][]float32{0: out}, 416, 416, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 {
		t.Fatalf("got %d candidates, want 1: %+v", len(dets), dets)
	}
	d := dets[0]
	if d.Class != 1 || !near(float64(d.Score), 0.72, 1e-6) || d.Probs[0] != 0 || d.Objectness != 0.9 {
		t.Fatalf("got %+v", d)
	}
	cx, cy := 4.5/13*416, 6.25/13*416
	bw, bh := 6.63/13*416, 2*11.38/13*416
	checkBox(t, d.Box, [4]float64{cx - bw/2, cy - bh/2, cx + bw/2, cy + bh/2})
}

func TestDecodeLetterboxCorrection(t *testing.T) {
	h := &quant.Head{Classes: 1, Coords: 4, Num: 1, Anchors: []float32{2, 2}}
	m := headtest.Model(quant.KindRegion, h, 416, 8, 8)
	out := make([]float32, m.Layers[0].Out.Size())
	// Box at the net centre, a quarter of the net wide and high.
	for f, v := range []float32{0, 0, 0, 0, 1, 1} {
		headtest.SetEntry(out, h, 8, 8, 0, f, 4, 4, v)
	}
	// 832x416 letterboxes to 416x208 with 104 rows of grey above and below: the centre
	// stays the centre, heights double relative to the image.
	dets, err := Decode(m, map[int][]float32{0: out}, 832, 416, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	checkBox(t, dets[0].Box, [4]float64{312, 104, 520, 312})
	// Stretched instead of letterboxed: only scaled.
	dets, err = DecodeWith(m, map[int][]float32{0: out}, 832, 416, Options{Thresh: 0.5, NoLetterbox: true})
	if err != nil {
		t.Fatal(err)
	}
	checkBox(t, dets[0].Box, [4]float64{312, 156, 520, 260})
}

func TestDecodeYoloMaskAndScale(t *testing.T) {
	anchors := []float32{12, 18, 37, 49, 52, 132, 115, 73, 119, 199, 242, 238}
	h := &quant.Head{Classes: 80, Num: 3, Anchors: anchors, Mask: []int{3, 4, 5}, ScaleXY: 1}
	m := headtest.Model(quant.KindYolo, h, 320, 10, 10)
	out := make([]float32, m.Layers[0].Out.Size())
	for f, v := range []float32{0.5, 0.5, 0, 0, 0.8} {
		headtest.SetEntry(out, h, 10, 10, 1, f, 2, 7, v) // mask entry 1 = anchor 4 (119x199 px)
	}
	headtest.SetEntry(out, h, 10, 10, 1, 5+56, 2, 7, 0.9)
	headtest.SetEntry(out, h, 10, 10, 1, 5+3, 2, 7, 0.2) // 0.16 is below thresh: zero
	dets, err := Decode(m, map[int][]float32{0: out}, 640, 480, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || dets[0].Class != 56 || !near(float64(dets[0].Score), 0.72, 1e-6) || dets[0].Probs[3] != 0 {
		t.Fatalf("got %+v", dets)
	}
	// 640x480 -> 320x240, 40 grey rows above: y' = (y - 0.125) / 0.75.
	x, y := 0.75, (0.25-0.125)/0.75
	w, hh := 119.0/320, 199.0/320/0.75
	checkBox(t, dets[0].Box, [4]float64{(x - w/2) * 640, (y - hh/2) * 480, (x + w/2) * 640, (y + hh/2) * 480})

	// scale_x_y is the engine's business (darknet's forward): an offset of 1 already
	// stretched by it is decoded as is, to the next cell's left edge.
	h.ScaleXY = 2
	headtest.SetEntry(out, h, 10, 10, 1, 0, 2, 7, 1)
	dets, err = Decode(m, map[int][]float32{0: out}, 320, 320, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if cx := (dets[0].Box[0] + dets[0].Box[2]) / 2; !near(float64(cx), 8.0/10*320, 1e-3) {
		t.Errorf("scale_x_y centre x = %v, want %v", cx, 256)
	}
}

func TestDecodeErrors(t *testing.T) {
	h := &quant.Head{Classes: 1, Coords: 4, Num: 1, Anchors: []float32{1, 1}}
	m := headtest.Model(quant.KindRegion, h, 416, 2, 2)
	if _, err := Decode(m, map[int][]float32{}, 10, 10, 0.5); err == nil {
		t.Error("missing head output accepted")
	}
	if _, err := Decode(m, map[int][]float32{0: make([]float32, 3)}, 10, 10, 0.5); err == nil {
		t.Error("short head output accepted")
	}
	if _, err := Decode(m, map[int][]float32{0: make([]float32, 24)}, 0, 10, 0.5); err == nil {
		t.Error("empty image accepted")
	}
}

func det(box [4]float32, probs ...float32) Detection {
	d := Detection{Box: box, Objectness: 1, Probs: probs}
	d.setBest()
	return d
}

func TestNMSPerClass(t *testing.T) {
	a := det([4]float32{0, 0, 10, 10}, 0.9, 0)
	b := det([4]float32{1, 0, 11, 10}, 0.8, 0.6) // IoU with a = 9/11 = 0.82
	c := det([4]float32{50, 50, 60, 60}, 0.7, 0)
	e := det([4]float32{5, 0, 15, 10}, 0.5, 0) // IoU with a = 1/3, with b = 6/14
	zero := Detection{Box: a.Box, Probs: []float32{0.99, 0}}
	got := NMS([]Detection{e, zero, b, c, a}, 0.45)
	if len(got) != 4 {
		t.Fatalf("zero-objectness candidate kept: %d left", len(got))
	}
	byLeft := map[float32]Detection{} // candidates by left edge
	for _, d := range got {
		byLeft[d.Box[0]] = d
	}
	if p := byLeft[1].Probs; p[0] != 0 || p[1] != 0.6 {
		t.Errorf("b keeps class 1 only: probs %v", p)
	}
	if byLeft[1].Class != 1 || byLeft[1].Score != 0.6 {
		t.Errorf("b best class %d %v, want 1 0.6", byLeft[1].Class, byLeft[1].Score)
	}
	if byLeft[5].Probs[0] != 0.5 || byLeft[0].Probs[0] != 0.9 || byLeft[50].Probs[0] != 0.7 {
		t.Errorf("unexpected suppression: %+v", got)
	}
	objs := Objects(got, 0.25, []string{"chair", "dog"}, 40, 40)
	if len(objs) != 4 {
		t.Fatalf("objects %+v", objs)
	}
	for _, o := range objs {
		if o.Box[2] > 40 || o.Box[3] > 40 {
			t.Errorf("box not clipped: %v", o.Box)
		}
	}
}

func TestNMSThresholdIsStrict(t *testing.T) {
	// IoU exactly 0.5 does not suppress at thresh 0.5 (darknet compares with >).
	a := det([4]float32{0, 0, 4, 3}, 0.9)
	b := det([4]float32{0, 0, 2, 3}, 0.8)
	if iou := IoU(a.Box, b.Box); iou != 0.5 {
		t.Fatalf("IoU = %v", iou)
	}
	got := NMS([]Detection{a, b}, 0.5)
	if got[1].Probs[0] != 0.8 {
		t.Errorf("suppressed at IoU == thresh")
	}
	if got := IoU([4]float32{0, 0, 1, 1}, [4]float32{2, 2, 3, 3}); got != 0 {
		t.Errorf("disjoint IoU %v", got)
	}
}

func TestObjectsOneLinePerClass(t *testing.T) {
	d := det([4]float32{-5, 2, 30, 500}, 0.3, 0.77, 0.1)
	objs := Objects([]Detection{d}, 0.25, []string{"person", "chair"}, 100, 100)
	var buf bytes.Buffer
	if err := WriteDarknet(&buf, objs); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "person: 30%\nchair: 77%\n"; got != want {
		t.Errorf("darknet lines %q", got)
	}
	buf.Reset()
	if err := WriteJSON(&buf, NewJSONImage("a.jpg", 100, 100, objs)); err != nil {
		t.Fatal(err)
	}
	var back JSONImage
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	want := JSONDetection{Class: "chair", ClassID: 1, Score: 0.77, Box: [4]float64{0, 2, 30, 100}}
	if back.Image != "a.jpg" || len(back.Detections) != 2 || back.Detections[1] != want {
		t.Errorf("json %s", buf.String())
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("not one JSON line: %q", buf.String())
	}
	buf.Reset()
	_ = WriteJSON(&buf, NewJSONImage("none.jpg", 1, 1, nil))
	if !strings.Contains(buf.String(), `"detections":[]`) {
		t.Errorf("empty detections not an empty list: %s", buf.String())
	}
	if l := Labels(objs, 2); len(l) != 1 || l[0].Text != "person 30%, chair 77%" || l[0].Class != 0 {
		t.Errorf("labels %+v", l)
	}
}
