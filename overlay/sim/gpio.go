package sim

import (
	"sync"

	"github.com/fpgadetector/pynq-agent/overlay"
)

// AXI GPIO registers (PG144).
const (
	gpioData1 = 0x0
	gpioTri1  = 0x4
	gpioData2 = 0x8
	gpioTri2  = 0xC
)

// GPIO models an AXI GPIO: per channel a data register whose bits read the input pins
// where the tri-state bit is 1 (input) and the output latch where it is 0. Tests drive
// the inputs with SetInputs and read the pins with Outputs.
type GPIO struct {
	regs *overlay.MemRegion

	mu     sync.Mutex
	out    [2]uint32 // output latches
	in     [2]uint32 // input pin levels
	tri    [2]uint32 // 1 = input
	writes int
}

// NewGPIO returns a GPIO model with a register file of size bytes (at least 0x200).
func NewGPIO(size int) *GPIO {
	g := &GPIO{regs: overlay.NewMemRegion(max(size, 0x200))}
	g.Reset()
	g.regs.OnWrite = g.write
	g.regs.OnRead = g.read
	return g
}

// Region is the register file.
func (g *GPIO) Region() *overlay.MemRegion { return g.regs }

// Reset puts both channels in their reset state: all pins inputs, latches 0.
func (g *GPIO) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out, g.tri = [2]uint32{}, [2]uint32{^uint32(0), ^uint32(0)}
}

// SetInputs sets the levels of channel ch's (0 or 1) input pins.
func (g *GPIO) SetInputs(ch int, v uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.in[ch] = v
}

// Outputs returns channel ch's pin levels where the pins are outputs, and the mask of
// output pins.
func (g *GPIO) Outputs(ch int) (levels, outputs uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out[ch] &^ g.tri[ch], ^g.tri[ch]
}

func (g *GPIO) write(off, v uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch off {
	case gpioData1, gpioData2:
		g.out[off/8] = v
	case gpioTri1, gpioTri2:
		g.tri[off/8] = v
	}
}

func (g *GPIO) read(off, stored uint32) uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch off {
	case gpioData1, gpioData2:
		ch := off / 8
		return g.in[ch]&g.tri[ch] | g.out[ch]&^g.tri[ch]
	case gpioTri1, gpioTri2:
		return g.tri[off/8]
	}
	return stored
}
