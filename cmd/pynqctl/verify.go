package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/flow"
)

func init() { quantCommands = append(quantCommands, newVerifyCmd) }

// exitGateFailed is the exit status of a failed accuracy gate.
const exitGateFailed = 3

func newVerifyCmd(log *slog.Logger) *cobra.Command {
	o := flow.DefaultVerifyOptions()
	cmd := &cobra.Command{
		Use:   "verify --model=M-w1a3-calibrated.onnx --dataset=DIR [--output=quantization_results.json]",
		Short: "Accuracy gate: VOC mAP of the quantized model against the float model on a validation set",
		Long: `Runs the float model and the quantized model (through the quantized engine) on every
image of the validation set as darknet's ` + "`detector valid`" + ` does (letterbox, threshold 0.005,
NMS 0.45), computes VOC2012 mAP for both (classes matched by name between the model's
names and the dataset; chair first), writes quantization_results.json and an HTML report
with precision-recall curves, and exits with status 0 when the mAP drop is below
--max-drop percentage points, 3 when it is not.

The float model defaults to <name>.onnx beside the quantized one (the guide's file
names); it may also be a darknet cfg (--float M.cfg --float-weights M.weights).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = progressWriter(cmd.ErrOrStderr())
			res, err := flow.Verify(o, log)
			if err != nil {
				return err
			}
			res.Print(cmd.OutOrStdout())
			return gateError(res.GateError())
		},
	}
	addVerifyFlags(cmd, &o)
	fl := cmd.Flags()
	fl.StringVar(&o.Model, "model", "", "quantized model (QONNX, e.g. M-w1a3-calibrated.onnx) (required)")
	fl.StringVar(&o.Dataset, "dataset", "", "validation set: darknet-form directory, list file or VOC tree (required)")
	fl.StringVar(&o.Output, "output", o.Output, "results file")
	fl.StringVar(&o.Float, "float", "", "float reference: M.onnx or a darknet M.cfg (default: <name>.onnx beside --model)")
	fl.StringVar(&o.FloatWeights, "float-weights", "", "darknet .weights of a --float cfg (default: the cfg's name with .weights)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("dataset")
	return cmd
}

// addVerifyFlags adds the flags verify shares with `quant run` and `quant qat`, with
// o's values as defaults.
func addVerifyFlags(cmd *cobra.Command, o *flow.VerifyOptions) {
	fl := cmd.Flags()
	if fl.Lookup("names") == nil { // quant qat's --names serves training and verify
		fl.StringVar(&o.Names, "names", "", "the model's class names (default: the dataset's names when the class counts agree)")
	}
	fl.StringVar(&o.DatasetNames, "dataset-names", "", "names file of darknet-form datasets (default: classes.names / *.names in the dataset dir or its parent)")
	fl.StringVar(&o.Report, "report", "", "HTML report with precision-recall curves (default: the results file's name with .html)")
	fl.StringVar(&o.Metric, "metric", o.Metric, "voc2012 (all-point) or voc2007 (11-point)")
	fl.Float64Var(&o.MaxDrop, "max-drop", o.MaxDrop, "largest accepted mAP drop in percentage points")
	fl.Float64Var(&o.MinFloat, "min-float-map", o.MinFloat, "smallest float mAP (percent) the gate accepts as a baseline: below it the gate fails, since the comparison means nothing")
	fl.Float32Var(&o.Thresh, "thresh", o.Thresh, "detection threshold for mAP (darknet's detector valid uses 0.005)")
	fl.Float32Var(&o.NMS, "nms", o.NMS, "NMS overlap threshold")
	if fl.Lookup("threads") == nil { // quant qat's --threads serves training and verify
		fl.IntVar(&o.Threads, "threads", 0, "engine goroutines (default: all cores)")
	}
}

// gateError is a failed accuracy gate with its exit status (nil stays nil).
func gateError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitGateFailed, err: err}
}
