package mapeval

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestComp4Class(t *testing.T) {
	names := []string{"chair", "table", "dining_table"}
	for _, c := range []struct {
		file  string
		names []string
		want  string
		ok    bool
	}{
		{"comp4_det_test_chair.txt", names, "chair", true},
		{"/r/comp4_det_test_dining_table.txt", names, "dining_table", true},
		{"comp4_det_test_sofa.txt", names, "", false},
		{"comp4_det_test_dining_table.txt", nil, "dining_table", true},
		{"whatever.txt", nil, "", false},
	} {
		got, ok := Comp4Class(c.file, c.names)
		if got != c.want || ok != c.ok {
			t.Errorf("Comp4Class(%s) = %q %v, want %q %v", c.file, got, ok, c.want, c.ok)
		}
	}
}

func TestReadComp4AndJSON(t *testing.T) {
	dets, err := ReadComp4(strings.NewReader("img1 0.9 1 2 30 40\n\nimg2 0.005 5.5 6 7 8\n"), "f.txt", "chair")
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 2 || dets[1].Box != (Box{5.5, 6, 7, 8}) || dets[0].Class != "chair" || dets[0].Image != "img1" {
		t.Fatalf("comp4: %+v", dets)
	}
	if _, err := ReadComp4(strings.NewReader("img1 0.9 1 2 30\n"), "f.txt", "chair"); err == nil || !strings.Contains(err.Error(), "f.txt:1:") {
		t.Errorf("short line: err %v", err)
	}
	j := `{"image":"/x/val/a.jpg","width":640,"height":480,"detections":[{"class":"chair","class_id":0,"score":0.8,"box":[0,10,100,200]},{"class":"class 1","class_id":1,"score":0.3,"box":[1,2,3,4]},{"class":"chair","score":0.5,"box":[600,400,640,480]}]}` + "\n" +
		`{"image":"b.png","width":10,"height":20,"detections":[]}`
	d, err := ReadDetectJSON(strings.NewReader(j), "d.json", []string{"chair", "sofa"})
	if err != nil {
		t.Fatal(err)
	}
	// A box at the image's edge ends there, as darknet's validate_detector clips it.
	if len(d.Dets) != 3 || d.Dets[0].Image != "a" || d.Dets[0].Box != (Box{1, 11, 101, 201}) || d.Dets[1].Class != "sofa" ||
		d.Dets[2].Box != (Box{601, 401, 640, 480}) || d.Sizes["b"] != [2]int{10, 20} {
		t.Fatalf("json: %+v", d)
	}
	if _, err := ReadDetectJSON(strings.NewReader("{}\n{\"image\":"), "d.json", nil); err == nil || !strings.Contains(err.Error(), "d.json:1:") {
		t.Errorf("bad json: err %v", err)
	}
}

func TestLoadDetectionsDir(t *testing.T) {
	dir := t.TempDir()
	for class, text := range map[string]string{"chair": "a 0.5 1 1 10 10\n", "sofa": "b 0.25 1 1 5 5\na 0.1 2 2 3 3\n"} {
		if err := os.WriteFile(filepath.Join(dir, "comp4_det_test_"+class+".txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := LoadDetections(dir, []string{"chair", "sofa"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Dets) != 3 {
		t.Fatalf("%d detections, want 3", len(d.Dets))
	}
}

func FuzzReadDetections(f *testing.F) {
	f.Add([]byte("img1 0.9 1 2 30 40\nimg2 0.005 5.5 6 7 8\n"))
	f.Add([]byte(`{"image":"a.jpg","width":640,"height":480,"detections":[{"class":"chair","class_id":0,"score":0.8,"box":[0,10,100,200]}]}`))
	f.Add([]byte(`{"image":"a.jpg","detections":[{"class":"class 9","class_id":-3}]}`))
	f.Add([]byte("x nan inf 1 2 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			_, _ = ReadDetectJSON(bytes.NewReader(data), "fuzz.json", []string{"chair"})
			return
		}
		dets, err := ReadComp4(bytes.NewReader(data), "fuzz.txt", "chair")
		if err == nil {
			for _, d := range dets {
				if d.Image == "" {
					t.Fatal("detection without image id")
				}
			}
		}
	})
}

func TestVOCBox(t *testing.T) {
	for _, c := range []struct {
		in   [4]float32
		w, h int
		want Box
	}{
		{[4]float32{0, 0, 9, 19}, 10, 20, Box{1, 1, 10, 20}},
		{[4]float32{-3, -1, 10, 20}, 10, 20, Box{1, 1, 10, 20}},   // clipped to [1, w] x [1, h]
		{[4]float32{-3, 2.5, 10, 20}, 0, 0, Box{-2, 3.5, 11, 21}}, // size unknown: +1 only
	} {
		if got := VOCBox(c.in, c.w, c.h); got != c.want {
			t.Errorf("VOCBox(%v, %d, %d) = %v, want %v", c.in, c.w, c.h, got, c.want)
		}
	}
}
