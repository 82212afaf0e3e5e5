package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

// `pynqctl bench board` prints every stage's time and the engine's modelled time, and
// refuses bad frame sizes with the flag's name.
func TestBenchBoardCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated engine; skipped with -short")
	}
	dir := t.TempDir()
	p, err := demomodel.Extract(filepath.Join(dir, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "frame.jpg")
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runPynqctl(t, "bench", "board", "--model", p.ModelDir, "--frames", "1", "--yuyv", "64x48", img)
	if err != nil {
		t.Fatalf("bench board: %v\n%s", err, out)
	}
	for _, want := range []string{"yuyv 64x48", "decode", "letterbox", "first", "engine", "last", "nms", "encode", "engine on the board"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range [][]string{{"--size", "640"}, {"--yuyv", "0x0"}, {"--size", "64x48", "--yuyv", "64x48"}} {
		args := append([]string{"bench", "board", "--model", p.ModelDir}, bad...)
		if _, err := runPynqctl(t, append(args, img)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
