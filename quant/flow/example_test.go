package flow_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/fpgadetector/pynq-agent/quant/flow"
)

// Quantize a darknet model as the guide does, into out/: tinier-yolo-chair.onnx,
// -finn.onnx, -w1.onnx, -w1a3.onnx, -w1a3-calibrated.onnx and quantization_results.json,
// printing every step's report, then read the accuracy gate's verdict. (Not run by go
// test: it needs a model and images.)
func ExampleRun() {
	res, err := flow.Run(context.Background(), flow.RunOptions{
		Cfg:         "tinier-yolo-chair.cfg",
		Weights:     "tinier-yolo-chair_final.weights",
		Calibration: "chairs/calibration",
		Val:         "chairs/val",
		Dir:         "out",
		Precision:   flow.DefaultPrecision(),     // W1A3, first and last layers float
		Verify:      flow.DefaultVerifyOptions(), // VOC2012 mAP, drop below 5 points
		Out:         os.Stdout,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if !res.Verify.Passed {
		fmt.Println(res.Verify.GateError())
		for _, a := range res.Verify.Advice() {
			fmt.Println("-", a)
		}
	}
}

// Run one step on its own: calibrate the activation scales of a W1A3 model on 32
// images and print the report. (Not run by go test.)
func ExampleCalibrate() {
	o := flow.DefaultCalibrateOptions()
	o.Model, o.Dataset, o.Images = "out/tinier-yolo-chair-w1a3.onnx", "chairs/calibration", 32
	res, err := flow.Calibrate(o, nil)
	if err != nil {
		log.Fatal(err)
	}
	res.Print(os.Stdout, false)
}

// Check a quantized model against its float model on a validation set. (Not run by go
// test.)
func ExampleVerify() {
	o := flow.DefaultVerifyOptions()
	o.Model, o.Dataset, o.Output = "out/tinier-yolo-chair-w1a3-calibrated.onnx", "chairs/val", "out/quantization_results.json"
	res, err := flow.Verify(o, nil)
	if err != nil {
		log.Fatal(err)
	}
	res.Print(os.Stdout)
	fmt.Println(res.Verdict)
}
