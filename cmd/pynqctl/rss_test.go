//go:build linux

package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

// TestMain lets a test run this binary as pynqctl (PYNQCTL_AS_MAIN=1) to measure the
// command's own peak RSS.
func TestMain(m *testing.M) {
	if os.Getenv("PYNQCTL_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDetectPeakRSSOnAPNGBomb: `pynqctl detect` on a real 5790x5790 PNG (45 KB, flat)
// refuses it from its header with the size in the error, and its peak RSS stays that of
// a small run (decoding it took 1.0-1.3 GB before the pixel limit).
func TestDetectPeakRSSOnAPNGBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pynqctl in a process of its own; skipped with -short")
	}
	dir := t.TempDir()
	p, err := demomodel.Extract(filepath.Join(dir, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&b, image.NewGray(image.Rect(0, 0, 5790, 5790))); err != nil {
		t.Fatal(err)
	}
	bomb := filepath.Join(dir, "bomb.png")
	if err := os.WriteFile(bomb, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "detect", "--model", p.ModelDir, "--names", p.Names, bomb)
	cmd.Env = append(os.Environ(), "PYNQCTL_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "megapixels") || !strings.Contains(string(out), "bomb.png") {
		t.Errorf("detect on the bomb: %v\n%s", err, out)
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("pynqctl detect on a %d-byte 5790x5790 PNG: peak RSS %.1f MB: %s", b.Len(), float64(peak)/(1<<20), strings.TrimSpace(string(out)))
	if peak > 100<<20 {
		t.Errorf("peak RSS %.1f MB: the image was decoded, not refused from its header", float64(peak)/(1<<20))
	}
}
