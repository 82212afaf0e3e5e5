package qnn

import "context"

// Accelerator runs a model's hidden layers: packed engine input records in (the first
// layer's output, [Engine.InLayout]), packed engine output records out ([Engine.OutLayout]).
// It is the one interface the agent calls; the host reference engine, the board driver
// and the driver over the FPGA simulation all implement it, so the pipeline has no
// "if sim" anywhere.
type Accelerator interface {
	Run(ctx context.Context, in []byte) ([]byte, error)
	InLayout() Layout
	OutLayout() Layout
	Close() error
}

// HostAccelerator adapts the host reference [Engine] to [Accelerator].
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

var _ Accelerator = HostAccelerator{}
