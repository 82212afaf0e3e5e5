package agent

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/overlay"
	"periph.io/x/conn/v3/gpio"
)

// TestStatusLEDBlinks drives an AXI GPIO over overlay's in-memory register region.
func TestStatusLEDBlinks(t *testing.T) {
	regs := overlay.NewMemRegion(0x200)
	g, err := overlay.NewAXIGPIO(regs, overlay.GPIOConfig{Name: "leds", Width: [2]int{4, 0}})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := g.Pin(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var writes []uint32
	regs.OnWrite = func(off, v uint32) {
		if off == 0 {
			writes = append(writes, v&2)
		}
	}
	led := newStatusLED(pin, g.Close, quietLog())
	led.detected(3) // not running: nothing
	led.running(true)
	if pin.Read() != gpio.High {
		t.Fatal("LED off while running")
	}
	led.detected(0) // no detections: no blink
	led.detected(2)
	waitFor(t, "the blink to end", func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		return !led.blinking
	})
	if pin.Read() != gpio.High {
		t.Error("LED not back on after the blink")
	}
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
	want := []uint32{2, 0, 2, 0} // on, blink off, on, off at close
	if len(writes) != len(want) {
		t.Fatalf("data writes %v, want %v", writes, want)
	}
	for i := range want {
		if writes[i] != want[i] {
			t.Fatalf("data writes %v, want %v", writes, want)
		}
	}
	var none *statusLED // absent LED: every call is a no-op
	none.running(true)
	none.detected(1)
	if none.Close() != nil {
		t.Error("nil LED Close")
	}
}
