package label

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-4 }

func nearRect(a, b [4]float32) bool {
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestFuseAveragesAgreeingTeachers(t *testing.T) {
	// IoU of the two boxes is 80/120: they fuse at 0.55.
	got := Fuse([]Box{
		{Class: 0, Score: 0.8, Rect: [4]float32{0, 0, 10, 10}, Teacher: 0},
		{Class: 0, Score: 0.4, Rect: [4]float32{2, 0, 12, 10}, Teacher: 1},
	}, 2, 0.55)
	if len(got) != 1 {
		t.Fatalf("got %d boxes, want 1: %+v", len(got), got)
	}
	f := got[0]
	want := [4]float32{0.8 / 1.2, 0, (8 + 4.8) / 1.2, 10} // score-weighted corners
	if !nearRect(f.Rect, want) || !near(f.Score, 0.6) || !slices.Equal(f.Teachers, []int{0, 1}) {
		t.Errorf("fused %+v, want rect %v score 0.6 teachers [0 1]", f, want)
	}
}

func TestFuseDownWeightsOneTeacherBox(t *testing.T) {
	got := Fuse([]Box{
		{Class: 0, Score: 0.9, Rect: [4]float32{0, 0, 10, 10}, Teacher: 0},
		{Class: 0, Score: 0.8, Rect: [4]float32{0, 0, 10, 10}, Teacher: 1},
		{Class: 0, Score: 0.5, Rect: [4]float32{50, 50, 60, 60}, Teacher: 1}, // only teacher 1
		{Class: 0, Score: 0.7, Rect: [4]float32{1, 0, 11, 10}, Teacher: 1},   // second box of teacher 1 in the cluster
	}, 2, 0.55)
	if len(got) != 2 {
		t.Fatalf("got %d boxes, want 2: %+v", len(got), got)
	}
	// The cluster takes each teacher's best score once: (0.9 + 0.8) / 2.
	if !near(got[0].Score, 0.85) || !near(got[1].Score, 0.25) {
		t.Errorf("scores %g, %g; want 0.85, 0.25", got[0].Score, got[1].Score)
	}
	if got[1].Score >= DefaultThresh {
		t.Errorf("one-teacher box scores %g, not below the default threshold %g", got[1].Score, DefaultThresh)
	}
	if !slices.Equal(got[1].Teachers, []int{1}) {
		t.Errorf("one-teacher box teachers %v", got[1].Teachers)
	}
}

func TestFuseOneTeacherKeepsItsBoxes(t *testing.T) {
	in := []Box{
		{Class: 0, Score: 0.3, Rect: [4]float32{0, 0, 10, 10}},
		{Class: 0, Score: 0.9, Rect: [4]float32{8, 8, 20, 20}}, // IoU 4/240 with the first
		{Class: 1, Score: 0.5, Rect: [4]float32{0, 0, 10, 10}}, // other class: never fused
	}
	got := Fuse(in, 1, 0.55)
	want := []Fused{
		{Class: 0, Score: 0.9, Rect: in[1].Rect, Teachers: []int{0}},
		{Class: 1, Score: 0.5, Rect: in[2].Rect, Teachers: []int{0}},
		{Class: 0, Score: 0.3, Rect: in[0].Rect, Teachers: []int{0}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Class != want[i].Class || !near(got[i].Score, want[i].Score) || !nearRect(got[i].Rect, want[i].Rect) {
			t.Errorf("box %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFuseIgnoresBadBoxes(t *testing.T) {
	got := Fuse([]Box{
		{Score: 0, Rect: [4]float32{0, 0, 1, 1}},
		{Score: 0.5, Rect: [4]float32{5, 5, 5, 9}}, // empty
		{Score: 0.5, Rect: [4]float32{0, 0, 1, 1}, Teacher: 3},
	}, 2, 0.5)
	if len(got) != 0 {
		t.Errorf("got %+v, want nothing", got)
	}
}

func TestClassMapManyToOne(t *testing.T) {
	teacher := []string{"chair", "sofa", "bench", "dog"}
	m, err := classMap(teacher, []string{"chair"}, []ClassMap{{"chair", "chair"}, {"sofa", "chair"}, {"bench", "chair"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m, []int{0, 0, 0, -1}) {
		t.Fatalf("map %v", m)
	}
	// One candidate that is chair 0.6 and sofa 0.4 (as boxes.Objects emits it: the
	// same box twice) plus a bench nearby and a dog: one chair box, best score kept.
	objs := []boxes.Detection{
		{Class: 0, Score: 0.6, Box: [4]float32{0, 0, 10, 10}},
		{Class: 1, Score: 0.4, Box: [4]float32{0, 0, 10, 10}},
		{Class: 2, Score: 0.5, Box: [4]float32{1, 1, 10, 10}},
		{Class: 3, Score: 0.9, Box: [4]float32{0, 0, 10, 10}},
	}
	boxes := mapObjects(objs, m, 0)
	if len(boxes) != 3 {
		t.Fatalf("mapped %+v", boxes)
	}
	got := Fuse(boxes, 1, 0.55)
	if len(got) != 1 || got[0].Class != 0 || !near(got[0].Score, 0.6) {
		t.Errorf("fused %+v, want one chair box scoring 0.6", got)
	}
}

func TestClassMapDefaultAndErrors(t *testing.T) {
	m, err := classMap([]string{"person", "chair"}, []string{"table", "chair"}, nil)
	if err != nil || !slices.Equal(m, []int{-1, 1}) {
		t.Errorf("identity map %v, %v", m, err)
	}
	for _, tc := range []struct {
		teacher, target []string
		pairs           []ClassMap
		want            string
	}{
		{[]string{"dog"}, []string{"chair"}, nil, "no class name in common"},
		{[]string{"dog"}, []string{"chair"}, []ClassMap{{"cat", "chair"}}, `teacher's names have no class "cat"`},
		{[]string{"dog"}, []string{"chair"}, []ClassMap{{"dog", "stool"}}, `target names have no class "stool"`},
		{[]string{"dog"}, []string{"chair", "pet"}, []ClassMap{{"dog", "pet"}, {"dog", "chair"}}, "already mapped"},
	} {
		if _, err := classMap(tc.teacher, tc.target, tc.pairs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("classMap(%v, %v, %v) error %v, want %q", tc.teacher, tc.target, tc.pairs, err, tc.want)
		}
	}
}

func TestParseTeacherSpec(t *testing.T) {
	s, err := ParseTeacherSpec("cfg=a.cfg, weights=a.weights,names=coco.names,thresh=0.25,map=chair:chair;couch:chair,map=bench:chair")
	if err != nil {
		t.Fatal(err)
	}
	want := []ClassMap{{"chair", "chair"}, {"couch", "chair"}, {"bench", "chair"}}
	if s.Cfg != "a.cfg" || s.Weights != "a.weights" || s.Names != "coco.names" || s.Thresh != 0.25 || !slices.Equal(s.Map, want) {
		t.Errorf("parsed %+v", s)
	}
	if s.defaultName() != "a" {
		t.Errorf("name %q", s.defaultName())
	}
	s, err = ParseTeacherSpec("model=fixtures/qnn-mo-pynq/params,names=voc.names")
	if err != nil || s.Model != "fixtures/qnn-mo-pynq/params" || s.defaultName() != "qnn-mo-pynq" {
		t.Errorf("parsed %+v, %v", s, err)
	}
	for spec, want := range map[string]string{
		"cfg=a,weights=b,names=n,colour=red":   `unknown key "colour"`,
		"cfg=a,weights=b":                      "need names=",
		"cfg=a,names=n":                        "need cfg= and weights=",
		"model=d,cfg=a,weights=b,names=n":      "not both",
		"model=d,names=n,thresh=2":             "thresh",
		"model=d,names=n,map=chair":            "TEACHER_CLASS:TARGET_CLASS",
		"model=d,names=n,names=m":              "names given twice",
		"model=d,names":                        "not key=value",
		"model=d,names=n,thresh=0.2,thresh=.3": "thresh given twice",
	} {
		_, err := ParseTeacherSpec(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), spec) {
			t.Errorf("ParseTeacherSpec(%q) error %v, want %q and the spec", spec, err, want)
		}
	}
}

func FuzzParseTeacherSpec(f *testing.F) {
	for _, s := range []string{"cfg=a.cfg,weights=a.weights,names=coco.names,thresh=0.25,map=chair:chair;couch:chair",
		"model=params,names=voc.names", "map=:", "thresh=1", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseTeacherSpec(s)
		if err != nil {
			return
		}
		if spec.Names == "" || (spec.Model == "") == (spec.Cfg == "") || spec.Thresh < 0 || spec.Thresh >= 1 {
			t.Fatalf("%q accepted as %+v", s, spec)
		}
	})
}
