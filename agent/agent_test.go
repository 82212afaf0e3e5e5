package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/overlay/sim"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/web"
	"github.com/gorilla/websocket"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// skipSimPipelineInShort skips, in -short mode, a test that runs the sim agent's whole
// pipeline (or the float model) on the fixtures' photos: 10-80 s each as an ARM binary
// under qemu-user (scripts/test-arm.sh). The host run (no -short) keeps them.
func skipSimPipelineInShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the whole sim pipeline on the fixtures' photos; skipped in -short (qemu)")
	}
}

// simConfig is the -sim configuration on the shared fixtures.
func simConfig(tb testing.TB) *Config {
	tb.Helper()
	dir := testutil.Fixture(tb, "qnn-mo-pynq")
	c := Defaults()
	c.Backend = BackendSim
	c.Bitstream.Path = filepath.Join(dir, "bitstream", "W1A3-pynqZ1-Z2.bit")
	c.Model.Dir = filepath.Join(dir, "params")
	c.Model.Names = filepath.Join(dir, "voc.names")
	c.Source.Input = filepath.Join(dir, "images")
	noLoop := false
	c.Source.Loop = &noLoop
	c.Server.Listen = "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// hostReference is the model run by the host pipeline (the host reference as the
// accelerator), shared by the tests of one binary.
var hostReference = sync.OnceValues(func() (*detector.QNN, error) {
	dir := os.Getenv("AGENT_TEST_PARAMS")
	m, err := qnnmo.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	det, err := qnnmo.NewNetwork(m, 0)
	if err != nil {
		return nil, err
	}
	return detector.NewQNN(det, nil, 0)
})

// TestSimEndToEndEqualsHost runs the agent in sim mode (simulated bitstream load, the
// engine driver over the simulated bus, DDR and BlackBoxJam) on the fixtures' photos
// and requires the published detections to equal the host pipeline's on each image.
func TestSimEndToEndEqualsHost(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	t.Setenv("AGENT_TEST_PARAMS", cfg.Model.Dir)
	ctx := context.Background()
	a, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pub := newCollector()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Serve(sctx, pub) }()
	files, _ := listImages(cfg.SourceInput())
	waitFor(t, "every photo", func() bool { return pub.count() == len(files) })
	if !a.Ready() {
		t.Error("not ready while serving")
	}
	st := a.Status()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.Ready() {
		t.Error("still ready after the drain")
	}

	det, err := hostReference()
	if err != nil {
		t.Fatal(err)
	}
	thresh := float32(cfg.Model.Thresh)
	for i, path := range files {
		img, err := imageio.LoadWith(path, qnnmo.ImageDecoder)
		if err != nil {
			t.Fatal(err)
		}
		cands, err := det.Detect(img, thresh)
		if err != nil {
			t.Fatal(err)
		}
		want := boxes.Objects(cands, thresh, a.Names(), img.W, img.H)
		got := pub.frames[i].Detections
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("%s: %d detections, host %d", filepath.Base(path), len(got), len(want))
		}
		for k := range want {
			w := web.Box{Class: want[k].Name, ClassID: want[k].Class, Score: want[k].Score, Box: want[k].Box}
			if got[k] != w {
				t.Errorf("%s detection %d: agent %+v, host %+v", filepath.Base(path), k, got[k], w)
			}
		}
		if f := pub.frames[i]; f.Image.Bounds().Dx() != img.W || f.Stats.InferenceMS <= 0 || f.Stats.Stages[StageFirst] <= 0 {
			t.Errorf("%s: frame %dx? stats %+v", filepath.Base(path), f.Image.Bounds().Dx(), f.Stats)
		}
		t.Logf("%s: %v", filepath.Base(path), got)
	}

	if st.Backend != "sim" || st.Bitstream["part"] != "7z020clg400" || len(st.Bitstream["sha256"].(string)) != 64 ||
		len(st.Model["sha256"].(string)) != 64 || !st.Ready {
		t.Errorf("status identity: %+v", st)
	}
	for _, s := range []string{StageDecode, StageLetterbox, StageFirst, StageEngine, StageLast, StageNMS, StagePublish} {
		if _, ok := st.StagesMS[s]; !ok {
			t.Errorf("status lacks stage %s: %v", s, st.StagesMS)
		}
	}
	var m bytes.Buffer
	if err := a.WriteMetrics(&m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# TYPE pynq_agent_frames_out_total counter\npynq_agent_frames_out_total 3\n",
		`pynq_agent_stage_seconds{stage="engine"}`, "# HELP pynq_agent_fps_in ", `pynq_agent_info{version="dev",backend="sim"} 1`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
	checkPromText(t, m.String())
}

