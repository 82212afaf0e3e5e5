package overlay

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// AXI GPIO (PG144) register offsets.
const (
	gpioData1 = 0x000
	gpioTri1  = 0x004 // 1 = input
	gpioData2 = 0x008
	gpioTri2  = 0x00C
	gpioGIER  = 0x11C // bit 31: global interrupt enable
	gpioISR   = 0x120 // bit 0 channel 1, bit 1 channel 2; write 1 to clear
	gpioIER   = 0x128 // bit 0 channel 1, bit 1 channel 2
	gpioSize  = 0x200 // smallest window holding all registers

	gpioGIEBit = 1 << 31
)

// ErrNotSupported is returned for features the hardware lacks (pull resistors, PWM).
var ErrNotSupported error = unsupported.Error("not supported")

// GPIOConfig describes an AXI GPIO instance.
type GPIOConfig struct {
	Name string // instance name, used in pin names ("leds", "btns_gpio")
	// Width is the number of pins of channel 1 and 2 (C_GPIO_WIDTH, C_GPIO2_WIDTH; 0 when
	// the IP is single-channel).
	Width [2]int
	// AllInputs / AllOutputs say a channel was built input-only (C_ALL_INPUTS,
	// C_ALL_INPUTS_2) or output-only (C_ALL_OUTPUTS, C_ALL_OUTPUTS_2): its direction
	// register does nothing and the other direction is refused.
	AllInputs, AllOutputs [2]bool
	// Interrupt says the IP was built with an interrupt output (C_INTERRUPT_PRESENT).
	Interrupt bool
	// PollInterval is how often WaitForEdge samples the pins; 1 ms if zero.
	PollInterval time.Duration
}

// AXIGPIO drives a Xilinx AXI GPIO IP. Its pins implement periph's gpio.PinIO.
type AXIGPIO struct {
	r    Region
	cfg  GPIOConfig
	mu   sync.Mutex
	out  [2]uint32 // output latch per channel: the data register reads inputs, not it
	tri  [2]uint32 // direction per channel, 1 = input
	pins [2][]*GPIOPin
}

// OpenAXIGPIO maps the AXI GPIO instance of design d on bus and configures it from the
// .hwh parameters.
func OpenAXIGPIO(bus Bus, d *Design, instance string) (*AXIGPIO, error) {
	m, ok := d.Module(instance)
	if !ok {
		return nil, fmt.Errorf("axi gpio %s: no such instance in %s", instance, d.Name)
	}
	if m.Type != "axi_gpio" {
		return nil, fmt.Errorf("axi gpio %s: instance is a %s, not an axi_gpio", instance, m.Type)
	}
	rng, ok := d.Range(instance)
	if !ok {
		return nil, fmt.Errorf("axi gpio %s: the PS address map of %s does not reach it", instance, d.Name)
	}
	cfg := GPIOConfig{Name: instance}
	cfg.Width[0] = paramInt(m, "C_GPIO_WIDTH", 32)
	if paramInt(m, "C_IS_DUAL", 0) == 1 {
		cfg.Width[1] = paramInt(m, "C_GPIO2_WIDTH", 32)
	}
	cfg.Interrupt = paramInt(m, "C_INTERRUPT_PRESENT", 0) == 1
	cfg.AllInputs = [2]bool{paramInt(m, "C_ALL_INPUTS", 0) == 1, paramInt(m, "C_ALL_INPUTS_2", 0) == 1}
	cfg.AllOutputs = [2]bool{paramInt(m, "C_ALL_OUTPUTS", 0) == 1, paramInt(m, "C_ALL_OUTPUTS_2", 0) == 1}
	size := int(min(rng.Size(), gpioSize))
	r, err := bus.Map(rng.Base, size)
	if err != nil {
		return nil, fmt.Errorf("axi gpio %s: %w", instance, err)
	}
	return NewAXIGPIO(r, cfg)
}

