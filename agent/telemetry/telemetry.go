package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
)

// ErrNotSupported is wrapped by every error that means "this kernel, user or platform
// cannot provide the measurement" (no root/CAP_BPF, no bpf() syscall, tracepoint or
// kprobe target missing). The agent treats it as "run on without telemetry".
var ErrNotSupported error = unsupported.Error("not supported")

// DefaultFPGALoadSymbols are the kprobe targets tried in order for bitstream loads.
// The Xilinx kernels' sysfs "firmware" attribute calls fpga_mgr_firmware_load, which
// the mainline fpga_mgr_load also reaches for firmware images, so it comes first; it is
// static and may be inlined, hence the fallback to fpga_mgr_load (the device-tree
// overlay path).
var DefaultFPGALoadSymbols = []string{"fpga_mgr_firmware_load", "fpga_mgr_load"}

// Options say what to measure.
type Options struct {
	// TGID is the process whose threads' run-queue latency is measured; 0 means this
	// process.
	TGID int
	// IRQs are GIC interrupt IDs to count (overlay.Design.Interrupts[i].GIC, 61-68 and
	// 84-91 on Zynq-7000). They are mapped to Linux irq numbers through /proc/interrupts.
	IRQs []int
	// LinuxIRQs are Linux irq numbers to count as they are (platforms without a GIC,
	// tests).
	LinuxIRQs []int
	// FPGALoadSymbols overrides DefaultFPGALoadSymbols (the first one present is used).
	FPGALoadSymbols []string
	// NoMount forbids mounting tracefs on /sys/kernel/tracing when no tracefs or
	// debugfs tracing directory is mounted (systemd usually mounts it; a bare init may not).
	NoMount bool
	// ProcDir is /proc (a parameter for tests).
	ProcDir string
	Logger  *slog.Logger
}

// Unavailable is a probe that did not load and why; Err wraps ErrNotSupported.
type Unavailable struct {
	Probe string // "runqueue", "offcpu", "fpga_load", "irq", "irq_tracepoint"
	Err   error
}

func (u Unavailable) String() string { return u.Probe + ": " + u.Err.Error() }

// HistBuckets is the number of log2 buckets of a Histogram.
const HistBuckets = 64

// Histogram is a log2 histogram of durations in nanoseconds: Buckets[i] counts samples
// in [2^i, 2^(i+1)) ns (bucket 0 also holds 0 ns).
type Histogram struct {
	Buckets [HistBuckets]uint64
	Count   uint64
	Sum     time.Duration
}

// Quantile estimates the q-quantile (0..1), interpolating linearly inside the bucket;
// 0 without samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(h.Count)
	var seen float64
	for i, n := range h.Buckets {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lo, hi := bucketBounds(i)
			frac := (rank - seen) / float64(n)
			return time.Duration(lo + frac*(hi-lo))
		}
		seen += float64(n)
	}
	_, hi := bucketBounds(HistBuckets - 1)
	return time.Duration(hi)
}

// Mean is Sum / Count.
func (h *Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}

func bucketBounds(i int) (lo, hi float64) {
	if i == 0 {
		return 0, 2
	}
	return math.Ldexp(1, i), math.Ldexp(1, i+1)
}

// log2Bucket is the bucket of d, as the BPF program computes it.
func log2Bucket(ns uint64) int {
	if ns == 0 {
		return 0
	}
	return bits.Len64(ns) - 1
}

// FPGALoads summarizes bitstream programmings timed inside the kernel.
type FPGALoads struct {
	Symbol string // kprobe target, e.g. "fpga_mgr_load"
	Count  uint64
	Total  time.Duration
	Last   time.Duration
	Max    time.Duration
}

// IRQCount is the number of interrupts of one line since Open.
type IRQCount struct {
	GIC   int    // GIC interrupt ID asked for; -1 when given as a Linux irq
	IRQ   int    // Linux irq number
	Name  string // /proc/interrupts device name
	Count uint64
}

// ThreadTime is the off-CPU time of a tracked thread.
type ThreadTime struct {
	TID       int
	Name      string        // TrackThreadAs name ("" for TrackThread)
	OffCPU    time.Duration // total since TrackThread
	Frames    uint64        // MarkFrame calls
	LastFrame time.Duration // off-CPU time between the last two MarkFrame calls
}

// Snapshot is everything measured so far.
type Snapshot struct {
	RunQueue      Histogram // run-queue latency of TGID's threads
	P50, P90, P99 time.Duration
	RunQueueOK    bool

	FPGA   FPGALoads
	FPGAOK bool

	IRQMethod string // "tracepoint", "procfs" or "" (no lines asked for or none found)
	IRQs      []IRQCount

	Threads  []ThreadTime
	OffCPUOK bool

	Unavailable []Unavailable
}

type irqTarget struct {
	gic, irq int
	name     string
	base     uint64 // /proc/interrupts count at Open (procfs method)
}

type frameState struct {
	name      string
	markTotal time.Duration // OffCPU at the previous MarkFrame
	frames    uint64
	last      time.Duration
}

