package detector

import (
	"context"
	"fmt"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// QNN runs a QNN-MO model as a board does: letterbox and the float first layer into
// the engine's packed input records (Prepare), the hidden layers on an accelerator
// (Accelerate: the board's engine, the simulated one or the host reference), the float
// last layer, region activation, decode and NMS (Finish).
type QNN struct {
	net   *qnnmo.Network // its First and Last layers (its Engine only as the default accelerator)
	accel offload.Accelerator
	nms   float32

	// RecycleInputs returns a frame's input records to a pool after the accelerator has
	// run (Frame.In is then nil): the first layer writes the same leading words of every
	// record and leaves the rest zero, as the engine needs, so a used buffer is as good
	// as a new one (8 MiB each for Tinier-YOLO). Off, Frame.In is kept for the caller.
	RecycleInputs bool
	inputs        sync.Pool
}

var _ Staged = (*QNN)(nil)

// NewQNN puts net's CPU layers around acc (nil: the host reference, net.Engine) and
// checks that the accelerator's buffers match them; nms <= 0 is darknet's 0.45.
func NewQNN(net *qnnmo.Network, acc offload.Accelerator, nms float32) (*QNN, error) {
	if acc == nil {
		acc = qnnmo.HostAccelerator{Engine: net.Engine}
	}
	if in, want := acc.InLayout().Size(), net.First.OutLayout().Size(); in != want {
		return nil, fmt.Errorf("accelerator input is %d bytes (%+v), the first layer writes %d (%+v): the bitstream does not fit this model",
			in, acc.InLayout(), want, net.First.OutLayout())
	}
	if acc.OutLayout() != net.Engine.OutLayout() {
		return nil, fmt.Errorf("accelerator output layout %+v, the last layer reads %+v: the bitstream does not fit this model", acc.OutLayout(), net.Engine.OutLayout())
	}
	if nms <= 0 {
		nms = boxes.DarknetNMS
	}
	return &QNN{net: net, accel: acc, nms: nms}, nil
}

// Model is the model the detector runs.
func (q *QNN) Model() *quant.Model { return q.net.Model }

// Network is the model's host parts: its first and last layers, the host reference.
func (q *QNN) Network() *qnnmo.Network { return q.net }

// Accelerator is the accelerator the hidden layers run on.
func (q *QNN) Accelerator() offload.Accelerator { return q.accel }

// Prepare letterboxes the image and runs the first layer into Frame.In.
func (q *QNN) Prepare(f *Frame) error {
	if err := q.Letterbox(f); err != nil {
		return err
	}
	return q.First(f)
}

// Letterbox is Prepare's first stage: the image onto the network canvas.
func (q *QNN) Letterbox(f *Frame) error { return letterbox(q.net.Model, f) }

// First is Prepare's second stage: the float first layer, quantized and packed into
// the engine's input records (Frame.In).
func (q *QNN) First(f *Frame) error {
	return f.stage(StageFirst, func() error {
		l := q.net.First.OutLayout()
		if b, ok := q.inputs.Get().([]byte); ok && len(b) == l.Size() {
			f.In = b
		} else {
			f.In = make([]byte, l.Size())
		}
		return q.net.First.Run(f.In, l, f.net)
	})
}

// Input is Prepare on its own: the engine's packed input records for img.
func (q *QNN) Input(img *imageio.Image) ([]byte, error) {
	f := &Frame{Image: img}
	if err := q.Prepare(f); err != nil {
		return nil, err
	}
	return f.In, nil
}

// Accelerate runs the hidden layers on the accelerator: Frame.In to Frame.Out.
func (q *QNN) Accelerate(ctx context.Context, f *Frame) error {
	err := f.stage(StageEngine, func() (err error) {
		f.Out, err = q.accel.Run(ctx, f.In)
		return err
	})
	if q.RecycleInputs {
		q.Recycle(f)
	}
	return err
}

// Recycle hands Frame.In back to the input pool (the accelerator copied or read it).
func (q *QNN) Recycle(f *Frame) {
	if f.In != nil {
		q.inputs.Put(f.In)
		f.In = nil
	}
}

// Finish runs the last layer and the region activation on Frame.Out (Last), decodes
// the boxes in pixels of the image and applies NMS (NMS).
func (q *QNN) Finish(f *Frame) error {
	if err := q.Last(f); err != nil {
		return err
	}
	return q.NMS(f)
}

// Last is Finish's first stage: the float last layer and the region activation.
func (q *QNN) Last(f *Frame) error {
	return f.stage(StageLast, func() error {
		head, err := q.net.Output(f.Out)
		f.heads = map[int][]float32{q.net.Head(): head}
		return err
	})
}

// NMS is Finish's second stage: region decode and NMS.
func (q *QNN) NMS(f *Frame) error { return decodeNMS(q.net.Model, f, q.nms) }

// Classes is the head's class count.
func (q *QNN) Classes() int { return q.net.Classes() }

// Detect runs the three stages on img; one QNN may serve several goroutines (Frame
// holds every per-image buffer) if its accelerator may.
func (q *QNN) Detect(img *imageio.Image, thresh float32) ([]boxes.Detection, error) {
	return detectWith(q, img, thresh)
}
