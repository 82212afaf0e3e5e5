package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

func init() { quantCommands = append(quantCommands, newQATCmd, newQNNDirCmd) }

// newQATCmd is `pynqctl quant qat`: `pynqctl train --qat` plus the quantizers' state
// the .weights cannot hold (the activation scales), written as a quant sidecar.
func newQATCmd(log *slog.Logger) *cobra.Command {
	var o train.Options
	cmd := &cobra.Command{
		Use:   "qat --cfg M.cfg --data DIR|LIST [--weights W] [--out DIR]",
		Short: "Quantization-aware training (W1A3): train with the quantizers in the loop, write weights + activation scales",
		Long: `Trains the cfg as "pynqctl train --qat" does (binary weights with a straight-through
estimator on every convolution but the first and the last, 3-bit activations after
every convolution but the last, scales calibrated on the first batch or learned with
--learn-clip), starting from --weights (float) or from darknet's random initialisation.

Besides the checkpoints it writes <out>/<name>.quant.json (the quant sidecar format of
"pynqctl quant export-darknet"): per quantized layer its weight bits, activation bits
and activation scale as training ended. Together with the cfg and the last weights it
is the whole trained W1A3 model; "pynqctl quant qnn-dir" turns it into a QNN-MO
parameter directory. Interrupting (Ctrl-C) writes the last checkpoint and the sidecar.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			o.QAT = true
			o.Progress = func(p train.Progress) { fmt.Fprintln(out, p) }
			res, err := train.Run(cmd.Context(), o)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if res == nil {
				return err
			}
			dir := o.OutDir
			if dir == "" {
				dir = "."
			}
			path := filepath.Join(dir, res.Model.Name+".quant.json")
			if werr := writeQATSidecar(res.Model, path); werr != nil {
				return werr
			}
			log.Info("qat stopped", "iterations", res.Iterations, "seen", res.Seen, "avg_loss", res.AvgLoss, "weights", res.Final, "sidecar", path)
			return nil
		},
	}
	addTrainFlags(cmd, &o)
	fl := cmd.Flags()
	fl.StringVar(&o.Val, "val", "", "validation data for mAP at checkpoints")
	fl.StringVar(&o.Weights, "weights", "", "initial (float) weights (default: darknet's random initialisation)")
	fl.StringVar(&o.Resume, "resume", "", "checkpoint to resume from (its .momentum sidecar restores the activation scales)")
	fl.StringVar(&o.OutDir, "out", "backup", "checkpoint directory (the quant sidecar goes here too)")
	fl.BoolVar(&o.LearnClip, "learn-clip", false, "activation clipping scales learn (PACT) instead of staying at their first-batch calibration")
	return cmd
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
		Use:   "qnn-dir --cfg M.cfg --weights M.weights --sidecar M.quant.json --out DIR [--name NET]",
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
			if err := qnn.WriteDir(qm, out, qnn.W1A3); err != nil {
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
	fl.StringVar(&out, "out", "", "parameter directory to write (required)")
	fl.StringVar(&name, "name", "", "network name (file prefix; default: the cfg's base name)")
	for _, f := range []string{"cfg", "weights", "sidecar", "out"} {
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
