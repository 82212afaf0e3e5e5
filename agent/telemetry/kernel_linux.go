//go:build linux

package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// kernel holds the loaded maps, programs and links.
type kernel struct {
	sched   *schedProbe
	fpga    *fpgaProbe
	irq     *ebpf.Map // per-CPU hash: Linux irq -> count
	progs   []*ebpf.Program
	closers []io.Closer
}

type schedProbe struct{ threads, hist *ebpf.Map }

type fpgaProbe struct {
	symbol string
	stats  *ebpf.Map
}

// Open loads the probes Options ask for. It fails (wrapping ErrNotSupported) only when
// bpf() itself is unusable or no probe loaded; otherwise Unavailable lists the rest.
func Open(opt Options) (*Telemetry, error) {
	t := newTelemetry(opt)
	if t.opt.TGID == 0 {
		t.opt.TGID = os.Getpid()
	}
	if err := checkBPF(); err != nil {
		return nil, err
	}
	k := &kernel{}
	tracing, err := tracingDir(t.opt.NoMount)
	if err != nil {
		t.unsupported("runqueue", err)
		t.unsupported("offcpu", err)
	} else if err := k.try(func() error { return k.loadSched(tracing, t.opt) }); err != nil {
		t.unsupported("runqueue", err)
		t.unsupported("offcpu", err)
	}
	if err := k.try(func() error { return k.loadFPGA(t.opt) }); err != nil {
		t.unsupported("fpga_load", err)
	}
	t.setupIRQs(k, tracing)
	t.k = k
	if k.sched == nil && k.fpga == nil && t.irqMethod == "" {
		k.close()
		t.k = nil
		reasons := make([]string, 0, len(t.unavailable))
		for _, u := range t.unavailable {
			reasons = append(reasons, u.String())
		}
		return nil, fmt.Errorf("kernel telemetry: %w: no probe loaded (%s)", ErrNotSupported, strings.Join(reasons, "; "))
	}
	t.log.Debug("kernel telemetry loaded", "runqueue", k.sched != nil, "fpga_load", k.fpga != nil, "irq", t.irqMethod)
	return t, nil
}

// checkBPF creates a one-element map to tell "no bpf() for us" apart from a missing
// probe, with a reason the user can act on.
func checkBPF() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (PYNQ 2.7 runs 5.4).
	memlockErr := rlimit.RemoveMemlock()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err == nil {
		m.Close()
		return nil
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("kernel telemetry: %w: bpf() unavailable (ENOSYS: kernel without CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)", ErrNotSupported)
	case errors.Is(err, unix.EPERM) && memlockErr != nil:
		return fmt.Errorf("kernel telemetry: %w: bpf() denied (EPERM; raising RLIMIT_MEMLOCK failed too: %v): run as root or grant CAP_BPF+CAP_PERFMON", ErrNotSupported, memlockErr)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("kernel telemetry: %w: bpf() denied (EPERM): run as root or grant CAP_BPF+CAP_PERFMON", ErrNotSupported)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("kernel telemetry: %w: %w", ErrNotSupported, err)
	}
	return fmt.Errorf("kernel telemetry: %w: create test map: %w", ErrNotSupported, err)
}

// tracingDir finds the tracefs events (tracefs or debugfs/tracing), mounting tracefs
// at /sys/kernel/tracing when allowed and nothing is mounted.
func tracingDir(noMount bool) (string, error) {
	dirs := []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(d, "events")); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	hint := "mount -t tracefs nodev /sys/kernel/tracing"
	if noMount {
		return "", fmt.Errorf("%w: tracefs not mounted (%s)", ErrNotSupported, hint)
	}
	if err := unix.Mount("nodev", dirs[0], "tracefs", 0, ""); err != nil {
		return "", fmt.Errorf("%w: tracefs not mounted and mounting it failed: %w (%s as root)", ErrNotSupported, err, hint)
	}
	return dirs[0], nil
}

