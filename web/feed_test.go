package web

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var grey = color.RGBA{90, 90, 90, 255}

func TestFramesArrive(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	c := e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	for i := uint64(1); i <= 5; i++ {
		e.hub.Publish(solidFrame(i, 64, 48, grey))
		m, jpg := readFrame(t, c)
		if m.ID != i || m.Width != 64 || m.Height != 48 || m.Viewers != 1 {
			t.Fatalf("frame %d: metadata %+v", i, m)
		}
		if len(m.Detections) != 1 || m.Detections[0].Class != "chair" || m.Stats.DetectFPS != 12.5 {
			t.Fatalf("frame %d: detections/stats %+v %+v", i, m.Detections, m.Stats)
		}
		if m.Published.IsZero() || m.Time.IsZero() {
			t.Fatalf("frame %d: times not set: %+v", i, m)
		}
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
			t.Fatalf("frame %d: jpeg %v %v", i, err, img)
		}
	}
}

// TestSourceJPEGAsIs: a frame that carries its source's JPEG reaches viewers as those
// very bytes (no second encode at the feed's quality).
func TestSourceJPEGAsIs(t *testing.T) {
	e := newFeedEnv(t, HubOptions{Quality: 10}, ServerOptions{})
	c := e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	f := solidFrame(1, 64, 48, grey)
	var src bytes.Buffer
	if err := jpeg.Encode(&src, f.Image, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	f.JPEG = src.Bytes()
	e.hub.Publish(f)
	m, jpg := readFrame(t, c)
	if !bytes.Equal(jpg, src.Bytes()) || m.Width != 64 || m.Height != 48 || len(m.Detections) != 1 {
		t.Fatalf("got %d bytes (%+v), want the source's %d bytes", len(jpg), m, src.Len())
	}
	e.hub.Publish(solidFrame(2, 64, 48, grey)) // without: encoded at the feed's quality
	if _, jpg := readFrame(t, c); bytes.Equal(jpg, src.Bytes()) {
		t.Fatal("a frame without source JPEG got the previous frame's bytes")
	}
}

// TestEncodeOnce: with N viewers every frame is encoded exactly once, and every viewer gets it.
func TestEncodeOnce(t *testing.T) {
	const viewers, frames = 5, 20
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	conns := make([]*websocket.Conn, viewers)
	for i := range conns {
		conns[i] = e.dial(t, nil)
	}
	waitViewers(t, e.hub, viewers)
	for i := uint64(1); i <= frames; i++ {
		e.hub.Publish(solidFrame(i, 64, 48, grey))
		for _, c := range conns { // reading before the next publish keeps queues short: no drops
			if m, _ := readFrame(t, c); m.ID != i {
				t.Fatalf("viewer got frame %d, want %d", m.ID, i)
			}
		}
	}
	st := e.hub.Stats()
	if st.Encoded != frames || st.Published != frames || st.ViewerDrops != 0 {
		t.Fatalf("stats %+v: want %d encodes for %d viewers", st, frames, viewers)
	}
}

// TestLatestOnJoin: a viewer that joins gets the latest frame at once (the pipeline may
// be paused or slow), encoded once however many join.
func TestLatestOnJoin(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	e.hub.Publish(solidFrame(1, 64, 48, grey))
	waitFor(t, "frame recorded", func() bool { return len(e.hub.Recent("", 1)) == 1 })
	for range 3 {
		if m, _ := readFrame(t, e.dial(t, nil)); m.ID != 1 {
			t.Fatalf("joining viewer got frame %d, want the latest (1)", m.ID)
		}
	}
	if st := e.hub.Stats(); st.Encoded != 1 {
		t.Fatalf("stats %+v: want one encode for three joining viewers", st)
	}
}

func TestNoEncodeWithoutViewers(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	const frames = 30
	for i := uint64(1); i <= frames; i++ {
		e.hub.Publish(solidFrame(i, 64, 48, grey))
		waitFor(t, "hub to record the frame", func() bool { // the ring shows what the hub processed
			r := e.hub.Recent("", 1)
			return len(r) == 1 && r[0].FrameID == i
		})
	}
	if st := e.hub.Stats(); st.Encoded != 0 || st.Published != frames {
		t.Fatalf("stats %+v: want no encodes without viewers", st)
	}
	if f := e.hub.Latest(); f == nil || f.ID != frames {
		t.Fatalf("latest %v, want frame %d", f, frames)
	}
	resp, err := http.Get(e.srv.URL + "/api/snapshot.jpg") // encodes on demand
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("snapshot: %v %v", err, resp)
	}
	resp.Body.Close()
	if st := e.hub.Stats(); st.Encoded != 0 {
		t.Fatalf("snapshot counted as a feed encode: %+v", st)
	}
}