// Telemetry is a set of loaded probes. Methods are safe for concurrent use.
type Telemetry struct {
	opt Options
	log *slog.Logger

	mu          sync.Mutex
	k           *kernel // platform part; nil after Close
	unavailable []Unavailable
	irqs        []irqTarget
	irqMethod   string
	frames      map[int]*frameState
}

func newTelemetry(opt Options) *Telemetry {
	if opt.ProcDir == "" {
		opt.ProcDir = "/proc"
	}
	if opt.FPGALoadSymbols == nil {
		opt.FPGALoadSymbols = DefaultFPGALoadSymbols
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Telemetry{opt: opt, log: log, frames: map[int]*frameState{}}
}

func (t *Telemetry) unsupported(probe string, err error) {
	if !errors.Is(err, ErrNotSupported) {
		err = fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	t.unavailable = append(t.unavailable, Unavailable{Probe: probe, Err: err})
}

// Unavailable lists the probes that did not load and why (log it once).
func (t *Telemetry) Unavailable() []Unavailable {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.unavailable)
}

// MarkFrame marks a frame boundary for tid and returns the thread's off-CPU time since
// the previous MarkFrame (or since TrackThread). Call it from the pipeline thread once
// per frame.
func (t *Telemetry) MarkFrame(tid int) time.Duration {
	total := t.OffCPU(tid)
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.frames[tid]
	if fs == nil {
		fs = &frameState{}
		t.frames[tid] = fs
	}
	d := max(total-fs.markTotal, 0)
	fs.markTotal = total
	fs.frames++
	fs.last = d
	return d
}

// FPGALoadCount is how many bitstream loads the kernel probe has seen since Open, for
// noticing another program's load; ok is false without the probe.
func (t *Telemetry) FPGALoadCount() (n uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.k == nil {
		return 0, false
	}
	l, ok := t.k.fpgaLoads()
	return l.Count, ok
}

// Snapshot reads all counters.
func (t *Telemetry) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s Snapshot
	s.Unavailable = slices.Clone(t.unavailable)
	if t.k == nil {
		return s
	}
	s.RunQueueOK, s.OffCPUOK = t.k.sched != nil, t.k.sched != nil
	if s.RunQueueOK {
		s.RunQueue = t.k.runQueue()
		s.P50, s.P90, s.P99 = s.RunQueue.Quantile(.5), s.RunQueue.Quantile(.9), s.RunQueue.Quantile(.99)
	}
	s.FPGA, s.FPGAOK = t.k.fpgaLoads()
	s.IRQMethod = t.irqMethod
	s.IRQs = t.irqCounts()
	if s.OffCPUOK {
		for _, tid := range slices.Sorted(mapKeys(t.frames)) {
			fs := t.frames[tid]
			off, _ := t.k.offCPU(tid)
			s.Threads = append(s.Threads, ThreadTime{TID: tid, Name: fs.name, OffCPU: off, Frames: fs.frames, LastFrame: fs.last})
		}
	}
	return s
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// irqCounts reads the IRQ counters by the method chosen at Open; t.mu held.
func (t *Telemetry) irqCounts() []IRQCount {
	var lines []IRQLine
	if t.irqMethod == "procfs" {
		lines, _ = readInterrupts(t.opt.ProcDir)
	}
	var out []IRQCount
	for _, it := range t.irqs {
		c := IRQCount{GIC: it.gic, IRQ: it.irq, Name: it.name}
		switch t.irqMethod {
		case "tracepoint":
			c.Count = t.k.irqCount(it.irq)
		case "procfs":
			for _, l := range lines {
				if l.IRQ == it.irq && l.Count >= it.base {
					c.Count = l.Count - it.base
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// TrackThread registers a thread (e.g. the pipeline goroutine's, after
// runtime.LockOSThread, tid = unix.Gettid()) for off-CPU accounting.
func (t *Telemetry) TrackThread(tid int) error { return t.TrackThreadAs(tid, "") }

// TrackThreadAs is TrackThread with a name ("engine", "prepare") used in metric labels
// and status keys instead of the tid.
func (t *Telemetry) TrackThreadAs(tid int, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.k == nil || t.k.sched == nil {
		return fmt.Errorf("track thread %d: %w: off-CPU probe not loaded", tid, ErrNotSupported)
	}
	if err := t.k.track(tid); err != nil {
		return fmt.Errorf("track thread %d: %w", tid, err)
	}
	if _, ok := t.frames[tid]; !ok {
		off, _ := t.k.offCPU(tid)
		t.frames[tid] = &frameState{markTotal: off}
	}
	t.frames[tid].name = name
	return nil
}

// OffCPU is the total time tid spent switched out since TrackThread (0 when the
// thread is not tracked or the probe is not loaded). Time of a switch-out still in
// progress counts once the thread runs again.
func (t *Telemetry) OffCPU(tid int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.k == nil || t.k.sched == nil {
		return 0
	}
	d, _ := t.k.offCPU(tid)
	return d
}

// Close detaches the programs and frees the maps. Snapshot afterwards returns only the
// list of unavailable probes.
func (t *Telemetry) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.k == nil {
		return nil
	}
	err := t.k.close()
	t.k = nil
	return err
}
