package flow

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/humanize"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// The guide's model steps: Finn, Weights and Activations read a QONNX (or ONNX) model,
// change it and write it as QONNX.

// StepResult is what a model step did.
type StepResult struct {
	Step     string        // "finn", "weights" or "activations"
	Model    *quant.Model  // the model as written
	Output   string        // the file written
	Bytes    int64         // its size
	Duration time.Duration // reading to writing

	// The step's own report: one of them is set.
	Finn        *qonnx.FinnReport
	Weights     *qonnx.WeightReport
	Activations *qonnx.ActReport
}

// WeightsOptions are the weights step's: the quantizers of opt, with the TOML file
// Overrides (keep_first, keep_last, keep_bits, [layers]) applied over them when given.
type WeightsOptions struct {
	Input, Output string // Output defaults to Input renamed <name>-w<bits>.onnx
	Overrides     string
	qonnx.WeightOptions
}

// ActivationsOptions are the activations step's.
type ActivationsOptions struct {
	Input, Output string // Output defaults to Input renamed <name>-w1a<bits>.onnx
	qonnx.ActOptions
}

// Finn writes a clean QONNX model FINN imports (opset 11, UINT8 input, batch norm
// kept) from input to output (default <name>-finn.onnx beside input).
func Finn(input, output string) (*StepResult, error) {
	return modelStep("finn", input, output, "-finn", "finn", func(m *quant.Model, r *StepResult) (err error) {
		r.Finn, err = qonnx.Finn(m)
		return err
	})
}

// Weights quantizes the convolution weights; layers that cannot be binarized
// (grouped/depthwise) are kept and logged.
func Weights(o WeightsOptions, log *slog.Logger) (*StepResult, error) {
	if o.Overrides != "" {
		if err := qonnx.LoadOverrides(o.Overrides, &o.WeightOptions); err != nil {
			return nil, err
		}
	}
	stage := fmt.Sprintf("w%d", o.Bits)
	return modelStep("weights", o.Input, o.Output, "-"+stage, stage, func(m *quant.Model, r *StepResult) (err error) {
		if r.Weights, err = qonnx.QuantizeWeights(m, o.WeightOptions); err != nil {
			return fmt.Errorf("weights: %w", err)
		}
		if n := len(r.Weights.Refused); n > 0 {
			logger(log).Warn("layers cannot be binarized (grouped/depthwise); kept", "layers", n, "bits", o.KeepBits)
		}
		return nil
	})
}

// Activations puts an unsigned activation quantizer after every hidden activation;
// changed LeakyRelu layers are logged.
func Activations(o ActivationsOptions, log *slog.Logger) (*StepResult, error) {
	suffix, stage := fmt.Sprintf("-w1a%d", o.Bits), fmt.Sprintf("a%d", o.Bits)
	return modelStep("activations", o.Input, o.Output, suffix, stage, func(m *quant.Model, r *StepResult) (err error) {
		if r.Activations, err = qonnx.QuantizeActivations(m, o.ActOptions); err != nil {
			return err
		}
		if n := len(r.Activations.Leaky); n > 0 {
			logger(log).Warn("LeakyRelu layers changed for FINN", "layers", n, "mode", o.Leaky)
		}
		return nil
	})
}

// modelStep is the frame of the model steps: read input, transform the model, write
// it to output (default: input renamed with suffix) as stage. Read and write errors
// are prefixed with step; transform's errors are returned as they are.
func modelStep(step, input, output, suffix, stage string, transform func(*quant.Model, *StepResult) error) (*StepResult, error) {
	start := time.Now()
	if input == "" {
		return nil, fmt.Errorf("%s: --input is required", step)
	}
	m, err := qonnx.ReadFile(input)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	r := &StepResult{Step: step, Model: m, Output: output}
	if err := transform(m, r); err != nil {
		return nil, err
	}
	if r.Output == "" {
		r.Output = StepOutputName(input, suffix)
	}
	if r.Bytes, err = writeModel(r.Output, m, qonnx.Options{Stage: stage}); err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	r.Duration = time.Since(start)
	return r, nil
}

// StepOutputName is a step's default output: input without its extension and the
// guide's step suffixes (-finn, -w1a3, -w1), plus suffix and .onnx.
func StepOutputName(input, suffix string) string {
	base := strings.TrimSuffix(input, filepath.Ext(input))
	for _, s := range []string{"-finn", "-w1a3", "-w1"} {
		base = strings.TrimSuffix(base, s)
	}
	return base + suffix + ".onnx"
}

// writeModel writes m as QONNX and returns the file's size.
func writeModel(path string, m *quant.Model, opt qonnx.Options) (int64, error) {
	if err := qonnx.WriteFile(path, m, opt); err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Print writes the step's report: what it changed (per layer when verbose), the file
// and the time.
func (r *StepResult) Print(w io.Writer, verbose bool) {
	switch {
	case r.Finn != nil:
		f := r.Finn
		fmt.Fprintf(w, "model    %s: %d layers, %d with batch norm (kept as BatchNormalization)\n", r.Model.Name, f.Layers, f.BatchNorm)
		printNotes(w, verbose, "leaky", f.Leaky)
		printNotes(w, verbose, "notes", f.Notes)
	case r.Weights != nil:
		printNotes(w, verbose, "quantized", r.Weights.Quantized)
		printNotes(w, verbose, "kept", r.Weights.Kept)
		printNotes(w, verbose, "refused", r.Weights.Refused)
	case r.Activations != nil:
		printNotes(w, verbose, "quantized", r.Activations.Quantized)
		printNotes(w, verbose, "leaky", r.Activations.Leaky)
		printNotes(w, verbose, "float", r.Activations.Float)
	}
	printWrote(w, r.Output, r.Bytes)
	fmt.Fprintf(w, "time     %s\n", r.Duration.Round(time.Millisecond))
}

func printWrote(w io.Writer, path string, size int64) {
	fmt.Fprintf(w, "wrote    %s (%s)\n", path, humanize.Bytes(size))
}

// printNotes lists a step's notes under title: a count unless verbose, except why a
// layer stays float (refused), which is always said.
func printNotes(w io.Writer, verbose bool, title string, notes []qonnx.Note) {
	if len(notes) == 0 {
		return
	}
	if !verbose && title != "refused" {
		fmt.Fprintf(w, "%-8s %d layers (-v lists them)\n", title, len(notes))
		return
	}
	fmt.Fprintf(w, "%-8s %d:\n", title, len(notes))
	for _, n := range notes {
		bits := ""
		switch {
		case n.Bits > 0:
			bits = fmt.Sprintf(" [%d-bit]", n.Bits)
		case title == "kept" || title == "refused":
			bits = " [float]"
		}
		fmt.Fprintf(w, "  %-12s%s %s\n", n.Layer, bits, n.Reason)
	}
}

// logger is log, or a logger that discards when log is nil.
func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
