package agent

import (
	"slices"
	"time"

	"github.com/fpgadetector/pynq-agent/agent/telemetry"
	"github.com/fpgadetector/pynq-agent/overlay"
)

// openTelemetry loads the kernel probes; tests replace it to simulate a kernel
// without bpf.
var openTelemetry = telemetry.Open

// ThreadTracker accounts the off-CPU time of the pipeline's threads (kernel
// telemetry). The pipeline runs without one when it is nil.
type ThreadTracker interface {
	// TrackThreadAs registers the calling OS thread tid under name.
	TrackThreadAs(tid int, name string) error
	// MarkFrame returns tid's off-CPU time since its previous mark.
	MarkFrame(tid int) time.Duration
}

// startTelemetry loads the eBPF probes (run-queue latency, off-CPU time of the
// pipeline threads, later bitstream loads timed in the kernel, the design's interrupt
// lines). It is optional: off with telemetry.enabled = false, and without root, bpf()
// or the probes the agent logs why once and runs on. It starts after the bitstream is
// programmed, so that a fault in eBPF's 32-bit path cannot stop the board coming up,
// and a panic in it is logged and leaves the agent without telemetry.
func (a *Agent) startTelemetry(design *overlay.Design) {
	if !a.cfg.Telemetry.IsEnabled() {
		a.log.Info("kernel telemetry off (telemetry.enabled = false)")
		return
	}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("kernel telemetry failed; running without it (set telemetry.enabled = false to skip it)", "panic", r)
			a.tel = nil // a probe set already opened is closed with the agent
		}
	}()
	var gics []int
	if design != nil {
		for _, irq := range design.Interrupts {
			if irq.GIC > 0 && !slices.Contains(gics, irq.GIC) {
				gics = append(gics, irq.GIC)
			}
		}
	}
	tel, err := openTelemetry(telemetry.Options{IRQs: gics, Logger: a.log})
	if err != nil {
		a.log.Info("kernel telemetry off", "reason", err)
		return
	}
	a.tel = tel
	a.onClose(tel.Close)
	for _, u := range tel.Unavailable() {
		a.log.Info("kernel telemetry probe unavailable", "probe", u.Probe, "reason", u.Err)
	}
	a.log.Info("kernel telemetry on", "irqs", gics)
}

// threadTracker is the pipeline's view of the telemetry (nil interface without it).
func (a *Agent) threadTracker() ThreadTracker {
	if a.tel == nil {
		return nil
	}
	return a.tel
}
