package main

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant/qengine"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// loadQuantizedSide reads a QONNX model (quant/qonnx) and prepares the quantized
// engine (quant/qengine) for it.
func loadQuantizedSide(path string, threads int) (*verifyModel, error) {
	m, err := qonnx.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verify: quantized model: %w", err)
	}
	e, err := qengine.New(m, qengine.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("verify: quantized model %s: %w", path, err)
	}
	return &verifyModel{role: "quantized", path: path, kind: "qonnx", engine: "quantized (quant/qengine)", m: m, e: e}, nil
}
