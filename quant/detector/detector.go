// Package detector owns the whole image-to-boxes path for a model, whatever engine runs
// it: the darknet float model through quant/engine, or the W1A3 QNN-MO model through
// quant/qnn. `pynqctl detect` and the agent call it through one interface.
package detector

import (
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/detect"
	"github.com/fpgadetector/pynq-agent/quant/engine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Detector turns an image into darknet's candidate boxes after NMS, in pixels of the
// image; [detect.Objects] turns those into the list darknet prints.
type Detector interface {
	Detect(img *imageio.Image, thresh float32) ([]detect.Detection, error)
}

// Float runs a float model: darknet letterbox, the float engine, region/yolo decoding and
// do_nms_sort. Not safe for concurrent use (the engine reuses its buffers).
type Float struct {
	model  *quant.Model
	engine *engine.Engine
	nms    float32
}

// NewFloat prepares m for detection; threads <= 0 uses GOMAXPROCS goroutines and nms is
// the overlap threshold (0 means darknet's 0.45).
func NewFloat(m *quant.Model, threads int, nms float32) (*Float, error) {
	e, err := engine.New(m, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	if nms <= 0 {
		nms = detect.DarknetNMS
	}
	return &Float{model: m, engine: e, nms: nms}, nil
}

// Detect runs the model on img (detect.Candidates with darknet's letterbox).
func (f *Float) Detect(img *imageio.Image, thresh float32) ([]detect.Detection, error) {
	return detect.Candidates(f.model, f.engine, img, detect.Config{Thresh: thresh, NMS: f.nms})
}
