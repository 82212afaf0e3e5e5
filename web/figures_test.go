package web

import (
	"image"
	"image/draw"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// photo640 is a 640x480 frame: the fixtures' dog.jpg cropped, or a noisy gradient when
// the fixtures are absent (noise keeps its JPEG size near a photo's).
func photo640(tb testing.TB) image.Image {
	tb.Helper()
	dst := image.NewRGBA(image.Rect(0, 0, 640, 480))
	p := filepath.Join(testutil.RepoRoot(tb), "..", "shared", "fixtures", "qnn-mo-pynq", "images", "dog.jpg")
	if f, err := os.Open(p); err == nil {
		defer f.Close()
		if img, err := jpeg.Decode(f); err == nil {
			draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Src)
			return dst
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for y := range 480 {
		for x := range 640 {
			i := dst.PixOffset(x, y)
			n := uint8(rng.IntN(24))
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = uint8(x*200/640)+n, uint8(y*200/480)+n, 120+n, 255
		}
	}
	return dst
}

func BenchmarkEncode640x480(b *testing.B) {
	img := photo640(b)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		jpg, err := encodeJPEG(img, 75)
		if err != nil {
			b.Fatal(err)
		}
		size = len(jpg)
	}
	b.ReportMetric(float64(size), "jpeg-bytes")
}

func BenchmarkPublishNoViewers(b *testing.B) {
	h := NewHub(HubOptions{})
	defer h.Close()
	f := solidFrame(1, 640, 480, grey)
	f.Detections = nil
	for b.Loop() {
		h.Publish(f)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFeedFigures measures the feed: Publish-to-receipt latency with 1, 10 and 100
// viewers (640x480 frames at 15 frames/s), process CPU per frame per viewer, and encode
// time. Run: WEB_FIGURES=1 go test -run TestFeedFigures -v ./web
func TestFeedFigures(t *testing.T) {
	if os.Getenv("WEB_FIGURES") == "" {
		t.Skip("figures: set WEB_FIGURES=1 to measure (about 15 s)")
	}
	img := photo640(t)
	const frames = 60
	for _, n := range []int{1, 10, 100} {
		e := newFeedEnv(t, HubOptions{}, ServerOptions{})
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for range n {
			c := e.dial(t, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m, _, err := readFrameErr(c)
					if err != nil {
						return
					}
					d := time.Since(m.Published) // the JPEG has fully arrived
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		waitViewers(t, e.hub, n)
		cpu0, wall0 := cpuTime(), time.Now()
		tick := time.NewTicker(time.Second / 15)
		for i := uint64(1); i <= frames; i++ {
			<-tick.C
			e.hub.Publish(&Frame{ID: i, Captured: time.Now(), Image: img})
		}
		tick.Stop()
		waitFor(t, "all frames delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return uint64(len(lat))+e.hub.Stats().ViewerDrops >= uint64(frames*n)
		})
		cpu, wall := cpuTime()-cpu0, time.Since(wall0)
		e.hub.Close()
		wg.Wait()
		slices.Sort(lat)
		st := e.hub.Stats()
		t.Logf("viewers %3d: latency p50 %v p99 %v (n=%d, drops %d); process CPU %v over %v = %.0f µs per frame per viewer (server and clients); encode %.2f ms/frame, %d KiB/frame",
			n, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), len(lat), st.ViewerDrops,
			cpu.Round(time.Millisecond), wall.Round(time.Millisecond), float64(cpu.Microseconds())/float64(frames*n),
			st.EncodeSeconds*1000/float64(st.Encoded), st.BytesSent/uint64(st.Encoded*uint64(n))>>10)
	}
}
