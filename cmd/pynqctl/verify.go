package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/detect"
	"github.com/fpgadetector/pynq-agent/quant/engine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

func init() { quantCommands = append(quantCommands, newVerifyCmd) }

// exitGateFailed is the exit status of a failed accuracy gate.
const exitGateFailed = 3

// verifyFlags are the options of `pynqctl quant verify`.
type verifyFlags struct {
	model, dataset, output, float, floatWeights string
	names, datasetNames, report, metric         string
	maxDrop, minFloat                           float64
	thresh, nms                                 float32
	threads                                     int
}

func newVerifyCmd(log *slog.Logger) *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify --model=M-w1a3-calibrated.onnx --dataset=DIR [--output=quantization_results.json]",
		Short: "Accuracy gate: VOC mAP of the quantized model against the float model on a validation set",
		Long: `Runs the float model and the quantized model (through the quantized engine) on every
image of the validation set as darknet's ` + "`detector valid`" + ` does (letterbox, threshold 0.005,
NMS 0.45), computes VOC2012 mAP for both (classes matched by name between the model's
names and the dataset; chair first), writes quantization_results.json and an HTML report
with precision-recall curves, and exits with status 0 when the mAP drop is below
--max-drop percentage points, 3 when it is not.

The float model defaults to <name>.onnx beside the quantized one (the guide's file
names); it may also be a darknet cfg (--float M.cfg --float-weights M.weights).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := runVerify(cmd.OutOrStdout(), cmd.ErrOrStderr(), log, f)
			return err
		},
	}
	addVerifyFlags(cmd, &f)
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "quantized model (QONNX, e.g. M-w1a3-calibrated.onnx) (required)")
	fl.StringVar(&f.dataset, "dataset", "", "validation set: darknet-form directory, list file or VOC tree (required)")
	fl.StringVar(&f.output, "output", "quantization_results.json", "results file")
	fl.StringVar(&f.float, "float", "", "float reference: M.onnx or a darknet M.cfg (default: <name>.onnx beside --model)")
	fl.StringVar(&f.floatWeights, "float-weights", "", "darknet .weights of a --float cfg (default: the cfg's name with .weights)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("dataset")
	return cmd
}

// addVerifyFlags adds the flags verify shares with `quant run`.
func addVerifyFlags(cmd *cobra.Command, f *verifyFlags) {
	fl := cmd.Flags()
	if fl.Lookup("names") == nil { // quant qat's --names serves training and verify
		fl.StringVar(&f.names, "names", "", "the model's class names (default: the dataset's names when the class counts agree)")
	}
	fl.StringVar(&f.datasetNames, "dataset-names", "", "names file of darknet-form datasets (default: classes.names / *.names in the dataset dir or its parent)")
	fl.StringVar(&f.report, "report", "", "HTML report with precision-recall curves (default: the results file's name with .html)")
	fl.StringVar(&f.metric, "metric", "voc2012", "voc2012 (all-point) or voc2007 (11-point)")
	fl.Float64Var(&f.maxDrop, "max-drop", 5, "largest accepted mAP drop in percentage points")
	fl.Float64Var(&f.minFloat, "min-float-map", 1, "smallest float mAP (percent) the gate accepts as a baseline: below it the gate fails, since the comparison means nothing")
	fl.Float32Var(&f.thresh, "thresh", 0.005, "detection threshold for mAP (darknet's detector valid uses 0.005)")
	fl.Float32Var(&f.nms, "nms", detect.DarknetNMS, "NMS overlap threshold")
	if fl.Lookup("threads") == nil { // quant qat's --threads serves training and verify
		fl.IntVar(&f.threads, "threads", 0, "engine goroutines (default: all cores)")
	}
}

// verifyModel is one side of the comparison.
type verifyModel struct {
	role   string // "float" or "quantized"
	path   string
	kind   string // "onnx", "qonnx", "darknet"
	engine string // which engine ran it
	m      *quant.Model
	e      detect.Engine
	dets   []mapeval.Detection
	busy   time.Duration // forward + decode + NMS
	res    *mapeval.Result
}

// runVerify is quant verify; a failed gate returns the result with an exitError of
// exitGateFailed (the files are written).
func runVerify(out, errOut io.Writer, log *slog.Logger, f verifyFlags) (*verifyResult, error) {
	start := time.Now()
	metric, err := mapeval.ParseMetric(f.metric)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(f.output), 0o755); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	ds, err := dataset.Open(f.dataset, dataset.Options{NamesFile: f.datasetNames})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, w := range ds.Warnings {
		log.Warn(w)
	}
	quantized, err := loadQuantizedSide(f.model, f.threads)
	if err != nil {
		return nil, err
	}
	floatPath := f.float
	if floatPath == "" {
		if floatPath, err = defaultFloatModel(f.model); err != nil {
			return nil, err
		}
	}
	float, err := loadFloatSide(floatPath, f.floatWeights, f.threads)
	if err != nil {
		return nil, err
	}
	names, err := verifyNames(f.names, quantized.m, ds)
	if err != nil {
		return nil, err
	}
	classes, notInModel := mapeval.Classes(ds, names)
	if len(classes) == 0 {
		return nil, fmt.Errorf("verify: no class of the dataset (%v) is among the model's names; check --names", ds.Names)
	}
	sides := []*verifyModel{float, quantized}
	if err := runValidation(errOut, ds, sides, names, f); err != nil {
		return nil, err
	}
	gt := mapeval.GroundTruth(ds)
	for _, s := range sides {
		s.res, err = mapeval.Evaluate(gt, s.dets, mapeval.Options{Metric: metric, Classes: classes})
		if err != nil {
			return nil, fmt.Errorf("verify: %s model: %w", s.role, err)
		}
	}
	res := newVerifyResult(f, ds, float, quantized, notInModel, time.Since(start))
	res.Calibration = readCalibration(f.model)
	res.path = f.output
	if err := writeVerifyOutputs(f, res, float, quantized); err != nil {
		return nil, err
	}
	printVerify(out, res)
	if !res.Passed {
		printVerifyAdvice(out, res)
		return res, &exitError{code: exitGateFailed, err: fmt.Errorf("accuracy gate failed: %s", res.Reason)}
	}
	return res, nil
}

// guideSuffix matches the guide's derived file names: M-finn, M-w1, M-w1a3,
// M-w1a3-calibrated (and a streamlined variant).
var guideSuffix = regexp.MustCompile(`^(.+?)(-finn|-w[0-9]+(a[0-9]+)?)(-calibrated)?(-streamlined)?$`)

// defaultFloatModel is <name>.onnx beside the quantized model.
func defaultFloatModel(model string) (string, error) {
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

func loadFloatSide(path, weights string, threads int) (*verifyModel, error) {
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
	if v.e, err = engine.New(v.m, engine.Options{Threads: threads}); err != nil {
		return nil, fmt.Errorf("verify: float model %s: %w", path, err)
	}
	return v, nil
}

// verifyNames returns the model's class names: --names, else the dataset's when the
// class counts agree.
func verifyNames(path string, m *quant.Model, ds *dataset.Dataset) ([]string, error) {
	classes := modelClasses(m)
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

func modelClasses(m *quant.Model) int {
	if h := m.Heads(); len(h) > 0 {
		return m.Layers[h[0]].Head.Classes
	}
	return 0
}

// runValidation runs every side on every image, collecting darknet-valid detections.
func runValidation(errOut io.Writer, ds *dataset.Dataset, sides []*verifyModel, names []string, f verifyFlags) error {
	bar := newLazyBar(errOut, len(ds.Images), "validation images")
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
			dets, err := validDetections(s.m, s.e, img, im.ID, names, f)
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
// detection with darknet's +1 pixel box clipped to [1, w] x [1, h].
func validDetections(m *quant.Model, e detect.Engine, img *imageio.Image, id string, names []string, f verifyFlags) ([]mapeval.Detection, error) {
	cands, err := detect.Candidates(m, e, img, detect.Config{Thresh: f.thresh, NMS: f.nms})
	if err != nil {
		return nil, err
	}
	var out []mapeval.Detection
	for _, c := range cands {
		b := mapeval.VOCBox(c.Box, img.W, img.H)
		for j, p := range c.Probs {
			if p > f.thresh {
				out = append(out, mapeval.Detection{Image: id, Class: detect.ClassName(names, j), Score: float64(p), Box: b})
			}
		}
	}
	return out, nil
}

// readCalibration returns what is known about the quantized model's calibration:
// metadata entries whose key mentions calibration (and a "calibration" member of a
// JSON entry), else a summary of the statistics `quant calibrate` writes beside the
// model (M-w1a3-calibrated.json). nil when there is neither.
func readCalibration(path string) map[string]any {
	out := map[string]any{}
	if data, err := os.ReadFile(path); err == nil {
		if mp, err := onnx.Unmarshal(data); err == nil {
			for _, p := range mp.GetMetadataProps() {
				collectCalibration(out, p)
			}
		}
	}
	// quant calibrate's own entry: its members are the calibration itself.
	if own, ok := out[calib.MetadataKey].(map[string]any); ok && len(out) == 1 {
		own["source"] = "metadata " + calib.MetadataKey + " of " + path
		return own
	}
	if len(out) == 0 {
		out = calibrationSidecar(strings.TrimSuffix(path, filepath.Ext(path)) + ".json")
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// calibrationSidecar summarizes calibrate's statistics file: method, image count and
// each quantizer's scale and clipping.
func calibrationSidecar(path string) map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var st calib.Result // the file is calibrate's Result
	type layer struct {
		Layer   string  `json:"layer"`
		Bits    int     `json:"bits"`
		Scale   float32 `json:"scale"`
		Clip    float64 `json:"clip"`
		Clipped float64 `json:"clipped"`
	}
	if json.Unmarshal(b, &st) != nil || st.Method == "" {
		return nil
	}
	layers := make([]layer, len(st.Layers))
	for i, l := range st.Layers {
		layers[i] = layer{l.Layer, l.Bits, l.Scale, l.Clip, l.Clipped}
	}
	out := map[string]any{"source": path, "method": st.Method, "images": len(st.Images),
		"images_per_s": st.ImagesPerSec, "layers": layers}
	if st.Percentile != 0 {
		out["percentile"] = st.Percentile
	}
	if len(st.Warnings) > 0 {
		out["warnings"] = st.Warnings
	}
	return out
}

func collectCalibration(out map[string]any, p *onnxpb.StringStringEntryProto) {
	var v any
	if json.Unmarshal([]byte(p.GetValue()), &v) != nil {
		v = p.GetValue()
	}
	if strings.Contains(strings.ToLower(p.GetKey()), "calib") {
		out[p.GetKey()] = v
		return
	}
	if obj, ok := v.(map[string]any); ok {
		for k, c := range obj {
			if strings.Contains(strings.ToLower(k), "calib") {
				out[p.GetKey()+"."+k] = c
			}
		}
	}
}

// lazyBar is a progress bar that appears only once a step has run for a second, so
// quick steps print nothing.
type lazyBar struct {
	w     io.Writer
	desc  string
	total int
	done  int
	start time.Time
	bar   *progressbar.ProgressBar
}

func newLazyBar(w io.Writer, total int, desc string) *lazyBar {
	return &lazyBar{w: w, desc: desc, total: total, start: time.Now()}
}

func (b *lazyBar) Add(n int) {
	b.done += n
	if b.bar == nil && !isTerminal(b.w) {
		return
	}
	if b.bar == nil {
		if time.Since(b.start) < time.Second {
			return
		}
		b.bar = progressbar.NewOptions(b.total, progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(b.desc), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetWidth(30))
		_ = b.bar.Add(b.done)
		return
	}
	_ = b.bar.Add(n)
}

func (b *lazyBar) Finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
		b.bar = nil
	}
}
