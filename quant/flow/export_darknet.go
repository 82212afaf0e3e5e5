package flow

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

// ExportDarknetOptions are ExportDarknet's (pynqctl quant export-darknet).
type ExportDarknetOptions struct {
	Model             string // a QNN-MO parameter directory or a darknet cfg
	ModelWeights      string // the darknet .weights of a Model cfg
	Output            string // the darknet cfg to write, ending in .cfg; the sidecar goes beside it
	Weights           string // the .weights to write; default: Output with .weights
	todarknet.Options        // the float activation of the quantized layers
	// TrainCfg is the cfg whose training options ([net], head loss weights) the output
	// gets: "" = the model's own cfg (a darknet Model, or the *.cfg of a QNN-MO
	// directory), "none" = none.
	TrainCfg string
	// BNImages is a directory of images (jpg, png; the first BNMax) to measure the
	// batch norms' rolling statistics on, for training in darknet.
	BNImages       string
	BNMax, Threads int
	// KeepClasses (comma-separated names of the Names file) cuts the head to those
	// classes, moving the objectness by ObjectnessShift towards their logits.
	KeepClasses, Names string
	ObjectnessShift    float64
}

// ExportDarknetResult is what ExportDarknet wrote and checked.
type ExportDarknetResult struct {
	*todarknet.Result
	Model           *quant.Model // the model exported
	Output, Weights string
	HeadNames       int                // with KeepClasses: the names the head had
	BN              *todarknet.BNStats // with BNImages
	Check           *todarknet.Check   // the written files read back and re-quantized
	opt             ExportDarknetOptions
}

// ExportDarknet writes a model as a float darknet cfg + weights + sidecar (quant/todarknet),
// to fine-tune in darknet or with QAT, then reads the files back and re-quantizes them:
// a change of thresholds is an error (returned with the result). Warnings of the
// darknet reader are logged.
func ExportDarknet(o ExportDarknetOptions, log *slog.Logger) (*ExportDarknetResult, error) {
	if !strings.HasSuffix(o.Output, ".cfg") {
		return nil, fmt.Errorf("--output %q: name the darknet cfg to write, ending in .cfg", o.Output)
	}
	if o.Weights == "" {
		o.Weights = strings.TrimSuffix(o.Output, ".cfg") + ".weights"
	}
	r := &ExportDarknetResult{Output: o.Output, Weights: o.Weights, opt: o}
	var err error
	if r.Model, err = loadAnyModel(log, o.Model, o.ModelWeights); err != nil {
		return nil, fmt.Errorf("export-darknet: %w", err)
	}
	if o.KeepClasses != "" {
		if r.HeadNames, err = keepHeadClasses(r.Model, o.Names, o.KeepClasses, o.ObjectnessShift); err != nil {
			return nil, fmt.Errorf("export-darknet: %w", err)
		}
	}
	if r.Result, err = todarknet.ExportWith(r.Model, o.Options); err != nil {
		return nil, err
	}
	if o.BNImages != "" {
		if r.BN, err = calibrateBN(r.Result, r.Model, o); err != nil {
			return nil, err
		}
	}
	if r.TrainingCfg, err = trainingCfg(o); err != nil {
		return nil, err
	}
	if err := r.WriteFiles(o.Output, o.Weights); err != nil {
		return nil, err
	}
	if r.Check, err = todarknet.CheckFiles(r.Model, o.Output, o.Weights); err != nil {
		return nil, err
	}
	if len(r.Check.Changed) > 0 {
		return r, fmt.Errorf("export-darknet: reading the written files back changes %v (a bug: please report it)", r.Check.Changed)
	}
	return r, nil
}

// loadAnyModel reads a QNN-MO parameter directory or a darknet cfg + weights.
func loadAnyModel(log *slog.Logger, path, weights string) (*quant.Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if st.IsDir() {
		if weights != "" {
			return nil, errors.New("--model-weights goes with a darknet cfg, not a QNN-MO directory")
		}
		return qnnmo.LoadDir(path)
	}
	if weights == "" {
		return nil, fmt.Errorf("--model %s is a file: give its darknet weights with --model-weights (or pass a QNN-MO parameter directory)", path)
	}
	return darknet.Load(path, weights, darknet.Options{Warn: func(msg string) { logger(log).Warn(msg) }})
}

// keepHeadClasses cuts the model's region head down to the named classes and returns
// how many names the head had.
func keepHeadClasses(m *quant.Model, namesFile, keep string, shift float64) (int, error) {
	if namesFile == "" {
		return 0, errors.New("--keep-classes needs --names (the model's class names)")
	}
	names, err := boxes.LoadNames(namesFile)
	if err != nil {
		return 0, fmt.Errorf("--names: %w", err)
	}
	if h := m.Heads(); len(h) == 0 || m.Layers[h[0]].Head.Classes != len(names) {
		return 0, fmt.Errorf("--names %s has %d names, the model's head is not a head of %d classes", namesFile, len(names), len(names))
	}
	var idx []int
	for _, k := range strings.Split(keep, ",") {
		i := slices.Index(names, strings.TrimSpace(k))
		if i < 0 {
			return 0, fmt.Errorf("--keep-classes: %q is not in %s", k, namesFile)
		}
		idx = append(idx, i)
	}
	return len(names), train.KeepClasses(m, idx, shift)
}

