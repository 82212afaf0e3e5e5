package agent

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

// BenchBoard runs every stage of the board's per-frame work on the demo model, from a
// JPEG and from a YUYV frame, and one stage alone with --only.
func TestBenchBoard(t *testing.T) {
	skipSimPipelineInShort(t)
	p, err := demomodel.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 90, 255})
		}
	}
	var src bytes.Buffer
	if err := jpeg.Encode(&src, img, nil); err != nil {
		t.Fatal(err)
	}
	base := BenchOptions{ModelDir: p.ModelDir, Names: p.Names, Bitstream: p.Bitstream, Image: src.Bytes(), Frames: 2}
	for _, o := range []BenchOptions{
		base,
		func() BenchOptions { o := base; o.YUYV, o.Width, o.Height = true, 160, 120; return o }(),
		func() BenchOptions { o := base; o.Only = StageFirst; return o }(),
	} {
		res, err := BenchBoard(context.Background(), o, quietLog())
		if err != nil {
			t.Fatalf("%+v: %v", o.Only, err)
		}
		for _, s := range BenchStages {
			if _, ok := res.PerFrame[s.Name]; !ok {
				t.Errorf("%s: no time for stage %s", res.Source, s.Name)
			}
		}
		if res.EngineModel <= 0 || res.Frames != 2 {
			t.Errorf("%s: engine model %v, frames %d", res.Source, res.EngineModel, res.Frames)
		}
		want := "jpeg 320x240"
		if o.YUYV {
			want = "yuyv 160x120"
		}
		if res.Source != want {
			t.Errorf("source %q, want %q", res.Source, want)
		}
	}
	bad := base
	bad.Only = "dance"
	if _, err := BenchBoard(context.Background(), bad, quietLog()); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("unknown stage: %v", err)
	}
	bad = base
	bad.YUYV, bad.Width, bad.Height = true, 161, 120
	if _, err := BenchBoard(context.Background(), bad, quietLog()); err == nil || !strings.Contains(err.Error(), "even width") {
		t.Errorf("odd YUYV width: %v", err)
	}
}
