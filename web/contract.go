package web

import (
	"image"
	"io"
	"time"
)

// This file is the contract between the daemon (package agent), which runs the pipeline,
// and this package, which serves it: the agent implements [Backend] and publishes every
// processed frame to a [Hub]; the server answers HTTP and WebSocket clients from them.

// Box is one detection as the feed and the API show it.
type Box struct {
	Class   string     `json:"class"`
	ClassID int        `json:"class_id"`
	Score   float32    `json:"score"`
	Box     [4]float32 `json:"box"` // x1, y1, x2, y2 in pixels of the frame
}

// StageTimes are the per-stage durations of one frame, in milliseconds.
type StageTimes map[string]float64

// FrameStats ride along with each frame on the feed.
type FrameStats struct {
	SourceFPS   float64    `json:"source_fps"`
	DetectFPS   float64    `json:"detect_fps"`
	InferenceMS float64    `json:"inference_ms"` // engine time of this frame
	LatencyMS   float64    `json:"latency_ms"`   // capture to publish
	Dropped     uint64     `json:"dropped"`      // frames dropped so far
	Stages      StageTimes `json:"stages_ms"`
}

// Frame is one processed frame. Image is the frame as captured (not letterboxed); the hub
// encodes it to JPEG at most once, and only when someone watches. JPEG, when set, is
// Image as the source encoded it (an MJPEG camera's frame): the feed sends those bytes as
// they are instead of encoding Image again.
type Frame struct {
	ID         uint64
	Captured   time.Time
	Published  time.Time
	Image      image.Image
	JPEG       []byte
	Detections []Box
	Stats      FrameStats
}

// Status is the JSON of /api/status.
type Status struct {
	Version   string         `json:"version"`
	Backend   string         `json:"backend"` // "board" | "sim" | "emulated"
	Bitstream map[string]any `json:"bitstream,omitempty"`
	Model     map[string]any `json:"model,omitempty"`
	Source    string         `json:"source"`
	// SourceError is the source's last error while it fails (the daemon reopens it with a
	// growing delay and is not ready meanwhile).
	SourceError string         `json:"source_error,omitempty"`
	Paused      bool           `json:"paused"`
	Ready       bool           `json:"ready"`
	Healthy     bool           `json:"healthy"`
	Health      string         `json:"health,omitempty"` // why not healthy
	FPSIn       float64        `json:"fps_in"`
	FPSOut      float64        `json:"fps_out"`
	StagesMS    StageTimes     `json:"stages_ms"`
	LatencyMS   float64        `json:"latency_ms"`
	Dropped     uint64         `json:"dropped"`
	Viewers     int            `json:"viewers"`
	UptimeS     float64        `json:"uptime_s"`
	Thresh      float32        `json:"thresh"`
	Classes     []string       `json:"classes,omitempty"` // class filter; empty = all
	Extra       map[string]any `json:"extra,omitempty"`   // e.g. telemetry
}

// Control is an authenticated change to the running pipeline. Nil fields are unchanged.
type Control struct {
	Thresh  *float32  `json:"thresh,omitempty"`
	Classes *[]string `json:"classes,omitempty"` // class filter; empty list = all
	Paused  *bool     `json:"paused,omitempty"`
}

// Backend is what the daemon offers the server.
type Backend interface {
	Status() Status
	Ready() bool
	// Health is nil while the daemon does its job, else the reason it does not
	// (/healthz and /readyz answer 503 with it).
	Health() error
	// WriteMetrics writes Prometheus text exposition format (version 0.0.4).
	WriteMetrics(w io.Writer) error
	Control(c Control) error
}
