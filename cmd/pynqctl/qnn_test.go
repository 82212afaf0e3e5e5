package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func TestQNNInputRunExport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO on dog.jpg; skipped in -short (tens of seconds under qemu)")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	img := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.bin"), filepath.Join(dir, "out.bin")
	if o, err := runPynqctl(t, "qnn", "input", "--model", params, img, "-o", in); err != nil {
		t.Fatalf("qnn input: %v\n%s", err, o)
	}
	if st, err := os.Stat(in); err != nil || st.Size() != 208*208*192 {
		t.Fatalf("input file: %v %v, want %d bytes", st, err, 208*208*192)
	}
	if o, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", in, "-o", out); err != nil {
		t.Fatalf("qnn run: %v\n%s", err, o)
	}
	full, err := os.ReadFile(out)
	if err != nil || len(full) != 13*13*192 {
		t.Fatalf("output: %d bytes, %v; want %d", len(full), err, 13*13*192)
	}
	// The compact input gives the same engine output.
	cin, cout := filepath.Join(dir, "cin.bin"), filepath.Join(dir, "cout.bin")
	if o, err := runPynqctl(t, "qnn", "input", "--compact", "--model", params, img, "-o", cin); err != nil {
		t.Fatalf("qnn input --compact: %v\n%s", err, o)
	}
	if o, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", cin, "-o", cout); err != nil {
		t.Fatalf("qnn run compact: %v\n%s", err, o)
	}
	if c, _ := os.ReadFile(cout); !bytes.Equal(c, full) {
		t.Error("compact and DDR inputs give different outputs")
	}
	if _, err := runPynqctl(t, "qnn", "run", "--model", params, "--input", img, "-o", cout); err == nil {
		t.Error("a JPEG was accepted as engine input")
	}
	exp := filepath.Join(dir, "export")
	if o, err := runPynqctl(t, "qnn", "export", "--model", params, "-o", exp, "--buffers"); err != nil {
		t.Fatalf("qnn export: %v\n%s", err, o)
	}
	for _, name := range []string{"1-0-weights.bin", "10-31-thres.bin"} {
		want, _ := os.ReadFile(filepath.Join(params, "binparam-tinier-yolo-nopool", name))
		got, err := os.ReadFile(filepath.Join(exp, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the published file (%v)", name, err)
		}
	}
	if st, err := os.Stat(filepath.Join(exp, "5-in2.bin")); err != nil || st.Size() != 75776 {
		t.Errorf("5-in2.bin: %v %v", st, err)
	}
}
