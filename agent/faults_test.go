package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
	"github.com/fpgadetector/pynq-agent/bitstream"
)

func TestParseFault(t *testing.T) {
	for s, want := range map[string]Fault{
		"engine-hang@3": {"engine-hang", 3}, " engine-hang-once@1": {"engine-hang-once", 1}, "load-fail": {"load-fail", 0},
		"engine-wedge@2": {"engine-wedge", 2}, "pl-taken@7": {"pl-taken", 7},
	} {
		if f, err := ParseFault(s); err != nil || f != want {
			t.Errorf("%q: %+v %v, want %+v", s, f, err, want)
		}
	}
	for _, bad := range []string{"engine-hang", "engine-hang@0", "engine-hang@x", "load-fail@2", "dma-error", "disk-full@1", ""} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseConfig([]byte("[sim]\nfaults = [\"engine-hang@2\"]\n"), "a.toml"); err == nil || !strings.Contains(err.Error(), `needs backend = "sim"`) {
		t.Errorf("faults on a board config: %v", err)
	}
}

func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"engine-hang@3", "load-fail", "engine-hang-once@99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ft, err := ParseFault(s)
		if err == nil && ft.Kind != "load-fail" && ft.Frame < 1 {
			t.Fatalf("%q gave %+v", s, ft)
		}
	})
}

