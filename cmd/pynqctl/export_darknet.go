package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/detect"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

func init() { quantCommands = append(quantCommands, newExportDarknetCmd) }

type exportDarknetFlags struct {
	model, modelWeights, output, weights string
	bnImages, trainCfg, floatAct         string
	names, keepClasses                   string
	objShift                             float64
	bnMax, threads                       int
}

func newExportDarknetCmd(log *slog.Logger) *cobra.Command {
	var f exportDarknetFlags
	cmd := &cobra.Command{
		Use:   "export-darknet --model DIR|M.cfg --output=OUT.cfg [--weights OUT.weights]",
		Short: "Write a model (e.g. the QNN-MO W1A3 model) as a float darknet cfg + weights + quant sidecar",
		Long: `Writes any model pynqctl reads as a float darknet model, so that it can be fine-tuned
in darknet, plus OUT.quant.json, the activation scales and bit widths that quantize the
float model back (pynqctl quant ... reads it).

--model is a QNN-MO parameter directory or a darknet cfg (with --model-weights).
Binary layers are written as +1/-1 weights with binary=1 and a batch norm chosen so
that relu, then level = clip(round(y/act_scale), 0, 7), reproduces the layer's integer
thresholds; quantized activations become plain relu (darknet has no quantizer). Channels
no single batch norm reproduces are reported and written as the closest fit.

By default (--float-activation=lhtan) the quantized layers use darknet's leaky hard
tanh and scale 1/7, so the float model is the quantized one without rounding (it finds
the dog, car and bicycle, and 22 % mAP on the chairs photos): the one to fine-tune and
the accuracy gate's baseline. Unclipped relu (--float-activation=relu) makes the float
model compute something else (on dog.jpg the relu export of Tinier-YOLO finds a chair
and a bicycle; 0.3 % mAP on the chairs photos). The thresholds are the same either way.

--keep-classes chair --names voc.names cuts the head to the named classes (box and
objectness outputs per anchor, plus the kept classes' rows): the start of a one-class
fine-tuning.

Darknet trains with batch statistics, so for fine-tuning give --bn-images DIR (20-50
typical training photos): the rolling mean and variance of each fitted batch norm are
then measured on them and scale and bias adjusted, so that training starts from the
same function. Without it they are mean 0 and a fixed variance (fine for inference).
Either way the files are read back and re-quantized, and the thresholds compared.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExportDarknet(cmd.OutOrStdout(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "QNN-MO parameter directory or darknet .cfg (required)")
	fl.StringVar(&f.modelWeights, "model-weights", "", "darknet .weights of a --model cfg")
	fl.StringVar(&f.output, "output", "", "darknet .cfg to write (required); the sidecar goes beside it as .quant.json")
	fl.StringVar(&f.weights, "weights", "", "darknet .weights to write (default: --output with .weights)")
	fl.StringVar(&f.floatAct, "float-activation", todarknet.FloatLHTan, `activation of the quantized layers in darknet: lhtan (scales 1/7: the float model is the quantized one without rounding; the one to fine-tune and the gate's baseline) or relu (unclipped: the float model computes something else and, for Tinier-YOLO, finds almost nothing)`)
	fl.StringVar(&f.trainCfg, "train-cfg", "", `cfg whose training options ([net] learning rate, schedule, augmentation; [region]/[yolo] loss weights) the output gets (default: the model's own cfg; "none" for none)`)
	fl.StringVar(&f.bnImages, "bn-images", "", "directory of images (jpg, png) to measure batch-norm statistics on, for training in darknet")
	fl.IntVar(&f.bnMax, "bn-max", 50, "use at most this many images of --bn-images")
	fl.IntVar(&f.threads, "threads", 0, "goroutines for --bn-images (0: all cores)")
	fl.StringVar(&f.keepClasses, "keep-classes", "", `comma-separated class names (of --names) the head keeps, e.g. "chair": a one-class head cut from a multi-class one, to fine-tune`)
	fl.StringVar(&f.names, "names", "", "the model's class names file (for --keep-classes)")
	fl.Float64Var(&f.objShift, "objectness-shift", train.ObjectnessShift, "with --keep-classes: move the objectness towards the kept classes' logits by this much (0: the old objectness, which scores any object)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("output")
	return cmd
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
		return qnn.LoadDir(path)
	}
	if weights == "" {
		return nil, fmt.Errorf("--model %s is a file: give its darknet weights with --model-weights (or pass a QNN-MO parameter directory)", path)
	}
	return darknet.Load(path, weights, darknet.Options{Warn: func(msg string) { log.Warn(msg) }})
}

func runExportDarknet(out io.Writer, log *slog.Logger, f exportDarknetFlags) error {
	if !strings.HasSuffix(f.output, ".cfg") {
		return fmt.Errorf("--output %q: name the darknet cfg to write, ending in .cfg", f.output)
	}
	if f.weights == "" {
		f.weights = strings.TrimSuffix(f.output, ".cfg") + ".weights"
	}
	m, err := loadAnyModel(log, f.model, f.modelWeights)
	if err != nil {
		return fmt.Errorf("export-darknet: %w", err)
	}
	if f.keepClasses != "" {
		if err := keepHeadClasses(out, m, f.names, f.keepClasses, f.objShift); err != nil {
			return fmt.Errorf("export-darknet: %w", err)
		}
	}
	res, err := todarknet.ExportWith(m, todarknet.Options{FloatActivation: f.floatAct})
	if err != nil {
		return err
	}
	if f.bnImages != "" {
		if err := calibrateExportBN(out, res, m, f); err != nil {
			return err
		}
	}
	if res.TrainingCfg, err = trainingCfg(f); err != nil {
		return err
	}
	if err := res.WriteFiles(f.output, f.weights); err != nil {
		return err
	}
	printExportReport(out, m, res)
	if len(res.AddedKeys) > 0 {
		fmt.Fprintf(out, "train    %d training options from the source cfg (%s ...)\n", len(res.AddedKeys), strings.Join(res.AddedKeys[:min(3, len(res.AddedKeys))], ", "))
	}
	fmt.Fprintf(out, "wrote    %s\nwrote    %s\nwrote    %s\n", f.output, f.weights, todarknet.SidecarPath(f.output))
	ck, err := todarknet.CheckFiles(m, f.output, f.weights)
	if err != nil {
		return err
	}
	if ck.Channels > 0 {
		fmt.Fprintf(out, "check    re-quantized from the written files: %d of %d channels give back identical thresholds, %d the same levels\n", ck.Identical, ck.Channels, ck.Same)
	}
	if len(ck.Changed) > 0 {
		return fmt.Errorf("export-darknet: reading the written files back changes %v (a bug: please report it)", ck.Changed)
	}
	return nil
}

func printExportReport(out io.Writer, m *quant.Model, res *todarknet.Result) {
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

// calibrateExportBN measures batch-norm statistics on the images of f.bnImages.
func calibrateExportBN(out io.Writer, res *todarknet.Result, m *quant.Model, f exportDarknetFlags) error {
	entries, err := os.ReadDir(f.bnImages)
	if err != nil {
		return fmt.Errorf("--bn-images: %w", err)
	}
	var imgs [][]float32
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") || len(imgs) >= f.bnMax {
			continue
		}
		im, err := imageio.Load(filepath.Join(f.bnImages, e.Name()))
		if err != nil {
			return fmt.Errorf("--bn-images: %w", err)
		}
		if im.C != m.Input.C {
			return fmt.Errorf("--bn-images: %s has %d channels, the model takes %d", e.Name(), im.C, m.Input.C)
		}
		imgs = append(imgs, imageio.Letterbox(im, m.Input.W, m.Input.H).Data)
	}
	if len(imgs) == 0 {
		return fmt.Errorf("--bn-images %s: no .jpg or .png images", f.bnImages)
	}
	st, err := res.CalibrateBN(imgs, f.threads)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bn       rolling statistics of %d batch-norm layers measured on %d images of %s\n", st.Layers, st.Images, f.bnImages)
	return nil
}

// trainingCfg reads the cfg whose training options the export gets: --train-cfg, or the
// model's own cfg (a darknet --model, or the *.cfg of a QNN-MO directory).
func trainingCfg(f exportDarknetFlags) ([]byte, error) {
	path := f.trainCfg
	switch path {
	case "none":
		return nil, nil
	case "":
		path = f.model
		if st, err := os.Stat(f.model); err == nil && st.IsDir() {
			matches, _ := filepath.Glob(filepath.Join(f.model, "*.cfg"))
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

// keepHeadClasses cuts the model's region head down to the named classes.
func keepHeadClasses(out io.Writer, m *quant.Model, namesFile, keep string, shift float64) error {
	if namesFile == "" {
		return errors.New("--keep-classes needs --names (the model's class names)")
	}
	names, err := detect.LoadNames(namesFile)
	if err != nil {
		return fmt.Errorf("--names: %w", err)
	}
	if h := m.Heads(); len(h) == 0 || m.Layers[h[0]].Head.Classes != len(names) {
		return fmt.Errorf("--names %s has %d names, the model's head is not a head of %d classes", namesFile, len(names), len(names))
	}
	var idx []int
	for _, k := range strings.Split(keep, ",") {
		i := slices.Index(names, strings.TrimSpace(k))
		if i < 0 {
			return fmt.Errorf("--keep-classes: %q is not in %s", k, namesFile)
		}
		idx = append(idx, i)
	}
	if err := train.KeepClasses(m, idx, shift); err != nil {
		return err
	}
	fmt.Fprintf(out, "head     kept classes %s of %d (box and objectness outputs per anchor; objectness shifted by %g towards them)\n", keep, len(names), shift)
	return nil
}
