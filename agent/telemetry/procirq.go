package telemetry

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// IRQLine is one numbered line of /proc/interrupts.
type IRQLine struct {
	IRQ   int    // Linux irq number (the "47:" column)
	Count uint64 // sum over the CPU columns
	Chip  string // interrupt controller, e.g. "GIC-0", "IO-APIC"
	HWIRQ int    // the controller's number for the line (GIC interrupt ID on a GIC); -1 if absent
	Name  string // the rest: trigger type and device name(s)
}

// ParseInterrupts parses /proc/interrupts. Only numbered lines are returned (NMI, LOC,
// ERR and the like are skipped). On Zynq-7000 kernels a line reads
//
//	47:          0          0     GIC-0  61 Level     fabric
//
// and the number after the chip is the GIC interrupt ID the .hwh gives (IRQ_F2P[0] =
// 61), while 47 is the Linux irq number the irq tracepoints report.
func ParseInterrupts(file string, data []byte) ([]IRQLine, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%s: empty (want a CPU header line)", file)
	}
	cpus := len(strings.Fields(sc.Text()))
	if cpus == 0 || !strings.HasPrefix(strings.TrimSpace(sc.Text()), "CPU") {
		return nil, fmt.Errorf("%s:1: header %q does not list CPUs", file, sc.Text())
	}
	var out []IRQLine
	line := 1
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		num, ok := strings.CutSuffix(fields[0], ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: first column %q lacks ':'", file, line, fields[0])
		}
		irq, err := strconv.Atoi(num)
		if err != nil {
			continue // NMI:, LOC:, ERR:, ...
		}
		if irq < 0 {
			return nil, fmt.Errorf("%s:%d: negative irq %d", file, line, irq)
		}
		l := IRQLine{IRQ: irq, HWIRQ: -1}
		rest := fields[1:]
		for i := 0; i < cpus && len(rest) > 0; i++ {
			n, err := strconv.ParseUint(rest[0], 10, 64)
			if err != nil {
				break // fewer columns than CPUs (offline CPUs on some kernels)
			}
			l.Count += n
			rest = rest[1:]
		}
		if len(rest) > 0 {
			l.Chip, rest = rest[0], rest[1:]
		}
		if len(rest) > 0 {
			// "61" (GIC) or "5-edge" (x86): the leading digits are the hardware number.
			d := rest[0]
			end := 0
			for end < len(d) && d[end] >= '0' && d[end] <= '9' {
				end++
			}
			if hw, err := strconv.Atoi(d[:end]); err == nil {
				l.HWIRQ = hw
			}
		}
		if len(rest) > 0 {
			l.Name = strings.Join(rest[1:], " ")
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	return out, nil
}

// gicToLinux finds the Linux irq number of a GIC interrupt ID: the line whose chip is a
// GIC ("GIC-0", "GICv2", "GICv3") and whose hardware number is gic.
func gicToLinux(lines []IRQLine, gic int) (IRQLine, bool) {
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l.Chip), "GIC") && l.HWIRQ == gic {
			return l, true
		}
	}
	return IRQLine{}, false
}