// faultConfig is the demo (the embedded chair model on synthetic scenes) on the
// simulation with the given faults, a short engine timeout and stall window.
func faultConfig(t *testing.T, faults ...string) *Config {
	t.Helper()
	p, err := demomodel.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	c.Backend = BackendSim
	c.Bitstream.Path = p.Bitstream
	c.Model.Kind, c.Model.Dir, c.Model.Names = ModelQNN, p.ModelDir, p.Names
	c.Source.Input = SynthPrefix + "1"
	c.Engine.Timeout.Duration, c.Health.Stall.Duration = 300*time.Millisecond, 2*time.Second
	c.Sim.Faults = faults
	c.Server.Listen = "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSimFaults: each fault of [sim] faults is injected, reported and, where it can
// be, recovered: a persistent hang makes the agent unhealthy with the reason; a single
// hang costs one frame and the agent stays healthy; a failed load stops start-up with
// the FPGA manager's state.
func TestSimFaults(t *testing.T) {
	skipSimPipelineInShort(t)
	serve := func(t *testing.T, c *Config) (*Agent, *collector) {
		a, err := New(context.Background(), c, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		pub := newCollector()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Serve(ctx, pub) }()
		t.Cleanup(func() { cancel(); <-done; a.Close() })
		return a, pub
	}
	t.Run("engine-hang", func(t *testing.T) {
		a, pub := serve(t, faultConfig(t, "engine-hang@3"))
		start := time.Now()
		waitFor(t, "unhealthy", func() bool { return a.Health() != nil })
		err := a.Health()
		t.Logf("reported after %v: %v", time.Since(start).Round(100*time.Millisecond), err)
		if !strings.Contains(err.Error(), "no frame completed") || !strings.Contains(err.Error(), "last frame error: engine") {
			t.Errorf("reason %v", err)
		}
		if n := pub.count(); n != 2 {
			t.Errorf("%d frames published, want the 2 before the hang", n)
		}
	})
	t.Run("engine-hang-once", func(t *testing.T) {
		a, pub := serve(t, faultConfig(t, "engine-hang-once@2"))
		waitFor(t, "the hang", func() bool { return a.pipe.Stats().Errors == 1 })
		failed, n := time.Now(), pub.count()
		waitFor(t, "a frame after the hang", func() bool { return pub.count() > n })
		t.Logf("next frame %v after the hung one failed", time.Since(failed).Round(time.Millisecond))
		waitFor(t, "frames after the hang", func() bool { return pub.count() >= 5 })
		if st := a.pipe.Stats(); st.Errors != 1 {
			t.Errorf("%d frame errors, want the one hung frame", st.Errors)
		}
		if err := a.Health(); err != nil {
			t.Errorf("unhealthy after recovering: %v", err)
		}
	})
	t.Run("dma-error", func(t *testing.T) {
		a, pub := serve(t, faultConfig(t, "dma-error@2"))
		waitFor(t, "the bus error", func() bool { return a.pipe.Stats().Errors == 1 })
		failed, n := time.Now(), pub.count()
		waitFor(t, "a frame after the bus error", func() bool { return pub.count() > n })
		t.Logf("next frame %v after the failed one", time.Since(failed).Round(time.Millisecond))
		waitFor(t, "frames after the bus error", func() bool { return pub.count() >= 4 })
		if st := a.pipe.Stats(); st.Errors != 1 {
			t.Errorf("%d frame errors, want the one frame whose DDR access failed", st.Errors)
		}
		if err := a.Health(); err != nil {
			t.Errorf("unhealthy after recovering: %v", err)
		}
	})
	t.Run("engine-wedge", func(t *testing.T) {
		// Resets do not end a wedge; after engine.reprogram_after (3) failed runs the agent
		// programs the bitstream again and the engine works.
		a, pub := serve(t, faultConfig(t, "engine-wedge@3"))
		waitFor(t, "the wedge", func() bool { return a.pipe.Stats().Errors >= 1 })
		start := time.Now()
		waitFor(t, "frames after the reprogram", func() bool { return a.engine.Counts().Reprograms == 1 && pub.count() >= 4 })
		t.Logf("recovered (reprogram, frames again) %v after the first failed frame", time.Since(start).Round(10*time.Millisecond))
		c := a.engine.Counts()
		if st := a.pipe.Stats(); st.Errors != 3 || c.Resets < 2 || c.ReprogramFailed != 0 {
			t.Errorf("%d frame errors, counts %+v; want the 3 failed runs, their resets and one good reprogram", st.Errors, c)
		}
		if a.machine.Loads() != 2 {
			t.Errorf("%d loads, want the start-up and the reprogram", a.machine.Loads())
		}
		if err := a.Health(); err != nil {
			t.Errorf("unhealthy after the reprogram: %v", err)
		}
		st := a.Status()
		if rec, ok := st.Extra["recovery"].(engineCounts); !ok || rec.Reprograms != 1 {
			t.Errorf("/api/status recovery %+v", st.Extra["recovery"])
		}
		if ms, _ := st.Extra["engine_model_ms"].(float64); ms <= 0 || st.Extra["engine_clock_mhz"] != 100.0 {
			t.Errorf("/api/status engine model %v ms at %v MHz", st.Extra["engine_model_ms"], st.Extra["engine_clock_mhz"])
		}
	})
	t.Run("reprogram-fails", func(t *testing.T) {
		// A failed reprogram stops the engine for good: unhealthy at once, no watchdog.
		a, _ := serve(t, faultConfig(t, "engine-hang@2"))
		a.machine.FailNextLoad(bitstream.StateWriteError)
		start := time.Now()
		waitFor(t, "unhealthy", func() bool { return a.Health() != nil })
		err := a.Health()
		t.Logf("reported %v after start: %v", time.Since(start).Round(10*time.Millisecond), err)
		if !strings.Contains(err.Error(), "reprogramming the PL after 3 failed runs") || errors.Is(err, bitstream.ErrPLChanged) {
			t.Errorf("reason %v", err)
		}
		if c := a.engine.Counts(); c.Reprograms != 1 || c.ReprogramFailed != 1 {
			t.Errorf("counts %+v", c)
		}
	})
	t.Run("pl-taken", func(t *testing.T) {
		// Another program loads the PL: the engine stops before touching it and stays
		// stopped; the reason names the PL change.
		a, pub := serve(t, faultConfig(t, "pl-taken@3"))
		waitFor(t, "unhealthy", func() bool { return a.Health() != nil })
		err := a.Health()
		if !errors.Is(err, bitstream.ErrPLChanged) || !strings.Contains(err.Error(), "loaded 1 bitstream(s) since the agent's") {
			t.Errorf("reason %v", err)
		}
		time.Sleep(300 * time.Millisecond) // frames past the engine finish
		n := pub.count()
		loads := a.machine.Loads()
		time.Sleep(300 * time.Millisecond)
		if pub.count() != n || n != 2 || a.machine.Loads() != loads {
			t.Errorf("%d then %d frames published, %d then %d loads: want the 2 before and nothing after, no reprogram over the other program",
				n, pub.count(), loads, a.machine.Loads())
		}
	})
	t.Run("load-fail", func(t *testing.T) {
		_, err := New(context.Background(), faultConfig(t, "load-fail"), quietLog())
		var le *bitstream.LoadError
		if !errors.As(err, &le) || le.State != bitstream.StateWriteError {
			t.Errorf("start-up: %v, want the load error", err)
		}
	})
}

// The watchdog stops for an unhealthy agent, except when another program holds the PL:
// a restart would program over it.
func TestWatchdogKeepsPingingWhenThePLIsTaken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")
	for _, tc := range []struct {
		health error
		pings  bool
	}{
		{nil, true},
		{errors.New("no frame completed for 30s"), false},
		{fmt.Errorf("engine stopped: %w", bitstream.ErrPLChanged), true},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		watchdog(ctx, notifierFor(path), quietLog(), func() error { return tc.health })
		cancel()
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		got := 0
		for buf := make([]byte, 64); ; got++ {
			if _, _, err := conn.ReadFromUnix(buf); err != nil {
				break
			}
		}
		if (got > 0) != tc.pings {
			t.Errorf("health %v: %d pings, want pings %v", tc.health, got, tc.pings)
		}
	}
}

