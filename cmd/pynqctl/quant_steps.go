package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/flow"
)

// The quantization guide's model steps: quant finn, weights, activations, calibrate.

func init() {
	quantCommands = append(quantCommands, newFinnCmd, newWeightsCmd, newActivationsCmd, newCalibrateCmd)
}

// printer is a step's result.
type printer interface {
	Print(w io.Writer, verbose bool)
}

// runStep runs a flow step and prints its result.
func runStep[R printer](cmd *cobra.Command, res R, err error) error {
	if err != nil {
		return err
	}
	res.Print(cmd.OutOrStdout(), verbose)
	return nil
}

func newFinnCmd(log *slog.Logger) *cobra.Command {
	var input, output string
	cmd := &cobra.Command{
		Use:   "finn --input=M.onnx [--output=M-finn.onnx]",
		Short: "Write a clean QONNX model FINN can import (opset 11, UINT8 input, BN kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := flow.Finn(input, output)
			return runStep(cmd, res, err)
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "ONNX model from quant convert (required)")
	cmd.Flags().StringVar(&output, "output", "", "QONNX file to write (default M-finn.onnx)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newWeightsCmd(log *slog.Logger) *cobra.Command {
	o := flow.WeightsOptions{WeightOptions: flow.DefaultPrecision().Weights}
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
			res, err := flow.Weights(o, log)
			return runStep(cmd, res, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Input, "input", "", "QONNX model from quant finn (required)")
	fl.StringVar(&o.Output, "output", "", "QONNX file to write (default M-w1.onnx)")
	fl.IntVar(&o.Bits, "weight-bits", o.Bits, "weight bits: 1 = bipolar (-1,+1) times a per-channel scale, 2..8 = signed")
	fl.BoolVar(&o.KeepFirst, "keep-first", o.KeepFirst, "keep the first convolution at --keep-bits")
	fl.BoolVar(&o.KeepLast, "keep-last", o.KeepLast, "keep the convolutions feeding a detection head at --keep-bits")
	fl.IntVar(&o.KeepBits, "keep-bits", o.KeepBits, "bits of kept and non-binarizable layers: 0 = float, 2..8")
	fl.StringVar(&o.Overrides, "overrides", "", "TOML file with keep_first, keep_last, keep_bits and [layers] name = bits")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newActivationsCmd(log *slog.Logger) *cobra.Command {
	o := flow.ActivationsOptions{ActOptions: flow.DefaultPrecision().Act}
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
			res, err := flow.Activations(o, log)
			return runStep(cmd, res, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Input, "input", "", "QONNX model from quant weights (required)")
	fl.StringVar(&o.Output, "output", "", "QONNX file to write (default M-w1a3.onnx)")
	fl.IntVar(&o.Bits, "activation-bits", o.Bits, "activation bits")
	fl.StringVar(&o.Leaky, "leaky", o.Leaky, "LeakyRelu layers: relu (replace), keep (signed quantizer) or error")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func newCalibrateCmd(log *slog.Logger) *cobra.Command {
	o := flow.DefaultCalibrateOptions()
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
			o.Progress = progressWriter(cmd.ErrOrStderr())
			res, err := flow.Calibrate(o, log)
			return runStep(cmd, res, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Model, "model", "", "QONNX model from quant activations (required)")
	fl.StringVar(&o.Dataset, "dataset", "", "calibration images: a directory or a darknet list file (required)")
	fl.StringVar(&o.Output, "output", "", "calibrated QONNX file (default M-w1a3-calibrated.onnx)")
	fl.StringVar(&o.Streamlined, "streamlined-output", "", "streamlined QONNX file (default: output with -streamlined)")
	fl.StringVar(&o.Report, "report", "", "calibration statistics JSON (default: output with .json)")
	fl.StringVar(&o.Method, "method", o.Method, "scale method: percentile, minmax or mse")
	fl.Float64Var(&o.Percentile, "percentile", o.Percentile, "percentile of the activations the scale covers (method percentile)")
	fl.IntVar(&o.Images, "images", 0, "use the first N images (0 = all)")
	fl.StringVar(&o.Scales, "scales", "", "take the activation scales from an export-darknet sidecar (M.quant.json) instead of the images")
	fl.IntVar(&o.Threads, "threads", 0, "goroutines (0 = all cores)")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}