// checkPromText checks the exposition format: every sample's family has HELP and TYPE
// before it, and sample lines are "name{labels} value".
func checkPromText(tb testing.TB, text string) {
	tb.Helper()
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			typed[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		// A histogram's samples are its family name + _bucket, _sum, _count.
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && typed[b] {
				base = b
			}
		}
		if !typed[base] {
			tb.Errorf("sample without TYPE: %q", line)
		}
		if f := strings.Fields(line); len(f) != 2 {
			tb.Errorf("bad sample line %q", line)
		}
	}
}

// TestSimControlAndLED: control changes are validated and applied; a status LED on an
// AXI GPIO of the overlay is on while running and the sim GPIO model sees it.
func TestSimControlAndLED(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	cfg.Bitstream.Path = overlayWithLEDs(t, cfg.Bitstream.Path)
	cfg.LED = LEDConfig{Instance: "leds", Channel: 1, Pin: 2}
	var logs syncBuffer
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.led == nil {
		t.Fatalf("LED not opened: %s", logs.String())
	}
	gpio, ok := a.machine.GPIO("leds")
	if !ok {
		t.Fatal("the simulated overlay has no leds GPIO")
	}
	bad := float32(2)
	if err := a.Control(web.Control{Thresh: &bad}); err == nil {
		t.Error("thresh 2 accepted")
	}
	chair := []string{"chair"}
	if err := a.Control(web.Control{Classes: &chair}); err != nil {
		t.Fatal(err)
	}
	bogus := []string{"unicorn"}
	if err := a.Control(web.Control{Classes: &bogus}); err == nil {
		t.Error("unknown class accepted")
	}
	pub := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, pub) }()
	waitFor(t, "a frame", func() bool { return pub.count() > 0 })
	if lv, _ := gpio.Outputs(0); lv&(1<<2) == 0 && !a.led.blinking {
		t.Errorf("LED off while running (outputs %#x)", lv)
	}
	cancel()
	<-done
	a.Close()
	if lv, _ := gpio.Outputs(0); lv&(1<<2) != 0 {
		t.Errorf("LED on after stop (outputs %#x)", lv)
	}
	if st := a.Status(); len(st.Classes) != 1 || st.Classes[0] != "chair" {
		t.Errorf("status classes %v", st.Classes)
	}
	for _, f := range pub.frames {
		for _, d := range f.Detections {
			if d.Class != "chair" {
				t.Errorf("class filter let %s through", d.Class)
			}
		}
	}
}

// TestLEDAbsentIsNotFatal: the W1A3 overlay has no GPIO; naming one logs and starts.
func TestLEDAbsentIsNotFatal(t *testing.T) {
	cfg := simConfig(t)
	cfg.LED = LEDConfig{Instance: "leds", Channel: 1}
	var logs bytes.Buffer
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.led != nil || !strings.Contains(logs.String(), "status LED unavailable") {
		t.Errorf("led %v, logs %s", a.led, logs.String())
	}
}

// overlayWithLEDs copies the fixture overlay into a temp dir with an AXI GPIO "leds"
// added to its .hwh (module and address), as the base overlay has one. It is declared
// bidirectional: the sim's GPIO model ignores C_ALL_OUTPUTS (its pins start as inputs),
// while the driver skips the direction register of output-only channels.
func overlayWithLEDs(tb testing.TB, bit string) string {
	tb.Helper()
	dir := tb.TempDir()
	data, err := os.ReadFile(bit)
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, "ov.bit")
	os.WriteFile(out, data, 0o644)
	hwh, err := os.ReadFile(strings.TrimSuffix(bit, ".bit") + ".hwh")
	if err != nil {
		tb.Fatal(err)
	}
	s := string(hwh)
	jam := `INSTANCE="BlackBoxJam_0" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control"/>`
	i := strings.Index(s, jam)
	if i < 0 {
		tb.Fatal("fixture .hwh changed: no BlackBoxJam MEMRANGE")
	}
	i += len(jam)
	s = s[:i] + "\n" + `        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_BASEADDR" BASEVALUE="0x41210000" HIGHNAME="C_HIGHADDR" HIGHVALUE="0x4121FFFF" INSTANCE="leds" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI"/>` + s[i:]
	j := strings.LastIndex(s, "</MODULES>")
	s = s[:j] + `<MODULE FULLNAME="/leds" INSTANCE="leds" MODTYPE="axi_gpio" VLNV="xilinx.com:ip:axi_gpio:2.0"><PARAMETERS>` +
		`<PARAMETER NAME="C_GPIO_WIDTH" VALUE="4"/></PARAMETERS></MODULE>` + "\n" + s[j:]
	os.WriteFile(filepath.Join(dir, "ov.hwh"), []byte(s), 0o644)
	return out
}

