package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fpgadetector/pynq-agent/web"
)

// TestLoadWhileServing is issue 16's load test, run on demand (PYNQ_LOADTEST=1: it
// takes about a minute and both cores): the demo on the simulation serves 400 feed
// viewers (the cap admits 32), 1000 idle TCP connections and a snapshot flood (16
// clients, each as fast as 50 requests a second allow) at once. The load runs in the
// same process, on the same two cores as the agent. It
// logs the pipeline's frame rate before and under load, the snapshot latency and the
// test process's peak RSS (the agent and its 400 clients); it checks that the agent stays healthy and keeps publishing and
// that the viewers over the cap are refused.
//
//	PYNQ_LOADTEST=1 go test -run TestLoadWhileServing -v ./agent
func TestLoadWhileServing(t *testing.T) {
	if os.Getenv("PYNQ_LOADTEST") == "" {
		t.Skip("load test: set PYNQ_LOADTEST=1 (about 40 s on 2 cores)")
	}
	c := faultConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Listen = ln.Addr().String()
	ln.Close()
	base := "http://" + c.Server.Listen
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, c, quietLog()) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "ready", func() bool { r, err := http.Get(base + "/readyz"); return err == nil && r.StatusCode == 200 })

	// Status over its own keep-alive connection, opened before the load: under load
	// new connections wait for a slot, which would skew the measured windows.
	statusClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	status := func() web.Status {
		r, err := statusClient.Get(base + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var st web.Status
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	framesOut := func() float64 { return status().Extra["frames_out"].(float64) }
	rate := func(d time.Duration) float64 {
		n0 := framesOut()
		time.Sleep(d)
		return (framesOut() - n0) / d.Seconds()
	}
	time.Sleep(3 * time.Second) // warm up
	before := rate(8 * time.Second)

	// The load: idle connections first (they take the connection slots first).
	var idle []net.Conn
	for range 1000 {
		if conn, err := net.DialTimeout("tcp", c.Server.Listen, time.Second); err == nil {
			idle = append(idle, conn)
		}
	}
	defer func() {
		for _, conn := range idle {
			conn.Close()
		}
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var admitted, refused, snaps int
	var snapLat []time.Duration
	for range 400 {
		wg.Go(func() {
			conn, resp, err := websocket.DefaultDialer.Dial("ws://"+c.Server.Listen+"/ws", nil)
			mu.Lock()
			switch {
			case err == nil:
				admitted++
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				refused++
			}
			mu.Unlock()
			if err != nil {
				return
			}
			defer conn.Close()
			go func() { <-stop; conn.Close() }()
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	for range 16 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				start := time.Now()
				r, err := client.Get(base + "/api/snapshot.jpg")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				mu.Lock()
				snaps++
				snapLat = append(snapLat, time.Since(start))
				mu.Unlock()
			}
		})
	}
	time.Sleep(3 * time.Second)
	under := rate(15 * time.Second)
	for _, conn := range idle { // let the viewers' and the flood's connections finish
		conn.Close()
	}
	st := status()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	p50, p99 := percentile(snapLat, .5), percentile(snapLat, .99)
	t.Logf("pipeline %.2f frames/s before, %.2f under load (%.0f %%); viewers %d at once, %d admitted in all (dropped slow ones make room), refused %d; idle connections %d; "+
		"snapshots %d (p50 %v, p99 %v); peak RSS %s", before, under, 100*under/before, st.Viewers, admitted, refused, len(idle), snaps,
		p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), peakRSS())
	if !st.Healthy || under <= 0 {
		t.Errorf("under load: healthy %v (%s), %.2f frames/s", st.Healthy, st.Health, under)
	}
	if st.Viewers > c.Server.MaxViewers || refused == 0 {
		t.Errorf("%d viewers at once (cap %d), %d refused", st.Viewers, c.Server.MaxViewers, refused)
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// peakRSS reads VmHWM of this process (Linux), "?" elsewhere.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
