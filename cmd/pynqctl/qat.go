package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

func init() { quantCommands = append(quantCommands, newQATCmd, newQNNDirCmd) }

// qatFlags are the options of `pynqctl quant qat`.
type qatFlags struct {
	train     train.Options
	extras    trainExtras
	precision precisionFlags
	// The PTQ-vs-QAT comparison (with --output): calibration images, the flow's
	// verify options, and the report directory.
	outdir, calibration string
	calibImages         int
	verify              verifyFlags
}

// newQATCmd is `pynqctl quant qat`: quantization-aware training with the flow's
// quantizers, then (with --output) the flow's calibrate and verify steps for the
// post-training-quantized float model and for the QAT model, and a PTQ-vs-QAT report.
func newQATCmd(log *slog.Logger) *cobra.Command {
	var f qatFlags
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
			return runQAT(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), log, f)
		},
	}
	o := &f.train
	addTrainFlags(cmd, o, &f.extras)
	addPrecisionFlags(cmd, &f.precision)
	fl := cmd.Flags()
	fl.StringVar(&o.Weights, "weights", "", "initial (float) weights (default: darknet's random initialisation)")
	fl.StringVar(&o.Resume, "resume", "", "checkpoint to resume from (its .momentum sidecar restores the activation scales)")
	fl.StringVar(&o.OutDir, "checkpoints", "", "checkpoint directory (default: <output>/train, or backup)")
	fl.BoolVar(&o.LearnClip, "learn-clip", false, "activation clipping scales learn (PACT) after their first-batch calibration")
	fl.StringVar(&o.ClipInit, "clip-init", calib.MSE, "first-batch calibration of the activation scales: mse, percentile or minmax")
	fl.StringVar(&o.Val, "val", "", "validation set with labels: mAP at checkpoints, and the PTQ/QAT verification with --output")
	fl.StringVar(&f.outdir, "output", "", "run the flow's calibrate/verify for PTQ and QAT here and write the PTQ-vs-QAT report (needs --weights and --val)")
	aliasFlags(cmd, map[string]string{"out": "checkpoints", "outdir": "output"})
	fl.StringVar(&f.calibration, "calibration", "", "PTQ calibration images (default: the first --calibration-images of --data)")
	fl.IntVar(&f.calibImages, "calibration-images", 32, "calibrate PTQ on the first N calibration images (0 = all)")
	addVerifyFlags(cmd, &f.verify)
	// Each verify step writes its report beside its results; the comparison is
	// qat_report.html.
	_ = fl.MarkHidden("report")
	return cmd
}

func runQAT(ctx context.Context, out, errOut io.Writer, log *slog.Logger, f qatFlags) error {
	o := &f.train
	if err := f.extras.apply(o); err != nil {
		return err
	}
	f.verify.names = f.extras.names
	if f.outdir != "" && (o.Weights == "" || o.Val == "") {
		return errors.New("quant qat: --output compares with post-training quantization of the float model: give --weights (float) and --val")
	}
	if o.OutDir == "" {
		o.OutDir = "backup"
		if f.outdir != "" {
			o.OutDir = filepath.Join(f.outdir, "train")
		}
	}
	name := defaultModelName(o.Cfg)
	var ptq *verifyResult
	if f.outdir != "" { // PTQ first: its failure is the reason to train
		fmt.Fprintf(out, "== post-training quantization of %s\n", o.Weights)
		var err error
		if ptq, err = runFlow(ctx, out, errOut, log, f, o.Cfg, o.Weights, "ptq", "", ""); err != nil {
			return err
		}
	}
	o.QAT = true
	o.Prepare = f.precision.annotate
	o.Progress = func(p train.Progress) { fmt.Fprintln(out, p) }
	fmt.Fprintf(out, "== quantization-aware training\n")
	start := time.Now()
	res, err := train.Run(ctx, *o)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if res == nil {
		return err
	}
	trained := time.Since(start)
	tr, werr := writeQATModel(res, o.OutDir)
	if werr != nil {
		return werr
	}
	tr.Seconds, tr.LearnClip, tr.ClipInit = trained.Seconds(), o.LearnClip, o.ClipInit
	tr.ImagesPerSec = float64(res.Seen) / trained.Seconds()
	log.Info("qat stopped", "iterations", res.Iterations, "seen", res.Seen, "avg_loss", res.AvgLoss,
		"weights", res.Final, "sidecar", tr.Sidecar, "cfg", tr.Cfg)
	if err != nil || f.outdir == "" {
		return nil // interrupted: the checkpoint and sidecar are written
	}
	fmt.Fprintf(out, "== the QAT model through the flow\n")
	qat, err := runFlow(ctx, out, errOut, log, f, tr.Cfg, res.Final, "qat", tr.Sidecar,
		filepath.Join(f.outdir, "ptq", name+".onnx"))
	if err != nil {
		return err
	}
	return writeQATReport(out, f.outdir, newQATReport(name, ptq, qat, tr))
}