// TestBoardRefusals: the board backend refuses to start when not root, for a .bit of
// another part, and for a .hwh without the engine; each message says what to do.
func TestBoardRefusals(t *testing.T) {
	base := simConfig(t)
	base.Backend = BackendBoard
	defer func(f func() int) { geteuid = f }(geteuid)
	programmed := false
	defer func(p bitstream.Programmer) { boardProgrammer = p }(boardProgrammer)
	boardProgrammer = programmerFunc(func() { programmed = true })

	geteuid = func() int { return 1000 }
	if _, err := New(context.Background(), base, quietLog()); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("not root: %v", err)
	}
	geteuid = func() int { return 0 }

	dir := t.TempDir()
	data, _ := os.ReadFile(base.Bitstream.Path)
	wrong := bytes.Replace(data, []byte("7z020clg400"), []byte("7z010clg400"), 1)
	os.WriteFile(filepath.Join(dir, "z1.bit"), wrong, 0o644)
	cfg := *base
	cfg.Bitstream.Path = filepath.Join(dir, "z1.bit")
	cfg.Bitstream.HWH = strings.TrimSuffix(base.Bitstream.Path, ".bit") + ".hwh"
	_, err := New(context.Background(), &cfg, quietLog())
	if !errors.Is(err, bitstream.ErrWrongPart) || !strings.Contains(err.Error(), "7z010clg400") {
		t.Errorf("wrong part: %v", err)
	}

	noEngine := filepath.Join(dir, "plain.hwh")
	os.WriteFile(noEngine, []byte(`<?xml version="1.0"?><EDKSYSTEM><SYSTEMINFO DEVICE="7z020" PACKAGE="clg400"/><MODULES>`+
		`<MODULE FULLNAME="/ps7" INSTANCE="ps7" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5"/></MODULES></EDKSYSTEM>`), 0o644)
	cfg = *base
	cfg.Bitstream.HWH = noEngine
	_, err = New(context.Background(), &cfg, quietLog())
	if err == nil || !strings.Contains(err.Error(), "BlackBoxJam") {
		t.Errorf("hwh without engine: %v", err)
	}
	if programmed {
		t.Error("a refused start programmed the FPGA")
	}
}

type programmerFunc func()

func (f programmerFunc) Program(context.Context, string, bitstream.Options) (*bitstream.Result, error) {
	f()
	return nil, errors.New("fake programmer")
}

func TestNoModelIsClear(t *testing.T) {
	c := Defaults()
	c.Backend = BackendSim
	_, err := New(context.Background(), c, quietLog())
	if err == nil || !strings.Contains(err.Error(), "model.dir") {
		t.Errorf("got %v", err)
	}
}

