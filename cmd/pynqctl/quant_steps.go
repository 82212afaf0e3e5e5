package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// The quantization guide's model steps: quant finn, weights, activations, calibrate.

func init() {
	quantCommands = append(quantCommands, newFinnCmd, newWeightsCmd, newActivationsCmd, newCalibrateCmd)
}

// stepIO reads a model for a step and writes its result, reporting wall time.
func readStepModel(path string) (*quant.Model, error) {
	if path == "" {
		return nil, fmt.Errorf("--input is required")
	}
	return qonnx.ReadFile(path)
}

func writeStepModel(w io.Writer, path string, m *quant.Model, opt qonnx.Options) error {
	if err := qonnx.WriteFile(path, m, opt); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote    %s (%s)\n", path, byteSize(st.Size()))
	return nil
}

func printStepNotes(w io.Writer, title string, notes []qonnx.Note) {
	if len(notes) == 0 {
		return
	}
	if !verbose && title != "refused" { // why a layer stays float is always said
		fmt.Fprintf(w, "%-8s %d layers (-v lists them)\n", title, len(notes))
		return
	}
	fmt.Fprintf(w, "%-8s %d:\n", title, len(notes))
	for _, n := range notes {
		bits := ""
		switch {
		case n.Bits > 0:
			bits = fmt.Sprintf(" [%d-bit]", n.Bits)
		case title == "kept" || title == "refused":
			bits = " [float]"
		}
		fmt.Fprintf(w, "  %-12s%s %s\n", n.Layer, bits, n.Reason)
	}
}

