package detector

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// Spec names a model to detect with: a QNN-MO parameter directory (Dir), else a
// darknet Cfg and Weights.
type Spec struct {
	Dir          string
	Cfg, Weights string
	Dialect      quant.Dialect // darknet: "" = from the cfg
	Threads      int           // <= 0: GOMAXPROCS
	NMS          float32       // 0 = darknet's 0.45
}

// Loaded is a model ready to detect with.
type Loaded struct {
	Model    *quant.Model
	Detector Detector
	// Decoder is the JPEG decoding the model's reference results come from: stb_image
	// for a QNN-MO model (qnnmo.ImageDecoder), libjpeg for darknet (built with OpenCV).
	Decoder imageio.Decoder
}

// Load reads the model s names and prepares its detector.
func Load(s Spec) (*Loaded, error) {
	if s.Dir != "" {
		m, err := qnnmo.LoadDir(s.Dir)
		if err != nil {
			return nil, err
		}
		det, err := qnnmo.NewNetwork(m, s.Threads)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Dir, err)
		}
		d, err := NewQNN(det, nil, s.NMS)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Dir, err)
		}
		return &Loaded{Model: m, Detector: d, Decoder: qnnmo.ImageDecoder}, nil
	}
	m, err := darknet.Load(s.Cfg, s.Weights, darknet.Options{Dialect: s.Dialect})
	if err != nil {
		return nil, err
	}
	d, err := NewFloat(m, s.Threads, s.NMS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Cfg, err)
	}
	return &Loaded{Model: m, Detector: d, Decoder: imageio.LibJPEG}, nil
}

// CheckNames refuses a names file (path, with n names) that does not name every
// class: the detections would print other classes' names.
func (l *Loaded) CheckNames(path string, n int) error {
	if c := l.Model.Classes(); n < c {
		return fmt.Errorf("%s has %d names, the model has %d classes", path, n, c)
	}
	return nil
}
