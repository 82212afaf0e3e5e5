package flow

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// VerifyOptions are the accuracy gate's.
type VerifyOptions struct {
	Model        string // the quantized model (QONNX, e.g. M-w1a3-calibrated.onnx)
	Dataset      string // validation set: darknet-form directory, list file or VOC tree
	Output       string // the results file (quantization_results.json)
	Report       string // the HTML report; default: Output with .html
	Float        string // float reference: M.onnx or a darknet M.cfg; default <name>.onnx beside Model
	FloatWeights string // darknet .weights of a Float cfg; default: the cfg's name with .weights
	Names        string // the model's class names; default: the dataset's when the class counts agree
	DatasetNames string // names file of darknet-form datasets
	Metric       string // voc2012 or voc2007
	MaxDrop      float64
	MinFloat     float64 // smallest float mAP (percent) the gate accepts as a baseline
	Thresh, NMS  float32
	Threads      int
	Progress     io.Writer // progress bar over the images, shown after a second; nil = none
}

// DefaultVerifyOptions are pynqctl quant verify's defaults (darknet's detector valid).
func DefaultVerifyOptions() VerifyOptions {
	return VerifyOptions{Output: "quantization_results.json", Metric: "voc2012", MaxDrop: 5, MinFloat: 1,
		Thresh: 0.005, NMS: boxes.DarknetNMS}
}

// verifyModel is one side of the comparison.
type verifyModel struct {
	role   string // "float" or "quantized"
	path   string
	kind   string // "onnx", "qonnx", "darknet"
	engine string // which engine ran it
	m      *quant.Model
	det    *detector.Float
	dets   []mapeval.Detection
	busy   time.Duration // forward + decode + NMS
	res    *mapeval.Result
}

// Verify runs the float and the quantized model on every image of the validation set
// as darknet's detector valid does, computes both VOC mAPs and writes the results and
// the HTML report. A failed gate is a result (Passed false), not an error.
func Verify(o VerifyOptions, log *slog.Logger) (*VerifyResult, error) {
	start := time.Now()
	metric, err := mapeval.ParseMetric(o.Metric)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	ds, err := dataset.Open(o.Dataset, dataset.Options{NamesFile: o.DatasetNames})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, w := range ds.Warnings {
		logger(log).Warn(w)
	}
	float, quantized, err := loadSides(o)
	if err != nil {
		return nil, err
	}
	names, err := ModelNames(o.Names, quantized.m, ds)
	if err != nil {
		return nil, err
	}
	classes, notInModel := mapeval.Classes(ds, names)
	if len(classes) == 0 {
		return nil, fmt.Errorf("verify: no class of the dataset (%v) is among the model's names; check --names", ds.Names)
	}
	sides := []*verifyModel{float, quantized}
	if err := runValidation(o, ds, sides, names); err != nil {
		return nil, err
	}
	gt := mapeval.GroundTruth(ds)
	for _, s := range sides {
		s.res, err = mapeval.Evaluate(gt, s.dets, mapeval.Options{Metric: metric, Classes: classes})
		if err != nil {
			return nil, fmt.Errorf("verify: %s model: %w", s.role, err)
		}
	}
	res := newVerifyResult(o, ds, float, quantized, notInModel, time.Since(start))
	res.Calibration = readCalibration(o.Model)
	res.Path = o.Output
	if err := res.write(o.Output, o.Report); err != nil {
		return nil, err
	}
	return res, nil
}

// loadSides reads the quantized model and its float reference and prepares their engines.
func loadSides(o VerifyOptions) (float, quantized *verifyModel, err error) {
	nms := o.NMS
	if nms <= 0 {
		nms = -1 // none (the detector's 0 is darknet's 0.45)
	}
	if quantized, err = loadQuantizedSide(o.Model, o.Threads, nms); err != nil {
		return nil, nil, err
	}
	floatPath := o.Float
	if floatPath == "" {
		if floatPath, err = DefaultFloatModel(o.Model); err != nil {
			return nil, nil, err
		}
	}
	float, err = loadFloatSide(floatPath, o.FloatWeights, o.Threads, nms)
	return float, quantized, err
}

// guideSuffix matches the guide's derived file names: M-finn, M-w1, M-w1a3,
// M-w1a3-calibrated (and a streamlined variant).
var guideSuffix = regexp.MustCompile(`^(.+?)(-finn|-w[0-9]+(a[0-9]+)?)(-calibrated)?(-streamlined)?$`)

