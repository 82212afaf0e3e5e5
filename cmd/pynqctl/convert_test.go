package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
)

func TestQuantConvertYoloFastest(t *testing.T) {
	dir := testutil.Fixture(t, "yolo-fastest")
	output := filepath.Join(t.TempDir(), "yf.onnx")
	out, err := runPynqctl(t, "quant", "convert",
		"--cfg="+filepath.Join(dir, "yolo-fastest-1.1.cfg"),
		"--weights="+filepath.Join(dir, "yolo-fastest-1.1.weights"),
		"--output="+output, "--keep-bn")
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	for _, want := range []string{"alexeyab darknet", "input    input [1x3x320x320]", "output   head_121 [1x255x10x10] (yolo yolo121, 80 classes)", "head_130", "wrote    " + output} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	m, err := onnx.ReadFile(output)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if len(m.Heads()) != 2 {
		t.Errorf("read back %d heads, want 2", len(m.Heads()))
	}
}

func TestQuantConvertErrors(t *testing.T) {
	if _, err := runPynqctl(t, "quant", "convert", "--cfg=x.cfg"); err == nil || !strings.Contains(err.Error(), "weights") {
		t.Errorf("missing --weights: %v", err)
	}
	if _, err := runPynqctl(t, "quant", "convert", "--cfg=x.cfg", "--weights=x.weights", "--dialect=tf"); err == nil || !strings.Contains(err.Error(), "--dialect") {
		t.Errorf("bad dialect: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "none.cfg")
	if _, err := runPynqctl(t, "quant", "convert", "--cfg="+missing, "--weights=x.weights"); err == nil || !strings.Contains(err.Error(), "none.cfg") {
		t.Errorf("missing cfg: %v", err)
	}
}
