package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// TestDetectQNNPublished runs the acceptance command of the QNN-MO issue:
// pynqctl detect --model params --names voc.names --thresh 0.3 dog.jpg must print the
// published car 86%, dog 86%, bicycle 78% (each within 2 points) and no other class.
// It needs the default --decoder for --model (stb); with libjpeg bicycle reads 83%.
func TestDetectQNNPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole model; skipped in -short")
	}
	dir := testutil.Fixture(t, "qnn-mo-pynq")
	out, err := runPynqctl(t, "detect", "--model", filepath.Join(dir, "params"),
		"--names", filepath.Join(dir, "voc.names"), "--thresh", "0.3",
		filepath.Join(dir, "images", "dog.jpg"))
	if err != nil {
		t.Fatalf("detect: %v\n%s", err, out)
	}
	t.Logf("output:\n%s", out)
	published := map[string]int{"car": 86, "dog": 86, "bicycle": 78}
	best := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z ]+): (\d+)%$`).FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[2])
		if _, ok := published[m[1]]; !ok {
			t.Errorf("unexpected class %s: %d%%", m[1], p)
		}
		best[m[1]] = max(best[m[1]], p)
	}
	for name, want := range published {
		if got, ok := best[name]; !ok || got < want-2 || got > want+2 {
			t.Errorf("%s: %d%% (found %v), published %d%%", name, got, ok, want)
		}
	}
}
