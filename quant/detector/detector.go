// Package detector owns the whole image-to-boxes path for a model, whatever runs its
// layers: a [Staged] detector in the three stages a board splits it into (CPU before
// the accelerator, the accelerator, CPU after it), for the darknet float model ([Float],
// the float engine or any engine with its interface) and for the W1A3 QNN-MO model
// ([QNN], with the host reference, the board's engine or the simulated one as the
// accelerator). `pynqctl detect`, verification, training, labelling and the agent all
// run detectors through it.
package detector

import (
	"context"
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Detector turns an image into darknet's candidate boxes after NMS, in pixels of the
// image; [boxes.Objects] turns those into the list darknet prints.
type Detector interface {
	Detect(img *imageio.Image, thresh float32) ([]boxes.Detection, error)
}

// Engine is what [Float] needs from an inference engine: the float engine, or any
// other that keeps the head layers' outputs after darknet's head activations (the
// quantized QONNX engine).
type Engine interface {
	Forward(input []float32) error
	Output(layer int) []float32
}

// Float runs a float model as darknet's detector does: letterbox (Prepare), the
// network (Accelerate), region/yolo decoding and do_nms_sort (Finish).
type Float struct {
	model  *quant.Model
	engine Engine
	nms    float32
}

var _ Staged = (*Float)(nil)

// NewFloat prepares m for detection on the float engine; threads <= 0 uses GOMAXPROCS
// goroutines and nms is the overlap threshold (0 means darknet's 0.45).
func NewFloat(m *quant.Model, threads int, nms float32) (*Float, error) {
	e, err := floatengine.New(m, floatengine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	return NewFloatWith(m, e, nms), nil
}

// NewFloatWith is NewFloat on an engine already built for m; nms < 0 disables NMS.
func NewFloatWith(m *quant.Model, e Engine, nms float32) *Float {
	if nms == 0 {
		nms = boxes.DarknetNMS
	}
	return &Float{model: m, engine: e, nms: nms}
}

// Prepare letterboxes the image to the network input.
func (d *Float) Prepare(f *Frame) error { return letterbox(d.model, f) }

// Accelerate runs the network and keeps copies of the heads' outputs (the engine
// reuses its buffers for the next frame).
func (d *Float) Accelerate(ctx context.Context, f *Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.stage(StageEngine, func() error {
		if err := d.engine.Forward(f.net); err != nil {
			return fmt.Errorf("detect: forward: %w", err)
		}
		f.heads = map[int][]float32{}
		for _, i := range d.model.Heads() {
			f.heads[i] = append([]float32(nil), d.engine.Output(i)...)
		}
		return nil
	})
}

// Finish decodes the heads into boxes in pixels of the image and applies NMS.
func (d *Float) Finish(f *Frame) error { return decodeNMS(d.model, f, d.nms) }

// Model is the model the detector runs.
func (d *Float) Model() *quant.Model { return d.model }

// Classes is the first head's class count.
func (d *Float) Classes() int { return d.model.Classes() }

// Detect runs the three stages on img. Not safe for concurrent use (the engine reuses
// its buffers).
func (d *Float) Detect(img *imageio.Image, thresh float32) ([]boxes.Detection, error) {
	return detectWith(d, img, thresh)
}

// Objects runs d on img and returns darknet's printed list: one entry per class above
// thresh per candidate, named by names, boxes in pixels of img ([boxes.Objects]).
func Objects(d Detector, img *imageio.Image, thresh float32, names []string) ([]boxes.Detection, error) {
	cands, err := d.Detect(img, thresh)
	if err != nil {
		return nil, err
	}
	return boxes.Objects(cands, thresh, names, img.W, img.H), nil
}
