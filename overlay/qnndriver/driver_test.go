package qnndriver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// fixture is the model, its host detector and packed inputs, loaded once per test binary.
type fixture struct {
	model  *quant.Model
	det    *qnnmo.Network
	bit    string
	inputs map[string][]byte // image name -> packed engine input
	want   map[string][]byte // image name -> host engine output
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func loadFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := testutil.Fixture(tb, "qnn-mo-pynq")
	chairs := testutil.Fixture(tb, "chairs", "val")
	fixOnce.Do(func() { fix, fixErr = buildFixture(dir, chairs) })
	if fixErr != nil {
		tb.Fatal(fixErr)
	}
	return fix
}

func buildFixture(dir, chairs string) (*fixture, error) {
	m, err := qnnmo.LoadDir(filepath.Join(dir, "params"))
	if err != nil {
		return nil, err
	}
	det, err := qnnmo.NewNetwork(m, 0)
	if err != nil {
		return nil, err
	}
	f := &fixture{model: m, det: det, bit: filepath.Join(dir, "bitstream", "W1A3-pynqZ1-Z2.bit"),
		inputs: map[string][]byte{}, want: map[string][]byte{}}
	images := []string{filepath.Join(dir, "images", "dog.jpg")}
	jpgs, _ := filepath.Glob(filepath.Join(chairs, "*.jpg"))
	slices.Sort(jpgs)
	if !testing.Short() {
		images = append(images, jpgs[:min(3, len(jpgs))]...)
	}
	host, err := detector.NewQNN(det, nil, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range images {
		img, err := imageio.Load(p)
		if err != nil {
			return nil, err
		}
		in, err := host.Input(img)
		if err != nil {
			return nil, err
		}
		out, err := det.Engine.Run(in)
		if err != nil {
			return nil, err
		}
		f.inputs[filepath.Base(p)], f.want[filepath.Base(p)] = in, out
	}
	return f, nil
}

// board programs the fixture bitstream into a fresh simulated board.
func board(tb testing.TB, f *fixture, cfg sim.Config) *sim.Machine {
	tb.Helper()
	m, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := m.Program(context.Background(), f.bit, bitstream.Options{}); err != nil {
		tb.Fatal(err)
	}
	return m
}

func openDriver(tb testing.TB, f *fixture, m *sim.Machine, preload bool, timeout time.Duration) *qnndriver.Driver {
	tb.Helper()
	d, err := qnndriver.Open(qnndriver.Config{
		Bus:   overlay.NewCheckedBus(m, m.Design(), overlay.SLCRRange),
		Alloc: m.Allocator(), Design: m.Design(), Model: f.model,
		Preload: preload, Timeout: timeout, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func names(f *fixture, short bool) []string {
	var n []string
	for k := range f.inputs {
		n = append(n, k)
	}
	slices.Sort(n)
	if short {
		return n[:1]
	}
	return n
}

// TestBoardPathEqualsHost runs the engine layers of Tinier-YOLO through the driver and
// the simulated engine and requires the host engine's bytes exactly.
func TestBoardPathEqualsHost(t *testing.T) {
	f := loadFixture(t)
	for _, preload := range []bool{true, false} {
		if testing.Short() && !preload {
			continue // -short (qemu-user): one whole-network run
		}
		// The synchronous engine (BenchBoard's) computes the same as the background one.
		m := board(t, f, sim.Config{WriteBack: true, Synchronous: preload})
		d := openDriver(t, f, m, preload, 0)
		if d.InLayout() != f.det.Engine.InLayout() || d.OutLayout() != f.det.Engine.OutLayout() {
			t.Fatalf("layouts in %+v out %+v, host %+v %+v", d.InLayout(), d.OutLayout(), f.det.Engine.InLayout(), f.det.Engine.OutLayout())
		}
		for _, name := range names(f, testing.Short() || !preload) {
			got, err := d.Run(context.Background(), f.inputs[name])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if i := firstDiff(got, f.want[name]); i >= 0 {
				t.Fatalf("preload %v, %s: output differs from the host engine at byte %d of %d (record %d)", preload, name, i, len(got), i/192)
			}
		}
		if devSync, cpuSync := m.Allocator().SyncCounts(); devSync == 0 || cpuSync == 0 {
			t.Errorf("sync calls: %d for device, %d for CPU", devSync, cpuSync)
		}
	}
}

func firstDiff(a, b []byte) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestHangRecovers: a hang surfaces as a HangError naming the layer, and the next Run
// resets the PL through the SLCR and produces the right output.
func TestHangRecovers(t *testing.T) {
	skipShort(t)
	f := loadFixture(t)
	m := board(t, f, sim.Config{})
	d := openDriver(t, f, m, true, time.Second)
	jam, _ := m.Jam("BlackBoxJam_0")
	jam.InjectHang(1)
	in := f.inputs["dog.jpg"]
	_, err := d.Run(context.Background(), in)
	var herr *qnndriver.HangError
	if !errors.As(err, &herr) || !errors.Is(err, qnndriver.ErrHang) {
		t.Fatalf("got %v, want a HangError", err)
	}
	if !herr.DoInit || herr.Layer == "" || !strings.Contains(err.Error(), "KernelDim=3") {
		t.Errorf("hang report lacks the layer or registers: %v", err)
	}
	t.Log(err)
	got, err := d.Run(context.Background(), in)
	if err != nil {
		t.Fatalf("run after hang: %v", err)
	}
	if !bytes.Equal(got, f.want["dog.jpg"]) {
		t.Fatal("run after the reset differs from the host engine")
	}
}

// TestCancelRecovers: a caller's cancelled context ends the wait and the engine is reset.
func TestCancelRecovers(t *testing.T) {
	skipShort(t)
	f := loadFixture(t)
	m := board(t, f, sim.Config{})
	d := openDriver(t, f, m, true, 0)
	jam, _ := m.Jam("BlackBoxJam_0")
	jam.InjectHang(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Run(ctx, f.inputs["dog.jpg"]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if _, err := d.Run(context.Background(), f.inputs["dog.jpg"]); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

// TestLoadFailureAndWrongPart: a failed load reports the manager state and leaves no
// engine; a later load works. A bitstream for another part is refused.
func TestLoadFailureAndWrongPart(t *testing.T) {
	skipShort(t)
	f := loadFixture(t)
	m, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m.FailNextLoad(bitstream.StateWriteError)
	_, err = m.Program(context.Background(), f.bit, bitstream.Options{})
	var lerr *bitstream.LoadError
	if !errors.As(err, &lerr) || lerr.State != bitstream.StateWriteError || !errors.Is(err, bitstream.ErrLoadFailed) {
		t.Fatalf("got %v, want a LoadError in state %q", err, bitstream.StateWriteError)
	}
	t.Log(err)
	if _, err := m.Map(0x43C00000, 0x10000); !errors.Is(err, overlay.ErrOutsideDesign) {
		t.Fatalf("engine mapped after a failed load: %v", err)
	}
	if _, err := m.Program(context.Background(), f.bit, bitstream.Options{Part: "7z010clg400"}); !errors.Is(err, bitstream.ErrWrongPart) {
		t.Fatalf("wrong part: got %v", err)
	}
	if _, err := m.Program(context.Background(), f.bit, bitstream.Options{}); err != nil {
		t.Fatalf("load after failure: %v", err)
	}
	if m.State() != bitstream.StateOperating {
		t.Fatalf("state %q", m.State())
	}
	d := openDriver(t, f, m, false, 0)
	got, err := d.Run(context.Background(), f.inputs["dog.jpg"])
	if err != nil || !bytes.Equal(got, f.want["dog.jpg"]) {
		t.Fatalf("run after reload: %v (equal %v)", err, bytes.Equal(got, f.want["dog.jpg"]))
	}
}

// TestMissingHWH: the simulation needs the .hwh beside the .bit.
func TestMissingHWH(t *testing.T) {
	f := loadFixture(t)
	dir := t.TempDir()
	data, err := os.ReadFile(f.bit)
	if err != nil {
		t.Fatal(err)
	}
	bit := filepath.Join(dir, "x.bit")
	if err := os.WriteFile(bit, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := sim.New(sim.Config{})
	if _, err := m.Program(context.Background(), bit, bitstream.Options{}); err == nil || !strings.Contains(err.Error(), ".hwh") {
		t.Fatalf("got %v, want a missing .hwh error", err)
	}
}

// skipShort skips tests that need whole-network runs after a fault under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: whole-network runs after a fault are heavy under qemu-user")
	}
}

// TestResetNeedsSLCR: without the SLCR in the bus's ranges the default reset cannot run,
// and the next Run says so instead of using a hung engine.
func TestResetNeedsSLCR(t *testing.T) {
	f := loadFixture(t)
	m := board(t, f, sim.Config{})
	d, err := qnndriver.Open(qnndriver.Config{
		Bus: overlay.NewCheckedBus(m, m.Design()), Alloc: m.Allocator(), Design: m.Design(), Model: f.model,
		Timeout: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	jam, _ := m.Jam("BlackBoxJam_0")
	jam.InjectHang(1)
	if _, err := d.Run(context.Background(), f.inputs["dog.jpg"]); !errors.Is(err, qnndriver.ErrHang) {
		t.Fatalf("got %v, want a hang", err)
	}
	_, err = d.Run(context.Background(), f.inputs["dog.jpg"])
	if err == nil || !strings.Contains(err.Error(), "SLCR") || !strings.Contains(err.Error(), "reprogram") {
		t.Fatalf("got %v, want a failed reset naming the SLCR", err)
	}
	t.Log(err)
	d.Close()
	if _, err := d.Run(context.Background(), f.inputs["dog.jpg"]); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}

// The engine's time for Tinier-YOLO from the cycle model at the published design's
// FCLK0 (100 MHz in its .hwh).
func TestEngineEstimate(t *testing.T) {
	f := loadFixture(t)
	d := openDriver(t, f, board(t, f, sim.Config{}), true, 0)
	est, hz := d.EngineEstimate()
	if hz != 100e6 || est < 15*time.Millisecond || est > 30*time.Millisecond {
		t.Errorf("engine estimate %v at %.0f MHz, want about 21 ms at 100 MHz", est, hz/1e6)
	}
	t.Logf("Tinier-YOLO engine estimate: %v at %.0f MHz (QNN-MO notebook: 106 ms)", est, hz/1e6)
}

// Each sync hands over only the bytes a layer uses: about 11 MB of cache maintenance a
// Tinier-YOLO frame (the 8.3 MB input and 2 MB of conv1's output, then kilobytes),
// where whole-buffer syncs took 21 x 8.3 MB. The simulated write-back cache makes a
// range too short fail TestBoardPathEqualsHost.
func TestSyncsOnlyTheBytesUsed(t *testing.T) {
	f := loadFixture(t)
	m := board(t, f, sim.Config{WriteBack: true})
	d := openDriver(t, f, m, true, 0)
	name := names(f, true)[0]
	before := m.Allocator().SyncedBytes()
	if _, err := d.Run(context.Background(), f.inputs[name]); err != nil {
		t.Fatal(err)
	}
	synced := m.Allocator().SyncedBytes() - before
	in := d.InLayout().Size()
	t.Logf("synced %.1f MB in a frame (input %.1f MB)", float64(synced)/1e6, float64(in)/1e6)
	if synced > int64(in)*3/2 {
		t.Errorf("synced %d bytes in a frame; the input alone is %d", synced, in)
	}
}

// The split layers' part buffers are sized to those (late, small) layers, not to the
// largest activation: on a 512 MB board contiguous memory is scarce.
func TestSplitBuffersSizedToTheirLayers(t *testing.T) {
	f := loadFixture(t)
	m := board(t, f, sim.Config{})
	free0, _, _ := m.Allocator().Free()
	d := openDriver(t, f, m, false, 0)
	free1, _, live := m.Allocator().Free()
	act := d.InLayout().Size() // Tinier-YOLO's largest activation is its input
	t.Logf("%d buffers, %.1f MB (activations %.1f MB each)", live, float64(free0-free1)/1e6, float64(act)/1e6)
	if used := free0 - free1; used > 2*act+act/4 {
		t.Errorf("driver holds %d bytes of contiguous memory; the two activation buffers are %d", used, 2*act)
	}
}
