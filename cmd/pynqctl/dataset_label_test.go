package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// TestDatasetLabelFlagErrors checks that bad flags and inputs fail with a message naming
// the culprit, before any model is loaded (the model files here do not exist).
func TestDatasetLabelFlagErrors(t *testing.T) {
	dir := t.TempDir()
	target := testutil.WriteFile(t, dir, "chair.names", "chair\n")
	coco := testutil.WriteFile(t, dir, "coco.names", "person\nchair\ncouch\n")
	rej := testutil.WriteFile(t, dir, "rej.txt", "ok\nimg 1 2\n")
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, images, "a.jpg", "not decoded before the checks")
	foreign := filepath.Join(dir, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, foreign, "keep.txt", "x")
	teacher := "cfg=" + filepath.Join(dir, "none.cfg") + ",weights=" + filepath.Join(dir, "none.weights") + ",names=" + coco
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--names", target, "--out", out, images}, `"teacher" not set`},
		{[]string{"--names", target, "--teacher", teacher, "--out", out}, "requires at least 1 arg"},
		{[]string{"--names", target, "--teacher", teacher + ",colour=red", "--out", out, images}, `unknown key "colour"`},
		{[]string{"--names", target, "--teacher", teacher + ",map=sofa:chair", "--out", out, images}, `teacher's names have no class "sofa"`},
		{[]string{"--names", target, "--teacher", teacher + ",map=couch:stool", "--out", out, images}, `target names have no class "stool"`},
		{[]string{"--names", filepath.Join(dir, "nope.names"), "--teacher", teacher, "--out", out, images}, "nope.names"},
		{[]string{"--names", target, "--teacher", teacher, "--out", out, "--uncertain", "0.5", images}, "uncertain threshold"},
		{[]string{"--names", target, "--teacher", teacher, "--out", out, "--truth-names", coco, images}, "--truth-names needs --truth"},
		{[]string{"--names", target, "--teacher", teacher, "--out", out, "--reject", rej, images}, "rej.txt:2"},
		{[]string{"--names", target, "--teacher", teacher, "--out", foreign, images}, "not empty"},
		{[]string{"--names", target, "--teacher", teacher, "--out", out, filepath.Join(dir, "nowhere")}, "nowhere"},
		{[]string{"--names", target, "--teacher", teacher, "--out", out, images}, "none.cfg"}, // every check passed: the model loads
	} {
		log, err := runPynqctl(t, append([]string{"dataset", "label"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("dataset label %s: error %v, want %q\n%s", strings.Join(tc.args, " "), err, tc.want, log)
		}
	}
	if _, err := os.Stat(filepath.Join(foreign, "keep.txt")); err != nil {
		t.Error(err)
	}
}
