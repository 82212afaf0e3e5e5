//go:build linux

package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

// TestMain lets a test run this binary as pynqctl (PYNQCTL_AS_MAIN=1) to measure the
// command's own peak RSS, through a small launcher (PYNQCTL_RSS_LAUNCHER=1: this binary
// again, fresh) that runs it and prints its peak RSS in KiB. The launcher is needed
// because Linux carries the peak RSS of the process that started a command over its
// exec: measured straight from a test binary that already holds hundreds of MB, the
// command would report those.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("PYNQCTL_AS_MAIN") == "1":
		main()
		os.Exit(0)
	case os.Getenv("PYNQCTL_RSS_LAUNCHER") == "1":
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "PYNQCTL_AS_MAIN=1", "PYNQCTL_RSS_LAUNCHER=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		err := cmd.Run()
		fmt.Println(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
		if err != nil {
			os.Exit(1)
		}
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
	cmd.Env = append(os.Environ(), "PYNQCTL_RSS_LAUNCHER=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil || !strings.Contains(stderr.String(), "megapixels") || !strings.Contains(stderr.String(), "bomb.png") {
		t.Errorf("detect on the bomb: %v\n%s", err, stderr.String())
	}
	kib, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if perr != nil {
		t.Fatalf("launcher printed %q: %v", out, perr)
	}
	peak := kib << 10
	t.Logf("pynqctl detect on a %d-byte 5790x5790 PNG: peak RSS %.1f MB: %s", b.Len(), float64(peak)/(1<<20), strings.TrimSpace(stderr.String()))
	if peak > 100<<20 {
		t.Errorf("peak RSS %.1f MB: the image was decoded, not refused from its header", float64(peak)/(1<<20))
	}
}
