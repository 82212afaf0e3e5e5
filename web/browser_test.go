package web

import (
	"context"
	"fmt"
	"image/color"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser test needs Debian's chromium (scripts/install-test-deps.sh installs it);
// it only runs the binary, so the package builds and vets without it.

// chromiumPath finds the browser: $CHROMIUM, /usr/bin/chromium, or chromium on PATH.
func chromiumPath() string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	p, _ := exec.LookPath("chromium")
	return p
}

// agentSim is a restartable server on a fixed address: a hub, the API and a goroutine
// publishing synthetic frames (a flat background with one chair box).
type agentSim struct {
	t    *testing.T
	addr string
	b    *fakeBackend

	mu   sync.Mutex
	stop func()
}

var browserBG = color.RGBA{40, 70, 100, 255}

func (a *agentSim) start() {
	a.t.Helper()
	var ln net.Listener
	waitFor(a.t, "the port to be free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", a.addr)
		return err == nil
	})
	hub := NewHub(HubOptions{})
	srv := httptest.NewUnstartedServer(NewServer(a.b, hub, ServerOptions{Token: "tok", Version: "browser-test"}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for id := uint64(1); ; id++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			f := solidFrame(id, 320, 240, browserBG)
			f.Stats.Dropped = id / 10
			hub.Publish(f)
		}
	}()
	a.mu.Lock()
	a.stop = func() { cancel(); <-done; hub.Close(); srv.Close() }
	a.mu.Unlock()
}

