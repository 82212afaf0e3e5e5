package flow

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// CalibrateOptions are the calibrate step's. Images come from Dataset (a directory
// or a darknet list file; the first Images of them, 0 = all), or the scales from
// Scales, an export-darknet sidecar.
type CalibrateOptions struct {
	Model       string // the model from Activations
	Dataset     string
	Images      int
	Scales      string
	Output      string // default: Model with -calibrated.onnx
	Streamlined string // default: Output with -streamlined.onnx
	Report      string // the statistics as JSON; default: Output with .json
	calib.Options
}

// DefaultCalibrateOptions are pynqctl quant calibrate's defaults.
func DefaultCalibrateOptions() CalibrateOptions {
	return CalibrateOptions{Options: calib.Options{Method: calib.Percentile, Percentile: 99.99}}
}

// CalibrateResult is what Calibrate measured and wrote.
type CalibrateResult struct {
	*calib.Result
	Output, Streamlined, Report   string
	OutputBytes, StreamlinedBytes int64
	Total                         time.Duration // reading to writing
}

// Calibrate sets the activation scales from the images (or the sidecar), computes the
// integer thresholds, and writes the calibrated model, its FINN-streamlined variant
// and the statistics. Calibration warnings are logged.
func Calibrate(o CalibrateOptions, log *slog.Logger) (*CalibrateResult, error) {
	start := time.Now()
	m, err := qonnx.ReadFile(o.Model)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	r := &CalibrateResult{Output: o.Output, Streamlined: o.Streamlined, Report: o.Report}
	r.defaultPaths(o.Model)
	if o.Scales != "" {
		r.Result, err = sidecarScales(m, o.Scales)
	} else {
		r.Result, err = calibrateImages(m, o)
	}
	if err != nil {
		return nil, err
	}
	for _, w := range r.Warnings {
		logger(log).Warn(w)
	}
	if err := r.write(m); err != nil {
		return nil, err
	}
	r.Total = time.Since(start)
	return r, nil
}

func (r *CalibrateResult) defaultPaths(model string) {
	if r.Output == "" {
		r.Output = strings.TrimSuffix(model, filepath.Ext(model)) + "-calibrated.onnx"
	}
	base := strings.TrimSuffix(r.Output, filepath.Ext(r.Output))
	if r.Streamlined == "" {
		r.Streamlined = base + "-streamlined.onnx"
	}
	if r.Report == "" {
		r.Report = base + ".json"
	}
}

// write writes the calibrated and streamlined models (the statistics in their
// metadata) and the statistics file.
func (r *CalibrateResult) write(m *quant.Model) error {
	meta, err := calib.Metadata(r.Result)
	if err != nil {
		return err
	}
	if r.OutputBytes, err = writeModel(r.Output, m, qonnx.Options{Stage: "calibrated", Metadata: meta}); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	if r.StreamlinedBytes, err = writeModel(r.Streamlined, m, qonnx.Options{Stage: "streamlined", Streamlined: true, Metadata: meta}); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	js, err := json.MarshalIndent(r.Result, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.Report, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	return nil
}

func calibrateImages(m *quant.Model, o CalibrateOptions) (*calib.Result, error) {
	if o.Dataset == "" {
		return nil, fmt.Errorf("calibrate: --dataset is required (or --scales)")
	}
	imgs, err := calib.ListImages(o.Dataset)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	if o.Images > 0 && o.Images < len(imgs) {
		imgs = imgs[:o.Images]
	}
	return calib.Calibrate(m, imgs, o.Options)
}

// sidecarScales sets the activation scales an export-darknet sidecar records (the
// scales the float model was exported with) and derives the thresholds from them.
func sidecarScales(m *quant.Model, path string) (*calib.Result, error) {
	start := time.Now()
	sc, err := todarknet.ReadSidecar(path)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	idx, err := todarknet.ApplyScales(m, sc)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res := &calib.Result{Method: "scales " + path}
	for _, i := range idx {
		q := m.Layers[i].Quant
		res.Layers = append(res.Layers, calib.LayerStats{Layer: m.Layers[i].Name, Index: i, Bits: q.ActBits, Scale: q.ActScale,
			Clip: float64(q.ActScale) * float64(int(1)<<q.ActBits-1)})
	}
	if res.Thresholds, err = qonnx.SetThresholds(m); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// Print writes the calibration (every layer's range when verbose, else the most
// clipped one), the thresholds and the files.
func (r *CalibrateResult) Print(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "calibrated on %d images in %s (%.2f images/s), method %s", len(r.Images), r.Duration.Round(time.Millisecond), r.ImagesPerSec, r.Method)
	if r.Method == calib.Percentile {
		fmt.Fprintf(w, " %g", r.Percentile)
	}
	fmt.Fprintln(w)
	if verbose {
		fmt.Fprintf(w, "%-12s %4s %10s %10s %10s %8s %10s\n", "layer", "bits", "max", "clip", "scale", "clipped", "zeros")
		for _, l := range r.Layers {
			fmt.Fprintf(w, "%-12s %4d %10.4g %10.4g %10.6g %7.4f%% %9.1f%%\n", l.Layer, l.Bits, l.Max, l.Clip, l.Scale, 100*l.Clipped, 100*l.Zeros)
		}
	} else if len(r.Layers) > 0 {
		worst := r.Layers[0]
		for _, l := range r.Layers {
			if l.Clipped > worst.Clipped {
				worst = l
			}
		}
		fmt.Fprintf(w, "ranges   %d layers; most clipped %s %.4f%% (-v lists them)\n", len(r.Layers), worst.Layer, 100*worst.Clipped)
	}
	tr := r.Thresholds
	fmt.Fprintf(w, "thresholds %d layers (%d inverted channels, %d constant)\n", len(tr.Layers), tr.Inverted, tr.Constant)
	printNotes(w, verbose, "no thresholds", tr.Skipped)
	printWrote(w, r.Output, r.OutputBytes)
	printWrote(w, r.Streamlined, r.StreamlinedBytes)
	fmt.Fprintf(w, "wrote    %s\ntime     %s\n", r.Report, r.Total.Round(time.Millisecond))
}
