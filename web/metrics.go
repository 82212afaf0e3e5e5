package web

import (
	"bufio"
	"fmt"
	"io"
)

// metricWriter writes Prometheus text exposition format (0.0.4): HELP and TYPE once per
// family, then its samples. Small enough to not need the client library.
type metricWriter struct{ w *bufio.Writer }

func (m metricWriter) family(name, kind, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func (m metricWriter) sample(name, labels string, v float64) {
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(m.w, "%s%s %g\n", name, labels, v)
}

func (m metricWriter) one(name, kind, help string, v float64) {
	m.family(name, kind, help)
	m.sample(name, "", v)
}

// WriteMetrics writes the hub's metrics in Prometheus text format.
func (h *Hub) WriteMetrics(w io.Writer) error {
	m := metricWriter{bufio.NewWriter(w)}
	st := h.Stats()
	m.one("pynq_feed_viewers", "gauge", "Connected feed viewers.", float64(st.Viewers))
	m.one("pynq_feed_viewers_connected_total", "counter", "Feed viewers that ever connected.", float64(st.ViewersTotal))
	m.one("pynq_feed_frames_published_total", "counter", "Frames handed to the feed hub.", float64(st.Published))
	m.one("pynq_feed_frames_skipped_total", "counter", "Frames the hub skipped because its encoder was behind.", float64(st.Skipped))
	m.one("pynq_feed_frames_encoded_total", "counter", "Frames encoded for the feed (once per frame for all viewers).", float64(st.Encoded))
	m.one("pynq_feed_encode_seconds_total", "counter", "Time spent encoding feed frames.", st.EncodeSeconds)
	m.one("pynq_feed_bytes_sent_total", "counter", "Feed payload bytes written to viewers.", float64(st.BytesSent))
	m.one("pynq_feed_viewer_dropped_frames_total", "counter", "Frames dropped for slow viewers, all viewers ever.", float64(st.ViewerDrops))
	m.family("pynq_feed_viewer_dropped_frames", "gauge", "Frames dropped so far for each connected viewer.")
	for _, v := range *h.viewers.Load() {
		m.sample("pynq_feed_viewer_dropped_frames", fmt.Sprintf(`viewer="%d"`, v.id), float64(v.dropped.Load()))
	}
	m.family("pynq_feed_viewer_sent_frames", "gauge", "Frames sent so far to each connected viewer.")
	for _, v := range *h.viewers.Load() {
		m.sample("pynq_feed_viewer_sent_frames", fmt.Sprintf(`viewer="%d"`, v.id), float64(v.sent.Load()))
	}
	return m.w.Flush()
}

// writeMetrics writes the server's own counters.
func (s *server) writeMetrics(w io.Writer) error {
	m := metricWriter{bufio.NewWriter(w)}
	m.one("pynq_feed_origin_rejected_total", "counter", "Feed connections refused for their Origin.", float64(s.badOrigin.Load()))
	m.family("pynq_control_requests_total", "counter", "Control requests by result.")
	m.sample("pynq_control_requests_total", `result="ok"`, float64(s.controlOK.Load()))
	m.sample("pynq_control_requests_total", `result="denied"`, float64(s.controlDenied.Load()))
	m.sample("pynq_control_requests_total", `result="bad"`, float64(s.controlBad.Load()))
	m.one("pynq_snapshots_total", "counter", "Snapshots served.", float64(s.snapshots.Load()))
	m.one("pynq_snapshot_encodes_total", "counter", "JPEG encodes for snapshots (at most one per frame and kind).", float64(s.snaps.count()))
	m.one("pynq_feed_viewers_refused_total", "counter", "Feed connections refused because server.max_viewers watched already.", float64(s.viewersRefused.Load()))
	return m.w.Flush()
}