func (a *agentSim) close() {
	a.mu.Lock()
	stop := a.stop
	a.stop = nil
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func TestBrowserFeed(t *testing.T) {
	path := chromiumPath()
	if path == "" {
		t.Skip("chromium not found (apt-get install -y chromium, or set $CHROMIUM): browser test skipped")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := &fakeBackend{ready: true, thresh: 0.3, extra: map[string]any{"telemetry": map[string]any{ // the agent's keys
		"runqueue_waits": 812, "runqueue_p99_us": 41.5, "offcpu_engine_per_frame_ms": 18.42, "fpga_loads": 1,
		"irq_gic61": 12, "fpga_load_unavailable": "kprobe fpga_mgr_load: not found (kernel without the FPGA framework)"}}}
	agent := &agentSim{t: t, addr: addr, b: b}
	agent.start()
	t.Cleanup(agent.close)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 860),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	run := func(what string, action chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, action); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	run("open the page", chromedp.Navigate("http://"+addr+"/"))
	run("frames arrive", chromedp.Poll[chromedp.Void](`window.feedState && window.feedState.frames > 5`))

	// Pixels: the box's left edge (x=80 with a 2-pixel line) in the box colour, the inside
	// of the box in the background colour; with boxes off the edge shows the background.
	// pixel reads the canvas at frame coordinates; the page draws at display resolution.
	pixel := func(x, y int) color.RGBA {
		t.Helper()
		var r, g, b int
		s := eval(fmt.Sprintf(`(() => { const s = window.feedState.scale;
			return Array.from(document.getElementById("view").getContext("2d").getImageData(Math.floor(%d * s), Math.floor(%d * s), 1, 1).data).join(","); })()`, x, y))
		fmt.Sscanf(s, "%d,%d,%d", &r, &g, &b)
		return color.RGBA{uint8(r), uint8(g), uint8(b), 255}
	}
	if r := eval(`String(document.getElementById("view").width / window.feedState.scale)`); r != "320" {
		t.Fatalf("canvas width / scale = %s, want the frame's 320", r)
	}
	boxCol := boxColor(0) // darknet's colour for class 0, as the snapshot draws it
	if p := pixel(80, 120); colorDist(p, boxCol) > 40 {
		t.Errorf("box edge pixel %v, want box colour %v", p, boxCol)
	}
	if p := pixel(160, 150); colorDist(p, browserBG) > 30 {
		t.Errorf("pixel inside the box %v, want background %v", p, browserBG)
	}
	if text := eval(`document.getElementById("frameInfo").textContent`); !strings.Contains(text, "1 detections") {
		t.Errorf("frame info %q", text)
	}
	run("boxes off", chromedp.Click(chromedp.CSS("#showBoxes")))
	seen := eval(`String(window.feedState.frames)`)
	run("a frame drawn without boxes", chromedp.Poll[chromedp.Void](`window.feedState.frames > `+seen+` + 1`))
	if p := pixel(80, 120); colorDist(p, browserBG) > 30 {
		t.Errorf("with boxes off the edge pixel is %v, want background %v", p, browserBG)
	}
	run("boxes on", chromedp.Click(chromedp.CSS("#showBoxes")))

	// Counters update.
	frames0 := eval(`document.getElementById("c-frames").textContent`)
	run("counters move", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById("c-frames").textContent !== %q`, frames0)))
	for id, want := range map[string]string{"c-detect": "12.5", "c-infer": "41.0 ms", "c-viewers": "1", "c-source": "30.0"} {
		if got := eval(`document.getElementById("` + id + `").textContent`); got != want {
			t.Errorf("counter %s = %q, want %q", id, got, want)
		}
	}
	run("telemetry and recent chairs shown", chromedp.Poll[chromedp.Void](
		`!document.getElementById("telemetryCard").hidden && document.querySelectorAll("#recent img").length > 0`))
	// Telemetry rows carry labels, not the JSON keys.
	tel := eval(`document.getElementById("telemetry").innerText`)
	for _, want := range []string{"Run-queue wait, p99 (µs)", "Off-CPU, engine thread, per frame (ms)", "Interrupts, GIC 61", "Probe fpga_load unavailable"} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry table lacks %q:\n%s", want, tel)
		}
	}
	if strings.Contains(tel, "runqueue_p99_us") {
		t.Errorf("telemetry table shows raw keys:\n%s", tel)
	}

	// A failing source shows in the pill (the status poll runs every 2 s).
	b.mu.Lock()
	b.sourceErr = "open /dev/video0: no such device"
	b.mu.Unlock()
	run("source failure shown", chromedp.Poll[chromedp.Void](`document.getElementById("conn").textContent.includes("source failing")`))
	b.mu.Lock()
	b.sourceErr = ""
	b.mu.Unlock()
	run("source failure cleared", chromedp.Poll[chromedp.Void](`!document.getElementById("conn").textContent.includes("source failing")`))

	// Control from the page with the token.
	run("control", chromedp.Poll[chromedp.Void](`window.feedState.controlAllowed`))
	eval(`(() => { const t = document.getElementById("token"); t.value = "tok"; t.dispatchEvent(new Event("input"));
		const s = document.getElementById("thresh"); s.value = "0.62"; s.dispatchEvent(new Event("change")); return ""; })()`)
	run("control applied", chromedp.Poll[chromedp.Void](`document.getElementById("controlMsg").textContent === "applied"`))
	if st := b.Status(); st.Thresh < 0.615 || st.Thresh > 0.625 {
		t.Errorf("backend thresh %v after the slider, want 0.62", st.Thresh)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(os.TempDir()+"/feed.png", shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Restart the agent: the page shows reconnecting, then frames again.
	agent.close()
	run("reconnecting shown", chromedp.Poll[chromedp.Void](`document.getElementById("conn").className.includes("reconnecting") && !window.feedState.connected`))
	before := eval(`String(window.feedState.frames)`)
	agent.start()
	run("frames after restart", chromedp.Poll[chromedp.Void](fmt.Sprintf(`window.feedState.connected && window.feedState.frames > %s + 3`, before)))
	if cls := eval(`document.getElementById("conn").className`); !strings.Contains(cls, "live") {
		t.Errorf("connection pill %q after reconnect, want live", cls)
	}
	if p := pixel(80, 120); colorDist(p, boxCol) > 40 {
		t.Errorf("after restart the box edge pixel is %v, want %v", p, boxCol)
	}
}
