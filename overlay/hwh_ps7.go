package overlay

import (
	"fmt"
	"strconv"
	"strings"
)

// Clock is one PS7 fabric clock (FCLKn) as the design configures it.
type Clock struct {
	Index        int     // n of FCLK_CLKn, 0..3
	Enabled      bool    // PCW_FPGA_FCLKn_ENABLE
	Source       PLL     // PCW_FCLKn_PERIPHERAL_CLKSRC
	Divisor0     int     // PCW_FCLKn_PERIPHERAL_DIVISOR0, 1..63
	Divisor1     int     // PCW_FCLKn_PERIPHERAL_DIVISOR1, 1..63
	RequestedMHz float64 // PCW_FPGAn_PERIPHERAL_FREQMHZ: what the designer asked for
	PLLMHz       float64 // the source PLL's frequency in the design
}

// Hz is the frequency the divisors give from the design's PLL frequency (0 if unknown).
func (c Clock) Hz() float64 {
	if c.Divisor0 <= 0 || c.Divisor1 <= 0 {
		return 0
	}
	return c.PLLMHz * 1e6 / float64(c.Divisor0*c.Divisor1)
}

// ps7Clocks reads the four FCLK settings from the PS7 parameters. Enabled clocks must
// have valid divisors; disabled ones are reported as found.
func (d *Design) ps7Clocks(ps *Module) ([]Clock, error) {
	pllMHz := map[PLL]float64{
		IOPLL:  d.pllMHz(ps, "PCW_IO_IO_PLL_FREQMHZ", "PCW_IOPLL_CTRL_FBDIV"),
		ARMPLL: d.pllMHz(ps, "PCW_CPU_CPU_PLL_FREQMHZ", "PCW_ARMPLL_CTRL_FBDIV"),
		DDRPLL: d.pllMHz(ps, "PCW_DDR_DDR_PLL_FREQMHZ", "PCW_DDRPLL_CTRL_FBDIV"),
	}
	var clocks []Clock
	for n := range 4 {
		c := Clock{Index: n, Source: IOPLL}
		en, ok := ps.Param(fmt.Sprintf("PCW_FPGA_FCLK%d_ENABLE", n))
		if !ok {
			en, ok = ps.Param(fmt.Sprintf("PCW_EN_CLK%d_PORT", n))
		}
		if !ok {
			continue
		}
		c.Enabled = strings.TrimSpace(en) == "1"
		if src, ok := ps.Param(fmt.Sprintf("PCW_FCLK%d_PERIPHERAL_CLKSRC", n)); ok {
			p, err := ParsePLL(src)
			if err != nil && c.Enabled {
				return nil, d.paramErr(ps, fmt.Sprintf("PCW_FCLK%d_PERIPHERAL_CLKSRC", n), err)
			}
			c.Source = p
		}
		c.PLLMHz = pllMHz[c.Source]
		for i, dst := range []*int{&c.Divisor0, &c.Divisor1} {
			name := fmt.Sprintf("PCW_FCLK%d_PERIPHERAL_DIVISOR%d", n, i)
			v, err := d.intParam(ps, name, 1, maxDivisor)
			if err != nil && c.Enabled {
				return nil, err
			}
			*dst = v
		}
		if s, ok := ps.Param(fmt.Sprintf("PCW_FPGA%d_PERIPHERAL_FREQMHZ", n)); ok {
			c.RequestedMHz, _ = strconv.ParseFloat(strings.TrimSpace(s), 64)
		}
		clocks = append(clocks, c)
	}
	return clocks, nil
}

// pllMHz reads a PLL frequency parameter, else computes it from the feedback divider and
// the crystal (50 MHz on PYNQ boards). 0 when neither is there.
func (d *Design) pllMHz(ps *Module, freqParam, fdivParam string) float64 {
	if s, ok := ps.Param(freqParam); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f > 0 {
			return f
		}
	}
	fdiv, err := d.intParam(ps, fdivParam, 1, 127)
	if err != nil {
		return 0
	}
	crystal := 50.0
	if s, ok := ps.Param("PCW_CRYSTAL_PERIPHERAL_FREQMHZ"); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f > 0 {
			crystal = f
		}
	}
	return crystal * float64(fdiv)
}

func (d *Design) intParam(m *Module, name string, lo, hi int) (int, error) {
	p, ok := m.parameter(name)
	if !ok {
		return 0, &ParseError{File: d.Name, Line: m.Line, Elem: "MODULE " + m.Instance, Err: fmt.Errorf("no PARAMETER %s", name)}
	}
	v, err := strconv.Atoi(strings.TrimSpace(p.Value))
	if err != nil || v < lo || v > hi {
		return 0, d.paramErr(m, name, fmt.Errorf("value %q is not an integer in %d..%d", p.Value, lo, hi))
	}
	return v, nil
}