// While the engine is hung (unhealthy) the daemon keeps serving: /healthz and /readyz
// answer 503 with the reason, a viewer connects and gets the feed's hello and the
// status, and the last frame stays available as a snapshot.
func TestFeedServesWhileTheEngineIsHung(t *testing.T) {
	skipSimPipelineInShort(t)
	c := faultConfig(t, "engine-hang@3")
	base := runDaemon(t, c)
	get := func(path string) (int, string) {
		r, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	start := time.Now()
	waitFor(t, "/healthz to report the hang", func() bool { code, _ := get("/healthz"); return code == http.StatusServiceUnavailable })
	t.Logf("hang at frame 3 reported by /healthz %v after start", time.Since(start).Round(10*time.Millisecond))
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != http.StatusServiceUnavailable || !strings.Contains(body, "no frame completed") {
			t.Errorf("%s: %d %q, want 503 with the reason", p, code, body)
		}
	}
	if code, body := get("/api/snapshot.jpg"); code != http.StatusOK || !strings.HasPrefix(body, "\xff\xd8") {
		t.Errorf("snapshot while hung: %d (%d bytes), want the last frame", code, len(body))
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+c.Server.Listen+"/ws", nil)
	if err != nil {
		t.Fatalf("viewer while hung: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"hello"`) {
		t.Errorf("viewer's first message %q (%v), want the hello", msg, err)
	}
	if code, body := get("/api/status"); code != http.StatusOK || !strings.Contains(body, `"healthy":false`) {
		t.Errorf("status while hung: %d %s", code, body)
	}
}

// runDaemon runs the daemon (Run) with c on a free loopback port until the test ends and
// returns its base URL.
func runDaemon(t *testing.T, c *Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Listen = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, c, quietLog()) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + c.Server.Listen
}

// TestHealthDoesNotWaitForTheEngine: while the engine is stuck in a run (the driver
// waits up to engine.timeout for done), Health and Status answer at once instead of
// waiting for the run to end (they did: on an emulated board a slow run kept /healthz
// from answering until deploy's health check gave up).
func TestHealthDoesNotWaitForTheEngine(t *testing.T) {
	skipSimPipelineInShort(t)
	c := faultConfig(t, "engine-hang-once@2")
	c.Engine.Timeout.Duration, c.Health.Stall.Duration = 8*time.Second, time.Minute
	a, err := New(context.Background(), c, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, newCollector()) }()
	defer func() { cancel(); <-done; a.Close() }()
	waitFor(t, "the engine stuck in a run", func() bool { return a.pipe.EngineBusy() > 500*time.Millisecond })
	answered := make(chan error, 1)
	go func() { a.Status(); answered <- a.Health() }()
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("health %v half a second into a run that engine.timeout allows 8 s", err)
		}
	case <-time.After(2 * time.Second): // a generous bound: without the wait they answer in microseconds
		t.Fatal("Health/Status still waiting for the engine run after 2 s")
	}
}
