// Package flow owns the quantization flow of the user's guide as library calls with
// typed options and results: a darknet model to ONNX ([Convert]), a clean QONNX model
// FINN imports ([Finn]), binary weights ([Weights]), 3-bit activations
// ([Activations]), scales and integer thresholds from 20-50 images ([Calibrate]), and
// the accuracy gate against the float model on a validation set ([Verify]), with its
// quantization_results.json and HTML report. [Run] chains the steps and writes the
// guide's file names into one directory:
//
//	<name>.onnx, <name>-finn.onnx, <name>-w1.onnx, <name>-w1a3.onnx,
//	<name>-w1a3-calibrated.onnx (+ -streamlined.onnx, .json),
//	quantization_results.json, quantization_results.html, quant_run.json
//
// [QAT] is quantization-aware training compared with post-training quantization: it
// calls [Run] on the float model and on the trained one and writes qat_report.json and
// .html; [QNNDir] turns a QAT-trained darknet model into a QNN-MO parameter directory.
// [ExportDarknet] goes the other way: a QNN-MO model (or any darknet model) as a float
// darknet model plus the sidecar of its activation scales, to fine-tune.
//
// The calls write their files and return what they did; each result has a Print
// method that writes the report pynqctl prints (per-layer detail only when verbose).
// [Run] and [QAT] print their steps' reports as they go to an io.Writer the caller
// passes; progress bars go to another (nil: none), log lines to a *slog.Logger.
//
// The flow is host-side: nothing on the board (agent, overlay) imports it.
package flow