func paramInt(m *Module, name string, def int) int {
	s, ok := m.Param(name)
	if !ok {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return v
}

// NewAXIGPIO drives the AXI GPIO mapped at r. Pins start in the direction the hardware
// reports; outputs keep their level.
func NewAXIGPIO(r Region, cfg GPIOConfig) (*AXIGPIO, error) {
	for ch, w := range cfg.Width {
		if w < 0 || w > 32 || (ch == 0 && w == 0) {
			return nil, fmt.Errorf("axi gpio %s: channel %d width %d must be 1..32", cfg.Name, ch+1, w)
		}
	}
	need := gpioTri1 + 4
	if cfg.Width[1] > 0 {
		need = gpioTri2 + 4
	}
	if cfg.Interrupt {
		need = gpioSize
	}
	if r.Size() < need {
		return nil, fmt.Errorf("axi gpio %s: window of %d bytes is smaller than its %d bytes of registers", cfg.Name, r.Size(), need)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Millisecond
	}
	g := &AXIGPIO{r: r, cfg: cfg}
	for ch, w := range cfg.Width {
		if w == 0 {
			continue
		}
		switch {
		case cfg.AllInputs[ch]:
			g.tri[ch] = ^uint32(0)
		case cfg.AllOutputs[ch]:
			g.tri[ch] = 0
		default:
			g.tri[ch] = r.Read32(triReg(ch))
		}
		// Seed the latch with the pins' present levels so the first Out of one pin does
		// not change the others.
		g.out[ch] = r.Read32(dataReg(ch)) &^ g.tri[ch]
		for bit := range w {
			g.pins[ch] = append(g.pins[ch], &GPIOPin{g: g, ch: ch, bit: bit})
		}
	}
	return g, nil
}

func dataReg(ch int) uint32 { return gpioData1 + uint32(ch)*8 }
func triReg(ch int) uint32  { return gpioTri1 + uint32(ch)*8 }

// Name is the instance name.
func (g *AXIGPIO) Name() string { return g.cfg.Name }

// Pin returns pin bit of channel 1 or 2.
func (g *AXIGPIO) Pin(channel, bit int) (*GPIOPin, error) {
	if channel < 1 || channel > 2 || bit < 0 || bit >= len(g.pins[channel-1]) {
		return nil, fmt.Errorf("axi gpio %s: no pin %d on channel %d (widths %v)", g.cfg.Name, bit, channel, g.cfg.Width)
	}
	return g.pins[channel-1][bit], nil
}

// Pins returns channel 1's pins then channel 2's.
func (g *AXIGPIO) Pins() []*GPIOPin {
	return append(append([]*GPIOPin(nil), g.pins[0]...), g.pins[1]...)
}

// Close halts the pins' waits and unmaps the registers.
func (g *AXIGPIO) Close() error {
	for _, p := range g.Pins() {
		p.Halt()
	}
	return g.r.Close()
}

// EnableInterrupt turns on the IP's interrupt for a channel (IER bit and GIER), for use
// with a UIO or axi_intc interrupt path; WaitForEdge itself polls.
func (g *AXIGPIO) EnableInterrupt(channel int) error {
	if !g.cfg.Interrupt {
		return fmt.Errorf("axi gpio %s: interrupt: %w (built without C_INTERRUPT_PRESENT)", g.cfg.Name, ErrNotSupported)
	}
	if channel < 1 || channel > 2 || g.cfg.Width[channel-1] == 0 {
		return fmt.Errorf("axi gpio %s: no channel %d", g.cfg.Name, channel)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.r.Write32(gpioIER, g.r.Read32(gpioIER)|1<<(channel-1))
	g.r.Write32(gpioGIER, gpioGIEBit)
	return nil
}

// PendingInterrupts returns the ISR bits (bit 0 channel 1, bit 1 channel 2) and clears
// them (the ISR is toggle-on-write).
func (g *AXIGPIO) PendingInterrupts() uint32 {
	if !g.cfg.Interrupt {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	v := g.r.Read32(gpioISR) & 3
	if v != 0 {
		g.r.Write32(gpioISR, v)
	}
	return v
}

func (g *AXIGPIO) setDir(ch, bit int, input bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.AllInputs[ch] || g.cfg.AllOutputs[ch] {
		return // fixed direction: no direction register to write
	}
	if input {
		g.tri[ch] |= 1 << bit
	} else {
		g.tri[ch] &^= 1 << bit
	}
	g.r.Write32(triReg(ch), g.tri[ch])
}

func (g *AXIGPIO) setOut(ch, bit int, l gpio.Level) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l {
		g.out[ch] |= 1 << bit
	} else {
		g.out[ch] &^= 1 << bit
	}
	g.r.Write32(dataReg(ch), g.out[ch])
	if g.tri[ch]&(1<<bit) != 0 && !g.cfg.AllOutputs[ch] {
		g.tri[ch] &^= 1 << bit
		g.r.Write32(triReg(ch), g.tri[ch])
	}
}

func (g *AXIGPIO) level(ch, bit int) gpio.Level {
	return g.r.Read32(dataReg(ch))&(1<<bit) != 0
}

func (g *AXIGPIO) isInput(ch, bit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tri[ch]&(1<<bit) != 0
}

// GPIOPin is one AXI GPIO pin as a periph gpio.PinIO.
type GPIOPin struct {
	g   *AXIGPIO
	ch  int // 0 or 1 for channel 1 or 2
	bit int

	mu   sync.Mutex
	edge gpio.Edge
	last gpio.Level // level at In() or the last reported edge
	gen  uint64     // bumped by In and Halt to end a pending WaitForEdge
}

var (
	_ gpio.PinIO  = (*GPIOPin)(nil)
	_ pin.PinFunc = (*GPIOPin)(nil)
)

// Name is "<instance>/ch<channel>[<bit>]", e.g. "leds/ch1[2]".
func (p *GPIOPin) Name() string {
	return fmt.Sprintf("%s/ch%d[%d]", p.g.cfg.Name, p.ch+1, p.bit)
}

// Number is the bit index on channel 1, and 32 + the bit index on channel 2.
func (p *GPIOPin) Number() int { return p.ch*32 + p.bit }

func (p *GPIOPin) String() string { return p.Name() }

// Function returns "IN" or "OUT" (periph's deprecated string form of Func).
func (p *GPIOPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *GPIOPin) Func() pin.Func {
	if p.g.isInput(p.ch, p.bit) {
		return gpio.IN
	}
	return gpio.OUT
}

// SupportedFuncs implements pin.PinFunc.
func (p *GPIOPin) SupportedFuncs() []pin.Func { return []pin.Func{gpio.IN, gpio.OUT} }

// SetFunc implements pin.PinFunc: IN, OUT (keeps the level), OUT_LOW or OUT_HIGH.
func (p *GPIOPin) SetFunc(f pin.Func) error {
	switch f {
	case gpio.IN:
		return p.In(gpio.PullNoChange, gpio.NoEdge)
	case gpio.OUT:
		p.g.mu.Lock()
		l := gpio.Level(p.g.out[p.ch]&(1<<p.bit) != 0)
		p.g.mu.Unlock()
		return p.Out(l)
	case gpio.OUT_LOW:
		return p.Out(gpio.Low)
	case gpio.OUT_HIGH:
		return p.Out(gpio.High)
	}
	return fmt.Errorf("%s: function %q: %w", p, f, ErrNotSupported)
}

// Halt ends a pending WaitForEdge; the pin keeps its direction and level.
func (p *GPIOPin) Halt() error {
	p.mu.Lock()
	p.gen++
	p.mu.Unlock()
	return nil
}

// In makes the pin an input. AXI GPIO has no pull resistors: only PullNoChange and
// Float are accepted. edge selects what WaitForEdge reports.
func (p *GPIOPin) In(pull gpio.Pull, edge gpio.Edge) error {
	if pull != gpio.PullNoChange && pull != gpio.Float {
		return fmt.Errorf("%s: %v: %w (AXI GPIO pins have no pull resistors; use Float)", p, pull, ErrNotSupported)
	}
	if edge > gpio.BothEdges {
		return fmt.Errorf("%s: edge %v: %w", p, edge, ErrNotSupported)
	}
	if p.g.cfg.AllOutputs[p.ch] {
		return fmt.Errorf("%s: input: %w (channel %d is built output-only)", p, ErrNotSupported, p.ch+1)
	}
	p.g.setDir(p.ch, p.bit, true)
	p.mu.Lock()
	p.edge = edge
	p.last = p.g.level(p.ch, p.bit)
	p.gen++
	p.mu.Unlock()
	return nil
}

// Read returns the pin's level (for an output, the level the register reads back).
func (p *GPIOPin) Read() gpio.Level { return p.g.level(p.ch, p.bit) }

// WaitForEdge polls the pin until an edge of the kind given to In occurs, the timeout
// passes (a negative timeout waits forever), or In or Halt is called. Pulses shorter
// than the poll interval can be missed.
func (p *GPIOPin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	gen, edge := p.gen, p.edge
	p.mu.Unlock()
	if edge == gpio.NoEdge {
		return false
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if p.edgeSeen(gen, edge) {
			return true
		}
		if !p.running(gen) || (timeout >= 0 && !time.Now().Before(deadline)) {
			return false
		}
		time.Sleep(p.g.cfg.PollInterval)
	}
}

// edgeSeen samples the pin and reports a wanted edge since the last sample.
func (p *GPIOPin) edgeSeen(gen uint64, edge gpio.Edge) bool {
	l := p.g.level(p.ch, p.bit)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || l == p.last {
		return false
	}
	p.last = l
	if l {
		return edge&gpio.RisingEdge != 0
	}
	return edge&gpio.FallingEdge != 0
}

func (p *GPIOPin) running(gen uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen == gen
}

// Pull returns Float: AXI GPIO pins have no pull resistors.
func (p *GPIOPin) Pull() gpio.Pull { return gpio.Float }

// DefaultPull returns Float.
func (p *GPIOPin) DefaultPull() gpio.Pull { return gpio.Float }

// Out makes the pin an output at level l. The other pins of the channel keep the levels
// this driver last wrote.
func (p *GPIOPin) Out(l gpio.Level) error {
	if p.g.cfg.AllInputs[p.ch] {
		return fmt.Errorf("%s: output: %w (channel %d is built input-only)", p, ErrNotSupported, p.ch+1)
	}
	p.g.setOut(p.ch, p.bit, l)
	return nil
}

// PWM is not supported by AXI GPIO.
func (p *GPIOPin) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("%s: pwm: %w", p, ErrNotSupported)
}
