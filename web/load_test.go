package web

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rawDial opens a feed connection that is never read: not even the hello.
func rawDial(tb testing.TB, url string) {
	tb.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
}

// reader counts the frames one feed client receives until its connection ends.
type reader struct {
	frames atomic.Uint64
	lastID atomic.Uint64
}

func (r *reader) run(c *websocket.Conn, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		m, _, err := readFrameErr(c)
		if err != nil {
			return
		}
		r.frames.Add(1)
		r.lastID.Store(m.ID)
	}
}

// TestLoad100Viewers: 100 reading viewers and 5 that never read. The readers keep the
// full frame rate, Publish always returns, and the heap stays bounded.
func TestLoad100Viewers(t *testing.T) {
	if testing.Short() {
		t.Skip("load test (about 4 s): skipped in -short mode")
	}
	const readers, stalled, frames = 100, 5, 300
	e := newFeedEnv(t, HubOptions{ViewerQueue: 32}, ServerOptions{MaxViewers: 200})
	heapBefore := heapAfterGC()
	var wg sync.WaitGroup
	rs := make([]*reader, readers)
	for i := range rs {
		rs[i] = &reader{}
		c := e.dial(t, nil)
		wg.Add(1)
		go rs[i].run(c, &wg)
	}
	for range stalled {
		rawDial(t, e.wsURL())
	}
	waitViewers(t, e.hub, readers+stalled)

	var maxPublish time.Duration
	tick := time.NewTicker(10 * time.Millisecond) // 100 frames/s to 105 viewers
	for i := uint64(1); i <= frames; i++ {
		<-tick.C
		f := solidFrame(i, 64, 48, grey)
		start := time.Now()
		e.hub.Publish(f)
		maxPublish = max(maxPublish, time.Since(start))
	}
	tick.Stop()
	waitFor(t, "readers to get the last frame", func() bool {
		for _, r := range rs {
			if r.lastID.Load() != frames {
				return false
			}
		}
		return true
	})
	heapAfter := heapAfterGC()
	minGot, total := uint64(frames), uint64(0)
	for _, r := range rs {
		minGot = min(minGot, r.frames.Load())
		total += r.frames.Load()
	}
	st := e.hub.Stats()
	t.Logf("%d readers + %d stalled, %d frames: min %d avg %.1f frames per reader; max Publish %v; heap %d -> %d KiB; stats %+v",
		readers, stalled, frames, minGot, float64(total)/readers, maxPublish, heapBefore>>10, heapAfter>>10, st)
	if minGot < frames*95/100 {
		t.Errorf("a reader got only %d of %d frames: readers must keep the full rate", minGot, frames)
	}
	if st.Encoded+st.Skipped != frames {
		t.Errorf("encoded %d + skipped %d != %d published", st.Encoded, st.Skipped, frames)
	}
	if heapAfter > heapBefore+64<<20 {
		t.Errorf("heap grew from %d to %d KiB", heapBefore>>10, heapAfter>>10)
	}
}

// TestSoak publishes 5,000 frames to a few viewers, with viewers coming and going,
// and checks goroutines and heap do not grow.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak (about 3 s): skipped in -short mode")
	}
	const frames, warmup = 5000, 500
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	pacer := e.dial(t, nil) // read in this goroutine: paces publishing
	var wg sync.WaitGroup
	for range 2 {
		c := e.dial(t, nil)
		wg.Add(1)
		go (&reader{}).run(c, &wg)
	}
	rawDial(t, e.wsURL()) // one that never reads
	waitViewers(t, e.hub, 4)

	var goroutines0 int
	var heap0 uint64
	for i := uint64(1); i <= frames; i++ {
		if i == warmup {
			goroutines0, heap0 = runtime.NumGoroutine(), heapAfterGC()
		}
		if i%500 == 250 { // churn: a viewer comes, reads a little, leaves
			churn(t, e, 4)
		}
		e.hub.Publish(solidFrame(i, 64, 48, grey))
		if m, _, err := readFrameErr(pacer); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		} else if m.ID != i {
			t.Fatalf("pacer got frame %d, want %d", m.ID, i)
		}
	}
	waitViewers(t, e.hub, 4)
	goroutines1, heap1 := runtime.NumGoroutine(), heapAfterGC()
	t.Logf("%d frames: goroutines %d -> %d, heap %d -> %d KiB, stats %+v", frames, goroutines0, goroutines1, heap0>>10, heap1>>10, e.hub.Stats())
	if goroutines1 > goroutines0+3 {
		t.Errorf("goroutines grew from %d to %d", goroutines0, goroutines1)
	}
	if heap1 > heap0+4<<20 {
		t.Errorf("heap grew from %d to %d KiB", heap0>>10, heap1>>10)
	}
}

// churn connects one more viewer, waits until it is counted, and disconnects it.
func churn(t *testing.T, e *feedEnv, base int) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(e.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitViewers(t, e.hub, base+1)
	c.UnderlyingConn().(*net.TCPConn).SetLinger(0)
	c.Close()
	waitViewers(t, e.hub, base)
}
