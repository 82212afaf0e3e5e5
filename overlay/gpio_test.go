package overlay

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/pin"
)

func newTestGPIO(t *testing.T, cfg GPIOConfig) (*AXIGPIO, *MemRegion) {
	t.Helper()
	m := NewMemRegion(gpioSize)
	m.Poke(gpioTri1, 0xFFFFFFFF) // AXI GPIO resets to all inputs
	m.Poke(gpioTri2, 0xFFFFFFFF)
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Microsecond
	}
	g, err := NewAXIGPIO(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, m
}

func mustPin(t *testing.T, g *AXIGPIO, ch, bit int) *GPIOPin {
	t.Helper()
	p, err := g.Pin(ch, bit)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGPIOOut(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "leds", Width: [2]int{4, 2}})
	if n := len(g.Pins()); n != 6 {
		t.Fatalf("%d pins, want 6", n)
	}
	p2 := mustPin(t, g, 1, 2)
	if p2.Name() != "leds/ch1[2]" || p2.String() != "leds/ch1[2]" || p2.Number() != 2 || p2.Function() != "IN" {
		t.Errorf("pin = %s #%d %s", p2.Name(), p2.Number(), p2.Function())
	}
	if err := p2.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if m.Peek(gpioData1) != 0b0100 || m.Peek(gpioTri1) != 0xFFFFFFFB {
		t.Errorf("data %#x tri %#x after Out(High) on bit 2", m.Peek(gpioData1), m.Peek(gpioTri1))
	}
	if p2.Func() != gpio.OUT {
		t.Errorf("Func = %v, want OUT", p2.Func())
	}
	// Another pin's Out keeps bit 2 high: the driver keeps its own output latch.
	p0 := mustPin(t, g, 1, 0)
	p0.Out(gpio.High)
	p2.Out(gpio.Low)
	if m.Peek(gpioData1) != 0b0001 {
		t.Errorf("data %#x, want 0b0001", m.Peek(gpioData1))
	}
	// Channel 2 uses its own registers.
	q1 := mustPin(t, g, 2, 1)
	if q1.Number() != 33 || q1.Name() != "leds/ch2[1]" {
		t.Errorf("channel 2 pin = %s #%d", q1.Name(), q1.Number())
	}
	q1.Out(gpio.High)
	if m.Peek(gpioData2) != 0b10 || m.Peek(gpioTri2) != 0xFFFFFFFD || m.Peek(gpioData1) != 0b0001 {
		t.Errorf("ch2 data %#x tri %#x, ch1 data %#x", m.Peek(gpioData2), m.Peek(gpioTri2), m.Peek(gpioData1))
	}
	if err := q1.SetFunc(gpio.OUT_LOW); err != nil || m.Peek(gpioData2) != 0 {
		t.Errorf("SetFunc(OUT_LOW) = %v, data %#x", err, m.Peek(gpioData2))
	}
	if err := p2.PWM(gpio.DutyHalf, 0); !errors.Is(err, ErrNotSupported) {
		t.Errorf("PWM = %v", err)
	}
	if _, err := g.Pin(2, 2); err == nil {
		t.Error("Pin(2, 2) exists on a 2-pin channel")
	}
	if _, err := g.Pin(3, 0); err == nil {
		t.Error("Pin(3, 0) exists")
	}
}

func TestGPIOIn(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "btns", Width: [2]int{4, 0}})
	p := mustPin(t, g, 1, 3)
	p.Out(gpio.High)
	if err := p.In(gpio.Float, gpio.NoEdge); err != nil {
		t.Fatal(err)
	}
	if m.Peek(gpioTri1)&(1<<3) == 0 || p.Func() != gpio.IN {
		t.Errorf("tri %#x after In", m.Peek(gpioTri1))
	}
	m.Poke(gpioData1, 1<<3)
	if p.Read() != gpio.High {
		t.Error("Read = Low, want High")
	}
	m.Poke(gpioData1, 0)
	if p.Read() != gpio.Low {
		t.Error("Read = High, want Low")
	}
	for _, pull := range []gpio.Pull{gpio.PullUp, gpio.PullDown} {
		if err := p.In(pull, gpio.NoEdge); !errors.Is(err, ErrNotSupported) {
			t.Errorf("In(%v) = %v, want ErrNotSupported", pull, err)
		}
	}
	if p.Pull() != gpio.Float || p.DefaultPull() != gpio.Float {
		t.Errorf("Pull = %v, DefaultPull = %v", p.Pull(), p.DefaultPull())
	}
	// With no edge requested, WaitForEdge returns at once.
	if p.WaitForEdge(time.Hour) {
		t.Error("WaitForEdge without an edge returned true")
	}
}

