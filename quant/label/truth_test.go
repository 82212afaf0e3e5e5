package label

import (
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func TestMatchGreedyByScore(t *testing.T) {
	truth := [][4]float32{{0, 0, 0.4, 0.4}, {0.5, 0.5, 1, 1}, {0, 0.6, 0.2, 0.8}}
	preds := [][4]float32{
		{0.02, 0, 0.42, 0.4}, // matches truth 0
		{0, 0, 0.4, 0.38},    // truth 0 is taken: a duplicate is a false positive
		{0.5, 0.5, 0.9, 0.9}, // IoU 0.64 with truth 1
		{0.7, 0.1, 0.9, 0.3}, // nothing there
		{0.5, 0.5, 0.6, 0.6}} // IoU 0.04 with truth 1: too small
	got := match(preds, truth)
	if want := (Counts{TP: 2, FP: 3, FN: 1}); got != want {
		t.Errorf("match %+v, want %+v", got, want)
	}
	if p, r := got.Precision(), got.Recall(); !near(float32(p), 0.4) || !near(float32(r), 2.0/3) {
		t.Errorf("precision %g recall %g", p, r)
	}
	if (Counts{}).Precision() != 0 || (Counts{}).Recall() != 0 {
		t.Error("empty counts are not 0")
	}
}

func TestEvalCountsAllAndWritten(t *testing.T) {
	e := Eval{Classes: []string{"chair"}, All: make([]Counts, 1), Kept: make([]Counts, 1)}
	box := [4]float32{0.1, 0.1, 0.5, 0.5}
	e.add([][][4]float32{{box}}, [][][4]float32{{box}}, true)    // TP in a written image
	e.add([][][4]float32{{}}, [][][4]float32{{box, box}}, false) // two misses in a dropped one
	if e.All[0] != (Counts{TP: 1, FN: 2}) || e.Kept[0] != (Counts{TP: 1}) || e.Images != 2 || e.KeptImages != 1 {
		t.Errorf("eval %+v", e)
	}
}

func TestTruthSetMapsClassesByName(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "classes.names", "person\nchair\n")
	testutil.WriteFile(t, dir, "a.txt", "1 0.5 0.5 0.2 0.4\n0 0.5 0.5 1 1\n1 0.95 0.5 0.2 0.2\n")
	ts, err := newTruthSet(dir, "", []string{"table", "chair"})
	if err != nil {
		t.Fatal(err)
	}
	boxes, ok, err := ts.boxes("a", 2)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(boxes[0]) != 0 || len(boxes[1]) != 2 || !nearRect(boxes[1][0], [4]float32{0.4, 0.3, 0.6, 0.7}) ||
		!nearRect(boxes[1][1], [4]float32{0.85, 0.4, 1, 0.6}) {
		t.Errorf("boxes %v", boxes)
	}
	if _, ok, err := ts.boxes("missing", 2); ok || err != nil {
		t.Errorf("missing label file: %v %v", ok, err)
	}
	testutil.WriteFile(t, dir, "bad.txt", "1 0.5 0.5\n")
	if _, _, err := ts.boxes("bad", 2); err == nil || !strings.Contains(err.Error(), "bad.txt:1") {
		t.Errorf("bad label error %v", err)
	}
	if _, err := newTruthSet(dir, "", []string{"sofa"}); err == nil || !strings.Contains(err.Error(), "none of the target classes") {
		t.Errorf("no common class: %v", err)
	}
}
