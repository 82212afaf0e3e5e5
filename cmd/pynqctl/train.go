package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

func init() { rootCommands = append(rootCommands, newTrainCmd) }

func newTrainCmd(log *slog.Logger) *cobra.Command {
	var (
		o train.Options
		x trainExtras
	)
	cmd := &cobra.Command{
		Use:   "train --cfg M.cfg --data DIR|LIST [--val DIR] [--weights W] [--output DIR] [--resume DIR/M_last.weights]",
		Short: "Train a darknet Tiny-YOLO/Tinier-YOLO (region head) on the CPU, writing darknet .weights",
		Long: `Trains a darknet cfg (convolutions with batch norm and leaky/relu/linear, max pools,
a YOLOv2 [region] head) on a darknet dataset (images with same-name .txt labels, or a
list file) as darknet's "detector train" does: the region loss of pjreddie's
region_layer.c, SGD with momentum and weight decay, the cfg's learning-rate policy and
burn_in, jitter/flip/HSV augmentation; all from the cfg's [net] and [region] keys.

Writes <out>/<name>_<iter>.weights every --checkpoint-every iterations,
<out>/<name>_last.weights (+ .momentum, atomically) and <out>/<name>_final.weights.
--resume continues from a _last checkpoint (iteration = seen/batch; with its .momentum
sidecar the run continues exactly as if uninterrupted). Interrupting (Ctrl-C) writes
the last checkpoint. With --val, prints VOC2012 mAP@0.5 at checkpoints and writes
<out>/<name>_best.weights whenever it improves (--keep-best ends on it).

` + trainDataHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := x.apply(&o); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			o.Progress = func(p train.Progress) { fmt.Fprintln(out, p) }
			res, err := train.Run(cmd.Context(), o)
			if res != nil {
				log.Info("training stopped", "iterations", res.Iterations, "seen", res.Seen, "avg_loss", res.AvgLoss, "weights", res.Final,
					"best", res.Best, "best_map", res.BestMAP)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	addTrainFlags(cmd, &o, &x)
	fl := cmd.Flags()
	fl.StringVar(&o.Val, "val", "", "validation data for mAP (darknet-form directory, list file or VOC tree)")
	fl.StringVar(&o.Weights, "weights", "", "initial weights (default: darknet's random initialisation); seen starts at 0")
	fl.StringVar(&o.Resume, "resume", "", "checkpoint to resume from (its seen counter gives the iteration)")
	fl.StringVar(&o.OutDir, "output", "backup", "checkpoint directory")
	aliasFlags(cmd, map[string]string{"out": "output"})
	fl.BoolVar(&o.QAT, "qat", false, "quantization-aware: binary weights (straight-through) and 3-bit activations on every conv but the first and last (first: 3-bit activations only)")
	fl.BoolVar(&o.LearnClip, "learn-clip", false, "with --qat: activation clipping scales learn (PACT) instead of staying at their first-batch calibration")
	return cmd
}

// addTrainFlags registers the training-loop flags (and their defaults) that train and
// quant qat share; each command adds the ones whose meaning differs (val, weights,
// resume, out, learn-clip, qat).
func addTrainFlags(cmd *cobra.Command, o *train.Options, x *trainExtras) {
	fl := cmd.Flags()
	fl.StringVar(&o.Cfg, "cfg", "", "darknet cfg with [net] training keys and a [region] head (required)")
	fl.StringVar(&o.Data, "data", "", "training data: darknet-form directories or list files, comma-separated, each PATH or PATH=WEIGHT (required)")
	fl.StringVar(&x.names, "names", "", "the model's class names: labels and validation match them by name, other classes are dropped")
	fl.IntVar(&x.freeze, "freeze", 0, "freeze layers 0..N-1 (no updates, batch norm on its rolling statistics, no backward pass below layer N)")
	fl.StringVar(&x.layerRates, "layer-rates", "", `per-layer learning-rate factors, e.g. "9-12=0.5,13=10" (0 freezes; after --freeze)`)
	fl.Float64Var(&o.BinaryMagnitude, "binary-magnitude", 0, "rescale the trained binary layers' latent weights to +-this (batch norm adjusted: same function) before training from --weights; 0.02-0.05 lets fine-tuning flip the signs of weights exported at +-1")
	fl.IntVar(&o.PriorImages, "prior-images", 0, "images during which the region loss pulls every box towards its anchor prior (0: darknet's 12800; -1: never, for fine-tuning a trained head)")
	fl.BoolVar(&o.FixedBN, "fixed-bn", false, "train batch norm with its rolling statistics fixed (fine-tuning on small batches): scale and bias still learn")
	fl.BoolVar(&o.KeepBest, "keep-best", false, "with --val: end on the weights of the best validation mAP (<out>/<name>_best.weights)")
	fl.IntVar(&o.MaxBatches, "max-batches", 0, "iterations to train to (default: the cfg's max_batches)")
	fl.IntVar(&o.Batch, "batch", 0, "images per iteration (default: the cfg's batch)")
	fl.IntVar(&o.Threads, "threads", 0, "compute goroutines (default: all cores)")
	fl.IntVar(&o.CheckpointEvery, "checkpoint-every", 100, "iterations between numbered checkpoints")
	fl.IntVar(&o.ValEvery, "val-every", 0, "iterations between mAP evaluations (default: at checkpoints)")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of the image order, augmentation and initial weights")
	_ = cmd.MarkFlagRequired("cfg")
	_ = cmd.MarkFlagRequired("data")
}

// trainDataHelp documents the training-data flags train and quant qat share.
const trainDataHelp = `Training data: --data takes several datasets, comma-separated, each with an optional
draw weight: "coco=3,pseudo,synth=0.5" draws every coco image three times and every
synth image half as often as a pseudo one (images are drawn with replacement). With
--names (the model's classes, e.g. a file holding "chair"), labels of every dataset and
of --val are matched to the model's classes by name and other classes are dropped, so
COCO-, VOC- and one-class datasets mix. --freeze N and --layer-rates fine-tune part of
a network: a frozen backbone costs no backward pass.`

// trainExtras are the training flags that need parsing into train.Options.
type trainExtras struct {
	names, layerRates string
	freeze            int
}

func (x trainExtras) apply(o *train.Options) error {
	if x.names != "" {
		names, err := boxes.LoadNames(x.names)
		if err != nil {
			return fmt.Errorf("--names: %w", err)
		}
		o.Names = names
	}
	rates, err := train.ParseLayerRates(x.layerRates)
	if err != nil {
		return fmt.Errorf("--layer-rates: %w", err)
	}
	o.LayerRates = append(train.Freeze(x.freeze), rates...)
	if o.KeepBest && o.Val == "" {
		return errors.New("--keep-best needs --val (the best checkpoint is the best validation mAP)")
	}
	return nil
}
