package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/flow"
)

func init() { quantCommands = append(quantCommands, newConvertCmd) }

func newConvertCmd(log *slog.Logger) *cobra.Command {
	var (
		o       flow.ConvertOptions
		dialect string
	)
	cmd := &cobra.Command{
		Use:   "convert --cfg=M.cfg --weights=M.weights [--output=M.onnx]",
		Short: "Convert a darknet model (cfg + weights) to ONNX (opset 13, raw head outputs)",
		Long: `Convert a darknet model to a standard opset-13 ONNX graph: input "input" float
[1,C,H,W] in [0,1], batch norm folded into the convolutions (--keep-bn keeps
BatchNormalization nodes), and one output "head_<layer>" per region/yolo layer holding
the raw tensor before the head's activation; the decoding parameters are in the model's
metadata ("pynq.model", "pynq.head.<output>").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Dialect, err = parseDialect(dialect); err != nil {
				return err
			}
			res, err := flow.Convert(o, log)
			if err != nil {
				return err
			}
			res.Print(cmd.OutOrStdout())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Cfg, "cfg", "", "darknet .cfg file (required)")
	fl.StringVar(&o.Weights, "weights", "", "darknet .weights file (required)")
	fl.StringVar(&o.Output, "output", "", "ONNX file to write (default: the cfg's name with .onnx, in the current directory)")
	fl.StringVar(&dialect, "dialect", "auto", "darknet dialect: auto, pjreddie or alexeyab (decides the batch-norm epsilon)")
	fl.BoolVar(&o.KeepBN, "keep-bn", false, "keep BatchNormalization nodes instead of folding them into the convolutions")
	_ = cmd.MarkFlagRequired("cfg")
	_ = cmd.MarkFlagRequired("weights")
	return cmd
}

func parseDialect(s string) (quant.Dialect, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return "", nil
	case string(quant.DialectPjreddie):
		return quant.DialectPjreddie, nil
	case string(quant.DialectAlexeyAB):
		return quant.DialectAlexeyAB, nil
	}
	return "", fmt.Errorf("--dialect %q: want auto, pjreddie or alexeyab", s)
}
