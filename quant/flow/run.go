package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
)

// RunOptions are the whole guide's options.
type RunOptions struct {
	Cfg, Weights      string // the float darknet model
	Calibration       string // calibration images (20-50): a directory or a list file
	CalibrationImages int    // calibrate on the first N (0 = all)
	CalibrationMethod string // "" = Calibrate's default
	Scales            string // calibrate with an export-darknet sidecar's scales instead of the images
	Val               string // validation set with labels
	Dir               string // output directory
	Name              string // file names' model name; default: the cfg's name without _final
	Precision         Precision
	// Verify are the verify step's options; Run sets Model, Dataset and Output, and
	// Float defaults to this run's <name>.onnx.
	Verify VerifyOptions

	Out      io.Writer // every step's report as it finishes; nil = none
	Progress io.Writer // progress bars; nil = none
	Verbose  bool      // per-layer detail in the reports
}

// Step is one step of the guide and its wall time.
type Step struct {
	Name    string  `json:"name"`
	Output  string  `json:"output"`
	Seconds float64 `json:"seconds"`
}

// RunResult is what Run did: each step's result and time.
type RunResult struct {
	Name         string
	Steps        []Step
	TotalSeconds float64
	Convert      *ConvertResult
	Finn         *StepResult
	Weights      *StepResult
	Activations  *StepResult
	Calibrate    *CalibrateResult
	Verify       *VerifyResult // Verify.Passed is the accuracy gate
}

// runStep is a step and the call that does it (and prints its report).
type runStep struct {
	Step
	run func() error
}

