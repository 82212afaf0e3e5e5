package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

func init() { quantCommands = append(quantCommands, newConvertCmd) }

// convertFlags are the options of `pynqctl quant convert`.
type convertFlags struct {
	cfg, weights, output, dialect string
	keepBN                        bool
}

func newConvertCmd(log *slog.Logger) *cobra.Command {
	var f convertFlags
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
			return runConvert(cmd.OutOrStdout(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfg, "cfg", "", "darknet .cfg file (required)")
	fl.StringVar(&f.weights, "weights", "", "darknet .weights file (required)")
	fl.StringVar(&f.output, "output", "", "ONNX file to write (default: the cfg's name with .onnx, in the current directory)")
	fl.StringVar(&f.dialect, "dialect", "auto", "darknet dialect: auto, pjreddie or alexeyab (decides the batch-norm epsilon)")
	fl.BoolVar(&f.keepBN, "keep-bn", false, "keep BatchNormalization nodes instead of folding them into the convolutions")
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

func runConvert(out io.Writer, log *slog.Logger, f convertFlags) error {
	dialect, err := parseDialect(f.dialect)
	if err != nil {
		return err
	}
	if f.output == "" {
		f.output = strings.TrimSuffix(filepath.Base(f.cfg), filepath.Ext(f.cfg)) + ".onnx"
	}
	m, err := darknet.Load(f.cfg, f.weights, darknet.Options{
		Dialect: dialect,
		Warn:    func(msg string) { log.Warn(msg) },
	})
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	mp, err := onnx.Export(m, onnx.ExportOptions{KeepBatchNorm: f.keepBN})
	if err != nil {
		return fmt.Errorf("convert %s: %w", f.cfg, err)
	}
	if err := onnx.WriteFile(f.output, mp); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	st, err := os.Stat(f.output)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	printConvertSummary(out, m, mp, f.output, st.Size())
	return nil
}

func printConvertSummary(w io.Writer, m *quant.Model, mp *onnxpb.ModelProto, path string, size int64) {
	g := mp.GetGraph()
	fmt.Fprintf(w, "model    %s (%s darknet, batch-norm eps %g)\n", m.Name, m.Dialect, m.BNEpsilon)
	fmt.Fprintf(w, "layers   %d: %s\n", len(m.Layers), onnx.Summary(m))
	fmt.Fprintf(w, "graph    opset %d, %d nodes, %d initializers\n", onnx.Opset, len(g.GetNode()), len(g.GetInitializer()))
	for _, in := range g.GetInput() {
		fmt.Fprintf(w, "input    %s %s\n", in.GetName(), dims(in))
	}
	_, heads, _, _ := onnx.Metadata(mp)
	for _, o := range g.GetOutput() {
		h := heads[o.GetName()]
		fmt.Fprintf(w, "output   %s %s (%s %s, %d classes)\n", o.GetName(), dims(o), h.Kind, h.Name, h.Classes)
	}
	fmt.Fprintf(w, "wrote    %s (%s)\n", path, byteSize(size))
}

func dims(v *onnxpb.ValueInfoProto) string {
	var parts []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		parts = append(parts, fmt.Sprint(d.GetDimValue()))
	}
	return "[" + strings.Join(parts, "x") + "]"
}