// scriptLevels makes reads of the channel 1 data register return levels[i] on the i-th
// read (then the last one forever), so edges arrive at known polls.
func scriptLevels(m *MemRegion, levels ...uint32) *atomic.Int32 {
	var n atomic.Int32
	m.OnRead = func(off, stored uint32) uint32 {
		if off != gpioData1 {
			return stored
		}
		i := int(n.Add(1)) - 1
		return levels[min(i, len(levels)-1)]
	}
	return &n
}

func TestGPIOWaitForEdge(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "btns", Width: [2]int{4, 0}})
	p := mustPin(t, g, 1, 0)

	// Rising edge: low at In, low, then high.
	scriptLevels(m, 0, 0, 1)
	if err := p.In(gpio.Float, gpio.RisingEdge); err != nil {
		t.Fatal(err)
	}
	if !p.WaitForEdge(time.Minute) {
		t.Error("rising edge not seen")
	}
	// A falling edge is not what was asked for: the wait times out.
	scriptLevels(m, 1, 0)
	p.In(gpio.Float, gpio.RisingEdge)
	if p.WaitForEdge(0) {
		t.Error("falling edge reported while waiting for rising")
	}
	// Both edges: high -> low is reported.
	scriptLevels(m, 1, 1, 0)
	p.In(gpio.Float, gpio.BothEdges)
	if !p.WaitForEdge(time.Minute) {
		t.Error("falling edge not seen with BothEdges")
	}
	// Other pins changing is not an edge of this pin.
	scriptLevels(m, 0, 0b1110)
	p.In(gpio.Float, gpio.BothEdges)
	if p.WaitForEdge(0) {
		t.Error("edge on another pin reported")
	}
}

func TestGPIOHaltEndsWait(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "btns", Width: [2]int{1, 0}})
	p := mustPin(t, g, 1, 0)
	p.In(gpio.Float, gpio.RisingEdge)
	// Halt from inside the third poll, so the wait is certainly running (no timing).
	var n atomic.Int32
	m.OnRead = func(off, stored uint32) uint32 {
		if n.Add(1) == 3 {
			p.Halt()
		}
		return 0
	}
	if p.WaitForEdge(-1) {
		t.Error("WaitForEdge returned true after Halt")
	}
}

func TestGPIOInterrupts(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "btns", Width: [2]int{4, 0}, Interrupt: true})
	if err := g.EnableInterrupt(1); err != nil {
		t.Fatal(err)
	}
	if m.Peek(gpioIER) != 1 || m.Peek(gpioGIER) != gpioGIEBit {
		t.Errorf("IER %#x GIER %#x", m.Peek(gpioIER), m.Peek(gpioGIER))
	}
	if err := g.EnableInterrupt(2); err == nil {
		t.Error("EnableInterrupt on a missing channel 2 succeeded")
	}
	var cleared []uint32
	m.OnWrite = func(off, v uint32) {
		if off == gpioISR {
			cleared = append(cleared, v)
		}
	}
	m.Poke(gpioISR, 1)
	if got := g.PendingInterrupts(); got != 1 || len(cleared) != 1 || cleared[0] != 1 {
		t.Errorf("PendingInterrupts = %d, ISR writes %v", got, cleared)
	}
	noIRQ, _ := newTestGPIO(t, GPIOConfig{Name: "leds", Width: [2]int{4, 0}})
	if err := noIRQ.EnableInterrupt(1); !errors.Is(err, ErrNotSupported) {
		t.Errorf("EnableInterrupt without the interrupt = %v", err)
	}
}

