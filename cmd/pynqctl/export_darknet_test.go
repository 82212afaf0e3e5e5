package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

func TestQuantExportDarknetQNN(t *testing.T) {
	if testing.Short() {
		t.Skip("exports and runs Tinier-YOLO; skipped in -short (tens of seconds under qemu)")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tinier-yolo.cfg")
	out, err := runPynqctl(t, "quant", "export-darknet", "--model", params, "--output="+cfg, "--float-activation=relu")
	if err != nil {
		t.Fatalf("export-darknet: %v\n%s", err, out)
	}
	for _, want := range []string{"float, quantize W0A3, act_scale 0.5714286", "12 conv7: thresholds -> batch norm: 512/512 exact",
		"exact    2048 of 2048 threshold channels (100.00%)", "wrote    " + filepath.Join(dir, "tinier-yolo.weights"), "tinier-yolo.quant.json", "train    21 training options from the source cfg (net: momentum, net: decay, net: angle ...)",
		"check    re-quantized from the written files: 2048 of 2048 channels give back identical thresholds, 2048 the same levels"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	m, err := darknet.Load(cfg, filepath.Join(dir, "tinier-yolo.weights"), darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Layers[1].Conv.Binary || m.Layers[1].Conv.BN == nil {
		t.Errorf("conv1 reads back without binary=1 or batch norm")
	}
	if _, err := todarknet.ReadSidecar(todarknet.SidecarPath(cfg)); err != nil {
		t.Error(err)
	}
	lcfg := filepath.Join(dir, "lhtan.cfg")
	out, err = runPynqctl(t, "quant", "export-darknet", "--model", params, "--output="+lcfg) // lhtan by default
	if err != nil || !strings.Contains(out, "2048 of 2048 channels give back identical thresholds") || !strings.Contains(out, "activation=lhtan") {
		t.Errorf("lhtan export: %v\n%s", err, out)
	}
	// A darknet model goes through as well (float layers only, empty sidecar).
	cfg2 := filepath.Join(dir, "again.cfg")
	out, err = runPynqctl(t, "quant", "export-darknet", "--model", cfg, "--model-weights", filepath.Join(dir, "tinier-yolo.weights"), "--output", cfg2, "--weights", filepath.Join(dir, "again.bin"))
	if err != nil || !strings.Contains(out, "again.bin") {
		t.Fatalf("export of a darknet model: %v\n%s", err, out)
	}
}

func TestQuantExportDarknetErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", dir}, "output"},
		{[]string{"--model", dir, "--output", "x.txt"}, "ending in .cfg"},
		{[]string{"--model", testutil.Fixture(t, "qnn-mo-pynq", "params"), "--output", filepath.Join(dir, "x.cfg"), "--float-activation", "tanh"}, "float activation"},
		{[]string{"--model", filepath.Join(dir, "none"), "--output", "x.cfg"}, "none"},
		{[]string{"--model", dir, "--output", filepath.Join(dir, "x.cfg")}, "QNN-MO parameter directory"},
		{[]string{"--model", dir, "--model-weights", "w", "--output", "x.cfg"}, "--model-weights goes with a darknet cfg"},
		{[]string{"--model", testutil.Fixture(t, "qnn-mo-pynq", "params"), "--output", filepath.Join(dir, "x.cfg"), "--keep-classes", "chair"}, "--keep-classes needs --names"},
		{[]string{"--model", testutil.Fixture(t, "qnn-mo-pynq", "params"), "--output", filepath.Join(dir, "x.cfg"), "--keep-classes", "stool",
			"--names", testutil.Fixture(t, "qnn-mo-pynq", "voc.names")}, `"stool" is not in`},
	} {
		_, err := runPynqctl(t, append([]string{"quant", "export-darknet"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

func TestQuantExportDarknetBNImages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Tinier-YOLO; skipped in -short")
	}
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	images := t.TempDir()
	data, err := os.ReadFile(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "dog.jpg"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "tinier-yolo.cfg")
	out, err := runPynqctl(t, "quant", "export-darknet", "--model", params, "--output="+cfg, "--bn-images", images)
	if err != nil {
		t.Fatalf("export-darknet --bn-images: %v\n%s", err, out)
	}
	for _, want := range []string{"bn       rolling statistics of 7 batch-norm layers measured on 1 images", "2048 of 2048 channels give back identical thresholds"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestQuantExportDarknetKeepClasses cuts the VOC head of the published model to its
// chair outputs: per anchor the box, objectness and chair rows of the full export.
func TestQuantExportDarknetKeepClasses(t *testing.T) {
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	names := testutil.Fixture(t, "qnn-mo-pynq", "voc.names")
	dir := t.TempDir()
	load := func(name string, args ...string) *quant.Model {
		cfg := filepath.Join(dir, name+".cfg")
		out, err := runPynqctl(t, append([]string{"quant", "export-darknet", "--model", params, "--output=" + cfg}, args...)...)
		if err != nil {
			t.Fatalf("export-darknet %v: %v\n%s", args, err, out)
		}
		m, err := darknet.Load(cfg, filepath.Join(dir, name+".weights"), darknet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	full, m := load("voc"), load("chair", "--keep-classes=chair", "--names="+names, "--objectness-shift=0")
	last := len(m.Layers) - 1
	if h := m.Layers[last].Head; h.Classes != 1 || h.Num != 5 {
		t.Fatalf("head %+v, want 1 class, 5 anchors", h)
	}
	got, want := m.Layers[last-1].Conv, full.Layers[last-1].Conv
	per := len(want.Weights) / want.Filters
	const chair = 8 // voc.names
	for n := range 5 {
		for i, r := range []int{0, 1, 2, 3, 4, 5 + chair} {
			g, w := n*6+i, n*25+r
			if !slices.Equal(got.Weights[g*per:(g+1)*per], want.Weights[w*per:(w+1)*per]) || got.Bias[g] != want.Bias[w] {
				t.Fatalf("anchor %d output %d is not the VOC head's output %d", n, i, w)
			}
		}
	}
}

// TestQNNDirOfLHTanExport: the published model exported as float lhtan darknet and
// turned back into a parameter directory by qnn-dir gives the published engine
// parameters byte for byte (what the chair model's frozen layers rely on).
func TestQNNDirOfLHTanExport(t *testing.T) {
	params := testutil.Fixture(t, "qnn-mo-pynq", "params")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ty.cfg")
	if out, err := runPynqctl(t, "quant", "export-darknet", "--model", params, "--output="+cfg); err != nil {
		t.Fatalf("export-darknet: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "qnn")
	if o, err := runPynqctl(t, "quant", "qnn-dir", "--cfg", cfg, "--weights", filepath.Join(dir, "ty.weights"),
		"--sidecar", filepath.Join(dir, "ty.quant.json"), "--out", out, "--name", "ty"); err != nil {
		t.Fatalf("qnn-dir: %v\n%s", err, o)
	}
	files, _ := filepath.Glob(filepath.Join(params, "binparam-tinier-yolo-nopool", "*.bin"))
	if len(files) != 640 {
		t.Fatalf("%d published binparam files, want 640", len(files))
	}
	for _, f := range files {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(out, "binparam-ty", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs from the published file (%v)", filepath.Base(f), err)
		}
	}
}