// DefaultFloatModel is <name>.onnx beside the quantized model (the guide's names).
func DefaultFloatModel(model string) (string, error) {
	base := strings.TrimSuffix(filepath.Base(model), filepath.Ext(model))
	m := guideSuffix.FindStringSubmatch(base)
	if m == nil {
		return "", fmt.Errorf("verify: cannot derive the float model's name from %s (want <name>-w1a3-calibrated.onnx); give --float", model)
	}
	p := filepath.Join(filepath.Dir(model), m[1]+".onnx")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("verify: float model %s not found (give --float M.onnx or a darknet cfg): %w", p, err)
	}
	return p, nil
}

// loadQuantizedSide reads a QONNX model (quant/qonnx) and prepares the quantized
// engine (quant/quantengine) for it.
func loadQuantizedSide(path string, threads int, nms float32) (*verifyModel, error) {
	m, err := qonnx.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verify: quantized model: %w", err)
	}
	e, err := quantengine.New(m, quantengine.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("verify: quantized model %s: %w", path, err)
	}
	return &verifyModel{role: "quantized", path: path, kind: "qonnx", engine: "quantized (quant/qengine)", m: m, det: detector.NewFloatWith(m, e, nms)}, nil
}

func loadFloatSide(path, weights string, threads int, nms float32) (*verifyModel, error) {
	v := &verifyModel{role: "float", path: path, engine: "float (quant/engine)"}
	var err error
	if strings.EqualFold(filepath.Ext(path), ".cfg") {
		if weights == "" {
			weights = strings.TrimSuffix(path, filepath.Ext(path)) + ".weights"
		}
		v.kind, v.path = "darknet", path+" + "+weights
		v.m, err = darknet.Load(path, weights, darknet.Options{})
	} else {
		v.kind = "onnx"
		v.m, err = onnx.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("verify: float model: %w", err)
	}
	e, err := floatengine.New(v.m, floatengine.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("verify: float model %s: %w", path, err)
	}
	v.det = detector.NewFloatWith(v.m, e, nms)
	return v, nil
}

// ModelNames returns the model's class names: the names file when given (it must
// name every class), else the dataset's when the class counts agree.
func ModelNames(path string, m *quant.Model, ds *dataset.Dataset) ([]string, error) {
	classes := m.Classes()
	if path != "" {
		names, err := dataset.ReadNames(path)
		if err != nil {
			return nil, err
		}
		if len(names) < classes {
			return nil, fmt.Errorf("verify: %s has %d names, the model has %d classes", path, len(names), classes)
		}
		return names, nil
	}
	if len(ds.Names) == classes {
		return ds.Names, nil
	}
	return nil, fmt.Errorf("verify: the model has %d classes and the dataset %d; give the model's names file with --names (e.g. voc.names)", classes, len(ds.Names))
}

// runValidation runs every side on every image, collecting darknet-valid detections.
func runValidation(o VerifyOptions, ds *dataset.Dataset, sides []*verifyModel, names []string) error {
	bar := newLazyBar(o.Progress, len(ds.Images), "validation images")
	defer bar.Finish()
	for _, im := range ds.Images {
		if im.Path == "" {
			return fmt.Errorf("verify: image %s has no image file", im.ID)
		}
		img, err := imageio.Load(im.Path)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for _, s := range sides {
			t0 := time.Now()
			dets, err := validDetections(s.det, img, im.ID, names, o)
			if err != nil {
				return fmt.Errorf("verify: %s model on %s: %w", s.role, im.Path, err)
			}
			s.busy += time.Since(t0)
			s.dets = append(s.dets, dets...)
		}
		bar.Add(1)
	}
	return nil
}

// validDetections is darknet's validate_detector on one image: letterbox, forward,
// boxes above thresh, do_nms_sort, and every class probability above thresh as one
// detection (mapeval.FromCandidates).
func validDetections(d *detector.Float, img *imageio.Image, id string, names []string, o VerifyOptions) ([]mapeval.Detection, error) {
	cands, err := d.Detect(img, o.Thresh)
	if err != nil {
		return nil, err
	}
	return mapeval.FromCandidates(id, cands, names, o.Thresh, img.W, img.H), nil
}
