package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/flow"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

func init() { quantCommands = append(quantCommands, newExportDarknetCmd) }

func newExportDarknetCmd(log *slog.Logger) *cobra.Command {
	var o flow.ExportDarknetOptions
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
			res, err := flow.ExportDarknet(o, log)
			if res != nil {
				res.Print(cmd.OutOrStdout())
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Model, "model", "", "QNN-MO parameter directory or darknet .cfg (required)")
	fl.StringVar(&o.ModelWeights, "model-weights", "", "darknet .weights of a --model cfg")
	fl.StringVar(&o.Output, "output", "", "darknet .cfg to write (required); the sidecar goes beside it as .quant.json")
	fl.StringVar(&o.Weights, "weights", "", "darknet .weights to write (default: --output with .weights)")
	fl.StringVar(&o.FloatActivation, "float-activation", todarknet.FloatLHTan, `activation of the quantized layers in darknet: lhtan (scales 1/7: the float model is the quantized one without rounding; the one to fine-tune and the gate's baseline) or relu (unclipped: the float model computes something else and, for Tinier-YOLO, finds almost nothing)`)
	fl.StringVar(&o.TrainCfg, "train-cfg", "", `cfg whose training options ([net] learning rate, schedule, augmentation; [region]/[yolo] loss weights) the output gets (default: the model's own cfg; "none" for none)`)
	fl.StringVar(&o.BNImages, "bn-images", "", "directory of images (jpg, png) to measure batch-norm statistics on, for training in darknet")
	fl.IntVar(&o.BNMax, "bn-max", 50, "use at most this many images of --bn-images")
	fl.IntVar(&o.Threads, "threads", 0, "goroutines for --bn-images (0: all cores)")
	fl.StringVar(&o.KeepClasses, "keep-classes", "", `comma-separated class names (of --names) the head keeps, e.g. "chair": a one-class head cut from a multi-class one, to fine-tune`)
	fl.StringVar(&o.Names, "names", "", "the model's class names file (for --keep-classes)")
	fl.Float64Var(&o.ObjectnessShift, "objectness-shift", train.ObjectnessShift, "with --keep-classes: move the objectness towards the kept classes' logits by this much (0: the old objectness, which scores any object)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}