func (d *Design) paramErr(m *Module, name string, err error) error {
	line := m.Line
	if p, ok := m.parameter(name); ok {
		line = p.Line
	}
	return &ParseError{File: d.Name, Line: line, Elem: "PARAMETER " + name, Err: err}
}

// Interrupt is one interrupt source reaching the PS.
type Interrupt struct {
	Instance string // module raising it
	Port     string // its output port
	IRQF2P   int    // bit of the PS IRQ_F2P input it reaches (via the controller, if any)
	GIC      int    // GIC interrupt ID of that IRQ_F2P bit (61-68, 84-91); 0 if out of range
	// Controller is the axi_intc the source sits behind ("" when wired to the PS), and
	// ControllerIndex its bit on that controller's intr input.
	Controller      string
	ControllerIndex int
}

// GICForIRQF2P maps a Zynq-7000 IRQ_F2P bit to its GIC interrupt ID: bits 0..7 are
// IDs 61..68 and bits 8..15 are 84..91. ok is false outside 0..15.
func GICForIRQF2P(bit int) (id int, ok bool) {
	switch {
	case bit >= 0 && bit < 8:
		return 61 + bit, true
	case bit >= 8 && bit < 16:
		return 84 + bit - 8, true
	}
	return 0, false
}

// irqSource is one bit of an interrupt vector traced back to the port driving it.
type irqSource struct {
	inst, port string
	bit        int
}

// irqTracer walks interrupt nets backwards. Well-formed designs are small trees; the
// path set and the visit budget keep malformed files (cycles, fan-in repeated through
// many xlconcat levels) from looping or exploding.
type irqTracer struct {
	d      *Design
	onPath map[string]bool // xlconcat instances on the current path
	budget int             // remaining port visits
}

const irqVisitBudget = 4096

func newIRQTracer(d *Design) *irqTracer {
	return &irqTracer{d: d, onPath: map[string]bool{}, budget: irqVisitBudget}
}

// traceInterrupts follows the PS IRQ_F2P input back through xlconcat cells; an axi_intc
// found there is reported itself and its intr inputs are traced the same way.
func (d *Design) traceInterrupts(ps *Module) []Interrupt {
	port, ok := ps.Port("IRQ_F2P")
	if !ok {
		return nil
	}
	tr := newIRQTracer(d)
	var out []Interrupt
	for _, src := range tr.drivers(port, 0) {
		gic, _ := GICForIRQF2P(src.bit)
		m, ok := d.Module(src.inst)
		if !ok {
			continue
		}
		out = append(out, Interrupt{Instance: src.inst, Port: src.port, IRQF2P: src.bit, GIC: gic})
		if m.Type != "axi_intc" {
			continue
		}
		intr, ok := m.Port("intr")
		if !ok {
			continue
		}
		for _, in := range tr.drivers(intr, 0) {
			out = append(out, Interrupt{
				Instance: in.inst, Port: in.port, IRQF2P: src.bit, GIC: gic,
				Controller: m.Instance, ControllerIndex: in.bit,
			})
		}
	}
	return out
}

// drivers returns the output ports driving an input port, with the bit of the input each
// lands on (offset by base), looking through xlconcat cells.
func (t *irqTracer) drivers(in *Port, base int) []irqSource {
	var out []irqSource
	seen := map[Connection]bool{}
	for _, c := range in.Connections {
		if t.budget--; t.budget < 0 {
			return out
		}
		if seen[c] {
			continue
		}
		seen[c] = true
		m, ok := t.d.Module(c.Instance)
		if !ok {
			continue
		}
		if other, ok := m.Port(c.Port); ok && other.Dir == "I" {
			continue // another sink on the same net, not a driver
		}
		if !isConcat(m) || c.Port != "dout" {
			out = append(out, irqSource{inst: c.Instance, port: c.Port, bit: base})
			continue
		}
		if t.onPath[m.Instance] {
			continue // a cycle: malformed, nothing drives it
		}
		t.onPath[m.Instance] = true
		off := 0
		for k := 0; ; k++ {
			p, ok := m.Port(fmt.Sprintf("In%d", k))
			if !ok {
				break
			}
			out = append(out, t.drivers(p, base+off)...)
			off += concatWidth(m, k, p)
		}
		t.onPath[m.Instance] = false
	}
	return out
}

// isConcat recognises the concat cells Vivado puts on interrupt vectors: the xlconcat IP
// and the inline ilconcat of newer releases.
func isConcat(m *Module) bool { return m.Type == "xlconcat" || m.Type == "ilconcat" }

// concatWidth is the width of xlconcat input k: the port's LEFT/RIGHT when given, else
// the INk_WIDTH parameter, else 1.
func concatWidth(m *Module, k int, p *Port) int {
	if p.Left != 0 || p.Right != 0 {
		return p.Width()
	}
	if s, ok := m.Param(fmt.Sprintf("IN%d_WIDTH", k)); ok {
		if w, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && w > 0 && w <= 1024 {
			return w
		}
	}
	return 1
}