// calibrateBN measures batch-norm statistics on the images of o.BNImages.
func calibrateBN(res *todarknet.Result, m *quant.Model, o ExportDarknetOptions) (*todarknet.BNStats, error) {
	entries, err := os.ReadDir(o.BNImages)
	if err != nil {
		return nil, fmt.Errorf("--bn-images: %w", err)
	}
	var imgs [][]float32
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") || len(imgs) >= o.BNMax {
			continue
		}
		im, err := imageio.Load(filepath.Join(o.BNImages, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("--bn-images: %w", err)
		}
		if im.C != m.Input.C {
			return nil, fmt.Errorf("--bn-images: %s has %d channels, the model takes %d", e.Name(), im.C, m.Input.C)
		}
		imgs = append(imgs, imageio.Letterbox(im, m.Input.W, m.Input.H).Data)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("--bn-images %s: no .jpg or .png images", o.BNImages)
	}
	return res.CalibrateBN(imgs, o.Threads)
}

// trainingCfg reads the cfg whose training options the export gets: TrainCfg, or the
// model's own cfg (a darknet Model, or the *.cfg of a QNN-MO directory).
func trainingCfg(o ExportDarknetOptions) ([]byte, error) {
	path := o.TrainCfg
	switch path {
	case "none":
		return nil, nil
	case "":
		path = o.Model
		if st, err := os.Stat(o.Model); err == nil && st.IsDir() {
			matches, _ := filepath.Glob(filepath.Join(o.Model, "*.cfg"))
			if len(matches) != 1 {
				return nil, nil
			}
			path = matches[0]
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--train-cfg: %w", err)
	}
	return data, nil
}

// Print writes what the export did: the head cut, the batch-norm statistics, every
// layer's fit, the files and the check.
func (r *ExportDarknetResult) Print(out io.Writer) {
	if r.HeadNames > 0 {
		fmt.Fprintf(out, "head     kept classes %s of %d (box and objectness outputs per anchor; objectness shifted by %g towards them)\n", r.opt.KeepClasses, r.HeadNames, r.opt.ObjectnessShift)
	}
	if st := r.BN; st != nil {
		fmt.Fprintf(out, "bn       rolling statistics of %d batch-norm layers measured on %d images of %s\n", st.Layers, st.Images, r.opt.BNImages)
	}
	r.printFit(out)
	if len(r.AddedKeys) > 0 {
		fmt.Fprintf(out, "train    %d training options from the source cfg (%s ...)\n", len(r.AddedKeys), strings.Join(r.AddedKeys[:min(3, len(r.AddedKeys))], ", "))
	}
	fmt.Fprintf(out, "wrote    %s\nwrote    %s\nwrote    %s\n", r.Output, r.Weights, todarknet.SidecarPath(r.Output))
	if ck := r.Check; ck.Channels > 0 {
		fmt.Fprintf(out, "check    re-quantized from the written files: %d of %d channels give back identical thresholds, %d the same levels\n", ck.Identical, ck.Channels, ck.Same)
	}
}

// printFit writes the model and how each quantized layer was exported.
func (r *ExportDarknetResult) printFit(out io.Writer) {
	m, res := r.Model, r.Result
	fmt.Fprintf(out, "model    %s: %d layers, input %v\n", m.Name, len(m.Layers), m.Input)
	if a := res.Sidecar.FloatActivation; a != "" {
		fmt.Fprintf(out, "float    quantized layers as activation=%s with scale 1/(2^bits-1) (pynqctl reads this export through the sidecar only)\n", a)
	}
	for _, sl := range res.Sidecar.Layers {
		if !sl.Thresholds {
			fmt.Fprintf(out, "layer    %d %s: float, quantize W%dA%d, act_scale %g\n", sl.Index, sl.Name, sl.WeightBits, sl.ActBits, sl.ActScale)
		}
	}
	total, approx := 0, 0
	for _, r := range res.Layers {
		fmt.Fprintf(out, "layer    %d %s: thresholds -> batch norm: %d/%d exact (min margin %.3f acc), %d constant, %d inverted",
			r.Index, r.Name, r.Exact, r.Channels, r.MinMargin, r.Constant, r.Inverted)
		if r.Approx > 0 {
			fmt.Fprintf(out, ", %d APPROXIMATE (levels off by up to %d): channels %v", r.Approx, r.MaxLevelError, r.ApproxChannels)
		}
		fmt.Fprintln(out)
		total += r.Channels
		approx += r.Approx
	}
	if total > 0 {
		fmt.Fprintf(out, "exact    %d of %d threshold channels (%.2f%%)\n", total-approx, total, 100*res.ExactFraction())
	}
	if approx > 0 {
		fmt.Fprintf(out, "warning  %d channels have thresholds no batch norm reproduces (unevenly spaced); the export holds the closest fit, so re-quantizing it changes those levels\n", approx)
	}
}
