//go:build linux

package telemetry

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
	if err := tel.TrackThreadAs(tid, "pipeline"); err != nil {
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
		`thread="pipeline"`,
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
	if ms, _ := extra["offcpu_pipeline_per_frame_ms"].(float64); ms <= 0 {
		t.Errorf("StatusExtra offcpu_pipeline_per_frame_ms = %v, want > 0 (%v)", extra["offcpu_pipeline_per_frame_ms"], extra)
	}
}

func TestFPGAKprobeTargetMissing(t *testing.T) {
	var k kernel
	err := k.loadFPGA(Options{ProcDir: "/proc", FPGALoadSymbols: []string{"telemetry_no_such_function"}})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "telemetry_no_such_function") {
		t.Fatalf("err = %v, want ErrNotSupported naming the symbol", err)
	}
	if len(k.closers) != 0 {
		t.Errorf("%d objects left open", len(k.closers))
	}
	t.Log(err)
}

// A symbol that kallsyms lists but the kernel cannot probe (here: a kernel without
// CONFIG_KPROBES, or a fake name) is reported through Unavailable, Open still succeeds.
func TestFPGAKprobeAttachFails(t *testing.T) {
	proc := t.TempDir()
	if err := os.WriteFile(proc+"/kallsyms", []byte("00000000 T telemetry_fake_target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tel := openOrSkip(t, Options{ProcDir: proc, FPGALoadSymbols: []string{"telemetry_fake_target"}})
	s := tel.Snapshot()
	if s.FPGAOK {
		t.Fatal("kprobe on a fake symbol loaded")
	}
	found := false
	for _, u := range s.Unavailable {
		if u.Probe == "fpga_load" {
			found = true
			if !errors.Is(u.Err, ErrNotSupported) || !strings.Contains(u.Err.Error(), "telemetry_fake_target") {
				t.Errorf("fpga_load: %v", u.Err)
			}
			t.Log(u)
		}
	}
	if !found {
		t.Errorf("no fpga_load entry in %v", s.Unavailable)
	}
	if _, ok := tel.StatusExtra()["fpga_load_unavailable"].(string); !ok {
		t.Errorf("StatusExtra lacks fpga_load_unavailable: %v", tel.StatusExtra())
	}
}

// busyIRQ returns a Linux irq whose count grows over a short wait, or -1.
func busyIRQ(tb testing.TB) int {
	tb.Helper()
	a, err := readInterrupts("/proc")
	if err != nil {
		tb.Skip(err)
	}
	time.Sleep(300 * time.Millisecond)
	b, _ := readInterrupts("/proc")
	best, bestDelta := -1, uint64(0)
	for _, lb := range b {
		for _, la := range a {
			if la.IRQ == lb.IRQ && lb.Count > la.Count && lb.Count-la.Count > bestDelta {
				best, bestDelta = lb.IRQ, lb.Count-la.Count
			}
		}
	}
	return best
}

func TestIRQTracepoint(t *testing.T) {
	irq := busyIRQ(t)
	if irq < 0 {
		t.Skip("no numbered interrupt line fired in 300 ms; nothing to count")
	}
	tel := openOrSkip(t, Options{LinuxIRQs: []int{irq}, IRQs: []int{61}})
	s := tel.Snapshot()
	if s.IRQMethod != "tracepoint" {
		t.Skipf("irq tracepoint not loaded: %v", s.Unavailable)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && tel.Snapshot().IRQs[0].Count == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	s = tel.Snapshot()
	if len(s.IRQs) != 1 || s.IRQs[0].IRQ != irq {
		t.Fatalf("IRQs = %+v, want irq %d", s.IRQs, irq)
	}
	// The /proc/interrupts base was read before the program attached, so the BPF
	// count can only be lower than the procfs delta read afterwards.
	var procDelta uint64
	lines, _ := readInterrupts("/proc")
	for _, l := range lines {
		if l.IRQ == irq {
			procDelta = l.Count - tel.irqs[0].base
		}
	}
	got := s.IRQs[0].Count
	if got > procDelta {
		t.Errorf("BPF counted %d interrupts of irq %d, /proc/interrupts only %d", got, irq, procDelta)
	}
	if got == 0 {
		t.Skipf("irq %d did not fire after the probe attached (procfs delta %d); nothing to compare", irq, procDelta)
	}
	t.Logf("irq %d (%s): %d by %s, %d by /proc/interrupts", irq, s.IRQs[0].Name, got, s.IRQMethod, procDelta)
	// GIC 61 does not exist on x86: reported, not fatal.
	if m := tel.StatusExtra(); m["irq_unavailable"] == nil {
		t.Errorf("GIC 61 on a non-GIC machine not reported: %v", m)
	}
}

// The /proc/interrupts fallback maps GIC numbers and counts deltas since Open.
func TestIRQProcfsFallback(t *testing.T) {
	proc := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(proc+"/interrupts", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(zynqInterrupts)
	tel := newTelemetry(Options{ProcDir: proc, IRQs: []int{61, 62, 90}})
	tel.setupIRQs(&kernel{}, "") // no tracefs: the tracepoint cannot load
	tel.k = &kernel{}
	if tel.irqMethod != "procfs" {
		t.Fatalf("method %q, want procfs", tel.irqMethod)
	}
	write(strings.Replace(zynqInterrupts, "812", "900", 1))
	s := tel.Snapshot()
	want := []IRQCount{{GIC: 61, IRQ: 47, Name: "Level xilinx-dma-controller", Count: 88}, {GIC: 62, IRQ: 48, Name: "Level xilinx-dma-controller", Count: 0}}
	if len(s.IRQs) != 2 || s.IRQs[0] != want[0] || s.IRQs[1] != want[1] {
		t.Errorf("IRQs = %+v, want %+v", s.IRQs, want)
	}
	var probes []string
	for _, u := range s.Unavailable {
		probes = append(probes, u.String())
	}
	if got := strings.Join(probes, "\n"); !strings.Contains(got, "GIC interrupt 90") || !strings.Contains(got, "irq_tracepoint") {
		t.Errorf("unavailable = %s", got)
	}
	m := tel.StatusExtra()
	if m["irq_gic61"] != uint64(88) {
		t.Errorf("StatusExtra = %v", m)
	}
}

// The kprobe pair cannot be tried on a kernel without CONFIG_KPROBES, but the same
// programs run as uprobes (same program type): time libc's clock_nanosleep in a
// `sleep 0.05` child and check a load of at least 50 ms was recorded.
func TestDurationTimerPrograms(t *testing.T) {
	openOrSkip(t, Options{NoMount: true}) // skips without BPF
	libc := ""
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/arm-linux-gnueabihf/libc.so.6", "/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			libc = p
			break
		}
	}
	sleepBin, err := exec.LookPath("sleep")
	if libc == "" || err != nil {
		t.Skip("no glibc or sleep binary to put a uprobe on")
	}
	ex, err := link.OpenExecutable(libc)
	if err != nil {
		t.Skip(err)
	}
	var k kernel
	t.Cleanup(func() { k.close() })
	err = k.loadDurationTimer("clock_nanosleep", func(entry, ret *ebpf.Program) error {
		probes := []struct {
			attach func(string, *ebpf.Program, *link.UprobeOptions) (link.Link, error)
			prog   *ebpf.Program
		}{{ex.Uprobe, entry}, {ex.Uretprobe, ret}}
		for _, pr := range probes {
			l, err := pr.attach("clock_nanosleep", pr.prog, nil)
			if err != nil {
				return err
			}
			k.closers = append(k.closers, l)
		}
		return nil
	})
	if err != nil {
		t.Skipf("uprobes unavailable: %v", err)
	}
	if out, err := exec.Command(sleepBin, "0.05").CombinedOutput(); err != nil {
		t.Fatalf("sleep: %v %s", err, out)
	}
	f, ok := k.fpgaLoads()
	if !ok || f.Count == 0 || f.Max < 50*time.Millisecond || f.Total < f.Max {
		t.Fatalf("timed calls = %+v, want at least one >= 50ms", f)
	}
	t.Logf("clock_nanosleep timed by the FPGA-load programs: %+v", f)
}
