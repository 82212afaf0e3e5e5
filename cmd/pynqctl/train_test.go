package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// trainTestCfg is a tiny 30-class region detector at 32x32 (the chairs fixture's classes).
var trainTestCfg = tinyRegionCfg(`[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2
`, 30)

// tinyRegionCfg is a two-step cfg at 32x32: the [net] section, body (the layers after
// the input), then a 1x1 linear head sized for two anchors and the region layer.
func tinyRegionCfg(body string, classes int) string {
	return fmt.Sprintf(`[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
learning_rate=0.001
max_batches=2

%s
[convolutional]
size=1
stride=1
pad=1
filters=%d
activation=linear

[region]
anchors=1,1,2,2
bias_match=1
classes=%d
coords=4
num=2
softmax=1
rescore=1
`, body, 2*(5+classes), classes)
}

func TestTrainCommandCheckpointsAndResumes(t *testing.T) {
	chairs := testutil.Fixture(t, "chairs")
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", trainTestCfg)
	out := filepath.Join(dir, "backup")
	log, err := runPynqctl(t, "train", "--cfg", cfg, "--data", filepath.Join(chairs, "val"), "--out", out,
		"--checkpoint-every", "1", "--threads", "2")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if !strings.Contains(log, "2: ") || !strings.Contains(log, "avg") || !strings.Contains(log, "images/s") {
		t.Errorf("progress lines missing:\n%s", log)
	}
	for _, f := range []string{"tiny_1.weights", "tiny_2.weights", "tiny_last.weights", "tiny_final.weights"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	log, err = runPynqctl(t, "train", "--cfg", cfg, "--data", filepath.Join(chairs, "val"), "--out", out,
		"--resume", filepath.Join(out, "tiny_last.weights"), "--max-batches", "3")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	if strings.Contains(log, "\n1: ") || !strings.HasPrefix(log, "3: ") {
		t.Errorf("resume should run iteration 3 only:\n%s", log)
	}
}

// TestTrainMixedDatasetsByName trains a one-class chair model on two datasets of
// other class lists (the chairs fixture's 30 classes, twice with weights), freezing
// the first layer and keeping the best validation checkpoint.
func TestTrainMixedDatasetsByName(t *testing.T) {
	chairs := testutil.Fixture(t, "chairs")
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "one.cfg", tinyRegionCfg(`[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=lhtan

[maxpool]
size=2
stride=2
`, 1))
	names := testutil.WriteFile(t, dir, "chair.names", "chair\n")
	out := filepath.Join(dir, "backup")
	data := filepath.Join(chairs, "val") + "=2," + filepath.Join(chairs, "calibration") + "=0.5"
	log, err := runPynqctl(t, "train", "--cfg", cfg, "--data", data, "--names", names, "--val", filepath.Join(chairs, "val"),
		"--freeze", "1", "--keep-best", "--val-every", "1", "--out", out, "--threads", "2")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if !strings.Contains(log, "mAP@0.5") {
		t.Errorf("no validation lines:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(out, "one_best.weights")); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--keep-best"}, "--keep-best needs --val"},
		{[]string{"--layer-rates", "3"}, "--layer-rates"},
		{[]string{"--layer-rates", "40=1"}, "the model has layers 0-"},
		{[]string{"--names", testutil.WriteFile(t, dir, "two.names", "chair\ntable\n")}, "2 class names for a model of 1 classes"},
		{[]string{"--names", testutil.WriteFile(t, dir, "cat.names", "cat\n")}, "none of the model's classes"},
		{[]string{"--data", filepath.Join(chairs, "val") + "=x"}, `weight "x"`},
	} {
		args := append([]string{"train", "--cfg", cfg, "--data", filepath.Join(chairs, "val"), "--out", out, "--max-batches", "1"}, c.args...)
		if _, err := runPynqctl(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
}
