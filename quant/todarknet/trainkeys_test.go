package todarknet

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

func TestMergeTrainingKeys(t *testing.T) {
	cfg := "# x\n[net]\nbatch=1\nwidth=8\n\n# 0 conv0\n[convolutional]\nfilters=4\n\n# 1 region\n[region]\nclasses=2\n"
	tmpl := "[network]\nbatch=64\nlearning_rate=0.001\n  max_batches = 40200\n[convolutional]\nfilters=99\n[region]\nclasses=2\njitter=.2\n"
	got, added, err := MergeTrainingKeys([]byte(cfg), []byte(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	want := "# x\n[net]\nbatch=1\nwidth=8\nlearning_rate=0.001\nmax_batches=40200\n\n# 0 conv0\n[convolutional]\nfilters=4\n\n# 1 region\n[region]\nclasses=2\njitter=.2\n"
	if string(got) != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	if w := []string{"net: learning_rate", "net: max_batches", "region: jitter"}; !slices.Equal(added, w) {
		t.Errorf("added %v, want %v", added, w)
	}
	if _, _, err := MergeTrainingKeys([]byte(cfg), []byte("key=1\n")); err == nil {
		t.Error("a template without sections was accepted")
	}
}

// TestMergeQNNTrainingKeys gives the exported Tinier-YOLO the published cfg's training
// options; darknet's reader still reads the same model.
func TestMergeQNNTrainingKeys(t *testing.T) {
	res, err := Export(qnnModel(t))
	if err != nil {
		t.Fatal(err)
	}
	var cfg bytes.Buffer
	if err := darknet.WriteCfg(&cfg, res.Model); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(testutil.Fixture(t, "qnn-mo-pynq", "params", "tinier-yolo-bwn-3bit-relu-nomaxpool.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	merged, added, err := MergeTrainingKeys(cfg.Bytes(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("added %v", added)
	for _, k := range []string{"net: learning_rate", "net: max_batches", "net: steps", "region: object_scale"} {
		if !slices.Contains(added, k) {
			t.Errorf("did not add %s", k)
		}
	}
	var warnings []string
	path := filepath.Join(t.TempDir(), "merged.cfg")
	if err := os.WriteFile(path, merged, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := darknet.LoadCfg(path, darknet.Options{Warn: func(w string) { warnings = append(warnings, w) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(res.Model.Layers) || strings.Join(warnings, "") != "" {
		t.Errorf("merged cfg reads as %d layers (want %d), warnings %v", len(m.Layers), len(res.Model.Layers), warnings)
	}
}
