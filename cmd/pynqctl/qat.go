package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/flow"
)

func init() { quantCommands = append(quantCommands, newQATCmd, newQNNDirCmd) }

// newQATCmd is `pynqctl quant qat`: quantization-aware training with the flow's
// quantizers, then (with --output) the flow's calibrate and verify steps for the
// post-training-quantized float model and for the QAT model, and a PTQ-vs-QAT report.
func newQATCmd(log *slog.Logger) *cobra.Command {
	o := flow.QATOptions{Precision: flow.DefaultPrecision(), Verify: flow.DefaultVerifyOptions()}
	var x trainExtras
	cmd := &cobra.Command{
		Use:   "qat --cfg M.cfg --weights FLOAT.weights --data DIR|LIST [--val DIR --output DIR] [--checkpoints DIR]",
		Short: "Quantization-aware training (W1A3) and its PTQ-vs-QAT accuracy report",
		Long: `Fine-tunes the cfg's model from --weights (float; without it, from darknet's random
initialisation) as "pynqctl train" does, with the quantizers of the quantization flow
in the loop: the layers --weight-bits, --keep-first/--keep-last/--keep-bits and
--overrides choose (as "quant weights") train with quantized weights through a
straight-through estimator (1 bit: bipolar, alpha = mean |w| per channel), and the
activations "quant activations" quantizes train with 3-bit levels whose clipping scale
is calibrated on the first batch (--clip-init) and then fixed, or learned with
--learn-clip (PACT). LeakyRelu layers train as ReLU (--leaky=relu), as the flow
rewrites them.

Writes the checkpoints into --checkpoints, <checkpoints>/<name>.quant.json (the trained activation
scales, the sidecar format of "quant export-darknet") and <checkpoints>/<name>-qat.cfg (the
network as trained: ReLU for leaky, binary=1 on bipolar layers). "quant qnn-dir"
turns cfg, weights and sidecar into a QNN-MO parameter directory. Interrupting
(Ctrl-C) writes the last checkpoint and the sidecar.

With --output and --val, the normal flow follows: <output>/ptq is "quant run" on the
float model (post-training quantization, calibrated on --calibration), <output>/qat is
"quant run" on the QAT model with its trained scales, both verified against the float
model on --val. <output>/qat_report.json and qat_report.html compare float, PTQ and
QAT mAP per class with precision-recall curves. Exits 3 when the QAT model still fails
the accuracy gate (--max-drop).

A model exported with --float-activation=lhtan trains its lhtan layers with the
scales 1/(2^bits-1) of lhtan's saturation at 1 (the engine's levels), not calibrated.

` + trainDataHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := x.apply(&o.Train); err != nil {
				return err
			}
			o.Verify.Names = x.names
			o.Out, o.Progress, o.Verbose = cmd.OutOrStdout(), progressWriter(cmd.ErrOrStderr()), verbose
			res, err := flow.QAT(cmd.Context(), o, log)
			if err != nil || res.Report == nil {
				return err
			}
			res.Report.Print(cmd.OutOrStdout())
			return gateError(res.Report.GateError())
		},
	}
	t := &o.Train
	addTrainFlags(cmd, t, &x)
	addPrecisionFlags(cmd, &o.Precision)
	fl := cmd.Flags()
	fl.StringVar(&t.Weights, "weights", "", "initial (float) weights (default: darknet's random initialisation)")
	fl.StringVar(&t.Resume, "resume", "", "checkpoint to resume from (its .momentum sidecar restores the activation scales)")
	fl.StringVar(&t.OutDir, "checkpoints", "", "checkpoint directory (default: <output>/train, or backup)")
	fl.BoolVar(&t.LearnClip, "learn-clip", false, "activation clipping scales learn (PACT) after their first-batch calibration")
	fl.StringVar(&t.ClipInit, "clip-init", calib.MSE, "first-batch calibration of the activation scales: mse, percentile or minmax")
	fl.StringVar(&t.Val, "val", "", "validation set with labels: mAP at checkpoints, and the PTQ/QAT verification with --output")
	fl.StringVar(&o.Dir, "output", "", "run the flow's calibrate/verify for PTQ and QAT here and write the PTQ-vs-QAT report (needs --weights and --val)")
	aliasFlags(cmd, map[string]string{"out": "checkpoints", "outdir": "output"})
	fl.StringVar(&o.Calibration, "calibration", "", "PTQ calibration images (default: the first --calibration-images of --data)")
	fl.IntVar(&o.CalibrationImages, "calibration-images", 32, "calibrate PTQ on the first N calibration images (0 = all)")
	addVerifyFlags(cmd, &o.Verify)
	// Each verify step writes its report beside its results; the comparison is
	// qat_report.html.
	_ = fl.MarkHidden("report")
	return cmd
}

// newQNNDirCmd is `pynqctl quant qnn-dir`: a QAT-trained darknet model (cfg, weights,
// quant sidecar) as a QNN-MO parameter directory.
func newQNNDirCmd(log *slog.Logger) *cobra.Command {
	var cfg, weights, sidecar, out, name string
	cmd := &cobra.Command{
		Use:   "qnn-dir --cfg M.cfg --weights M.weights --sidecar M.quant.json --output DIR [--name NET]",
		Short: "Write a W1A3 QAT-trained darknet model as a QNN-MO parameter directory (thresholds, binparams)",
		Long: `Reads a darknet model trained by "pynqctl quant qat" (cfg, weights, and the quant sidecar
with the trained activation scales) and writes it as the QNN-MO parameter directory the
engine, "pynqctl detect --model" and pynq-agent load: the first convolution's batch norm
folded into float weights for the fixed 3-bit input quantizer, the hidden layers' batch
norm and scales folded into integer thresholds, the last layer scaled to read levels
(see quant/qnnmo.FromQAT). The hidden layers must fit the W1A3 engine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			qm, err := flow.QNNDir(cfg, weights, sidecar, out, name)
			if err != nil {
				return err
			}
			log.Info("qnn parameter directory written", "dir", out, "network", qm.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg, "cfg", "", "darknet cfg the model was trained with (required)")
	fl.StringVar(&weights, "weights", "", "trained darknet .weights (required)")
	fl.StringVar(&sidecar, "sidecar", "", "quant sidecar with the trained activation scales, from pynqctl quant qat (required)")
	fl.StringVar(&out, "output", "", "parameter directory to write (required)")
	aliasFlags(cmd, map[string]string{"out": "output"})
	fl.StringVar(&name, "name", "", "network name (file prefix; default: the cfg's base name)")
	for _, f := range []string{"cfg", "weights", "sidecar", "output"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
