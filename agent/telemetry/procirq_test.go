package telemetry

import (
	"strings"
	"testing"
	"time"
)

// zynqInterrupts is laid out like /proc/interrupts on a PYNQ-Z2 (5.15 kernel) with an
// overlay whose AXI DMA uses IRQ_F2P[0] and [1] (GIC 61, 62). Constructed for the
// test from the kernel's show_interrupts format, not captured from a board.
const zynqInterrupts = `           CPU0       CPU1       
 16:          0          0     GIC-0  27 Edge      gt
 17:      25120      23871     GIC-0  29 Edge      twd
 18:         31          0     GIC-0  37 Level     arm-pmu
 25:        120          0     GIC-0  59 Level     xuartps
 47:        812          0     GIC-0  61 Level     xilinx-dma-controller
 48:        806          3     GIC-0  62 Level     xilinx-dma-controller
IPI0:          0          0  CPU wakeup interrupts
IPI1:          0          0  Timer broadcast interrupts
Err:          0
`

func TestParseInterruptsZynq(t *testing.T) {
	lines, err := ParseInterrupts("zynq", []byte(zynqInterrupts))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 6 {
		t.Fatalf("%d numbered lines, want 6: %+v", len(lines), lines)
	}
	l, ok := gicToLinux(lines, 62)
	if !ok || l.IRQ != 48 || l.Count != 809 || l.Chip != "GIC-0" || l.Name != "Level xilinx-dma-controller" {
		t.Errorf("GIC 62 -> %+v, %v; want Linux irq 48, count 809", l, ok)
	}
	if _, ok := gicToLinux(lines, 63); ok {
		t.Error("GIC 63 found though no line names it")
	}
}

// testdata/interrupts-x86.txt is this development machine's /proc/interrupts.
func TestParseInterruptsX86(t *testing.T) {
	lines, err := ParseInterrupts("x86", readTestdata(t, "interrupts-x86.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatal("no numbered lines")
	}
	for _, l := range lines {
		if l.Chip == "" {
			t.Errorf("line %d without chip: %+v", l.IRQ, l)
		}
		if strings.HasPrefix(l.Chip, "GIC") {
			t.Errorf("x86 line %d reported as GIC", l.IRQ)
		}
	}
	if _, ok := gicToLinux(lines, 61); ok {
		t.Error("GIC mapping found on x86")
	}
}

func TestParseInterruptsBroken(t *testing.T) {
	for _, in := range []string{"", "garbage\n", "  CPU0\n 12 0 GIC\n", "  CPU0\n -1: 0\n"} {
		if _, err := ParseInterrupts("broken", []byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	// Fewer count columns than CPUs and a line without chip still parse.
	lines, err := ParseInterrupts("short", []byte("  CPU0 CPU1\n 5: 7\n 6: 1 2 GIC-0 70\n"))
	if err != nil || len(lines) != 2 || lines[0].Count != 7 || lines[1].HWIRQ != 70 {
		t.Errorf("short lines: %+v, %v", lines, err)
	}
}

func FuzzParseInterrupts(f *testing.F) {
	f.Add([]byte(zynqInterrupts))
	f.Add(readTestdata(f, "interrupts-x86.txt"))
	f.Add([]byte("  CPU0\n 5: 18446744073709551615 18446744073709551615 GIC-0 61-edge x\n"))
	f.Add([]byte("  CPU0\n:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseInterrupts("fuzz", data)
		if err != nil {
			return
		}
		for _, l := range lines {
			if l.IRQ < 0 || l.HWIRQ < -1 {
				t.Fatalf("bad line %+v", l)
			}
		}
	})
}

func TestHistogramQuantile(t *testing.T) {
	var h Histogram
	if h.Quantile(.5) != 0 || h.Mean() != 0 {
		t.Error("empty histogram not 0")
	}
	// 90 samples in [1024, 2048) ns, 10 in [1 ms-ish bucket 2^20, 2^21).
	h.Buckets[10], h.Buckets[20], h.Count = 90, 10, 100
	h.Sum = 90*1500 + 10*1500000
	if q := h.Quantile(.5); q < 1024 || q >= 2048 {
		t.Errorf("p50 = %v, want in [1024ns, 2048ns)", q)
	}
	if q := h.Quantile(.99); q < 1<<20 || q > 1<<21 {
		t.Errorf("p99 = %v, want in [2^20, 2^21] ns", q)
	}
	if h.Mean() != time.Duration(h.Sum)/100 {
		t.Errorf("mean %v", h.Mean())
	}
	for ns, want := range map[uint64]int{0: 0, 1: 0, 2: 1, 3: 1, 1023: 9, 1024: 10, 1 << 63: 63} {
		if got := log2Bucket(ns); got != want {
			t.Errorf("log2Bucket(%d) = %d, want %d", ns, got, want)
		}
	}
}
