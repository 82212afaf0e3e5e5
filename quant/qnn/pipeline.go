package qnn

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/detect"
	"github.com/fpgadetector/pynq-agent/quant/engine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// Detector runs QNN-MO's whole pipeline on the host: darknet letterbox, the float first
// layer and 3-bit quantizer, the engine layers (the host reference), the float last layer
// and the region head. Its methods keep no state between calls (every call allocates its
// own buffers), so one Detector may serve several goroutines.
type Detector struct {
	Model  *quant.Model
	First  *FirstLayer
	Engine *Engine
	Last   *LastLayer
	head   int
}

// NewDetector prepares a model imported by [LoadDir] (or built alike). threads <= 0 uses
// GOMAXPROCS goroutines.
func NewDetector(m *quant.Model, threads int) (*Detector, error) {
	d := &Detector{Model: m}
	var err error
	if d.First, err = NewFirstLayer(m, threads); err != nil {
		return nil, err
	}
	if d.Engine, err = NewEngine(m, offload.W1A3, threads); err != nil {
		return nil, err
	}
	if d.Last, err = NewLastLayer(m, threads); err != nil {
		return nil, err
	}
	heads := m.Heads()
	if len(heads) != 1 || m.Layers[heads[0]].Kind != quant.KindRegion || heads[0] != d.Last.layer.Index+1 {
		return nil, fmt.Errorf("the model must end in the last float layer and one region head")
	}
	d.head = heads[0]
	return d, nil
}

// Input letterboxes an image to the network size and returns the engine's packed input
// (DDR layout: 192-byte records, transposed pixel order).
func (d *Detector) Input(img *imageio.Image) ([]byte, error) {
	in := d.Model.Input
	if img.C != in.C {
		return nil, fmt.Errorf("image has %d channels, the model takes %d", img.C, in.C)
	}
	lb := imageio.Letterbox(img, in.W, in.H)
	l := d.First.OutLayout()
	buf := make([]byte, l.Size())
	if err := d.First.Run(buf, l, lb.Data); err != nil {
		return nil, err
	}
	return buf, nil
}

// Output runs the last layer and the region activation on the engine's packed output and
// returns the head's values (the input of [detect.Decode]).
func (d *Detector) Output(out []byte) ([]float32, error) {
	x, err := d.Last.Run(out, d.Engine.OutLayout())
	if err != nil {
		return nil, err
	}
	h := d.Model.Layers[d.head]
	engine.RegionActivate(x, h.Head, h.Out.H*h.Out.W)
	return x, nil
}

// Detect runs the pipeline on an image and returns darknet's candidate boxes after NMS,
// in pixels of the image (pass them to [detect.Objects] for darknet's printed list).
func (d *Detector) Detect(img *imageio.Image, thresh float32) ([]detect.Detection, error) {
	st, err := d.Stages(img, thresh)
	if err != nil {
		return nil, err
	}
	return st.Candidates, nil
}

// Stages is one image through the detector with the packed engine buffers kept: what
// board verification compares with a board's.
type Stages struct {
	In, Out    []byte             // the engine's packed input and output records
	Candidates []detect.Detection // after NMS, as Detect returns them
}

// Stages is Detect keeping the engine's packed input and output.
func (d *Detector) Stages(img *imageio.Image, thresh float32) (*Stages, error) {
	in, err := d.Input(img)
	if err != nil {
		return nil, err
	}
	out, err := d.Engine.Run(in)
	if err != nil {
		return nil, err
	}
	head, err := d.Output(out)
	if err != nil {
		return nil, err
	}
	cands, err := d.Candidates(head, img.W, img.H, thresh, detect.DarknetNMS)
	if err != nil {
		return nil, err
	}
	return &Stages{In: in, Out: out, Candidates: cands}, nil
}

// Candidates decodes the head's values ([Detector.Output]) into boxes in pixels of a w x h
// image and applies NMS with overlap nms: the last step of Detect, and the agent's NMS
// stage.
func (d *Detector) Candidates(head []float32, w, h int, thresh, nms float32) ([]detect.Detection, error) {
	dets, err := detect.Decode(d.Model, map[int][]float32{d.head: head}, w, h, thresh)
	if err != nil {
		return nil, err
	}
	return detect.NMS(dets, nms), nil
}

// Classes is the head's class count.
func (d *Detector) Classes() int { return d.Model.Layers[d.head].Head.Classes }
