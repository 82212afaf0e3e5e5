package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDatasetSynth(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ds")
	msg, err := runPynqctl(t, "dataset", "synth", "--out", out, "--count", "5", "--size", "64x48", "--val-fraction", "0", "--workers", "2", "--seed", "3")
	if err != nil {
		t.Fatalf("dataset synth: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "wrote 5 images 64x48") || !strings.Contains(msg, "val 0") {
		t.Errorf("summary: %s", msg)
	}
	train, err := os.ReadFile(filepath.Join(out, "train.txt"))
	if err != nil || strings.Count(string(train), "\n") != 5 {
		t.Errorf("train.txt: %q %v", train, err)
	}
	if names, _ := os.ReadFile(filepath.Join(out, "classes.names")); string(names) != "chair\n" {
		t.Errorf("classes.names %q, want chair only", names)
	}
	// A second run into the same directory needs --force.
	if _, err := runPynqctl(t, "dataset", "synth", "--out", out, "--count", "1"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second run: %v", err)
	}
	if _, err := runPynqctl(t, "dataset", "synth", "--out", out, "--count", "1", "--size", "big"); err == nil {
		t.Error("--size big accepted")
	}
}

func FuzzParseSynthSize(f *testing.F) {
	for _, s := range []string{"416x416", "640X480", "416", " 32x32 ", "x", "0x10", "-1x5", "12x", "1e3x2", "99999999999999999999x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, h, err := parseSynthSize(s)
		if err == nil && (w <= 0 || h <= 0) {
			t.Errorf("%q -> %dx%d without error", s, w, h)
		}
	})
}