// TestSlowViewerSkips: a viewer that stops reading loses frames (drop oldest) while
// another viewer gets every one and Publish never waits.
func TestSlowViewerSkips(t *testing.T) {
	e := newFeedEnv(t, HubOptions{Quality: 95}, ServerOptions{})
	fast := e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	fastV := (*e.hub.viewers.Load())[0]
	e.dial(t, nil) // the slow one: never read again
	waitViewers(t, e.hub, 2)
	slowV := (*e.hub.viewers.Load())[1]
	rng := rand.New(rand.NewPCG(1, 2))
	const frames = 150 // ~200 KB noise JPEGs: far more than the socket buffers hold
	for i := uint64(1); i <= frames; i++ {
		e.hub.Publish(noiseFrame(i, 320, 240, rng))
		if m, _ := readFrame(t, fast); m.ID != i {
			t.Fatalf("fast viewer got frame %d, want %d", m.ID, i)
		}
	}
	if fastV.dropped.Load() != 0 || slowV.dropped.Load() == 0 {
		t.Fatalf("drops fast %d slow %d (slow sent %d): want 0 and > 0", fastV.dropped.Load(), slowV.dropped.Load(), slowV.sent.Load())
	}
	t.Logf("slow viewer: sent %d dropped %d of %d", slowV.sent.Load(), slowV.dropped.Load(), frames)
	var metrics strings.Builder
	e.hub.WriteMetrics(&metrics)
	if !strings.Contains(metrics.String(), `pynq_feed_viewer_dropped_frames{viewer=`) {
		t.Fatalf("per-viewer drops missing from metrics:\n%s", metrics.String())
	}
}

func TestHubCloseDisconnectsViewers(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	c := e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	e.hub.Close()
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001 after hub close, got %v", err)
	}
	e.hub.Publish(solidFrame(1, 8, 8, grey)) // must not panic or block
	if _, _, err := websocket.DefaultDialer.Dial(e.wsURL(), nil); err != nil {
		t.Fatalf("dial after close: %v", err)
	}
}

func TestPingKeepsAlive(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{PingInterval: 20 * time.Millisecond, WriteDeadline: 50 * time.Millisecond})
	c := e.dial(t, nil)
	var mu sync.Mutex
	pings := 0
	c.SetPingHandler(func(s string) error {
		mu.Lock()
		pings++
		mu.Unlock()
		return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // several ping intervals, longer than the pong wait
	mu.Lock()
	n := pings
	mu.Unlock()
	if n < 3 || e.hub.Viewers() != 1 {
		t.Fatalf("pings %d viewers %d: want pings answered and the viewer kept", n, e.hub.Viewers())
	}
}

func TestSilentViewerDropped(t *testing.T) {
	// A client that never reads never answers pings: the read deadline drops it.
	e := newFeedEnv(t, HubOptions{}, ServerOptions{PingInterval: 20 * time.Millisecond, WriteDeadline: 50 * time.Millisecond})
	e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	waitViewers(t, e.hub, 0)
}

func sendControl(t *testing.T, c *websocket.Conn, msg string) map[string]any {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read reply to %s: %v", msg, err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("reply %q: %v", data, err)
	}
	return r
}

func TestSocketControl(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{Token: "s3cret"})
	c := e.dial(t, nil)
	cases := []struct {
		msg, wantType, wantErr string
	}{
		{`{"type":"control","token":"s3cret","thresh":0.5}`, "control_ok", ""},
		{`{"type":"control","token":"wrong","thresh":0.9}`, "error", "bad token"},
		{`{"type":"control","thresh":0.9}`, "error", "missing token"},
		{`{"type":"control","token":"s3cret","thresh":1.5}`, "error", "out of range"},
		{`{"type":"control","token":"s3cret","thresh":-0.1}`, "error", "out of range"},
		{`{"type":"control","token":"s3cret"}`, "error", "empty control"},
		{`{"type":"control","token":"s3cret","classes":["unicorn"]}`, "error", "unknown class"},
		{`{"type":"control","token":"s3cret","classes":[""]}`, "error", "empty name"},
		{`{"type":"subscribe"}`, "error", "unknown message type"},
		{`{"type":"control","token":"s3cret","thresh":0.9,"evil":1}`, "error", "malformed"},
		{`{"type":"control",`, "error", "malformed"},
		{`not json`, "error", "malformed"},
		{`{"type":"control","token":"s3cret","thresh":"high"}`, "error", "malformed"},
		{`{} {}`, "error", "trailing"},
	}
	for _, tc := range cases {
		r := sendControl(t, c, tc.msg)
		if r["type"] != tc.wantType || !strings.Contains(str(r["error"]), tc.wantErr) {
			t.Errorf("%s: reply %v, want %s %q", tc.msg, r, tc.wantType, tc.wantErr)
		}
	}
	if st := e.b.Status(); st.Thresh != 0.5 || e.b.count() != 1 {
		t.Fatalf("backend thresh %v after %d controls: only the good one may apply", st.Thresh, e.b.count())
	}
	// Control over the socket is refused when no token is configured.
	e2 := newFeedEnv(t, HubOptions{}, ServerOptions{})
	c2 := e2.dial(t, nil)
	if r := sendControl(t, c2, `{"type":"control","token":"","thresh":0.5}`); !strings.Contains(str(r["error"]), "control disabled") {
		t.Fatalf("no token configured: reply %v", r)
	}
}

