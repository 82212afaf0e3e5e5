package flow

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// ConvertOptions are the convert step's.
type ConvertOptions struct {
	Cfg, Weights string        // the darknet model
	Output       string        // default: the cfg's name with .onnx, in the working directory
	Dialect      quant.Dialect // "" = from the cfg
	KeepBN       bool          // keep BatchNormalization nodes instead of folding them
}

// ConvertResult is what Convert wrote.
type ConvertResult struct {
	Model  *quant.Model
	Proto  *onnxpb.ModelProto
	Output string
	Bytes  int64
}

// Convert writes a darknet model as a standard opset-13 ONNX graph (raw head outputs,
// decoding parameters in the metadata). The darknet reader's warnings are logged.
func Convert(o ConvertOptions, log *slog.Logger) (*ConvertResult, error) {
	if o.Output == "" {
		o.Output = strings.TrimSuffix(filepath.Base(o.Cfg), filepath.Ext(o.Cfg)) + ".onnx"
	}
	m, err := darknet.Load(o.Cfg, o.Weights, darknet.Options{
		Dialect: o.Dialect,
		Warn:    func(msg string) { logger(log).Warn(msg) },
	})
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	mp, err := onnx.Export(m, onnx.ExportOptions{KeepBatchNorm: o.KeepBN})
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", o.Cfg, err)
	}
	if err := onnx.WriteFile(o.Output, mp); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	st, err := os.Stat(o.Output)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return &ConvertResult{Model: m, Proto: mp, Output: o.Output, Bytes: st.Size()}, nil
}

// Print writes the model, its graph's inputs and outputs, and the file.
func (r *ConvertResult) Print(w io.Writer) {
	m, g := r.Model, r.Proto.GetGraph()
	fmt.Fprintf(w, "model    %s (%s darknet, batch-norm eps %g)\n", m.Name, m.Dialect, m.BNEpsilon)
	fmt.Fprintf(w, "layers   %d: %s\n", len(m.Layers), onnx.Summary(m))
	fmt.Fprintf(w, "graph    opset %d, %d nodes, %d initializers\n", onnx.Opset, len(g.GetNode()), len(g.GetInitializer()))
	for _, in := range g.GetInput() {
		fmt.Fprintf(w, "input    %s %s\n", in.GetName(), dims(in))
	}
	_, heads, _, _ := onnx.Metadata(r.Proto)
	for _, o := range g.GetOutput() {
		h := heads[o.GetName()]
		fmt.Fprintf(w, "output   %s %s (%s %s, %d classes)\n", o.GetName(), dims(o), h.Kind, h.Name, h.Classes)
	}
	printWrote(w, r.Output, r.Bytes)
}

func dims(v *onnxpb.ValueInfoProto) string {
	var parts []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		parts = append(parts, fmt.Sprint(d.GetDimValue()))
	}
	return "[" + strings.Join(parts, "x") + "]"
}
