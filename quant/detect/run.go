package detect

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Engine is what [Run] needs from an inference engine (the float engine, or any other
// that keeps the head layers' outputs after darknet's head activations).
type Engine interface {
	Forward(input []float32) error
	Output(layer int) []float32
}

// DarknetNMS is the overlap threshold of darknet's detector (do_nms_sort with .45).
const DarknetNMS = 0.45

// Config holds the detection parameters of [Run].
type Config struct {
	Thresh float32 // darknet -thresh (e.g. 0.25)
	NMS    float32 // IoU above which a less probable box loses its class (darknet: 0.45); 0 disables NMS
	Names  []string
	// NoLetterbox stretches the image to the network input instead of letterboxing.
	NoLetterbox bool
}

// Run is the whole darknet detector on one image: Candidates, then darknet's per-class
// object list with boxes in pixels of im.
func Run(m *quant.Model, e Engine, im *imageio.Image, cfg Config) ([]Detection, error) {
	cands, err := Candidates(m, e, im, cfg)
	if err != nil {
		return nil, err
	}
	return Objects(cands, cfg.Thresh, cfg.Names, im.W, im.H), nil
}

// Candidates runs a float engine on one image as darknet's detector does: letterbox (or
// stretch) to the model input, forward, decode the heads, NMS (cfg.NMS; 0 none); the
// candidates are in pixels of im.
func Candidates(m *quant.Model, e Engine, im *imageio.Image, cfg Config) ([]Detection, error) {
	if im.C != m.Input.C {
		return nil, fmt.Errorf("detect: image has %d channels, model wants %d", im.C, m.Input.C)
	}
	var in *imageio.Image
	if cfg.NoLetterbox {
		in = imageio.Resize(im, m.Input.W, m.Input.H)
	} else {
		in = imageio.Letterbox(im, m.Input.W, m.Input.H)
	}
	if err := e.Forward(in.Data); err != nil {
		return nil, fmt.Errorf("detect: forward: %w", err)
	}
	heads := map[int][]float32{}
	for _, i := range m.Heads() {
		heads[i] = e.Output(i)
	}
	cands, err := DecodeWith(m, heads, im.W, im.H, Options{Thresh: cfg.Thresh, NoLetterbox: cfg.NoLetterbox})
	if err != nil {
		return nil, err
	}
	if cfg.NMS > 0 {
		cands = NMS(cands, cfg.NMS)
	}
	return cands, nil
}
