package boardvm_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"image/jpeg"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/web"
	"github.com/gorilla/websocket"
)

// TestBoard runs the agent on the emulated board as on a PYNQ-Z2 and checks what only a
// real kernel shows: deploy with systemd and sudo, the FPGA manager (the project's
// pynq_fpga module), the vivid camera through V4L2, eBPF telemetry on the ARM32 kernel,
// verification over the network, and rollback. The PL is the simulation inside the
// agent (backend "emulated"). The subtests share one board and run in order; after a
// failed deploy the rest are skipped.
func TestBoard(t *testing.T) {
	e := newEnv(t)
	b := e.b
	cfg := e.agentConfig(t, "agent.toml", "")
	if !t.Run("deploy", func(t *testing.T) {
		start := time.Now()
		out := e.must(t, 15*time.Minute, true, e.deployArgs(cfg)...)
		t.Logf("deploy (%s):\n%s", time.Since(start).Round(time.Second), out)
		status := e.must(t, 2*time.Minute, true, "status")
		if !strings.Contains(status, "active") || !strings.Contains(status, "committed") {
			t.Errorf("status does not show the unit active and the switch committed:\n%s", status)
		}
		logs := e.must(t, 2*time.Minute, true, "logs")
		if !strings.Contains(logs, "engine ready") {
			t.Errorf("logs show no engine start:\n%s", logs)
		}
		if st := b.status(t); st.Backend != "emulated" {
			t.Errorf("backend %q, want emulated", st.Backend)
		}
	}) {
		t.Skip("the agent is not deployed: the other checks need it")
	}
	t.Run("fpga-manager-load", func(t *testing.T) { testFPGALoad(t, e) })
	t.Run("feed", func(t *testing.T) { testFeed(t, b) })
	t.Run("v4l2", func(t *testing.T) { testV4L2(t, b) })
	t.Run("verify", func(t *testing.T) { testVerify(t, e) })
	t.Run("telemetry", func(t *testing.T) { testTelemetry(t, e) })
	t.Run("fpga-manager-failing-load", func(t *testing.T) { testFailingLoad(t, b) })
	t.Run("rollback-bad-release", func(t *testing.T) { testBadRelease(t, e) })
	t.Run("rollback-ssh-cut", func(t *testing.T) { testSSHCut(t, e) })
}

