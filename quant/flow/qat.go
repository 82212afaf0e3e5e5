package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/train"
)

// QATOptions are quantization-aware training's, and (with Dir) the PTQ-vs-QAT
// comparison's.
type QATOptions struct {
	// Train is the training; QAT sets QAT, Prepare (Precision's quantizers) and
	// Progress, and OutDir defaults to <Dir>/train, or backup without Dir.
	Train     train.Options
	Precision Precision
	// Dir, when set, is where Run goes for the float model (Dir/ptq, post-training
	// quantization) and for the trained one (Dir/qat, with its trained scales), both
	// verified on Train.Val, and where qat_report.json and .html compare them. It needs
	// Train.Weights (the float model) and Train.Val.
	Dir               string
	Calibration       string // PTQ calibration images; default: the first dataset of Train.Data
	CalibrationImages int
	Verify            VerifyOptions // as in RunOptions; Threads is Train.Threads

	Out      io.Writer // the flows' reports and the training's progress lines; nil = none
	Progress io.Writer // progress bars; nil = none
	Verbose  bool
}

// QATResult is what QAT did.
type QATResult struct {
	Training    QATTraining
	Interrupted bool       // the context ended the training: its checkpoint and sidecar are written
	Report      *QATReport // the comparison (with Dir, unless interrupted)
}

// QAT fine-tunes the cfg's model with the flow's quantizers in the loop, writes the
// trained model's sidecar (its activation scales) and cfg beside its weights and, with
// Dir, compares post-training quantization of the float model with the trained model.
func QAT(ctx context.Context, o QATOptions, log *slog.Logger) (*QATResult, error) {
	t := &o.Train
	if o.Dir != "" && (t.Weights == "" || t.Val == "") {
		return nil, errors.New("quant qat: --output compares with post-training quantization of the float model: give --weights (float) and --val")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if t.OutDir == "" {
		t.OutDir = "backup"
		if o.Dir != "" {
			t.OutDir = filepath.Join(o.Dir, "train")
		}
	}
	name := DefaultModelName(t.Cfg)
	var ptq *VerifyResult
	if o.Dir != "" { // PTQ first: its failure is the reason to train
		fmt.Fprintf(o.Out, "== post-training quantization of %s\n", t.Weights)
		var err error
		if ptq, err = o.flow(ctx, log, t.Cfg, t.Weights, "ptq", "", ""); err != nil {
			return nil, err
		}
	}
	res, err := o.train(ctx, log)
	if err != nil || res.Interrupted || o.Dir == "" {
		return res, err
	}
	fmt.Fprintf(o.Out, "== the QAT model through the flow\n")
	tr := res.Training
	qat, err := o.flow(ctx, log, tr.Cfg, tr.Weights, "qat", tr.Sidecar, filepath.Join(o.Dir, "ptq", name+".onnx"))
	if err != nil {
		return nil, err
	}
	res.Report = newQATReport(name, ptq, qat, &tr)
	return res, res.Report.write(o.Dir)
}

// train runs the quantization-aware training and writes the trained model's sidecar
// and cfg. An interrupted training is a result.
func (o *QATOptions) train(ctx context.Context, log *slog.Logger) (*QATResult, error) {
	t := o.Train
	t.QAT = true
	t.Prepare = o.Precision.Annotate
	t.Progress = func(p train.Progress) { fmt.Fprintln(o.Out, p) }
	fmt.Fprintf(o.Out, "== quantization-aware training\n")
	start := time.Now()
	res, err := train.Run(ctx, t)
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	if res == nil {
		return nil, err
	}
	trained := time.Since(start)
	tr, werr := writeQATModel(res, t.OutDir)
	if werr != nil {
		return nil, werr
	}
	tr.Seconds, tr.LearnClip, tr.ClipInit = trained.Seconds(), t.LearnClip, t.ClipInit
	tr.ImagesPerSec = float64(res.Seen) / trained.Seconds()
	logger(log).Info("qat stopped", "iterations", res.Iterations, "seen", res.Seen, "avg_loss", res.AvgLoss,
		"weights", res.Final, "sidecar", tr.Sidecar, "cfg", tr.Cfg)
	return &QATResult{Training: *tr, Interrupted: err != nil}, nil
}

// flow is Run into <Dir>/<sub>: calibrated on the images (or with the scales of a
// sidecar), verified against floatRef (default: the run's own float model).
func (o *QATOptions) flow(ctx context.Context, log *slog.Logger, cfg, weights, sub, scales, floatRef string) (*VerifyResult, error) {
	r := RunOptions{Cfg: cfg, Weights: weights, Calibration: o.Calibration, Val: o.Train.Val,
		Dir: filepath.Join(o.Dir, sub), Name: DefaultModelName(cfg), Scales: scales,
		CalibrationImages: o.CalibrationImages, Precision: o.Precision, Verify: o.Verify,
		Out: o.Out, Progress: o.Progress, Verbose: o.Verbose}
	if r.Calibration == "" { // the first training dataset
		srcs, err := train.ParseSources(o.Train.Data)
		if err != nil {
			return nil, err
		}
		r.Calibration = srcs[0].Path
	}
	r.Verify.Float, r.Verify.Threads = floatRef, o.Train.Threads
	res, err := Run(ctx, r, log)
	if err != nil {
		return nil, err
	}
	return res.Verify, nil
}
