package telemetry

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// readInterrupts parses <proc>/interrupts.
func readInterrupts(proc string) ([]IRQLine, error) {
	p := filepath.Join(proc, "interrupts")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read interrupt counts: %w", err)
	}
	return ParseInterrupts(p, data)
}

// Prometheus histogram buckets of the run-queue latency: le = 2^i ns for i in
// promLow..promHigh (about 1 us to 4.3 s) and +Inf.
const promLow, promHigh = 10, 32

// WriteMetrics writes the measurements in the Prometheus text format (0.0.4), names
// prefixed pynq_agent_kernel_. Probes that did not load write nothing except
// pynq_agent_kernel_probe_loaded{probe=...} 0.
func (t *Telemetry) WriteMetrics(w io.Writer) error {
	s := t.Snapshot()
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }

	p("# HELP pynq_agent_kernel_probe_loaded 1 when the kernel probe loaded.\n# TYPE pynq_agent_kernel_probe_loaded gauge\n")
	for _, pr := range []struct {
		name string
		ok   bool
	}{{"runqueue", s.RunQueueOK}, {"offcpu", s.OffCPUOK}, {"fpga_load", s.FPGAOK}, {"irq", s.IRQMethod != ""}} {
		p("pynq_agent_kernel_probe_loaded{probe=%q} %d\n", pr.name, b2i(pr.ok))
	}

	if s.RunQueueOK {
		const name = "pynq_agent_kernel_runqueue_latency_seconds"
		p("# HELP %s Time the agent's threads waited runnable before running (wakeup or preemption to switch-in).\n# TYPE %s histogram\n", name, name)
		var cum uint64
		for i := 0; i < HistBuckets; i++ {
			cum += s.RunQueue.Buckets[i]
			// bucket i holds [2^i, 2^(i+1)) ns, so after bucket i every sample is < 2^(i+1).
			if e := i + 1; e >= promLow && e <= promHigh {
				p("%s_bucket{le=\"%s\"} %d\n", name, fmtFloat(math.Ldexp(1, e)/1e9), cum)
			}
		}
		p("%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, s.RunQueue.Count, name, fmtFloat(s.RunQueue.Sum.Seconds()), name, s.RunQueue.Count)
	}
	if s.FPGAOK {
		p("# HELP pynq_agent_kernel_fpga_loads_total Bitstream programmings timed in the kernel.\n# TYPE pynq_agent_kernel_fpga_loads_total counter\n")
		p("pynq_agent_kernel_fpga_loads_total{symbol=%q} %d\n", s.FPGA.Symbol, s.FPGA.Count)
		p("# HELP pynq_agent_kernel_fpga_load_seconds_total Kernel time of all bitstream programmings.\n# TYPE pynq_agent_kernel_fpga_load_seconds_total counter\n")
		p("pynq_agent_kernel_fpga_load_seconds_total %s\n", fmtFloat(s.FPGA.Total.Seconds()))
		p("# HELP pynq_agent_kernel_fpga_load_last_seconds Kernel time of the last bitstream programming.\n# TYPE pynq_agent_kernel_fpga_load_last_seconds gauge\n")
		p("pynq_agent_kernel_fpga_load_last_seconds %s\n", fmtFloat(s.FPGA.Last.Seconds()))
	}
	if s.IRQMethod != "" {
		p("# HELP pynq_agent_kernel_irq_total Interrupts of the overlay's lines since the agent started.\n# TYPE pynq_agent_kernel_irq_total counter\n")
		for _, c := range s.IRQs {
			p("pynq_agent_kernel_irq_total{gic=\"%d\",irq=\"%d\",name=%q,method=%q} %d\n", c.GIC, c.IRQ, c.Name, s.IRQMethod, c.Count)
		}
	}
	if s.OffCPUOK && len(s.Threads) > 0 {
		p("# HELP pynq_agent_kernel_offcpu_seconds_total Time the tracked thread spent switched out.\n# TYPE pynq_agent_kernel_offcpu_seconds_total counter\n")
		for _, th := range s.Threads {
			p("pynq_agent_kernel_offcpu_seconds_total{tid=\"%d\",thread=%q} %s\n", th.TID, th.Name, fmtFloat(th.OffCPU.Seconds()))
		}
		p("# HELP pynq_agent_kernel_frame_offcpu_seconds Off-CPU time of the tracked thread during the last frame.\n# TYPE pynq_agent_kernel_frame_offcpu_seconds gauge\n")
		for _, th := range s.Threads {
			p("pynq_agent_kernel_frame_offcpu_seconds{tid=\"%d\",thread=%q} %s\n", th.TID, th.Name, fmtFloat(th.LastFrame.Seconds()))
		}
	}
	return bw.Flush()
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// StatusExtra is a small flat breakdown for /api/status (Status.Extra["telemetry"]):
// readable keys, numbers in ms or µs as the key says, and "<probe>_unavailable" with the
// reason for each probe that did not load.
func (t *Telemetry) StatusExtra() map[string]any {
	s := t.Snapshot()
	m := map[string]any{}
	us := func(d float64) float64 { return math.Round(d/1e3*10) / 10 }
	ms := func(d float64) float64 { return math.Round(d/1e6*100) / 100 }
	if s.RunQueueOK {
		m["runqueue_waits"] = s.RunQueue.Count
		m["runqueue_p50_us"] = us(float64(s.P50))
		m["runqueue_p99_us"] = us(float64(s.P99))
		m["runqueue_mean_us"] = us(float64(s.RunQueue.Mean()))
	}
	for _, th := range s.Threads {
		k := "offcpu_tid" + strconv.Itoa(th.TID)
		if th.Name != "" {
			k = "offcpu_" + th.Name
		}
		m[k+"_last_frame_ms"] = ms(float64(th.LastFrame))
		if th.Frames > 0 {
			m[k+"_per_frame_ms"] = ms(float64(th.OffCPU) / float64(th.Frames))
		}
	}
	if s.FPGAOK {
		m["fpga_loads"] = s.FPGA.Count
		m["fpga_load_last_ms"] = ms(float64(s.FPGA.Last))
	}
	for _, c := range s.IRQs {
		k := "irq" + strconv.Itoa(c.IRQ)
		if c.GIC >= 0 {
			k = "irq_gic" + strconv.Itoa(c.GIC)
		}
		m[k] = c.Count
	}
	for _, u := range s.Unavailable {
		m[u.Probe+"_unavailable"] = u.Err.Error()
	}
	return m
}
