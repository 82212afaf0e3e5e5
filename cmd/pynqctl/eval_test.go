package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// evalFixture writes a darknet-form ground truth (two 100x100 images, two chairs and
// a sofa) and the same detections as detect JSON lines and as comp4 files.
// Chair detections in score order: TP, FP, TP -> AP = .5*1 + .5*2/3; sofa: one TP.
func evalFixture(t *testing.T) (gt, jsonPath, comp4Dir, names string) {
	t.Helper()
	dir := t.TempDir()
	gt = filepath.Join(dir, "gt")
	comp4Dir = filepath.Join(dir, "results")
	for _, d := range []string{gt, comp4Dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names = filepath.Join(dir, "model.names")
	write(names, "sofa\nchair\ndog\n")
	write(filepath.Join(gt, "classes.names"), "chair\nsofa\nbed\n")
	for _, id := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(gt, id+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 100, 100))); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// a: chair at pixels [10,10]-[50,50] (0-based corners), sofa [60,60]-[90,90]; b: chair [0,0]-[20,40]
	write(filepath.Join(gt, "a.txt"), "0 0.3 0.3 0.4 0.4\n1 0.75 0.75 0.3 0.3\n")
	write(filepath.Join(gt, "b.txt"), "0 0.1 0.2 0.2 0.4\n2 0.5 0.5 0.1 0.1\n") // bed: not in the model
	jsonPath = filepath.Join(dir, "dets.json")
	write(jsonPath, `{"image":"/x/a.png","width":100,"height":100,"detections":[{"class":"chair","class_id":1,"score":0.9,"box":[10,10,50,50]},{"class":"chair","class_id":1,"score":0.8,"box":[70,0,99,20]},{"class":"sofa","class_id":0,"score":0.7,"box":[60,60,90,90]}]}
{"image":"/x/b.png","width":100,"height":100,"detections":[{"class":"class 1","class_id":1,"score":0.6,"box":[0,0,20,40]}]}
`)
	write(filepath.Join(comp4Dir, "comp4_det_test_chair.txt"), "a 0.9 11 11 51 51\nb 0.6 1 1 21 41\na 0.8 71 1 100 21\n")
	write(filepath.Join(comp4Dir, "comp4_det_test_sofa.txt"), "a 0.7 61 61 91 91\n")
	write(filepath.Join(comp4Dir, "comp4_det_test_dog.txt"), "")
	return gt, jsonPath, comp4Dir, names
}

func TestEvalJSONAndComp4Agree(t *testing.T) {
	gt, jsonPath, comp4Dir, names := evalFixture(t)
	wantChair := 0.5 + 0.5*2/3.0
	for _, dets := range []string{jsonPath, comp4Dir} {
		out, err := runPynqctl(t, "eval", "--gt", gt, "--detections", dets, "--names", names, "--json")
		if err != nil {
			t.Fatalf("%s: %v\n%s", dets, err, out)
		}
		var res struct {
			MAP     float64 `json:"map"`
			Classes []struct {
				Class string  `json:"class"`
				AP    float64 `json:"ap"`
			} `json:"classes"`
			NotInModel []string `json:"not_in_model"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(res.Classes) != 2 || res.Classes[0].Class != "chair" || math.Abs(res.Classes[0].AP-wantChair) > 1e-12 || res.Classes[1].AP != 1 {
			t.Errorf("%s: classes %+v, want chair %v first and sofa 1", dets, res.Classes, wantChair)
		}
		if math.Abs(res.MAP-(wantChair+1)/2) > 1e-12 || len(res.NotInModel) != 1 || res.NotInModel[0] != "bed" {
			t.Errorf("%s: mAP %v not-in-model %v", dets, res.MAP, res.NotInModel)
		}
	}
	out, err := runPynqctl(t, "eval", "--gt", gt, "--detections", jsonPath, "--names", names, "--all-classes")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("mAP %.2f %% (voc2012, IoU >= 0.5, 3 classes", 100*(wantChair+1)/3); !strings.Contains(out, want) {
		t.Errorf("--all-classes: want %q in\n%s", want, out)
	}
	out, err = runPynqctl(t, "eval", "--gt", gt, "--detections", jsonPath, "--names", names, "--metric", "voc2007")
	if err != nil {
		t.Fatal(err)
	}
	// chair 11-point: recall .5 at precision 1, recall 1 at 2/3 -> (6*1 + 5*2/3)/11
	want11 := 100 * ((6+5*2/3.0)/11 + 1) / 2
	if !strings.Contains(out, fmt.Sprintf("mAP %.2f %%", want11)) {
		t.Errorf("voc2007 table:\n%s\nwant mAP %.2f", out, want11)
	}
}

func TestEvalErrors(t *testing.T) {
	gt, jsonPath, _, _ := evalFixture(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--gt", gt, "--detections", jsonPath, "--metric", "coco"}, "metric"},
		{[]string{"eval", "--gt", gt, "--detections", filepath.Join(gt, "nope")}, "no such file"},
		{[]string{"eval", "--gt", filepath.Join(gt, "a.png"), "--detections", jsonPath}, "is an image"},
		{[]string{"eval", "--gt", gt, "--detections", jsonPath, "--names", filepath.Join(gt, "nope.names")}, "no such file"},
	} {
		_, err := runPynqctl(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
}

func TestEvalVOCTreeWithDifficult(t *testing.T) {
	dir := t.TempDir()
	ann := filepath.Join(dir, "voc", "Annotations")
	res := filepath.Join(dir, "results")
	for _, d := range []string{ann, res} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	xml := `<annotation><filename>img1.jpg</filename><size><width>200</width><height>100</height></size>
<object><name>chair</name><difficult>1</difficult><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>50</xmax><ymax>50</ymax></bndbox></object>
<object><name>chair</name><difficult>0</difficult><bndbox><xmin>100</xmin><ymin>10</ymin><xmax>150</xmax><ymax>90</ymax></bndbox></object>
</annotation>`
	if err := os.WriteFile(filepath.Join(ann, "img1.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	// In score order: the difficult chair (ignored), a miss (FP), the chair (TP):
	// precision 0 then 1/2 at recall 1 -> AP 0.5.
	dets := "img1 0.9 10 10 50 50\nimg1 0.8 160 10 199 40\nimg1 0.7 101 11 150 90\n"
	if err := os.WriteFile(filepath.Join(res, "comp4_det_test_chair.txt"), []byte(dets), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runPynqctl(t, "eval", "--gt", filepath.Join(dir, "voc"), "--detections", res, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r struct {
		MAP     float64 `json:"map"`
		Classes []struct {
			TP, FP, Difficult int
		} `json:"classes"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.MAP != 0.5 || len(r.Classes) != 1 || r.Classes[0].TP != 1 || r.Classes[0].FP != 1 || r.Classes[0].Difficult != 1 {
		t.Errorf("VOC with a difficult object: %s", out)
	}
}
