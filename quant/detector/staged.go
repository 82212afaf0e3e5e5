package detector

import (
	"context"
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Stage names, in pipeline order: what a Frame's Time hook receives (the agent's
// per-stage timings and metrics are keyed by them).
const (
	StageLetterbox = "letterbox" // resize onto the network canvas
	StageFirst     = "first"     // QNN: float first layer, 3-bit quantizer, packing (CPU)
	StageEngine    = "engine"    // QNN: the hidden layers on the accelerator; float: the network
	StageLast      = "last"      // QNN: float last layer and region activation (CPU)
	StageNMS       = "nms"       // head decode and NMS
)

// Staged is a detector split where a board splits it: the CPU work before the
// accelerator (Prepare), the accelerator (Accelerate), the CPU work after it (Finish).
// The agent runs the three in separate goroutines, so that one frame's CPU stages
// overlap another's accelerator; each stage reads and writes only its Frame, and
// Accelerate is called by one goroutine at a time.
type Staged interface {
	Prepare(f *Frame) error
	Accelerate(ctx context.Context, f *Frame) error
	Finish(f *Frame) error
	// Classes is the number of classes of the head.
	Classes() int
}

// Frame is one image in a Staged detector: the input, and what each stage leaves for
// the next.
type Frame struct {
	Image  *imageio.Image
	Thresh float32
	// Time, when set, runs every stage (the agent records its duration); nil runs it.
	Time func(stage string, run func() error) error

	In, Out    []byte            // QNN: the accelerator's packed input and output records
	Candidates []boxes.Detection // after NMS, before the per-class threshold

	net   []float32         // the letterboxed network input
	heads map[int][]float32 // the heads' outputs after their activations
}

// stage runs one stage through the Time hook.
func (f *Frame) stage(name string, run func() error) error {
	if f.Time == nil {
		return run()
	}
	return f.Time(name, run)
}

// Run runs the three stages of s on f.
func Run(ctx context.Context, s Staged, f *Frame) error {
	if err := s.Prepare(f); err != nil {
		return err
	}
	if err := s.Accelerate(ctx, f); err != nil {
		return err
	}
	return s.Finish(f)
}

// letterbox is the Letterbox stage: the image onto m's input canvas (Frame.net).
func letterbox(m *quant.Model, f *Frame) error {
	in := m.Input
	if f.Image.C != in.C {
		return fmt.Errorf("detect: image has %d channels, the model takes %d", f.Image.C, in.C)
	}
	return f.stage(StageLetterbox, func() error {
		f.net = imageio.Letterbox(f.Image, in.W, in.H).Data
		return nil
	})
}

// decodeNMS is the NMS stage: the heads decoded into boxes in pixels of the image, NMS
// with overlap nms (none when <= 0).
func decodeNMS(m *quant.Model, f *Frame, nms float32) error {
	return f.stage(StageNMS, func() (err error) {
		f.Candidates, err = boxes.Decode(m, f.heads, f.Image.W, f.Image.H, f.Thresh)
		if err == nil && nms > 0 {
			f.Candidates = boxes.NMS(f.Candidates, nms)
		}
		return err
	})
}

// detectWith is Detect for any Staged detector: darknet's candidate boxes after NMS,
// in pixels of img.
func detectWith(s Staged, img *imageio.Image, thresh float32) ([]boxes.Detection, error) {
	f := &Frame{Image: img, Thresh: thresh}
	if err := Run(context.Background(), s, f); err != nil {
		return nil, err
	}
	return f.Candidates, nil
}
