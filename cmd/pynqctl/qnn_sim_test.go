package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// TestQNNRunSimEqualsHost: `qnn run --backend sim` (driver + FPGA simulation) writes the
// same bytes as `--backend host` for dog.jpg and a chair photo.
func TestQNNRunSimEqualsHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO on the sim board and the host; skipped in -short (tens of seconds under qemu)")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	bit := testutil.Fixture(t, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
	images := []string{testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"),
		testutil.Fixture(t, "chairs", "val", "2007_000033.jpg")}
	dir := t.TempDir()
	for i, img := range images {
		in := filepath.Join(dir, "in.bin")
		host, simOut := filepath.Join(dir, "host.bin"), filepath.Join(dir, "sim.bin")
		args := []string{"qnn", "input", "--model", params, img, "-o", in}
		if i == 1 {
			args = append(args, "--compact")
		}
		if o, err := runPynqctl(t, args...); err != nil {
			t.Fatalf("qnn input: %v\n%s", err, o)
		}
		if o, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", in, "-o", host, "--backend", "host"); err != nil {
			t.Fatalf("host: %v\n%s", err, o)
		}
		if o, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", in, "-o", simOut, "--backend", "sim", "--bitstream", bit); err != nil {
			t.Fatalf("sim: %v\n%s", err, o)
		}
		h, _ := os.ReadFile(host)
		s, _ := os.ReadFile(simOut)
		if len(h) == 0 || !bytes.Equal(h, s) {
			t.Fatalf("%s: sim output (%d bytes) differs from host (%d bytes)", filepath.Base(img), len(s), len(h))
		}
	}
	_, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", filepath.Join(dir, "in.bin"), "-o", filepath.Join(dir, "x"), "--backend", "sim")
	if err == nil || !strings.Contains(err.Error(), "--bitstream") {
		t.Fatalf("sim without --bitstream: %v", err)
	}
}