// runFlow is `quant run` into <outdir>/<sub>: calibrated on the images (or with the
// scales of a sidecar), verified against floatRef (default: the run's own float
// model). A failed gate is a result, not an error.
func runFlow(ctx context.Context, out, errOut io.Writer, log *slog.Logger, f qatFlags, cfg, weights, sub, scales, floatRef string) (*verifyResult, error) {
	r := quantRunFlags{cfg: cfg, weights: weights, calibration: f.calibration, val: f.train.Val,
		outdir: filepath.Join(f.outdir, sub), name: defaultModelName(cfg), scales: scales,
		calibImages: f.calibImages, precision: f.precision, verify: f.verify}
	if r.calibration == "" { // the first training dataset
		srcs, err := train.ParseSources(f.train.Data)
		if err != nil {
			return nil, err
		}
		r.calibration = srcs[0].Path
	}
	r.verify.float, r.verify.threads = floatRef, f.train.Threads
	res, err := runQuantRun(ctx, out, errOut, log, r)
	if err != nil && exitCode(err) != exitGateFailed {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("quant qat: %s: the verify step wrote no result", sub)
	}
	return res, nil
}

// writeQATModel writes the trained model's sidecar and cfg beside its weights.
func writeQATModel(res *train.Result, dir string) (*qatTraining, error) {
	m := res.Model
	tr := &qatTraining{Iterations: res.Iterations, Images: res.Seen, AvgLoss: res.AvgLoss, Weights: res.Final,
		Sidecar: filepath.Join(dir, m.Name+".quant.json"), Cfg: filepath.Join(dir, m.Name+"-qat.cfg")}
	if err := writeQATSidecar(m, tr.Sidecar); err != nil {
		return nil, err
	}
	return tr, writeQATCfg(m, tr.Cfg)
}

// writeQATCfg writes the network as trained, binary=1 on its bipolar layers (darknet
// then runs their weights as the engine does).
func writeQATCfg(m *quant.Model, path string) error {
	var b bytes.Buffer
	for _, l := range m.Layers {
		if l.Kind == quant.KindConv && l.Quant != nil && l.Quant.WeightBits == 1 {
			l.Conv.Binary = true
		}
	}
	if err := darknet.WriteCfg(&b, m); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write qat cfg: %w", err)
	}
	return nil
}

// qatSidecar lists m's quantized convolutions with their trained scales.
func qatSidecar(m *quant.Model) *todarknet.Sidecar {
	sc := &todarknet.Sidecar{Format: todarknet.SidecarFormat, Model: m.Name}
	for i, l := range m.Layers {
		if l.Kind != quant.KindConv || l.Quant == nil {
			continue
		}
		sc.Layers = append(sc.Layers, todarknet.SidecarLayer{Index: i, Name: l.Name, Filters: l.Conv.Filters,
			WeightBits: l.Quant.WeightBits, ActBits: l.Quant.ActBits, ActScale: l.Quant.ActScale})
	}
	return sc
}

func writeQATSidecar(m *quant.Model, path string) error {
	b, err := qatSidecar(m).Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write quant sidecar: %w", err)
	}
	return nil
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
(see quant/qnn.FromQAT). The hidden layers must fit the W1A3 engine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := darknet.Load(cfg, weights, darknet.Options{})
			if err != nil {
				return err
			}
			sc, err := todarknet.ReadSidecar(sidecar)
			if err != nil {
				return err
			}
			if err := applySidecarScales(m, sc); err != nil {
				return fmt.Errorf("%s: %w", sidecar, err)
			}
			if name != "" {
				m.Name = name
			}
			qm, err := qnn.FromQAT(m)
			if err != nil {
				return err
			}
			if err := qnn.WriteDir(qm, out, offload.W1A3); err != nil {
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

// applySidecarScales annotates m's convolutions with the sidecar's quantizers.
func applySidecarScales(m *quant.Model, sc *todarknet.Sidecar) error {
	for _, sl := range sc.Layers {
		if sl.Index >= len(m.Layers) || m.Layers[sl.Index].Kind != quant.KindConv {
			return fmt.Errorf("layer %d is not a convolution of the cfg", sl.Index)
		}
		l := m.Layers[sl.Index]
		if l.Conv.Filters != sl.Filters {
			return fmt.Errorf("layer %d: %d filters, the cfg has %d", sl.Index, sl.Filters, l.Conv.Filters)
		}
		l.Quant = &quant.LayerQuant{WeightBits: sl.WeightBits, ActBits: sl.ActBits, ActScale: sl.ActScale}
	}
	return nil
}
