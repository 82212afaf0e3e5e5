package mapeval

import (
	"os"
	"path/filepath"
	"testing"
)

// EvaluateFiles on detect JSON lines over labels without images: the sizes come from
// the detections, the names from the detector when the labels have none.
func TestEvaluateFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	names := write("model.names", "chair\nsofa\n")
	gt := filepath.Join(dir, "gt")
	if err := os.Mkdir(gt, 0o755); err != nil {
		t.Fatal(err)
	}
	write("gt/a.txt", "0 0.3 0.3 0.4 0.4\n")
	dets := write("dets.json", `{"image":"/x/a.png","width":100,"height":100,"detections":[{"class":"chair","class_id":0,"score":0.9,"box":[10,10,50,50]}]}`+"\n")
	res, err := EvaluateFiles(FilesOptions{Dataset: gt, Detections: dets, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if res.MAP != 1 || len(res.Classes) != 1 || res.Classes[0].Class != "chair" || res.GroundTruth != gt {
		t.Errorf("result %+v", res)
	}
}
