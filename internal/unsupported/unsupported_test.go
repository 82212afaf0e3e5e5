package unsupported_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/agent/telemetry"
	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// Every package's "not supported" sentinel, wrapped as the packages wrap it, is
// errors.ErrUnsupported, and still itself.
func TestOneKind(t *testing.T) {
	for _, e := range []error{agent.ErrNotSupported, telemetry.ErrNotSupported, bitstream.ErrNotSupported, dma.ErrNotSupported,
		overlay.ErrNotSupported, imageio.ErrUnsupported, onnx.ErrUnsupported, qonnx.ErrUnsupported} {
		w := fmt.Errorf("open something: %w", e)
		if !errors.Is(w, errors.ErrUnsupported) || !errors.Is(w, e) {
			t.Errorf("%q: errors.Is ErrUnsupported %v, itself %v", e, errors.Is(w, errors.ErrUnsupported), errors.Is(w, e))
		}
	}
	if errors.Is(dma.ErrNotSupported, bitstream.ErrNotSupported) {
		t.Error("two packages' sentinels are the same error")
	}
}
