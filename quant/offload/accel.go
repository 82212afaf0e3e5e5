package offload

import "context"

// Accelerator runs a model's hidden layers: packed engine input records in (the first
// layer's output, [Engine.InLayout]), packed engine output records out (the last layer's input layout).
// It is the one interface the agent calls; the host reference engine, the board driver
// and the driver over the FPGA simulation all implement it, so the pipeline has no
// "if sim" anywhere.
type Accelerator interface {
	Run(ctx context.Context, in []byte) ([]byte, error)
	InLayout() Layout
	OutLayout() Layout
	Close() error
}
