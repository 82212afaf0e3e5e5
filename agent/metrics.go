package agent

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// WriteMetrics writes the daemon's metrics in the Prometheus text format (0.0.4).
//
// Written by hand rather than with prometheus/client_golang: the library with its Go
// runtime and process collectors adds 4.3 MB to a stripped armv7 binary (a minimal
// HTTP server measured 5.6 MB without it, 9.9 MB with client_golang v1.23.2), half
// again the agent's 8 MiB, for a dozen gauges and counters that checkPromText (the
// tests) holds to the exposition format.
func (a *Agent) WriteMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	sn := a.pipe.Stats()
	m := promWriter{bw}
	m.one("pynq_agent_info", "gauge", "Build and backend of the daemon (value 1).",
		fmt.Sprintf(`version=%q,backend=%q`, Version, a.cfg.Backend), 1)
	m.one("pynq_agent_ready", "gauge", "1 when start-up finished and the source delivers frames.", "", b2f(a.Ready()))
	m.one("pynq_agent_source_failing", "gauge", "1 while the frame source fails and is being reopened; /api/status has its error.", "", b2f(a.pipe.SourceFailure() != ""))

	m.one("pynq_agent_healthy", "gauge", "1 unless the engine is stuck or stopped, or frames go in and none come out (health.stall); /api/status says why.", "", b2f(a.Health() == nil))
	if a.engine != nil {
		c := a.engine.Counts()
		m.one("pynq_agent_engine_resets_total", "counter", "Engine resets after a failed run.", "", float64(c.Resets))
		m.one("pynq_agent_engine_reprograms_total", "counter", "Bitstream loads after repeated engine failures.", "", float64(c.Reprograms))
		m.one("pynq_agent_engine_reprograms_failed_total", "counter", "Of those, loads or engine reopens that failed.", "", float64(c.ReprogramFailed))
		m.one("pynq_agent_engine_stopped", "gauge", "1 when the engine is stopped for good (another program reprogrammed the PL, or a reprogram failed).", "", b2f(a.engine.Err() != nil))
	}
	_, _, paused := a.pipe.controlState()
	m.one("pynq_agent_paused", "gauge", "1 while processing is paused by control.", "", b2f(paused))
	m.one("pynq_agent_uptime_seconds", "gauge", "Seconds since start-up began.", "", time.Since(a.start).Seconds())
	m.one("pynq_agent_frames_in_total", "counter", "Frames accepted from the source.", "", float64(sn.FramesIn))
	m.one("pynq_agent_frames_out_total", "counter", "Frames processed and published.", "", float64(sn.FramesOut))
	m.one("pynq_agent_frames_dropped_total", "counter", "Captured frames dropped (oldest first) because the pipeline was busy.", "", float64(sn.Dropped))
	m.one("pynq_agent_frames_paused_total", "counter", "Captured frames discarded while paused.", "", float64(sn.Paused))
	m.one("pynq_agent_frame_errors_total", "counter", "Frames that failed in a stage.", "", float64(sn.Errors))
	m.one("pynq_agent_detections_total", "counter", "Detections published (after threshold and class filter).", "", float64(sn.Detections))
	m.one("pynq_agent_source_errors_total", "counter", "Frame source failures (each is retried).", "", float64(sn.SourceErrors))
	m.one("pynq_agent_fps_in", "gauge", "Frames per second accepted from the source.", "", sn.FPSIn)
	m.one("pynq_agent_fps_out", "gauge", "Frames per second published.", "", sn.FPSOut)
	m.one("pynq_agent_latency_seconds", "gauge", "Capture-to-publish latency, moving average.", "", sn.LatencyMS/1000)
	m.family("pynq_agent_stage_seconds", "gauge", "Per-stage time per frame, moving average.")
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range sn.StagesMS {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range names {
		m.sample("pynq_agent_stage_seconds", fmt.Sprintf("stage=%q", k), sn.StagesMS[k]/1000)
	}
	m.family("pynq_agent_stage_last_seconds", "gauge", "Per-stage time of the last frame.")
	for _, k := range names {
		m.sample("pynq_agent_stage_last_seconds", fmt.Sprintf("stage=%q", k), sn.LastMS[k]/1000)
	}
	if a.tel != nil {
		_ = a.tel.WriteMetrics(bw) // its pynq_agent_kernel_* families
	}
	return bw.Flush()
}

type promWriter struct{ w *bufio.Writer }

func (m promWriter) family(name, kind, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, kind)
}

func (m promWriter) sample(name, labels string, v float64) {
	if labels != "" {
		name += "{" + labels + "}"
	}
	fmt.Fprintf(m.w, "%s %g\n", name, v)
}

func (m promWriter) one(name, kind, help, labels string, v float64) {
	m.family(name, kind, help)
	m.sample(name, labels, v)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