// Run is the whole guide: Convert, Finn, Weights, Activations, Calibrate and Verify
// into o.Dir with the guide's file names, and quant_run.json with the step timings.
// Inputs that would stop a later step are refused before any file is written. A
// failed accuracy gate is a result (Verify.Passed false): every file is written.
func Run(ctx context.Context, o RunOptions, log *slog.Logger) (*RunResult, error) {
	if o.Name == "" {
		o.Name = DefaultModelName(o.Cfg)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := checkRunInputs(o); err != nil {
		return nil, fmt.Errorf("quant run: %w (nothing written)", err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("quant run: %w", err)
	}
	r := &RunResult{Name: o.Name}
	steps := r.plan(o, log)
	start := time.Now()
	for i := range steps {
		s := &steps[i]
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quant run: before step %s: %w", s.Name, err)
		}
		fmt.Fprintf(o.Out, "== step %d/%d: %s -> %s\n", i+1, len(steps), s.Name, s.Output)
		t0 := time.Now()
		err := s.run()
		s.Seconds = time.Since(t0).Seconds()
		fmt.Fprintf(o.Out, "== %s: %.2f s\n", s.Name, s.Seconds)
		if err != nil {
			return nil, fmt.Errorf("quant run: step %s: %w", s.Name, err)
		}
		r.Steps = append(r.Steps, s.Step)
	}
	r.TotalSeconds = time.Since(start).Seconds()
	r.printSummary(o.Out)
	if err := r.writeTimings(filepath.Join(o.Dir, "quant_run.json"), o); err != nil {
		return nil, err
	}
	return r, nil
}

// plan lists the guide's steps, each writing its result into r and printing it.
func (r *RunResult) plan(o RunOptions, log *slog.Logger) []runStep {
	p := func(suffix string) string { return filepath.Join(o.Dir, o.Name+suffix) }
	cal := DefaultCalibrateOptions()
	cal.Model, cal.Dataset, cal.Output, cal.Scales, cal.Images = p("-w1a3.onnx"), o.Calibration, p("-w1a3-calibrated.onnx"), o.Scales, o.CalibrationImages
	cal.Progress = o.Progress
	if o.CalibrationMethod != "" {
		cal.Method = o.CalibrationMethod
	}
	v := o.Verify
	v.Model, v.Dataset, v.Output, v.Progress = cal.Output, o.Val, filepath.Join(o.Dir, "quantization_results.json"), o.Progress
	if v.Float == "" {
		v.Float = p(".onnx")
	}
	out, verbose := o.Out, o.Verbose
	return []runStep{
		{Step{Name: "convert", Output: p(".onnx")}, func() (err error) {
			if r.Convert, err = Convert(ConvertOptions{Cfg: o.Cfg, Weights: o.Weights, Output: p(".onnx")}, log); err == nil {
				r.Convert.Print(out)
			}
			return err
		}},
		{Step{Name: "finn", Output: p("-finn.onnx")}, func() (err error) {
			if r.Finn, err = Finn(p(".onnx"), p("-finn.onnx")); err == nil {
				r.Finn.Print(out, verbose)
			}
			return err
		}},
		{Step{Name: "weights", Output: p("-w1.onnx")}, func() (err error) {
			wo := WeightsOptions{Input: p("-finn.onnx"), Output: p("-w1.onnx"), Overrides: o.Precision.Overrides, WeightOptions: o.Precision.Weights}
			if r.Weights, err = Weights(wo, log); err == nil {
				r.Weights.Print(out, verbose)
			}
			return err
		}},
		{Step{Name: "activations", Output: p("-w1a3.onnx")}, func() (err error) {
			ao := ActivationsOptions{Input: p("-w1.onnx"), Output: p("-w1a3.onnx"), ActOptions: o.Precision.Act}
			if r.Activations, err = Activations(ao, log); err == nil {
				r.Activations.Print(out, verbose)
			}
			return err
		}},
		{Step{Name: "calibrate", Output: cal.Output}, func() (err error) {
			if r.Calibrate, err = Calibrate(cal, log); err == nil {
				r.Calibrate.Print(out, verbose)
			}
			return err
		}},
		{Step{Name: "verify", Output: v.Output}, func() (err error) {
			if r.Verify, err = Verify(v, log); err == nil {
				r.Verify.Print(out)
			}
			return err
		}},
	}
}

// DefaultModelName is the cfg's base name without its extension and _final.
func DefaultModelName(cfg string) string {
	base := strings.TrimSuffix(filepath.Base(cfg), filepath.Ext(cfg))
	return strings.TrimSuffix(base, "_final")
}

// checkRunInputs finds, before any step writes a file, what would stop a later step:
// the model unreadable, a calibration or validation set missing or empty, or a
// validation set whose classes the model's names cannot be matched with.
func checkRunInputs(o RunOptions) error {
	m, err := darknet.Load(o.Cfg, o.Weights, darknet.Options{})
	if err != nil {
		return err
	}
	if o.Scales == "" {
		imgs, err := calib.ListImages(o.Calibration) // as the calibrate step reads it
		if err != nil {
			return fmt.Errorf("calibration set: %w", err)
		}
		if len(imgs) == 0 {
			return fmt.Errorf("calibration set %s has no images", o.Calibration)
		}
	} else if _, err := os.Stat(o.Scales); err != nil {
		return fmt.Errorf("--scales: %w", err)
	}
	val, err := dataset.Open(o.Val, dataset.Options{NamesFile: o.Verify.DatasetNames})
	if err != nil {
		return fmt.Errorf("validation set: %w", err)
	}
	if len(val.Images) == 0 {
		return fmt.Errorf("validation set %s has no images", o.Val)
	}
	_, err = ModelNames(o.Verify.Names, m, val)
	return err
}

func (r *RunResult) printSummary(out io.Writer) {
	fmt.Fprintf(out, "\n%-12s %9s  %s\n", "step", "seconds", "output")
	for _, s := range r.Steps {
		fmt.Fprintf(out, "%-12s %9.2f  %s\n", s.Name, s.Seconds, s.Output)
	}
	verdict := "accuracy gate passed"
	if !r.Verify.Passed {
		verdict = r.Verify.GateError().Error()
	}
	fmt.Fprintf(out, "%-12s %9.2f  %s\n", "total", r.TotalSeconds, verdict)
}

func (r *RunResult) writeTimings(path string, o RunOptions) error {
	b, err := json.MarshalIndent(struct {
		Name         string  `json:"name"`
		Cfg          string  `json:"cfg"`
		Weights      string  `json:"weights"`
		Calibration  string  `json:"calibration"`
		Val          string  `json:"val"`
		Steps        []Step  `json:"steps"`
		TotalSeconds float64 `json:"total_s"`
	}{o.Name, o.Cfg, o.Weights, o.Calibration, o.Val, r.Steps, r.TotalSeconds}, "", "  ")
	if err != nil {
		return fmt.Errorf("quant run: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("quant run: %w", err)
	}
	return nil
}