// testFPGALoad: the kernel's FPGA manager received exactly the .bin of the .bit: the
// module's read-back of size and CRC-32 equals the host's conversion.
func testFPGALoad(t *testing.T, e *env) {
	b := e.b
	bin := filepath.Join(t.TempDir(), "x.bin")
	if _, err := bitstream.ConvertFile(e.bitstream(), bin, bitstream.Options{}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(bin)
	dev := "/sys/class/fpga_manager/fpga0/"
	got := strings.Fields(b.mustSSH(t, "cat "+dev+"state "+dev+"load_size "+dev+"load_crc32 "+dev+"firmware"))
	// state is two words at most ("operating" is one).
	if len(got) != 4 || got[0] != "operating" {
		t.Fatalf("fpga manager after deploy: %q", got)
	}
	if got[1] != strconv.Itoa(len(want)) || got[2] != fmt.Sprintf("%08x", crc32.ChecksumIEEE(want)) {
		t.Errorf("loaded %s bytes crc %s, the host's .bin is %d bytes crc %08x", got[1], got[2], len(want), crc32.ChecksumIEEE(want))
	}
	if got[3] != bitstream.BinName(e.bitstream()) {
		t.Errorf("firmware %q, want %q", got[3], bitstream.BinName(e.bitstream()))
	}
	t.Logf("FPGA manager: %s, %s bytes, crc32 %s", got[0], got[1], got[2])
}

// testFeed: the live feed over the forwarded port, in a WebSocket client on the host:
// frames of the vivid camera at the negotiated size, with the boxes of the chair model
// (the detection threshold lowered through /api/control so that its test pattern gives
// some).
func testFeed(t *testing.T, b *board) {
	b.control(t, `{"thresh":0.02}`)
	defer b.control(t, `{"thresh":0.3}`)
	c, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:"+b.httpPort+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	end := time.Now().Add(3 * time.Minute)
	frames, boxes := 0, 0
	for boxes == 0 || frames < 3 {
		c.SetReadDeadline(end)
		var meta struct {
			Type          string
			Width, Height int
			Detections    []web.Box
		}
		if err := c.ReadJSON(&meta); err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		if meta.Type != "frame" {
			continue
		}
		kind, jpg, err := c.ReadMessage()
		if err != nil || kind != websocket.BinaryMessage {
			t.Fatalf("frame image: %v (message type %d)", err, kind)
		}
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil {
			t.Fatalf("frame JPEG: %v", err)
		}
		if r := img.Bounds(); r.Dx() != 640 || r.Dy() != 480 || meta.Width != 640 || meta.Height != 480 {
			t.Errorf("frame %dx%d (meta %dx%d), want the camera's 640x480", r.Dx(), r.Dy(), meta.Width, meta.Height)
		}
		frames++
		for _, d := range meta.Detections {
			if d.Class != "chair" || d.Score < 0.02 || d.Box[2] <= d.Box[0] {
				t.Errorf("detection %+v", d)
			}
		}
		boxes += len(meta.Detections)
	}
	t.Logf("feed: %d frames, %d boxes", frames, boxes)
}

// testV4L2: the camera's format as negotiated, a steady frame rate at source.fps, and
// recovery when the device disappears and comes back.
func testV4L2(t *testing.T, b *board) {
	if j := b.journal(t); !strings.Contains(j, "/dev/video0 (vivid") || !strings.Contains(j, "640x480 YUYV") {
		t.Errorf("the journal does not show the negotiated format (/dev/video0 (vivid…, 640x480 YUYV)):\n%s", j)
	}
	framesIn := func() float64 {
		v, _ := strconv.ParseFloat(b.metric(t, "pynq_agent_frames_in_total"), 64)
		return v
	}
	n0, t0 := framesIn(), time.Now()
	time.Sleep(20 * time.Second)
	rate := (framesIn() - n0) / time.Since(t0).Seconds()
	t.Logf("frames in: %.2f/s at source.fps = 1", rate)
	if rate < 0.7 || rate > 1.3 {
		t.Errorf("frames in at %.2f/s, want about source.fps = 1", rate)
	}

	// The camera goes away: the module when nothing holds it, else its device unbound
	// (an unplugged USB camera), which removes /dev/video0 under the open file.
	gone := "modprobe -r vivid"
	back := "modprobe vivid"
	if _, err := b.ssh(gone); err != nil {
		gone = "echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind"
		back = "echo vivid.0 >/sys/bus/platform/drivers/vivid/bind"
		t.Logf("vivid is in use (the agent holds /dev/video0): unbinding the device instead")
		b.mustSSH(t, gone)
	}
	waitFor(t, "the agent to report the lost camera", time.Minute, func() (bool, string) {
		st := b.status(t)
		return st.SourceError != "", st.Source
	})
	t.Logf("camera gone: %s", b.status(t).SourceError)
	b.mustSSH(t, back)
	n1 := framesIn()
	waitFor(t, "frames again after the camera came back", 2*time.Minute, func() (bool, string) {
		st := b.status(t)
		return st.SourceError == "" && framesIn() > n1+2, st.SourceError
	})
}

// testVerify: pynqctl verify --board against the agent through the forwarded port:
// engine outputs bit-exact with the host reference, same detections.
func testVerify(t *testing.T, e *env) {
	val := filepath.Join(e.fix, "chairs", "val")
	list := filepath.Join(t.TempDir(), "chairs.txt")
	if err := os.WriteFile(list, []byte(strings.Join(chairPhotos(t, val, 3), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "verify.json")
	model := filepath.Join(repoRoot, "agent/demomodel/tinier-yolo-chair")
	out := e.must(t, 10*time.Minute, false, "verify", "--board", "127.0.0.1:"+e.b.httpPort,
		"--model", model, "--names", filepath.Join(model, "chair.names"),
		"--dataset", list, "--gt-names", filepath.Join(e.fix, "chairs", "classes.names"), "--output", report)
	t.Logf("verify (exit 0: engine outputs and detections identical):\n%s", lastLines(out, 8))
}

// chairPhotos returns the first n photos of a darknet-labelled directory with a chair.
func chairPhotos(t *testing.T, dir string, n int) []string {
	names, err := os.ReadFile(filepath.Join(dir, "..", "classes.names"))
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(slices.Index(strings.Fields(string(names)), "chair"))
	labels, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	var out []string
	for _, l := range labels {
		data, _ := os.ReadFile(l)
		if strings.HasPrefix(string(data), id+" ") || strings.Contains(string(data), "\n"+id+" ") {
			out = append(out, strings.TrimSuffix(l, ".txt")+".jpg")
		}
		if len(out) == n {
			break
		}
	}
	if len(out) < n {
		t.Fatalf("%s: fewer than %d photos with a chair", dir, n)
	}
	return out
}

// testTelemetry: the eBPF telemetry on the ARM32 kernel with the BPF JIT off (Debian's
// default) and on: run-queue latency and off-CPU time recorded, every probe loaded;
// the agent's CPU time per frame with telemetry off, JIT off and JIT on (relative
// figures: the CPU is emulated); then a bitstream load by another program, which the
// FPGA-load probe times and which makes the agent stop using the engine.
func testTelemetry(t *testing.T, e *env) {
	b := e.b
	if jit := b.mustSSH(t, "sysctl -n net.core.bpf_jit_enable"); jit != "0" {
		t.Fatalf("net.core.bpf_jit_enable is %s, Debian's default is 0", jit)
	}
	defer b.mustSSH(t, "sysctl -qw net.core.bpf_jit_enable=0")
	for _, jit := range []string{"0", "1"} {
		if jit != "0" { // the deployed agent started with Debian's default, JIT off
			b.mustSSH(t, "sysctl -qw net.core.bpf_jit_enable="+jit)
			b.restartAgent(t)
		}
		cpu, fps := b.cpuPerFrame(t, b.mustSSH(t, "systemctl show -p MainPID --value pynq-agent"))
		st := b.status(t)
		tel, _ := st.Extra["telemetry"].(map[string]any)
		for k, v := range tel {
			if strings.HasSuffix(k, "_unavailable") {
				t.Errorf("JIT %s: %s: %v", jit, k, v)
			}
		}
		offcpu := 0.0
		for k, v := range tel {
			if strings.HasPrefix(k, "offcpu_") && strings.HasSuffix(k, "_per_frame_ms") {
				offcpu += v.(float64)
			}
		}
		waits, _ := tel["runqueue_waits"].(float64)
		if waits == 0 || offcpu == 0 {
			t.Errorf("JIT %s: run-queue waits %v, off-CPU ms per frame %v; telemetry %v", jit, waits, offcpu, tel)
		}
		t.Logf("telemetry on, JIT %s: agent CPU %.0f ms/frame at %.2f frames/s; run-queue waits %v (p50 %v µs), off-CPU %.1f ms/frame",
			jit, cpu, fps, waits, tel["runqueue_p50_us"], offcpu)
	}
	// The same agent without telemetry, by hand beside the stopped unit.
	cfg, err := os.ReadFile(e.agentConfig(t, "notel.toml", "[telemetry]\nenabled = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	abs := strings.NewReplacer(`"W1A3`, `"/opt/pynq-agent/current/W1A3`, `"model`, `"/opt/pynq-agent/current/model`).Replace(string(cfg))
	b.mustSSH(t, "systemctl stop pynq-agent && cat >/run/notel.toml <<'EOF'\n"+abs+"EOF")
	pid := b.mustSSH(t, "nohup /opt/pynq-agent/current/pynq-agent -config /run/notel.toml >/run/notel.log 2>&1 </dev/null & echo $!")
	b.waitHealthy(t, 4*time.Minute)
	cpu, fps := b.cpuPerFrame(t, pid)
	t.Logf("telemetry off: agent CPU %.0f ms/frame at %.2f frames/s", cpu, fps)
	b.mustSSH(t, "kill "+pid+"; while kill -0 "+pid+" 2>/dev/null; do sleep 1; done")
	b.restartAgent(t)

	// Another program loads a bitstream (slowly, through the module's delay).
	b.mustSSH(t, "echo 300 >/sys/module/pynq_fpga/parameters/delay_ms && echo W1A3-pynqZ1-Z2.bin >/sys/class/fpga_manager/fpga0/firmware; echo 0 >/sys/module/pynq_fpga/parameters/delay_ms")
	waitFor(t, "the FPGA-load probe to time the load", time.Minute, func() (bool, string) {
		tel, _ := b.status(t).Extra["telemetry"].(map[string]any)
		loads, _ := tel["fpga_loads"].(float64)
		ms, _ := tel["fpga_load_last_ms"].(float64)
		return loads == 1 && ms >= 300 && ms < 5000, fmt.Sprint(tel)
	})
	waitFor(t, "the agent to stop using the reprogrammed PL", 2*time.Minute, func() (bool, string) {
		code, body, _ := b.get("/healthz")
		return code != 200 && strings.Contains(body, "FPGA-load probe"), body
	})
	b.restartAgent(t)
}

// cpuPerFrame measures a running agent (process pid) for 25 s after 5 s of warm-up:
// its user+system CPU time per published frame, and frames per second.
func (b *board) cpuPerFrame(t *testing.T, pid string) (cpuMS, fps float64) {
	t.Helper()
	sample := func() (ticks, frames float64, at time.Time) {
		f := strings.Fields(b.mustSSH(t, "cat /proc/"+pid+"/stat"))
		u, _ := strconv.ParseFloat(f[13], 64)
		s, _ := strconv.ParseFloat(f[14], 64)
		n, _ := strconv.ParseFloat(b.metric(t, "pynq_agent_frames_out_total"), 64)
		return u + s, n, time.Now()
	}
	time.Sleep(5 * time.Second)
	c0, n0, t0 := sample()
	time.Sleep(25 * time.Second)
	c1, n1, t1 := sample()
	if n1 <= n0 {
		t.Fatalf("no frames in 25 s")
	}
	return (c1 - c0) * 10 / (n1 - n0), (n1 - n0) / t1.Sub(t0).Seconds() // USER_HZ = 100
}

// testFailingLoad: a load the FPGA manager fails (pynq_fpga fail=write) stops the
// agent at start-up with the kernel's state and advice in the journal, and no daemon
// half-started behind the port; with the fault gone it starts again.
func testFailingLoad(t *testing.T, b *board) {
	b.mustSSH(t, "echo write >/sys/module/pynq_fpga/parameters/fail && systemctl restart pynq-agent || true")
	defer b.mustSSH(t, "echo >/sys/module/pynq_fpga/parameters/fail")
	waitFor(t, "the start-up to fail", 3*time.Minute, func() (bool, string) {
		j := b.journal(t)
		return strings.Contains(j, `fpga manager state "write error"`), lastLines(j, 5)
	})
	j := b.journal(t)
	if !strings.Contains(j, "regenerate it and see dmesg") {
		t.Errorf("no advice in the journal:\n%s", lastLines(j, 10))
	}
	if code, body, err := b.get("/healthz"); err == nil {
		t.Errorf("a daemon answers /healthz after the failed load: %d %s", code, body)
	}
	b.mustSSH(t, "echo >/sys/module/pynq_fpga/parameters/fail")
	b.restartAgent(t)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// testBadRelease: a release that does not start (a class-names file it lacks) fails its
// health check, deploy says so with its log, and the board serves the previous one.
func testBadRelease(t *testing.T, e *env) {
	cfg := rewrite(t, e.agentConfig(t, "bad.toml", ""), `names = "model/chair.names"`, `names = "model/missing.names"`)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.pynqctl(ctx, true, e.deployArgs(cfg)...)
	t.Logf("deploy of a bad release (%s):\n%s", time.Since(start).Round(time.Second), lastLines(out, 12))
	if err == nil || !strings.Contains(out, "failed its health check") {
		t.Fatalf("deploy of a bad release: %v\n%s", err, out)
	}
	if !strings.Contains(out, "missing.names") {
		t.Errorf("deploy does not show why the release failed:\n%s", out)
	}
	if s := e.lastSwitch(t); !strings.Contains(s, "rolled-back") {
		t.Errorf("last switch: %q, want rolled-back", s)
	}
	e.b.waitHealthy(t, time.Minute)
}

// testSSHCut: the SSH connection of a deploy is cut right after the board switched to
// a bad release; the board finishes on its own: it rolls back and serves the previous
// release.
func testSSHCut(t *testing.T, e *env) {
	cfg := rewrite(t, e.agentConfig(t, "bad2.toml", ""), `names = "model/chair.names"`, `names = "model/other-missing.names"`)
	before := e.lastSwitch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	args := append(e.deployArgs(cfg), e.conn...)
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "PYNQ_SUDO_PASSWORD=xilinx")
	cmd.Dir = repoRoot
	cut := make(chan string, 1)
	cmd.Stdout = &lineWatch{match: "switched current to", found: cut}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-cut:
		cmd.Process.Kill() // the connection drops with the process
		t.Logf("cut after: %s", l)
	case <-ctx.Done():
		t.Fatal("deploy never switched")
	}
	cmd.Wait()
	waitFor(t, "the board to roll back on its own", 6*time.Minute, func() (bool, string) {
		s := e.lastSwitch(t)
		return s != before && strings.Contains(s, "rolled-back"), s
	})
	e.b.waitHealthy(t, time.Minute)
}

// rewrite writes a copy of the file at path with old replaced by new, beside it.
func rewrite(t *testing.T, path, old, new string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), old) {
		t.Fatalf("rewrite %s: %v (or no %q in it)", path, err, old)
	}
	out := strings.TrimSuffix(path, ".toml") + "-rewritten.toml"
	if err := os.WriteFile(out, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// lineWatch is an output sink that reports the first line containing match.
type lineWatch struct {
	match string
	found chan<- string
	buf   []byte
	done  bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if !w.done && strings.Contains(line, w.match) {
			w.done = true
			w.found <- line
		}
	}
}

var _ io.Writer = (*lineWatch)(nil)
