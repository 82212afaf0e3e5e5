package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/agent/boardverify"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/web"
)

// chairPhotos makes a darknet dataset in a temp dir: the first n chairs/val photos
// that show a chair (symlinks, labels copied) and, with dog, QNN-MO's dog.jpg
// without labels.
func chairPhotos(tb testing.TB, n int, dog bool) string {
	tb.Helper()
	src := testutil.Fixture(tb, "chairs", "val")
	qnnDir := testutil.Fixture(tb, "qnn-mo-pynq")
	dir := tb.TempDir()
	names, err := os.ReadFile(filepath.Join(filepath.Dir(src), "classes.names"))
	if err != nil {
		tb.Fatal(err)
	}
	chair := -1
	for i, l := range strings.Split(string(names), "\n") {
		if strings.TrimSpace(l) == "chair" {
			chair = i
		}
	}
	os.WriteFile(filepath.Join(dir, "classes.names"), names, 0o644)
	labels, _ := filepath.Glob(filepath.Join(src, "*.txt"))
	for _, lbl := range labels {
		data, _ := os.ReadFile(lbl)
		if n == 0 || !bytes.Contains(append([]byte("\n"), data...), []byte("\n"+strconv.Itoa(chair)+" ")) {
			continue
		}
		img := strings.TrimSuffix(lbl, ".txt") + ".jpg"
		if err := os.Symlink(img, filepath.Join(dir, filepath.Base(img))); err != nil {
			tb.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(lbl)), data, 0o644)
		n--
	}
	if dog {
		if err := os.Symlink(filepath.Join(qnnDir, "images", "dog.jpg"), filepath.Join(dir, "dog.jpg")); err != nil {
			tb.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "dog.txt"), nil, 0o644)
	}
	return dir
}

// runVerifyCLI runs `pynqctl verify --board sim` on dataset and returns the report.
func runVerifyCLI(tb testing.TB, dataset string) (*boardverify.Report, string, error) {
	tb.Helper()
	q := testutil.Fixture(tb, "qnn-mo-pynq")
	report := filepath.Join(tb.TempDir(), "report.json")
	out, err := runPynqctl(tb, "verify", "--board", "sim", "--model", filepath.Join(q, "params"),
		"--names", filepath.Join(q, "voc.names"), "--dataset", dataset, "--output", report)
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		tb.Fatalf("no report (%v): %v\n%s", err, rerr, out)
	}
	var rep boardverify.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		tb.Fatal(err)
	}
	return &rep, out, err
}

// TestVerifySimMatches: the sim board path equals the host reference on chair photos
// and dog.jpg (engine outputs, detections, mAP); exit status 0.
func TestVerifySimMatches(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sim board path and the host on photos; skipped in -short (tens of seconds under qemu)")
	}
	rep, out, err := runVerifyCLI(t, chairPhotos(t, 4, true))
	t.Log("\n" + out)
	if err != nil || !rep.Match || rep.Images != 5 {
		t.Fatalf("verify: %v, match %v, %d images", err, rep.Match, rep.Images)
	}
	if c, ok := rep.Accuracy.Board.Class("chair"); !ok || c.Positives == 0 {
		t.Errorf("chair not evaluated: %+v", rep.Accuracy.Board.Classes)
	}
	for _, im := range rep.PerImage {
		if im.ID == "dog" && (im.Detections == 0 || !im.OutputMatch) {
			t.Errorf("dog.jpg: %+v", im)
		}
	}
	if rep.Timing.ImagesPerSecond <= 0 || rep.Feed != agent.FeedDuringVerify {
		t.Errorf("timing %+v feed %q", rep.Timing, rep.Feed)
	}
}

// TestVerifySimCorruptWeight: one weight bit flipped in simulated DDR after preload
// fails verification with exit status 3 and names the layer and a channel.
func TestVerifySimCorruptWeight(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sim board path and the host on photos; skipped in -short (tens of seconds under qemu)")
	}
	m, err := qnnmo.LoadDir(filepath.Join(testutil.Fixture(t, "qnn-mo-pynq"), "params"))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := agent.EngineLayers(m)
	if err != nil {
		t.Fatal(err)
	}
	target := layers[2].Name
	simAgentHook = func(a *agent.Agent) error { return a.FlipWeightBit(target, 0, 5) }
	defer func() { simAgentHook = nil }()
	rep, out, err := runVerifyCLI(t, chairPhotos(t, 2, false))
	t.Log("\n" + out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitVerifyMismatch {
		t.Fatalf("exit %v, want status %d", err, exitVerifyMismatch)
	}
	first := rep.Outputs.First
	if rep.Match || first == nil || first.Stage != "engine" || first.Layer != 2 || first.LayerName != target || first.Channel < 0 {
		t.Fatalf("mismatch report %+v, want layer 2 (%s) and a channel", first, target)
	}
	if !strings.Contains(err.Error(), target) || !strings.Contains(out, "channel") {
		t.Errorf("error %q / summary does not name the layer and channel", err)
	}
	t.Logf("corrupted %s: first difference channel %d at (%d,%d), %d values in %v; localized in %.2f s",
		target, first.Channel, first.Y, first.X, first.Values, first.Channels, rep.Timing.LocalizeSeconds)
}

// TestVerifyOverHTTP: --board URL --token talks to a running agent's API (here the sim
// agent behind a loopback server, as the board's would be); a wrong token fails with a
// hint.
func TestVerifyOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sim agent and the host on photos; skipped in -short (tens of seconds under qemu)")
	}
	q := testutil.Fixture(t, "qnn-mo-pynq")
	cfg := agent.Defaults()
	cfg.Backend = agent.BackendSim
	cfg.Bitstream.Path = filepath.Join(q, "bitstream", "W1A3-pynqZ1-Z2.bit")
	cfg.Model.Dir = filepath.Join(q, "params")
	cfg.Model.Names = filepath.Join(q, "voc.names")
	cfg.Source.Input = filepath.Join(q, "images")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hub := web.NewHub(web.HubOptions{})
	defer hub.Close()
	srv := httptest.NewServer(web.NewServer(a, hub, web.ServerOptions{Token: "board-token"}))
	defer srv.Close()
	f := boardVerifyFlags{Options: boardverify.Options{Board: srv.URL, Model: cfg.Model.Dir, Names: cfg.Model.Names,
		Dataset: chairPhotos(t, 1, false), Token: "board-token", Thresh: 0.005}}
	var out bytes.Buffer
	if err := runBoardVerify(context.Background(), &out, slog.New(slog.DiscardHandler), f); err != nil || !strings.Contains(out.String(), "RESULT: the board matches") {
		t.Fatalf("%v\n%s", err, out.String())
	}
	f.Token = "wrong"
	if err := runBoardVerify(context.Background(), io.Discard, slog.New(slog.DiscardHandler), f); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("wrong token: %v", err)
	}
}
