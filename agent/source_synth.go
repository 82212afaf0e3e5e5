package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/synth"
)

// SynthPrefix starts a synthetic source input: "synth:" or "synth:SEED".
const SynthPrefix = "synth:"

// Synthetic frames: the default size and rate when the config sets none.
const (
	synthDefaultSize = 320
	synthDefaultFPS  = 10
)

// isSynthInput reports whether input names the synthetic source ("synth" or "synth:...").
func isSynthInput(input string) bool {
	return input == "synth" || strings.HasPrefix(input, SynthPrefix)
}

// synthSource is an endless live stream of rendered rooms with chairs (quant/synth's
// Scene): a camera panning slowly across a room, a new room every few hundred frames.
// It paces itself like a camera (source.fps, default 10) so it renders only the frames
// the pipeline takes.
type synthSource struct {
	spec     string
	scene    *synth.Scene
	interval time.Duration
	next     time.Time
}

// OpenSynth opens a synthetic source: input is "synth", "synth:" or "synth:SEED"
// (default seed 1); the frame size is source.width x source.height (default 320x320)
// and the rate source.fps (default 10).
func OpenSynth(input string, cfg SourceConfig) (Source, error) {
	seed := int64(1)
	if s := strings.TrimPrefix(strings.TrimPrefix(input, "synth"), ":"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("source %q: the seed after synth: must be an integer (e.g. synth:7)", input)
		}
		seed = v
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 {
		w = synthDefaultSize
	}
	if h <= 0 {
		h = synthDefaultSize
	}
	if w < 16 || h < 16 {
		return nil, fmt.Errorf("source %q: frame size %dx%d is too small (source.width/height, at least 16)", input, w, h)
	}
	fps := cfg.FPS
	if fps <= 0 {
		fps = synthDefaultFPS
	}
	return &synthSource{spec: fmt.Sprintf("synth:%d %dx%d", seed, w, h), scene: synth.NewScene(seed, w, h),
		interval: time.Duration(float64(time.Second) / fps)}, nil
}

// Next waits for the frame's time, then renders it.
func (s *synthSource) Next(ctx context.Context) (*Capture, error) {
	if d := time.Until(s.next); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	} else if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The frame is stamped with its slot, so that a pipeline with the same fps limit
	// never sees it early; a late frame (slow rendering) moves the clock on instead of
	// bursting to catch up.
	at := s.next
	if now := time.Now(); at.IsZero() || now.Sub(at) > s.interval {
		at = now
	}
	s.next = at.Add(s.interval)
	img, _ := s.scene.Next()
	return &Capture{Image: img, Time: at}, nil
}

func (s *synthSource) Live() bool     { return true }
func (s *synthSource) Close() error   { return nil }
func (s *synthSource) String() string { return s.spec }