// readFormat parses events/<group>/<name>/format.
func readFormat(tracing, group, name string) (*Format, error) {
	p := filepath.Join(tracing, "events", group, name, "format")
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: tracepoint %s/%s missing (%s)", ErrNotSupported, group, name, p)
		}
		return nil, fmt.Errorf("read tracepoint format: %w", err)
	}
	return ParseFormat(p, data)
}

func fields(f *Format, names ...string) ([]Field, error) {
	out := make([]Field, len(names))
	for i, n := range names {
		fd, err := f.Field(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		out[i] = fd
	}
	return out, nil
}

func (k *kernel) newMap(spec *ebpf.MapSpec) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", spec.Name, err)
	}
	k.closers = append(k.closers, m)
	return m, nil
}

func (k *kernel) newProg(name string, typ ebpf.ProgramType, ins asm.Instructions, buildErr error) (*ebpf.Program, error) {
	if buildErr != nil {
		return nil, fmt.Errorf("assemble %s: %w", name, buildErr)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: typ, Instructions: ins, License: "Dual MIT/GPL"})
	if err != nil {
		return nil, fmt.Errorf("load program %s: %w", name, err)
	}
	k.closers = append(k.closers, p)
	k.progs = append(k.progs, p)
	return p, nil
}

func (k *kernel) attachTracepoint(group, name string, p *ebpf.Program) error {
	l, err := link.Tracepoint(group, name, p, nil)
	if err != nil {
		return fmt.Errorf("attach tracepoint %s/%s: %w", group, name, err)
	}
	k.closers = append(k.closers, l)
	return nil
}

// loadSched loads the run-queue / off-CPU programs. On failure the caller closes k.
func (k *kernel) loadSched(tracing string, opt Options) error {
	sw, err := readFormat(tracing, "sched", "sched_switch")
	if err != nil {
		return err
	}
	wk, err := readFormat(tracing, "sched", "sched_wakeup")
	if err != nil {
		return err
	}
	swf, err := fields(sw, "prev_pid", "prev_state", "next_pid")
	if err != nil {
		return err
	}
	wkf, err := fields(wk, "pid")
	if err != nil {
		return err
	}
	threads, err := k.newMap(&ebpf.MapSpec{Name: "tel_threads", Type: ebpf.Hash, KeySize: 4, ValueSize: threadValSize, MaxEntries: 1024})
	if err != nil {
		return err
	}
	hist, err := k.newMap(&ebpf.MapSpec{Name: "tel_runq", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: HistBuckets + 1})
	if err != nil {
		return err
	}
	// Threads that exist now are known from the start; later ones are learned at their
	// first switch-out.
	for _, tid := range listThreads(opt.ProcDir, opt.TGID) {
		_ = threads.Update(uint32(tid), threadVal{}, ebpf.UpdateNoExist)
	}
	ins, err := schedSwitchProg(opt.TGID, schedFields{swf[0], swf[1], swf[2]}, threads, hist)
	swp, err := k.newProg("tel_sched_switch", ebpf.TracePoint, ins, err)
	if err != nil {
		return err
	}
	ins, err = schedWakeupProg(wkf[0], threads)
	wkp, err := k.newProg("tel_sched_wakeup", ebpf.TracePoint, ins, err)
	if err != nil {
		return err
	}
	if err := k.attachTracepoint("sched", "sched_wakeup", wkp); err != nil {
		return err
	}
	// sched_wakeup_new has the same pid field; without it only new threads' first run
	// is missed.
	if wn, err := readFormat(tracing, "sched", "sched_wakeup_new"); err == nil {
		if f, err := wn.Field("pid"); err == nil && f == wkf[0] {
			_ = k.attachTracepoint("sched", "sched_wakeup_new", wkp)
		}
	}
	if err := k.attachTracepoint("sched", "sched_switch", swp); err != nil {
		return err
	}
	k.sched = &schedProbe{threads: threads, hist: hist}
	return nil
}

func listThreads(proc string, tgid int) []int {
	ents, err := os.ReadDir(filepath.Join(proc, strconv.Itoa(tgid), "task"))
	if err != nil {
		return nil
	}
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	return tids
}