// runModelStep is the frame of the finn, weights and activations steps: read input,
// transform the model (transform prints its own report), write it to output (default:
// input renamed with suffix) as stage, and print the wall time. Read and write errors
// are prefixed with step; transform's errors are returned as they are.
func runModelStep(out io.Writer, step, input, output, suffix, stage string, transform func(m *quant.Model) error) error {
	start := time.Now()
	m, err := readStepModel(input)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if err := transform(m); err != nil {
		return err
	}
	if output == "" {
		output = stepOutputName(input, suffix)
	}
	if err := writeStepModel(out, output, m, qonnx.Options{Stage: stage}); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	fmt.Fprintf(out, "time     %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func stepOutputName(input, suffix string) string {
	base := strings.TrimSuffix(input, filepath.Ext(input))
	for _, s := range []string{"-finn", "-w1a3", "-w1"} {
		base = strings.TrimSuffix(base, s)
	}
	return base + suffix + ".onnx"
}

func newFinnCmd(log *slog.Logger) *cobra.Command {
	var input, output string
	cmd := &cobra.Command{
		Use:   "finn --input=M.onnx [--output=M-finn.onnx]",
		Short: "Write a clean QONNX model FINN can import (opset 11, UINT8 input, BN kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFinn(cmd.OutOrStdout(), input, output)
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "ONNX model from quant convert (required)")
	cmd.Flags().StringVar(&output, "output", "", "QONNX file to write (default M-finn.onnx)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newWeightsCmd(log *slog.Logger) *cobra.Command {
	var input, output, overrides string
	opt := qonnx.WeightOptions{}
	cmd := &cobra.Command{
		Use:   "weights --input=M-finn.onnx [--output=M-w1.onnx] --weight-bits=1",
		Short: "Quantize convolution weights (1 = bipolar with a per-channel scale)",
		Long: `Quantize the convolution weights: --weight-bits=1 writes BipolarQuant(W, alpha)
with alpha = mean |W| per output channel; 2..8 writes a signed narrow Quant with
max |W| / (2^(b-1)-1). The first layer and the layers feeding a detection head stay at
--keep-bits (0 = float, as QNN-MO-PYNQ keeps them) unless --keep-first=false /
--keep-last=false; grouped (depthwise) convolutions cannot be binarized and are reported
and kept at --keep-bits. --overrides=F.toml sets keep_first, keep_last, keep_bits and
per-layer bits in a [layers] table (name = bits).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWeights(cmd.OutOrStdout(), log, input, output, overrides, opt)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&input, "input", "", "QONNX model from quant finn (required)")
	fl.StringVar(&output, "output", "", "QONNX file to write (default M-w1.onnx)")
	fl.IntVar(&opt.Bits, "weight-bits", 1, "weight bits: 1 = bipolar (-1,+1) times a per-channel scale, 2..8 = signed")
	fl.BoolVar(&opt.KeepFirst, "keep-first", true, "keep the first convolution at --keep-bits")
	fl.BoolVar(&opt.KeepLast, "keep-last", true, "keep the convolutions feeding a detection head at --keep-bits")
	fl.IntVar(&opt.KeepBits, "keep-bits", 0, "bits of kept and non-binarizable layers: 0 = float, 2..8")
	fl.StringVar(&overrides, "overrides", "", "TOML file with keep_first, keep_last, keep_bits and [layers] name = bits")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newActivationsCmd(log *slog.Logger) *cobra.Command {
	var input, output string
	opt := qonnx.ActOptions{}
	cmd := &cobra.Command{
		Use:   "activations --input=M-w1.onnx [--output=M-w1a3.onnx] --activation-bits=3",
		Short: "Put an unsigned activation quantizer after every hidden ReLU (or lhtan)",
		Long: `Insert a --activation-bits unsigned Quant after the activation of every hidden
convolution (not the ones feeding a detection head). After darknet's lhtan (leaky hard
tanh, export-darknet --float-activation=lhtan) the quantizer's scale is 1/(2^bits-1):
its levels cover [0, 1], where lhtan saturates, and calibration never raises the clip
beyond 1; the files then write Relu + Quant (lhtan is the identity below 1, so both give
the same levels), which FINN turns into a MultiThreshold. FINN has no LeakyRelu handler, so
leaky layers are reported and --leaky decides: relu (default) replaces LeakyRelu by Relu
so that FINN can turn BN + ReLU + Quant into a MultiThreshold (this changes the network:
a leaky-trained network such as Yolo-Fastest loses nearly all its mAP even at 8 bits
until it is retrained with ReLU; the verify step measures it); keep keeps LeakyRelu with
a signed quantizer (no MultiThreshold for those layers; leaky negatives are small, so
the negative levels are mostly unused); error refuses.
The scales are placeholders until quant calibrate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runActivations(cmd.OutOrStdout(), log, input, output, opt)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&input, "input", "", "QONNX model from quant weights (required)")
	fl.StringVar(&output, "output", "", "QONNX file to write (default M-w1a3.onnx)")
	fl.IntVar(&opt.Bits, "activation-bits", 3, "activation bits")
	fl.StringVar(&opt.Leaky, "leaky", "relu", "LeakyRelu layers: relu (replace), keep (signed quantizer) or error")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

// runFinn is quant finn: a clean QONNX model FINN imports.
func runFinn(out io.Writer, input, output string) error {
	return runModelStep(out, "finn", input, output, "-finn", "finn", func(m *quant.Model) error {
		r, err := qonnx.Finn(m)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "model    %s: %d layers, %d with batch norm (kept as BatchNormalization)\n", m.Name, r.Layers, r.BatchNorm)
		printStepNotes(out, "leaky", r.Leaky)
		printStepNotes(out, "notes", r.Notes)
		return nil
	})
}

// runWeights is quant weights: opt, with a TOML file of overrides when given.
func runWeights(out io.Writer, log *slog.Logger, input, output, overrides string, opt qonnx.WeightOptions) error {
	if overrides != "" {
		if err := qonnx.LoadOverrides(overrides, &opt); err != nil {
			return err
		}
	}
	stage := fmt.Sprintf("w%d", opt.Bits)
	return runModelStep(out, "weights", input, output, "-"+stage, stage, func(m *quant.Model) error {
		r, err := qonnx.QuantizeWeights(m, opt)
		if err != nil {
			return fmt.Errorf("weights: %w", err)
		}
		printStepNotes(out, "quantized", r.Quantized)
		printStepNotes(out, "kept", r.Kept)
		printStepNotes(out, "refused", r.Refused)
		if len(r.Refused) > 0 {
			log.Warn("layers cannot be binarized (grouped/depthwise); kept", "layers", len(r.Refused), "bits", opt.KeepBits)
		}
		return nil
	})
}

// runActivations is quant activations.
func runActivations(out io.Writer, log *slog.Logger, input, output string, opt qonnx.ActOptions) error {
	suffix, stage := fmt.Sprintf("-w1a%d", opt.Bits), fmt.Sprintf("a%d", opt.Bits)
	return runModelStep(out, "activations", input, output, suffix, stage, func(m *quant.Model) error {
		r, err := qonnx.QuantizeActivations(m, opt)
		if err != nil {
			return err
		}
		printStepNotes(out, "quantized", r.Quantized)
		printStepNotes(out, "leaky", r.Leaky)
		printStepNotes(out, "float", r.Float)
		if len(r.Leaky) > 0 {
			log.Warn("LeakyRelu layers changed for FINN", "layers", len(r.Leaky), "mode", opt.Leaky)
		}
		return nil
	})
}

type calibrateFlags struct {
	model, dataset, output, streamlined, report, scales string
	images                                              int
	opt                                                 calib.Options
}

// defaultCalibrateFlags are quant calibrate's defaults.
func defaultCalibrateFlags() calibrateFlags {
	return calibrateFlags{opt: calib.Options{Method: calib.Percentile, Percentile: 99.99}}
}

func newCalibrateCmd(log *slog.Logger) *cobra.Command {
	f := defaultCalibrateFlags()
	cmd := &cobra.Command{
		Use:   "calibrate --model=M-w1a3.onnx --dataset=DIR --output=M-w1a3-calibrated.onnx",
		Short: "Set the activation scales from 20-50 images and compute integer thresholds",
		Long: `Run the calibration images (a directory of .jpg/.png or a darknet list file; the
first --images of them) through the model with float activations and quantized weights,
set each activation quantizer's scale (--method percentile, default 99.99; minmax; mse),
compute the integer thresholds, and write the calibrated QONNX model and its
FINN-streamlined variant (Conv + MultiThreshold, default M-w1a3-calibrated-streamlined.onnx)
plus the statistics as JSON (--report, default M-w1a3-calibrated.json).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCalibrate(cmd.OutOrStdout(), cmd.ErrOrStderr(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "QONNX model from quant activations (required)")
	fl.StringVar(&f.dataset, "dataset", "", "calibration images: a directory or a darknet list file (required)")
	fl.StringVar(&f.output, "output", "", "calibrated QONNX file (default M-w1a3-calibrated.onnx)")
	fl.StringVar(&f.streamlined, "streamlined-output", "", "streamlined QONNX file (default: output with -streamlined)")
	fl.StringVar(&f.report, "report", "", "calibration statistics JSON (default: output with .json)")
	fl.StringVar(&f.opt.Method, "method", f.opt.Method, "scale method: percentile, minmax or mse")
	fl.Float64Var(&f.opt.Percentile, "percentile", f.opt.Percentile, "percentile of the activations the scale covers (method percentile)")
	fl.IntVar(&f.images, "images", 0, "use the first N images (0 = all)")
	fl.StringVar(&f.scales, "scales", "", "take the activation scales from an export-darknet sidecar (M.quant.json) instead of the images")
	fl.IntVar(&f.opt.Threads, "threads", 0, "goroutines (0 = all cores)")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func runCalibrate(out, errw io.Writer, log *slog.Logger, f calibrateFlags) error {
	start := time.Now()
	m, err := qonnx.ReadFile(f.model)
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	if f.output == "" {
		f.output = strings.TrimSuffix(f.model, filepath.Ext(f.model)) + "-calibrated.onnx"
	}
	base := strings.TrimSuffix(f.output, filepath.Ext(f.output))
	if f.streamlined == "" {
		f.streamlined = base + "-streamlined.onnx"
	}
	if f.report == "" {
		f.report = base + ".json"
	}
	if isTerminal(errw) {
		f.opt.Progress = errw
	}
	var res *calib.Result
	if f.scales != "" {
		res, err = sidecarScales(m, f.scales)
	} else {
		res, err = calibrateImages(m, f)
	}
	if err != nil {
		return err
	}
	imgs := res.Images
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	fmt.Fprintf(out, "calibrated on %d images in %s (%.2f images/s), method %s", len(imgs), res.Duration.Round(time.Millisecond), res.ImagesPerSec, res.Method)
	if res.Method == calib.Percentile {
		fmt.Fprintf(out, " %g", res.Percentile)
	}
	fmt.Fprintln(out)
	if verbose {
		fmt.Fprintf(out, "%-12s %4s %10s %10s %10s %8s %10s\n", "layer", "bits", "max", "clip", "scale", "clipped", "zeros")
		for _, l := range res.Layers {
			fmt.Fprintf(out, "%-12s %4d %10.4g %10.4g %10.6g %7.4f%% %9.1f%%\n", l.Layer, l.Bits, l.Max, l.Clip, l.Scale, 100*l.Clipped, 100*l.Zeros)
		}
	} else if len(res.Layers) > 0 {
		worst := res.Layers[0]
		for _, l := range res.Layers {
			if l.Clipped > worst.Clipped {
				worst = l
			}
		}
		fmt.Fprintf(out, "ranges   %d layers; most clipped %s %.4f%% (-v lists them)\n", len(res.Layers), worst.Layer, 100*worst.Clipped)
	}
	tr := res.Thresholds
	fmt.Fprintf(out, "thresholds %d layers (%d inverted channels, %d constant)\n", len(tr.Layers), tr.Inverted, tr.Constant)
	printStepNotes(out, "no thresholds", tr.Skipped)
	meta, err := calib.Metadata(res)
	if err != nil {
		return err
	}
	if err := writeStepModel(out, f.output, m, qonnx.Options{Stage: "calibrated", Metadata: meta}); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	if err := writeStepModel(out, f.streamlined, m, qonnx.Options{Stage: "streamlined", Streamlined: true, Metadata: meta}); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.report, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	fmt.Fprintf(out, "wrote    %s\ntime     %s\n", f.report, time.Since(start).Round(time.Millisecond))
	return nil
}

func calibrateImages(m *quant.Model, f calibrateFlags) (*calib.Result, error) {
	if f.dataset == "" {
		return nil, fmt.Errorf("calibrate: --dataset is required (or --scales)")
	}
	imgs, err := calib.ListImages(f.dataset)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	if f.images > 0 && f.images < len(imgs) {
		imgs = imgs[:f.images]
	}
	return calib.Calibrate(m, imgs, f.opt)
}

// sidecarScales sets the activation scales an export-darknet sidecar records (the
// scales the float model was exported with) and derives the thresholds from them.
func sidecarScales(m *quant.Model, path string) (*calib.Result, error) {
	start := time.Now()
	sc, err := todarknet.ReadSidecar(path)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	idx, err := todarknet.ApplyScales(m, sc)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res := &calib.Result{Method: "scales " + path}
	for _, i := range idx {
		q := m.Layers[i].Quant
		res.Layers = append(res.Layers, calib.LayerStats{Layer: m.Layers[i].Name, Index: i, Bits: q.ActBits, Scale: q.ActScale,
			Clip: float64(q.ActScale) * float64(int(1)<<q.ActBits-1)})
	}
	if res.Thresholds, err = qonnx.SetThresholds(m); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}