// TestRunDrainsOnCancel runs the whole daemon (HTTP server, hub, pipeline) and stops it
// like SIGTERM does.
func TestRunDrainsOnCancel(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	waitFor(t, "a published frame", func() bool { return strings.Contains(logs.String(), "frame source running") })
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("logs: %s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// TestFeedOverWebSocket runs the daemon (Run: HTTP server, hub, pipeline on the
// simulated engine) and checks that a Go WebSocket client receives frames whose
// detections equal the host pipeline's (`pynqctl detect`'s path) on the same image.
func TestFeedOverWebSocket(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	cfg.Source.Input = filepath.Join(cfg.SourceInput(), "dog.jpg")
	loop := true
	cfg.Source.Loop = &loop
	t.Setenv("AGENT_TEST_PARAMS", cfg.Model.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var addr string
	waitFor(t, "the server", func() bool {
		m := regexp.MustCompile(`msg=serving addr=(\S+)`).FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	var meta struct {
		Type       string    `json:"type"`
		Width      int       `json:"width"`
		Detections []web.Box `json:"detections"`
		Bytes      int       `json:"bytes"`
	}
	for frames := 0; frames < 2; {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if kind == websocket.BinaryMessage {
			if _, err := imageio.DecodeRGBA(bytes.NewReader(data)); err != nil {
				t.Fatalf("feed JPEG: %v", err)
			}
			frames++
			continue
		}
		var probe struct{ Type string }
		json.Unmarshal(data, &probe)
		if probe.Type == "frame" {
			if err := json.Unmarshal(data, &meta); err != nil {
				t.Fatal(err)
			}
		}
	}
	det, err := hostReference()
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageio.LoadWith(cfg.Source.Input, qnnmo.ImageDecoder)
	if err != nil {
		t.Fatal(err)
	}
	thresh := float32(cfg.Model.Thresh)
	cands, _ := det.Detect(img, thresh)
	names, _ := boxes.LoadNames(cfg.Model.Names)
	want := boxes.Objects(cands, thresh, names, img.W, img.H)
	if meta.Width != img.W || len(meta.Detections) != len(want) || len(want) == 0 {
		t.Fatalf("feed frame %dx? with %v, host %d detections", meta.Width, meta.Detections, len(want))
	}
	for k, w := range want {
		if g := meta.Detections[k]; g != (web.Box{Class: w.Name, ClassID: w.Class, Score: w.Score, Box: w.Box}) {
			t.Errorf("detection %d: feed %+v, host %+v", k, g, w)
		}
	}
	// The published QNN-MO result (stb_image decoding), as `pynqctl detect --model` prints it.
	got := map[string]int{}
	for _, d := range meta.Detections {
		got[d.Class] = int(math.Round(float64(d.Score) * 100))
	}
	if want := map[string]int{"dog": 86, "car": 86, "bicycle": 78}; !maps.Equal(got, want) {
		t.Errorf("dog.jpg in the feed: %v %%, published %v %%", got, want)
	}
	t.Logf("feed: %+v", meta.Detections)
}

// useSimAsBoard puts the simulated board where the board backend expects the kernel
// and the hardware, until the test ends.
func useSimAsBoard(t *testing.T, machine *sim.Machine) {
	t.Cleanup(func(f func() int, p bitstream.Programmer, o func() (overlay.Bus, dma.Allocator, error), w func([]string) (plWatcher, error)) func() {
		return func() { geteuid, boardProgrammer, openBoard, watchBoardPL = f, p, o, w }
	}(geteuid, boardProgrammer, openBoard, watchBoardPL))
	geteuid = func() int { return 0 }
	boardProgrammer = machine
	openBoard = func() (overlay.Bus, dma.Allocator, error) { return machine, machine.Allocator(), nil }
	watchBoardPL = func([]string) (plWatcher, error) { return watchSimPL(machine), nil }
}

// TestBoardPathOnSimulatedHardware runs the board backend's start-up (root check, part
// and engine checks, FPGA manager load, PL clocks from the .hwh, /dev/mem-style bus and
// the board allocator) with the simulated board standing in for the kernel and the
// hardware, and requires the same detections as the host pipeline.
func TestBoardPathOnSimulatedHardware(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	cfg.Backend = BackendBoard
	t.Setenv("AGENT_TEST_PARAMS", cfg.Model.Dir)
	machine, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	useSimAsBoard(t, machine)

	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if machine.Loads() != 1 {
		t.Errorf("bitstream loaded %d times", machine.Loads())
	}
	clocks, err := overlay.OpenClocks(machine)
	if err != nil {
		t.Fatal(err)
	}
	defer clocks.Close()
	want0 := machine.Design().Clocks[0]
	if c, err := clocks.FCLK(0); err != nil || c.Divisor0 != want0.Divisor0 || c.Divisor1 != want0.Divisor1 || c.Source != want0.Source {
		t.Errorf("FCLK0 after start-up: %+v %v, want the design's %+v", c, err, want0)
	}
	pub := serveFrames(t, a, 1)
	det, err := hostReference()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := listImages(cfg.SourceInput())
	img, _ := imageio.LoadWith(files[0], qnnmo.ImageDecoder)
	cands, _ := det.Detect(img, float32(cfg.Model.Thresh))
	want := boxes.Objects(cands, float32(cfg.Model.Thresh), a.Names(), img.W, img.H)
	if got := pub.frames[0].Detections; len(got) != len(want) || len(want) == 0 || got[0].Score != want[0].Score || got[0].Box != want[0].Box {
		t.Errorf("board path on the simulation: %v, host %v", got, want)
	}
}

// TestFloatModel runs a float darknet model (Yolo-Fastest, COCO) through the agent's
// single-stage CPU path and compares with detector.Float on the same image.
func TestFloatModel(t *testing.T) {
	skipSimPipelineInShort(t)
	dir := testutil.Fixture(t, "yolo-fastest")
	cfg := simConfig(t)
	cfg.Model = ModelConfig{Kind: ModelDarknet, Cfg: filepath.Join(dir, "yolo-fastest-1.1.cfg"),
		Weights: filepath.Join(dir, "yolo-fastest-1.1.weights"), Names: filepath.Join(dir, "coco.names"), Thresh: 0.25, NMS: 0.45}
	cfg.Source.Input = filepath.Join(cfg.SourceInput(), "dog.jpg")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pub := serveFrames(t, a, 1)
	fm := a.model.(*detector.Float)
	ref, err := detector.NewFloat(fm.Model(), 0, 0.45)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := imageio.Load(cfg.Source.Input)
	cands, err := ref.Detect(img, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	want := boxes.Objects(cands, 0.25, a.Names(), img.W, img.H)
	got := pub.frames[0].Detections
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("float path %v, reference %v", got, want)
	}
	for k := range want {
		if got[k].Class != want[k].Name || got[k].Score != want[k].Score || got[k].Box != want[k].Box {
			t.Errorf("detection %d: %+v, reference %+v", k, got[k], want[k])
		}
	}
	if st := a.Status(); st.Backend != "cpu" || st.StagesMS[StageEngine] <= 0 {
		t.Errorf("status %+v", st)
	}
	t.Log(got)
}

// TestEmulatedBackend: backend "emulated" loads the bitstream through the kernel's FPGA
// manager (here bitstream.Manager on a sysfs tree in a temporary directory), then runs
// the engine on the simulated PL; a load the kernel fails stops start-up with the
// manager's state and advice, before any simulated PL exists.
func TestEmulatedBackend(t *testing.T) {
	skipSimPipelineInShort(t)
	cfg := simConfig(t)
	cfg.Backend = BackendEmulated
	root := t.TempDir()
	dev := filepath.Join(root, "sys/class/fpga_manager/fpga0")
	for _, d := range []string{dev, filepath.Join(root, "lib/firmware")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func(f func() int, p bitstream.Programmer, w func([]string) (plWatcher, error)) func() {
		return func() { geteuid, boardProgrammer, watchBoardPL = f, p, w }
	}(geteuid, boardProgrammer, watchBoardPL))
	geteuid = func() int { return 0 }
	mgr := &bitstream.Manager{SysfsRoot: filepath.Join(root, "sys"), FirmwareDir: filepath.Join(root, "lib/firmware")}
	boardProgrammer = mgr
	watchBoardPL = func([]string) (plWatcher, error) { return mgr.Watch(nil) }

	for _, f := range []string{"flags", "firmware"} {
		os.WriteFile(filepath.Join(dev, f), nil, 0o644)
	}
	os.WriteFile(filepath.Join(dev, "state"), []byte("write error\n"), 0o644)
	if _, err := New(context.Background(), cfg, quietLog()); !errors.Is(err, bitstream.ErrLoadFailed) ||
		!strings.Contains(err.Error(), `"write error"`) {
		t.Errorf("failed kernel load: %v", err)
	}

	os.WriteFile(filepath.Join(dev, "state"), []byte("operating\n"), 0o644)
	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bin := bitstream.BinName(cfg.Bitstream.Path)
	if fw, _ := os.ReadFile(filepath.Join(dev, "firmware")); string(fw) != bin {
		t.Errorf("firmware written to the manager: %q, want %q", fw, bin)
	}
	if _, err := os.Stat(filepath.Join(root, "lib/firmware", bin)); err != nil {
		t.Errorf("the .bin in the firmware directory: %v", err)
	}
	if a.machine == nil || a.machine.Loads() != 1 {
		t.Fatalf("simulated PL not programmed once")
	}
	pub := serveFrames(t, a, 1)
	if len(pub.frames[0].Detections) == 0 {
		t.Errorf("no detections on the emulated board")
	}
}
