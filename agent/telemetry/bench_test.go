//go:build linux

package telemetry

import (
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

var sink uint64

// threadCPU is the calling thread's user+system CPU time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spinSleep is a CPU-bound loop with a sleep every iteration (about 50 µs of work, a
// 100 µs sleep): a wakeup and two context switches per iteration, the case where the
// sched programs cost the most relative to the work. It reports the thread's CPU
// time per op besides wall time, since the programs run on the switching thread.
func spinSleep(b *testing.B, mark func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x := uint64(1)
	cpu0 := threadCPU()
	for b.Loop() {
		for range 50000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		time.Sleep(100 * time.Microsecond)
		mark()
	}
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	sink = x
}

// BenchmarkOverhead runs the same loop without and with telemetry in one process.
// Ratio = on / off of ns/op (wall) and cpu-ns/op:
//
//	go test -run '^$' -bench Overhead -count 5 ./agent/telemetry
func BenchmarkOverhead(b *testing.B) {
	b.Run("off", func(b *testing.B) { spinSleep(b, func() {}) })
	b.Run("on", func(b *testing.B) {
		stats := enableBPFStats(b)
		tel := openOrSkip(b, Options{})
		spinSleep(b, func() {})
		s := tel.Snapshot()
		b.ReportMetric(float64(s.RunQueue.Count)/float64(b.N), "rqwaits/op")
		if stats {
			runs, ns := bpfRunStats(tel)
			b.ReportMetric(float64(ns)/float64(b.N), "bpf-ns/op")
			b.ReportMetric(float64(ns)/float64(max(runs, 1)), "ns/bpf-run")
		}
	})
	// MarkFrame every iteration (a bpf() map lookup): the daemon calls it once a frame.
	b.Run("on+frame", func(b *testing.B) {
		tel := openOrSkip(b, Options{})
		tid := -1
		spinSleep(b, func() {
			if tid < 0 {
				tid = unix.Gettid()
				_ = tel.TrackThread(tid)
			}
			tel.MarkFrame(tid)
		})
	})
}

// enableBPFStats turns on the kernel's per-program run-time accounting for the
// benchmark (kernel.bpf_stats_enabled; 5.8+), reporting whether it is on.
func enableBPFStats(b *testing.B) bool {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("no BPF run-time stats: %v", err)
		return false
	}
	b.Cleanup(func() { c.Close() })
	return true
}

// bpfRunStats sums run counts and run time of the loaded programs, system-wide (every
// context switch on the machine runs sched_switch).
func bpfRunStats(tel *Telemetry) (runs, ns uint64) {
	tel.mu.Lock()
	defer tel.mu.Unlock()
	for _, p := range tel.k.progs {
		st, err := p.Stats()
		if err != nil {
			continue
		}
		runs += st.RunCount
		ns += uint64(st.Runtime)
	}
	return runs, ns
}

// pingPong bounces a token between two locked threads: every op is two wakeups and
// at least two context switches and nothing else, the worst case for the programs.
func pingPong(b *testing.B) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		for range ping {
			pong <- struct{}{}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b.Loop() {
		ping <- struct{}{}
		<-pong
	}
	close(ping)
}

// BenchmarkSwitchOverhead: the cost per context switch, off and on in one run.
//
//	go test -run '^$' -bench SwitchOverhead -count 5 ./agent/telemetry
func BenchmarkSwitchOverhead(b *testing.B) {
	b.Run("off", pingPong)
	b.Run("on", func(b *testing.B) {
		stats := enableBPFStats(b)
		tel := openOrSkip(b, Options{})
		pingPong(b)
		if stats {
			runs, ns := bpfRunStats(tel)
			b.ReportMetric(float64(ns)/float64(b.N), "bpf-ns/op")
			b.ReportMetric(float64(ns)/float64(max(runs, 1)), "ns/bpf-run")
		}
	})
}
