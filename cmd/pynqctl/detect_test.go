package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
)

func yoloFastestArgs(t *testing.T) []string {
	dir := testutil.Fixture(t, "yolo-fastest")
	return []string{"detect",
		"--cfg", filepath.Join(dir, "yolo-fastest-1.1.cfg"),
		"--weights", filepath.Join(dir, "yolo-fastest-1.1.weights"),
		"--names", filepath.Join(dir, "coco.names")}
}

func TestDetectJSONAndAnnotate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole model; skipped in -short")
	}
	img := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	ann := t.TempDir()
	out, err := runPynqctl(t, append(yoloFastestArgs(t), "--json", "--annotate", ann, img)...)
	if err != nil {
		t.Fatalf("detect: %v\n%s", err, out)
	}
	var got boxes.JSONImage
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if got.Width != 768 || got.Height != 576 {
		t.Errorf("size %dx%d, want 768x576", got.Width, got.Height)
	}
	classes := map[string]bool{}
	for _, d := range got.Detections {
		classes[d.Class] = true
		if d.Score <= 0.25 || d.Score > 1 || d.Box[0] >= d.Box[2] || d.Box[1] >= d.Box[3] {
			t.Errorf("implausible detection %+v", d)
		}
	}
	for _, want := range []string{"dog", "bicycle", "car"} {
		if !classes[want] {
			t.Errorf("no %s in %s", want, out)
		}
	}
	if st, err := os.Stat(filepath.Join(ann, "dog.jpg")); err != nil || st.Size() == 0 {
		t.Errorf("annotated image not written: %v", err)
	}
}

func TestDetectDarknetLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole model; skipped in -short")
	}
	img := testutil.Fixture(t, "qnn-mo-pynq", "images", "person.jpg")
	out, err := runPynqctl(t, append(yoloFastestArgs(t), img)...)
	if err != nil {
		t.Fatalf("detect: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Predicted in") || !strings.Contains(out, "person: ") {
		t.Errorf("want darknet-style lines with a person, got:\n%s", out)
	}
}

func TestDetectErrors(t *testing.T) {
	dir := testutil.Fixture(t, "yolo-fastest")
	cfg := filepath.Join(dir, "yolo-fastest-1.1.cfg")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"detect", "x.jpg"}, "need --cfg and --weights"},
		{"both", []string{"detect", "--model", dir, "--cfg", cfg, "x.jpg"}, "either --model or --cfg"},
		{"missing weights", []string{"detect", "--cfg", cfg, "--weights", filepath.Join(t.TempDir(), "none.weights"), "x.jpg"}, "none.weights"},
		{"missing image", append(yoloFastestArgs(t), filepath.Join(t.TempDir(), "missing.jpg")), "missing.jpg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPynqctl(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q (output %q)", err, tc.want, out)
			}
		})
	}
}
