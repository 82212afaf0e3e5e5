package agent

import (
	"log/slog"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/overlay"
	"periph.io/x/conn/v3/gpio"
)

// blinkOff is how long the LED goes dark to show a detection.
const blinkOff = 80 * time.Millisecond

// statusLED is an optional LED on an AXI GPIO pin: on while running, a short blink on
// each frame with detections. A nil *statusLED does nothing, so callers need no checks.
type statusLED struct {
	pin    gpio.PinOut
	closer func() error
	log    *slog.Logger

	mu       sync.Mutex
	on       bool
	blinking bool
	timer    *time.Timer
	failed   bool
}

// openLED maps the configured pin. A missing instance is logged once and yields nil:
// the W1A3 overlay has no GPIO, and an LED is never a reason not to start.
func openLED(bus overlay.Bus, d *overlay.Design, cfg LEDConfig, log *slog.Logger) *statusLED {
	if cfg.Instance == "" {
		return nil
	}
	g, err := overlay.OpenAXIGPIO(bus, d, cfg.Instance)
	if err != nil {
		log.Warn("status LED unavailable; continuing without it", "instance", cfg.Instance, "err", err)
		return nil
	}
	pin, err := g.Pin(cfg.Channel, cfg.Pin)
	if err != nil {
		g.Close()
		log.Warn("status LED unavailable; continuing without it", "instance", cfg.Instance, "channel", cfg.Channel, "pin", cfg.Pin, "err", err)
		return nil
	}
	return newStatusLED(pin, g.Close, log)
}

func newStatusLED(pin gpio.PinOut, closer func() error, log *slog.Logger) *statusLED {
	return &statusLED{pin: pin, closer: closer, log: log}
}

func (l *statusLED) set(level gpio.Level) {
	if err := l.pin.Out(level); err != nil && !l.failed {
		l.failed = true // log once; the LED is decoration
		l.log.Warn("status LED write failed", "err", err)
	}
}

// running turns the LED on (or off when the daemon stops).
func (l *statusLED) running(on bool) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = on
	if !l.blinking {
		l.set(gpio.Level(on))
	}
}

// detected blinks the LED when a frame had detections; it never blocks the pipeline.
func (l *statusLED) detected(n int) {
	if l == nil || n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on || l.blinking {
		return
	}
	l.blinking = true
	l.set(gpio.Low)
	l.timer = time.AfterFunc(blinkOff, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.blinking = false
		l.set(gpio.Level(l.on))
	})
}

// Close turns the LED off and unmaps it.
func (l *statusLED) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.on, l.blinking = false, false
	l.set(gpio.Low)
	l.mu.Unlock()
	if l.closer != nil {
		return l.closer()
	}
	return nil
}
