//go:build linux

package telemetry

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openOrSkip opens telemetry, skipping with the reason where BPF is unavailable
// (not root, qemu-user without bpf(), kernels without BPF tracepoints).
func openOrSkip(tb testing.TB, opt Options) *Telemetry {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("kernel telemetry needs root (CAP_BPF/CAP_PERFMON); run the tests as root")
	}
	tel, err := Open(opt)
	if errors.Is(err, ErrNotSupported) {
		tb.Skipf("kernel telemetry unavailable here: %v", err)
	}
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := tel.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return tel
}

// sleeper runs on a locked OS thread, sleeping n times, calling frame after each sleep.
// It returns the thread's tid before sleeping, through tidc.
func sleeper(n int, d time.Duration, tidc chan<- int, ready <-chan struct{}, frame func(tid int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	tidc <- tid
	<-ready
	for range n {
		time.Sleep(d)
		frame(tid)
	}
}

func TestRunQueueAndOffCPU(t *testing.T) {
	tel := openOrSkip(t, Options{})
	for _, u := range tel.Unavailable() {
		t.Logf("unavailable: %s", u)
	}
	s := tel.Snapshot()
	if !s.RunQueueOK || !s.OffCPUOK {
		t.Skipf("sched tracepoints unavailable: %v", s.Unavailable)
	}
	tidc, ready, done := make(chan int), make(chan struct{}), make(chan struct{})
	var frames []time.Duration
	go func() {
		defer close(done)
		sleeper(40, time.Millisecond, tidc, ready, func(tid int) { frames = append(frames, tel.MarkFrame(tid)) })
	}()
	tid := <-tidc
	if err := tel.TrackThread(tid); err != nil {
		t.Fatal(err)
	}
	close(ready)
	<-done

	s = tel.Snapshot()
	if s.RunQueue.Count == 0 {
		t.Errorf("no run-queue samples for tgid %d after 40 sleeps", os.Getpid())
	}
	if off := tel.OffCPU(tid); off <= 0 {
		t.Errorf("OffCPU(%d) = %v after 40 sleeps of 1ms, want > 0", tid, off)
	}
	var sum time.Duration
	for _, f := range frames {
		sum += f
	}
	if sum <= 0 || sum > tel.OffCPU(tid) {
		t.Errorf("per-frame off-CPU sum %v, total %v: want 0 < sum <= total", sum, tel.OffCPU(tid))
	}
	if len(s.Threads) != 1 || s.Threads[0].TID != tid || s.Threads[0].Frames != 40 {
		t.Errorf("Threads = %+v, want one entry for tid %d with 40 frames", s.Threads, tid)
	}
	t.Logf("run queue: %d waits, p50 %v p99 %v mean %v; off-CPU of %d: %v", s.RunQueue.Count, s.P50, s.P99, s.RunQueue.Mean(), tid, tel.OffCPU(tid))

	var buf bytes.Buffer
	if err := tel.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"pynq_agent_kernel_runqueue_latency_seconds_bucket{le=\"+Inf\"}",
		"pynq_agent_kernel_runqueue_latency_seconds_sum ",
		"pynq_agent_kernel_runqueue_latency_seconds_count ",
		"pynq_agent_kernel_offcpu_seconds_total{tid=",
		`pynq_agent_kernel_probe_loaded{probe="runqueue"} 1`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
	extra := tel.StatusExtra()
	if n, _ := extra["runqueue_waits"].(uint64); n == 0 {
		t.Errorf("StatusExtra runqueue_waits = %v, want > 0 (%v)", extra["runqueue_waits"], extra)
	}
}
