package agent

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/synth"
)

// TestSynthSource: "synth:SEED" is a live, endless stream of the synth package's scene
// frames at the configured size.
func TestSynthSource(t *testing.T) {
	src, err := OpenSource(context.Background(), "synth:5", SourceConfig{Width: 48, Height: 32, FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.Live() {
		t.Error("synthetic source is not live")
	}
	want := synth.NewScene(5, 48, 32)
	var last *Capture
	for i := 0; i < 3; i++ {
		c, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		img, _ := want.Next()
		if c.Image == nil || c.Image.Bounds() != img.Bounds() || !bytes.Equal(c.Image.Pix, img.Pix) {
			t.Fatalf("frame %d differs from synth.NewScene(5, 48, 32)", i)
		}
		if last != nil && !c.Time.After(last.Time) {
			t.Errorf("frame %d stamped %v, not after %v", i, c.Time, last.Time)
		}
		last = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Next: %v", err)
	}
}

func TestSynthSourceSpecs(t *testing.T) {
	for _, in := range []string{"synth", "synth:", "synth:0", "synth:-3"} {
		src, err := OpenSource(context.Background(), in, SourceConfig{})
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if s := src.(*synthSource); s.interval <= 0 || s.spec == "" {
			t.Errorf("%q: %+v", in, s)
		}
	}
	for _, in := range []string{"synth:x", "synth:1.5"} {
		if _, err := OpenSource(context.Background(), in, SourceConfig{}); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if _, err := OpenSource(context.Background(), "synth:1", SourceConfig{Width: 8, Height: 8}); err == nil {
		t.Error("8x8 frames accepted")
	}
	c, err := ParseConfig([]byte("[source]\ninput = \"synth:3\"\n"), "/etc/pynq-agent/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if in := c.SourceInput(); in != "synth:3" {
		t.Errorf("config source %q resolved to %q", "synth:3", in)
	}
}
