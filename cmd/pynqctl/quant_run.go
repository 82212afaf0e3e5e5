package main

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
	"github.com/spf13/cobra"
)

func init() { quantCommands = append(quantCommands, newQuantRunCmd) }

// quantRunFlags are the options of `pynqctl quant run`.
type quantRunFlags struct {
	cfg, weights, calibration, val, outdir, name string
	calibMethod                                  string
	calibImages                                  int
	scales                                       string
	precision                                    precisionFlags
	verify                                       verifyFlags
}

func newQuantRunCmd(log *slog.Logger) *cobra.Command {
	var f quantRunFlags
	cmd := &cobra.Command{
		Use:   "run --cfg=M.cfg --weights=M.weights --calibration=DIR --val=DIR --output=DIR [--name M]",
		Short: "The whole quantization guide: convert, finn, weights, activations, calibrate, verify",
		Long: `Runs the guide's steps in order, each exactly as its own command does, writing the
guide's files into --output: <name>.onnx, <name>-finn.onnx, <name>-w1.onnx,
<name>-w1a3.onnx, <name>-w1a3-calibrated.onnx, quantization_results.json (and
quantization_results.html, quant_run.json with the step timings). Prints each step's
wall time and a summary; exits like verify (3 when the accuracy gate fails).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := runQuantRun(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), log, f)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfg, "cfg", "", "darknet .cfg (required)")
	fl.StringVar(&f.weights, "weights", "", "darknet .weights (required)")
	fl.StringVar(&f.calibration, "calibration", "", "calibration images (20-50), a dataset directory or list file (required)")
	fl.StringVar(&f.val, "val", "", "validation set with labels (required)")
	fl.StringVar(&f.outdir, "output", "", "output directory (required)")
	aliasFlags(cmd, map[string]string{"outdir": "output"})
	fl.StringVar(&f.name, "name", "", "model name for the files (default: the cfg's name without _final/.cfg)")
	fl.StringVar(&f.calibMethod, "method", "", "calibration method passed to calibrate (default: calibrate's)")
	fl.StringVar(&f.scales, "scales", "", "calibrate with the activation scales of an export-darknet sidecar (M.quant.json) instead of the images")
	fl.IntVar(&f.calibImages, "calibration-images", 0, "calibrate on the first N calibration images (0 = all)")
	fl.StringVar(&f.verify.float, "float", "", "float reference of the verify step (default: this run's <name>.onnx)")
	addPrecisionFlags(cmd, &f.precision)
	addVerifyFlags(cmd, &f.verify)
	for _, req := range []string{"cfg", "weights", "calibration", "val", "outdir"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// quantStep is one step of the guide and its wall time; run is the step's own
// command's work (runFinn, runCalibrate...), with the flow's typed options.
type quantStep struct {
	Name    string  `json:"name"`
	Output  string  `json:"output"`
	Seconds float64 `json:"seconds"`
	run     func() error
}

// quantRunSteps are the guide's steps but verify (which quant run calls itself, for its
// result), each running what its command runs.
func quantRunSteps(out, errOut io.Writer, log *slog.Logger, f quantRunFlags) []quantStep {
	p := func(suffix string) string { return filepath.Join(f.outdir, f.name+suffix) }
	cal := defaultCalibrateFlags()
	cal.model, cal.dataset, cal.output, cal.scales, cal.images = p("-w1a3.onnx"), f.calibration, p("-w1a3-calibrated.onnx"), f.scales, f.calibImages
	if f.calibMethod != "" {
		cal.opt.Method = f.calibMethod
	}
	return []quantStep{
		{Name: "convert", Output: p(".onnx"), run: func() error {
			return runConvert(out, log, convertFlags{cfg: f.cfg, weights: f.weights, output: p(".onnx")})
		}},
		{Name: "finn", Output: p("-finn.onnx"), run: func() error { return runFinn(out, p(".onnx"), p("-finn.onnx")) }},
		{Name: "weights", Output: p("-w1.onnx"), run: func() error {
			return runWeights(out, log, p("-finn.onnx"), p("-w1.onnx"), f.precision.overrides, f.precision.weights)
		}},
		{Name: "activations", Output: p("-w1a3.onnx"), run: func() error {
			return runActivations(out, log, p("-w1.onnx"), p("-w1a3.onnx"), f.precision.act)
		}},
		{Name: "calibrate", Output: p("-w1a3-calibrated.onnx"), run: func() error { return runCalibrate(out, errOut, log, cal) }},
		{Name: "verify", Output: filepath.Join(f.outdir, "quantization_results.json")},
	}
}

func defaultModelName(cfg string) string {
	base := strings.TrimSuffix(filepath.Base(cfg), filepath.Ext(cfg))
	return strings.TrimSuffix(base, "_final")
}

// runQuantRun is quant run; it returns the verify step's result (with an exitError of
// exitGateFailed when the gate fails: every file is written).
func runQuantRun(ctx context.Context, out, errOut io.Writer, log *slog.Logger, f quantRunFlags) (*verifyResult, error) {
	if f.name == "" {
		f.name = defaultModelName(f.cfg)
	}
	if err := checkQuantRunInputs(f, log); err != nil {
		return nil, fmt.Errorf("quant run: %w (nothing written)", err)
	}
	if err := os.MkdirAll(f.outdir, 0o755); err != nil {
		return nil, fmt.Errorf("quant run: %w", err)
	}
	steps := quantRunSteps(out, errOut, log, f)
	start := time.Now()
	var gateErr error
	var res *verifyResult
	for i := range steps {
		s := &steps[i]
		fmt.Fprintf(out, "== step %d/%d: %s -> %s\n", i+1, len(steps), s.Name, s.Output)
		t0 := time.Now()
		var err error
		if s.Name == "verify" {
			v := f.verify
			v.model, v.dataset, v.output = steps[4].Output, f.val, s.Output
			if v.float == "" {
				v.float = steps[0].Output
			}
			res, err = runVerify(out, errOut, log, v)
		} else {
			err = s.run()
		}
		s.Seconds = time.Since(t0).Seconds()
		fmt.Fprintf(out, "== %s: %.2f s\n", s.Name, s.Seconds)
		if err != nil {
			if exitCode(err) == exitGateFailed {
				gateErr = err // the files are all written; still print the summary
				break
			}
			return nil, fmt.Errorf("quant run: step %s: %w", s.Name, err)
		}
	}
	total := time.Since(start).Seconds()
	printQuantRunSummary(out, steps, total, gateErr)
	if err := writeQuantRunTimings(filepath.Join(f.outdir, "quant_run.json"), f, steps, total); err != nil {
		return nil, err
	}
	return res, gateErr
}

// checkQuantRunInputs finds, before any step writes a file, what would stop a later
// step: the model unreadable, a calibration or validation set missing or empty, or a
// validation set whose classes the model's names cannot be matched with.
func checkQuantRunInputs(f quantRunFlags, log *slog.Logger) error {
	m, err := darknet.Load(f.cfg, f.weights, darknet.Options{})
	if err != nil {
		return err
	}
	if f.scales == "" {
		imgs, err := calib.ListImages(f.calibration) // as the calibrate step reads it
		if err != nil {
			return fmt.Errorf("calibration set: %w", err)
		}
		if len(imgs) == 0 {
			return fmt.Errorf("calibration set %s has no images", f.calibration)
		}
	} else if _, err := os.Stat(f.scales); err != nil {
		return fmt.Errorf("--scales: %w", err)
	}
	val, err := dataset.Open(f.val, dataset.Options{NamesFile: f.verify.datasetNames})
	if err != nil {
		return fmt.Errorf("validation set: %w", err)
	}
	if len(val.Images) == 0 {
		return fmt.Errorf("validation set %s has no images", f.val)
	}
	_, err = verifyNames(f.verify.names, m, val)
	return err
}

func printQuantRunSummary(out io.Writer, steps []quantStep, total float64, gateErr error) {
	fmt.Fprintf(out, "\n%-12s %9s  %s\n", "step", "seconds", "output")
	for _, s := range steps {
		fmt.Fprintf(out, "%-12s %9.2f  %s\n", s.Name, s.Seconds, s.Output)
	}
	verdict := "accuracy gate passed"
	if gateErr != nil {
		verdict = gateErr.Error()
	}
	fmt.Fprintf(out, "%-12s %9.2f  %s\n", "total", total, verdict)
}

func writeQuantRunTimings(path string, f quantRunFlags, steps []quantStep, total float64) error {
	b, err := json.MarshalIndent(struct {
		Name         string      `json:"name"`
		Cfg          string      `json:"cfg"`
		Weights      string      `json:"weights"`
		Calibration  string      `json:"calibration"`
		Val          string      `json:"val"`
		Steps        []quantStep `json:"steps"`
		TotalSeconds float64     `json:"total_s"`
	}{f.name, f.cfg, f.weights, f.calibration, f.val, steps, total}, "", "  ")
	if err != nil {
		return fmt.Errorf("quant run: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("quant run: %w", err)
	}
	return nil
}
