package web

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// TestViewerCap: the viewer after server.max_viewers is refused with 503 and a
// reason, and counted; once one leaves, a new one gets in.
func TestViewerCap(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{MaxViewers: 2})
	first := e.dial(t, nil)
	e.dial(t, nil)
	waitViewers(t, e.hub, 2)
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third viewer: err %v, response %v; want 503", err, resp)
	}
	if code, body := get(t, e.srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "pynq_feed_viewers_refused_total 1") {
		t.Errorf("metrics do not count the refusal:\n%s", body)
	}
	first.Close()
	waitViewers(t, e.hub, 1)
	e.dial(t, nil)
}

// TestSnapshotEncodesOncePerFrame: a flood of snapshot requests for one frame costs
// one encode per kind (plain, with boxes); a new frame one more each.
func TestSnapshotEncodesOncePerFrame(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	e.hub.Publish(solidFrame(1, 64, 48, browserBG))
	flood := func() {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				url := e.srv.URL + "/api/snapshot.jpg"
				if i%2 == 1 {
					url += "?boxes=1"
				}
				if code, body := get(t, url); code != 200 || !strings.HasPrefix(body, "\xff\xd8") {
					t.Errorf("snapshot %s: %d", url, code)
				}
			})
		}
		wg.Wait()
	}
	waitLatest(t, e.hub, 1)
	flood()
	if n := e.snapshotEncodes(t); n != 2 {
		t.Errorf("%d encodes for 32 snapshots of one frame, want 2 (plain and boxes)", n)
	}
	e.hub.Publish(solidFrame(2, 64, 48, browserBG))
	waitLatest(t, e.hub, 2)
	flood()
	if n := e.snapshotEncodes(t); n != 4 {
		t.Errorf("%d encodes after a second frame, want 4", n)
	}
}

func waitLatest(tb testing.TB, h *Hub, id uint64) {
	tb.Helper()
	waitFor(tb, "the frame", func() bool { f := h.Latest(); return f != nil && f.ID == id })
}

// snapshotEncodes reads pynq_snapshot_encodes_total from /metrics.
func (e *feedEnv) snapshotEncodes(t *testing.T) int {
	t.Helper()
	_, body := get(t, e.srv.URL+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "pynq_snapshot_encodes_total "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no pynq_snapshot_encodes_total in the metrics:\n%s", body)
	return 0
}

// TestViewerCapBurst: a burst of simultaneous connections cannot pass the cap before
// any of them is counted.
func TestViewerCapBurst(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{MaxViewers: 5})
	var mu sync.Mutex
	var conns []*websocket.Conn
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			c, _, err := websocket.DefaultDialer.Dial(e.wsURL(), nil)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	if len(conns) != 5 {
		t.Errorf("%d of 60 simultaneous viewers admitted, want the cap of 5", len(conns))
	}
}
