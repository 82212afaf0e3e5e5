package web

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeBackend is a Backend that records controls.
type fakeBackend struct {
	mu        sync.Mutex
	ready     bool
	thresh    float32
	classes   []string
	paused    bool
	controls  int
	extra     map[string]any
	unhealthy error
	sourceErr string
}

func (b *fakeBackend) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{Version: "test", Backend: "sim", Source: "synthetic", Ready: b.ready, Thresh: b.thresh,
		Classes: b.classes, Paused: b.paused, FPSIn: 30, FPSOut: 29.5, Extra: b.extra, SourceError: b.sourceErr}
}

func (b *fakeBackend) Ready() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.ready }

func (b *fakeBackend) Health() error { b.mu.Lock(); defer b.mu.Unlock(); return b.unhealthy }

func (b *fakeBackend) WriteMetrics(w io.Writer) error {
	_, err := io.WriteString(w, "# HELP pynq_frames_total Frames processed.\n# TYPE pynq_frames_total counter\npynq_frames_total 42\n")
	return err
}

func (b *fakeBackend) Control(c Control) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.Classes != nil {
		for _, n := range *c.Classes {
			if n == "unicorn" {
				return fmt.Errorf("unknown class %q", n)
			}
		}
		b.classes = *c.Classes
	}
	if c.Thresh != nil {
		b.thresh = *c.Thresh
	}
	if c.Paused != nil {
		b.paused = *c.Paused
	}
	b.controls++
	return nil
}

func (b *fakeBackend) count() int { b.mu.Lock(); defer b.mu.Unlock(); return b.controls }

// feedEnv is a hub, a server and an httptest listener around a fake backend.
type feedEnv struct {
	b   *fakeBackend
	hub *Hub
	srv *httptest.Server
}

func newFeedEnv(tb testing.TB, hopt HubOptions, sopt ServerOptions) *feedEnv {
	tb.Helper()
	b := &fakeBackend{ready: true, thresh: 0.3}
	hub := NewHub(hopt)
	if sopt.Version == "" {
		sopt.Version = "v-test"
	}
	srv := httptest.NewServer(NewServer(b, hub, sopt))
	tb.Cleanup(func() { hub.Close(); srv.Close() })
	return &feedEnv{b: b, hub: hub, srv: srv}
}

func (e *feedEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws" }

// dial connects a feed client and reads the hello message.
func (e *feedEnv) dial(tb testing.TB, header http.Header) *websocket.Conn {
	tb.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(e.wsURL(), header)
	if err != nil {
		tb.Fatalf("dial feed: %v (response %v)", err, resp)
	}
	tb.Cleanup(func() { c.Close() })
	kind, data, err := c.ReadMessage()
	if err != nil || kind != websocket.TextMessage || !strings.Contains(string(data), `"hello"`) {
		tb.Fatalf("want hello, got kind %d %q err %v", kind, data, err)
	}
	return c
}

// waitViewers waits until the hub counts n viewers.
func waitViewers(tb testing.TB, h *Hub, n int) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%d viewers", n), func() bool { return h.Viewers() == n })
}

func waitFor(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readFrame reads one frame (metadata then JPEG) from the feed.
func readFrame(tb testing.TB, c *websocket.Conn) (frameMeta, []byte) {
	tb.Helper()
	m, jpg, err := readFrameErr(c)
	if err != nil {
		tb.Fatal(err)
	}
	return m, jpg
}

func readFrameErr(c *websocket.Conn) (frameMeta, []byte, error) {
	var m frameMeta
	kind, data, err := c.ReadMessage()
	if err != nil {
		return m, nil, fmt.Errorf("read metadata: %w", err)
	}
	if kind != websocket.TextMessage {
		return m, nil, fmt.Errorf("want text metadata, got kind %d", kind)
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Type != "frame" {
		return m, nil, fmt.Errorf("bad metadata %q: %v", data, err)
	}
	kind, jpg, err := c.ReadMessage()
	if err != nil {
		return m, nil, fmt.Errorf("read jpeg: %w", err)
	}
	if kind != websocket.BinaryMessage || len(jpg) != m.Bytes {
		return m, nil, fmt.Errorf("want binary of %d bytes, got kind %d len %d", m.Bytes, kind, len(jpg))
	}
	return m, jpg, nil
}

// solidFrame is a w x h frame of one colour with one chair box in the middle.
func solidFrame(id uint64, w, h int, bg color.RGBA) *Frame {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return &Frame{ID: id, Captured: time.Now(), Image: img,
		Detections: []Box{{Class: "chair", ClassID: 0, Score: 0.87,
			Box: [4]float32{float32(w) / 4, float32(h) / 4, float32(w) * 3 / 4, float32(h) * 3 / 4}}},
		Stats: FrameStats{SourceFPS: 30, DetectFPS: 12.5, InferenceMS: 41, LatencyMS: 80, Dropped: 3}}
}

// noiseFrame is a frame of random pixels: it compresses badly, so its JPEG is large.
func noiseFrame(id uint64, w, h int, rng *rand.Rand) *Frame {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	return &Frame{ID: id, Captured: time.Now(), Image: img}
}