// kallsymsHas reports whether a kernel function symbol exists (module symbols too).
func kallsymsHas(proc string, syms []string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(proc, "kallsyms"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, s := range syms {
		want[s] = false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && (fs[1] == "t" || fs[1] == "T") {
			if _, ok := want[fs[2]]; ok {
				want[fs[2]] = true
			}
		}
	}
	return want, sc.Err()
}

// loadFPGA attaches the bitstream-load timer to the first symbol present.
func (k *kernel) loadFPGA(opt Options) error {
	have, err := kallsymsHas(opt.ProcDir, opt.FPGALoadSymbols)
	if err != nil {
		return fmt.Errorf("%w: read kernel symbols: %w", ErrNotSupported, err)
	}
	i := slices.IndexFunc(opt.FPGALoadSymbols, func(s string) bool { return have[s] })
	if i < 0 {
		return fmt.Errorf("%w: kprobe target missing: none of %s in %s/kallsyms (no FPGA manager in this kernel, or fpga-mgr module not loaded)",
			ErrNotSupported, strings.Join(opt.FPGALoadSymbols, ", "), opt.ProcDir)
	}
	sym := opt.FPGALoadSymbols[i]
	return k.loadDurationTimer(sym, func(entry, ret *ebpf.Program) error {
		l, err := link.Kprobe(sym, entry, nil)
		if err != nil {
			return fmt.Errorf("%w: kprobe %s: %w (kernel without CONFIG_KPROBES?)", ErrNotSupported, sym, err)
		}
		k.closers = append(k.closers, l)
		l, err = link.Kretprobe(sym, ret, nil)
		if err != nil {
			return fmt.Errorf("%w: kretprobe %s: %w", ErrNotSupported, sym, err)
		}
		k.closers = append(k.closers, l)
		return nil
	})
}

// loadDurationTimer loads the entry/return pair that times calls of a function and
// lets attach hook them up (kprobes for the FPGA manager; uprobes in tests).
func (k *kernel) loadDurationTimer(name string, attach func(entry, ret *ebpf.Program) error) error {
	start, err := k.newMap(&ebpf.MapSpec{Name: "tel_fpga_start", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: 64})
	if err != nil {
		return err
	}
	stats, err := k.newMap(&ebpf.MapSpec{Name: "tel_fpga", Type: ebpf.Array, KeySize: 4, ValueSize: 32, MaxEntries: 1})
	if err != nil {
		return err
	}
	ins, err := fpgaEntryProg(start)
	entry, err := k.newProg("tel_fpga_entry", ebpf.Kprobe, ins, err)
	if err != nil {
		return err
	}
	ins, err = fpgaReturnProg(start, stats)
	ret, err := k.newProg("tel_fpga_return", ebpf.Kprobe, ins, err)
	if err != nil {
		return err
	}
	if err := attach(entry, ret); err != nil {
		return err
	}
	k.fpga = &fpgaProbe{symbol: name, stats: stats}
	return nil
}

// setupIRQs maps the asked-for lines to Linux irqs and loads the counter, falling back
// to /proc/interrupts deltas when the tracepoint cannot be used.
func (t *Telemetry) setupIRQs(k *kernel, tracing string) {
	if len(t.opt.IRQs) == 0 && len(t.opt.LinuxIRQs) == 0 {
		return
	}
	lines, err := readInterrupts(t.opt.ProcDir)
	if err != nil {
		t.unsupported("irq", err)
		return
	}
	for _, gic := range t.opt.IRQs {
		l, ok := gicToLinux(lines, gic)
		if !ok {
			t.unsupported("irq", fmt.Errorf("GIC interrupt %d not in /proc/interrupts (no driver requested it, or not a GIC system)", gic))
			continue
		}
		t.irqs = append(t.irqs, irqTarget{gic: gic, irq: l.IRQ, name: l.Name, base: l.Count})
	}
	for _, irq := range t.opt.LinuxIRQs {
		it := irqTarget{gic: -1, irq: irq}
		if i := slices.IndexFunc(lines, func(l IRQLine) bool { return l.IRQ == irq }); i >= 0 {
			it.name, it.base = lines[i].Name, lines[i].Count
		}
		t.irqs = append(t.irqs, it)
	}
	if len(t.irqs) == 0 {
		return
	}
	err = errors.New("tracefs not found")
	if tracing != "" {
		err = k.try(func() error { return k.loadIRQ(tracing, t.irqs) })
	}
	if err != nil {
		t.unsupported("irq_tracepoint", fmt.Errorf("%w (counting /proc/interrupts deltas instead)", err))
		t.irqMethod = "procfs"
		return
	}
	t.irqMethod = "tracepoint"
}

func (k *kernel) loadIRQ(tracing string, targets []irqTarget) error {
	f, err := readFormat(tracing, "irq", "irq_handler_entry")
	if err != nil {
		return err
	}
	fd, err := fields(f, "irq")
	if err != nil {
		return err
	}
	m, err := k.newMap(&ebpf.MapSpec{Name: "tel_irq", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 8, MaxEntries: uint32(len(targets))})
	if err != nil {
		return err
	}
	zero := make([]uint64, ebpf.MustPossibleCPU())
	for _, it := range targets {
		if err := m.Update(uint32(it.irq), zero, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("add irq %d: %w", it.irq, err)
		}
	}
	ins, err := irqEntryProg(fd[0], m)
	p, err := k.newProg("tel_irq_entry", ebpf.TracePoint, ins, err)
	if err != nil {
		return err
	}
	if err := k.attachTracepoint("irq", "irq_handler_entry", p); err != nil {
		return err
	}
	k.irq = m
	return nil
}

func (k *kernel) runQueue() Histogram {
	var h Histogram
	var vals []uint64
	for i := uint32(0); i <= histSumKey; i++ {
		if err := k.sched.hist.Lookup(i, &vals); err != nil {
			continue
		}
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		if i == histSumKey {
			h.Sum = time.Duration(sum)
		} else {
			h.Buckets[i] = sum
			h.Count += sum
		}
	}
	return h
}

func (k *kernel) fpgaLoads() (FPGALoads, bool) {
	if k.fpga == nil {
		return FPGALoads{}, false
	}
	var v fpgaVal
	_ = k.fpga.stats.Lookup(uint32(0), &v)
	return FPGALoads{Symbol: k.fpga.symbol, Count: v.Count, Total: time.Duration(v.Sum),
		Last: time.Duration(v.Last), Max: time.Duration(v.Max)}, true
}

func (k *kernel) irqCount(irq int) uint64 {
	if k.irq == nil {
		return 0
	}
	var vals []uint64
	if err := k.irq.Lookup(uint32(irq), &vals); err != nil {
		return 0
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum
}

func (k *kernel) track(tid int) error {
	var v threadVal
	if err := k.sched.threads.Lookup(uint32(tid), &v); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	v.Tracked, v.Out = 1, 0
	return k.sched.threads.Update(uint32(tid), v, ebpf.UpdateAny)
}

func (k *kernel) offCPU(tid int) (time.Duration, error) {
	var v threadVal
	if err := k.sched.threads.Lookup(uint32(tid), &v); err != nil {
		return 0, err
	}
	return time.Duration(v.OffCPU), nil
}

// try runs a probe loader and, when it fails half-way, closes what it created.
func (k *kernel) try(load func() error) error {
	mark := len(k.closers)
	err := load()
	if err != nil {
		for i := len(k.closers) - 1; i >= mark; i-- {
			_ = k.closers[i].Close()
		}
		k.closers = k.closers[:mark]
	}
	return err
}

// close detaches links before closing programs and maps (reverse creation order).
func (k *kernel) close() error {
	var errs []error
	for i := len(k.closers) - 1; i >= 0; i-- {
		if err := k.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	k.closers = nil
	return errors.Join(errs...)
}