func str(v any) string { s, _ := v.(string); return s }

func TestSocketOversizedAndBinary(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{Token: "x", ReadLimit: 512})
	c := e.dial(t, nil)
	c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 2048))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversized message: want close 1009, got %v", err)
	}
	c2 := e.dial(t, nil)
	c2.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if _, _, err := c2.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
		t.Fatalf("binary message: want close 1003, got %v", err)
	}
	waitViewers(t, e.hub, 0)
}

func TestOriginCheck(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{AllowedOrigins: []string{"https://dash.example:8443"}})
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{e.srv.URL, true}, // same origin
		{"https://dash.example:8443", true},
		{"https://DASH.example:8443/", true},
		{"https://evil.example", false},
		{"http://dash.example:8443", false},
		{"null", false},
		{"::not a url", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(e.wsURL(), h)
		if tc.ok != (err == nil) {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if !tc.ok && (resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %q: response %v, want 403", tc.origin, resp)
		}
		if c != nil {
			c.Close()
		}
	}
	var m strings.Builder
	e.srv.Config.Handler.ServeHTTP(recorder(&m), mustReq(t, "GET", "/metrics", ""))
	if !strings.Contains(m.String(), "pynq_feed_origin_rejected_total 4") {
		t.Fatalf("origin rejections not counted:\n%s", m.String())
	}
}

// TestSnapshot: before any frame 503; then the raw frame and the frame with boxes.
func TestSnapshot(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	if code, _ := get(t, e.srv.URL+"/api/snapshot.jpg"); code != http.StatusServiceUnavailable {
		t.Fatalf("snapshot before a frame: %d, want 503", code)
	}
	f := solidFrame(7, 640, 480, grey)
	e.hub.Publish(f)
	waitFor(t, "latest", func() bool { return e.hub.Latest() != nil })
	plain := getJPEG(t, e.srv.URL+"/api/snapshot.jpg")
	boxed := getJPEG(t, e.srv.URL+"/api/snapshot.jpg?boxes=1")
	if plain.Bounds().Dx() != 640 || boxed.Bounds().Dy() != 480 {
		t.Fatalf("sizes %v %v", plain.Bounds(), boxed.Bounds())
	}
	// The box's left edge half way down (x 158..160 with a 2-pixel line) and the label
	// strip above the box: background in the plain snapshot, box colour in the other. JPEG
	// subsamples chroma, so the thin edge is only checked to be far from the background.
	want := boxColor(0)
	edge, strip := image.Pt(159, 300), image.Pt(200, 108)
	for _, p := range []image.Point{edge, strip} {
		if d := colorDist(plain.At(p.X, p.Y), grey); d > 30 {
			t.Fatalf("plain snapshot at %v: %v, want background %v", p, plain.At(p.X, p.Y), grey)
		}
	}
	if d := colorDist(boxed.At(strip.X, strip.Y), want); d > 90 {
		t.Fatalf("boxed snapshot in the label strip %v: %v, want box colour %v", strip, rgb(boxed.At(strip.X, strip.Y)), want)
	}
	if d := colorDist(boxed.At(edge.X, edge.Y), grey); d < 150 {
		t.Fatalf("boxed snapshot at box edge %v: %v, too close to background %v", edge, rgb(boxed.At(edge.X, edge.Y)), grey)
	}
	if code, _ := get(t, e.srv.URL+"/api/snapshot.jpg?boxes=maybe"); code != http.StatusBadRequest {
		t.Fatalf("boxes=maybe: %d, want 400", code)
	}
}

func getJPEG(t *testing.T, url string) image.Image {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("%s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	img, err := jpeg.Decode(resp.Body)
	if err != nil {
		t.Fatalf("%s: decode: %v", url, err)
	}
	return img
}

func rgb(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

func colorDist(a color.Color, b color.Color) int {
	r1, g1, b1, _ := a.RGBA()
	r2, g2, b2, _ := b.RGBA()
	d := func(x, y uint32) int { v := int(x>>8) - int(y>>8); return max(v, -v) }
	return d(r1, r2) + d(g1, g2) + d(b1, b2)
}
