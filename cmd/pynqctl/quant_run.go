package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/flow"
)

func init() { quantCommands = append(quantCommands, newQuantRunCmd) }

func newQuantRunCmd(log *slog.Logger) *cobra.Command {
	o := flow.RunOptions{Precision: flow.DefaultPrecision(), Verify: flow.DefaultVerifyOptions()}
	cmd := &cobra.Command{
		Use:   "run --cfg=M.cfg --weights=M.weights --calibration=DIR --val=DIR --output=DIR [--name M]",
		Short: "The whole quantization guide: convert, finn, weights, activations, calibrate, verify",
		Long: `Runs the guide's steps in order, each exactly as its own command does, writing the
guide's files into --output: <name>.onnx, <name>-finn.onnx, <name>-w1.onnx,
<name>-w1a3.onnx, <name>-w1a3-calibrated.onnx, quantization_results.json (and
quantization_results.html, quant_run.json with the step timings). Prints each step's
wall time and a summary; exits like verify (3 when the accuracy gate fails).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out, o.Progress, o.Verbose = cmd.OutOrStdout(), progressWriter(cmd.ErrOrStderr()), verbose
			res, err := flow.Run(cmd.Context(), o, log)
			if err != nil {
				return err
			}
			return gateError(res.Verify.GateError())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Cfg, "cfg", "", "darknet .cfg (required)")
	fl.StringVar(&o.Weights, "weights", "", "darknet .weights (required)")
	fl.StringVar(&o.Calibration, "calibration", "", "calibration images (20-50), a dataset directory or list file (required)")
	fl.StringVar(&o.Val, "val", "", "validation set with labels (required)")
	fl.StringVar(&o.Dir, "output", "", "output directory (required)")
	aliasFlags(cmd, map[string]string{"outdir": "output"})
	fl.StringVar(&o.Name, "name", "", "model name for the files (default: the cfg's name without _final/.cfg)")
	fl.StringVar(&o.CalibrationMethod, "method", "", "calibration method passed to calibrate (default: calibrate's)")
	fl.StringVar(&o.Scales, "scales", "", "calibrate with the activation scales of an export-darknet sidecar (M.quant.json) instead of the images")
	fl.IntVar(&o.CalibrationImages, "calibration-images", 0, "calibrate on the first N calibration images (0 = all)")
	fl.StringVar(&o.Verify.Float, "float", "", "float reference of the verify step (default: this run's <name>.onnx)")
	addPrecisionFlags(cmd, &o.Precision)
	addVerifyFlags(cmd, &o.Verify)
	for _, req := range []string{"cfg", "weights", "calibration", "val", "outdir"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// addPrecisionFlags adds the per-layer precision flags `quant run` and `quant qat`
// share, with p's values as defaults.
func addPrecisionFlags(cmd *cobra.Command, p *flow.Precision) {
	fl := cmd.Flags()
	fl.IntVar(&p.Weights.Bits, "weight-bits", p.Weights.Bits, "weight bits of the quantized layers (as quant weights)")
	fl.BoolVar(&p.Weights.KeepFirst, "keep-first", p.Weights.KeepFirst, "keep the first convolution at --keep-bits (as quant weights)")
	fl.BoolVar(&p.Weights.KeepLast, "keep-last", p.Weights.KeepLast, "keep the convolutions feeding a detection head at --keep-bits (as quant weights)")
	fl.IntVar(&p.Weights.KeepBits, "keep-bits", p.Weights.KeepBits, "bits of kept layers: 0 = float, 2..8 (as quant weights)")
	fl.StringVar(&p.Overrides, "overrides", "", "TOML file of per-layer weight bits (as quant weights)")
	fl.IntVar(&p.Act.Bits, "activation-bits", p.Act.Bits, "activation bits (as quant activations)")
	fl.StringVar(&p.Act.Leaky, "leaky", p.Act.Leaky, "LeakyRelu layers: relu, keep or error (as quant activations)")
}
