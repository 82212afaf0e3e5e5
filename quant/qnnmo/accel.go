package qnnmo

import (
	"context"

	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// HostAccelerator adapts the host reference [Engine] to [offload.Accelerator].
type HostAccelerator struct{ *Engine }

// Run computes the hidden layers on the CPU; ctx is checked before starting.
func (h HostAccelerator) Run(ctx context.Context, in []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h.Engine.Run(in)
}

// Close releases nothing: the host engine holds only memory.
func (h HostAccelerator) Close() error { return nil }

var _ offload.Accelerator = HostAccelerator{}