func TestNewAXIGPIOChecks(t *testing.T) {
	for _, c := range []struct {
		size int
		cfg  GPIOConfig
	}{
		{0x200, GPIOConfig{Name: "x", Width: [2]int{0, 0}}},
		{0x200, GPIOConfig{Name: "x", Width: [2]int{33, 0}}},
		{0x8, GPIOConfig{Name: "x", Width: [2]int{1, 1}}},
		{0x10, GPIOConfig{Name: "x", Width: [2]int{1, 0}, Interrupt: true}},
	} {
		if _, err := NewAXIGPIO(NewMemRegion(c.size), c.cfg); err == nil {
			t.Errorf("NewAXIGPIO(%d bytes, %+v) succeeded", c.size, c.cfg)
		}
	}
}

func TestOpenAXIGPIOFromDesign(t *testing.T) {
	d := parseSmall(t)
	var raw MemBus
	btnsRegs := NewMemRegion(0x10000)
	ledsRegs := NewMemRegion(0x10000)
	raw.Add(0x41200000, btnsRegs)
	raw.Add(0x41210000, ledsRegs)
	bus := NewCheckedBus(&raw, d)

	leds, err := OpenAXIGPIO(bus, d, "leds")
	if err != nil {
		t.Fatal(err)
	}
	defer leds.Close()
	if n := len(leds.Pins()); n != 6 {
		t.Errorf("leds has %d pins, want 4 + 2 (dual channel)", n)
	}
	leds.Pins()[5].Out(gpio.High)
	if ledsRegs.Peek(gpioData2) != 0b10 {
		t.Errorf("leds ch2 data = %#x", ledsRegs.Peek(gpioData2))
	}
	btns, err := OpenAXIGPIO(bus, d, "btns")
	if err != nil {
		t.Fatal(err)
	}
	defer btns.Close()
	if n := len(btns.Pins()); n != 4 {
		t.Errorf("btns has %d pins", n)
	}
	if err := btns.EnableInterrupt(1); err != nil {
		t.Errorf("btns interrupt (C_INTERRUPT_PRESENT=1): %v", err)
	}
	for _, inst := range []string{"nope", "dma", "intc"} {
		if _, err := OpenAXIGPIO(bus, d, inst); err == nil {
			t.Errorf("OpenAXIGPIO(%s) succeeded", inst)
		}
	}
}

func TestGPIOFixedDirection(t *testing.T) {
	g, m := newTestGPIO(t, GPIOConfig{Name: "sws", Width: [2]int{2, 4}, AllInputs: [2]bool{true, false}, AllOutputs: [2]bool{false, true}})
	sw := mustPin(t, g, 1, 0)
	if err := sw.Out(gpio.High); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Out on an input-only channel = %v", err)
	}
	if err := sw.In(gpio.Float, gpio.BothEdges); err != nil || sw.Func() != gpio.IN {
		t.Errorf("In on an input-only channel = %v, func %v", err, sw.Func())
	}
	led := mustPin(t, g, 2, 3)
	if led.Func() != gpio.OUT {
		t.Errorf("output-only pin starts as %v", led.Func())
	}
	if err := led.In(gpio.Float, gpio.NoEdge); !errors.Is(err, ErrNotSupported) {
		t.Errorf("In on an output-only channel = %v", err)
	}
	if err := led.Out(gpio.High); err != nil || m.Peek(gpioData2) != 1<<3 {
		t.Errorf("Out = %v, data %#x", err, m.Peek(gpioData2))
	}
	if m.Peek(gpioTri1) != 0xFFFFFFFF || m.Peek(gpioTri2) != 0xFFFFFFFF {
		t.Errorf("direction registers written on fixed-direction channels: %#x %#x", m.Peek(gpioTri1), m.Peek(gpioTri2))
	}
}

// The pins satisfy periph's generic pin contract.
func TestGPIOPinIsPeriphPin(t *testing.T) {
	g, _ := newTestGPIO(t, GPIOConfig{Name: "leds", Width: [2]int{1, 0}})
	var p gpio.PinIO = mustPin(t, g, 1, 0)
	if _, ok := p.(pin.PinFunc); !ok {
		t.Error("pin does not implement pin.PinFunc")
	}
	if err := p.Halt(); err != nil {
		t.Error(err)
	}
}
