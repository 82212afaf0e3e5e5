//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

// TestMain lets the tests run this binary as the agent (PYNQ_AGENT_AS_MAIN=1), so a
// test can measure the daemon's own peak RSS in a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("PYNQ_AGENT_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPeakRSSUnderImageBombs runs the agent (simulation, the demo model) twice on a
// folder of 320x240 frames, once with a real 5790x5790 PNG (a flat image of 45 KB whose
// decoding took over 1 GB before the pixel limits) and a JPEG declaring 65000x65000
// among the frames and posted to /api/verify, and once without; the bombs
// must be refused from their headers, frames must go on, and the peak RSS (VmHWM) of
// the agent with the bombs must stay within a few MB of the one without and within the
// board's 160 MB budget.
func TestPeakRSSUnderImageBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the agent twice; skipped with -short")
	}
	good := encodeJPEG(t, 320, 240)
	bombPNG := flatPNG(t, 5790, 5790)
	bombJPEG := jpegDeclaring(t, 65000, 65000)
	t.Logf("bombs: PNG %d bytes for 5790x5790, JPEG %d bytes declaring 65000x65000", len(bombPNG), len(bombJPEG))

	base := runAgentForRSS(t, map[string][]byte{"1.jpg": good, "2.jpg": good}, nil)
	withBombs := runAgentForRSS(t, map[string][]byte{"1.jpg": good, "2.png": bombPNG, "3.jpg": good, "4.jpg": bombJPEG},
		[][]byte{bombPNG, bombJPEG})
	t.Logf("agent peak RSS: %.1f MB on good frames, %.1f MB with the bombs", mb(base), mb(withBombs))
	if withBombs > base+16<<20 {
		t.Errorf("the bombs raised the peak RSS from %.1f to %.1f MB", mb(base), mb(withBombs))
	}
	if withBombs > 160<<20 {
		t.Errorf("peak RSS %.1f MB is over the board's 160 MB budget", mb(withBombs))
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// runAgentForRSS starts the agent on a folder of frames, posts the verify images,
// waits until it has published frames and skipped the bombs, and returns its VmHWM.
func runAgentForRSS(t *testing.T, frames map[string][]byte, verify [][]byte) int64 {
	t.Helper()
	dir := t.TempDir()
	p, err := demomodel.Extract(filepath.Join(dir, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "frames")
	for name, data := range frames {
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	const token = "rss-test-token-0123456789"
	cfg := fmt.Sprintf(`backend = "sim"
[bitstream]
path = %q
[model]
kind = "qnn"
dir = %q
names = %q
[source]
input = %q
fps = 20
[server]
listen = %q
token = %q
[telemetry]
enabled = false
`, p.Bitstream, p.ModelDir, p.Names, src, addr, token)
	cfgPath := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-config", cfgPath)
	cmd.Env = append(os.Environ(), "PYNQ_AGENT_AS_MAIN=1", "GOMEMLIMIT=160MiB")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}()
	status := func() map[string]any {
		resp, err := http.Get("http://" + addr + "/api/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var st map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	wait(t, "the agent to serve", func() bool { return status() != nil })
	for _, img := range verify {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/verify", bytes.NewReader(img))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), "megapixels allowed") {
			t.Errorf("/api/verify of a bomb: %d %s", resp.StatusCode, body.String())
		}
	}
	bombs := float64(len(frames) - 2)
	wait(t, "frames published and bombs skipped", func() bool {
		st := status()
		extra, _ := st["extra"].(map[string]any)
		out, _ := extra["frames_out"].(float64)
		errs, _ := extra["frame_errors"].(float64)
		return out >= 6 && errs >= 2*bombs
	})
	return vmHWM(t, cmd.Process.Pid)
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func encodeJPEG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// flatPNG is a real, decodable w x h grey PNG: flat, so it compresses to little.
func flatPNG(t *testing.T, w, h int) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// jpegDeclaring is a small JPEG whose frame header is patched to declare w x h.
func jpegDeclaring(t *testing.T, w, h uint16) []byte {
	data := encodeJPEG(t, 16, 16)
	i := bytes.Index(data, []byte{0xff, 0xc0}) // SOF0: length(2) precision(1) height(2) width(2)
	if i < 0 {
		t.Fatal("no SOF0 in the encoded JPEG")
	}
	binary.BigEndian.PutUint16(data[i+5:], h)
	binary.BigEndian.PutUint16(data[i+7:], w)
	return data
}
