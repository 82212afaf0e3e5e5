package todarknet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

// SidecarFormat identifies the sidecar's JSON layout.
const SidecarFormat = "pynq-agent/quant-sidecar/v1"

// Sidecar is M.quant.json beside an exported M.cfg: how to quantize the float model so
// that it gives back the quantized model it came from. Layers not listed stay float.
//
//	{"format": "pynq-agent/quant-sidecar/v1", "model": "tinier-yolo", "layers": [
//	  {"index": 0, "name": "conv0", "source_name": "conv0", "filters": 16,
//	   "weight_bits": 0, "act_bits": 3, "act_scale": 0.5714286},
//	  {"index": 3, "name": "conv3", "source_name": "conv2", "filters": 64,
//	   "weight_bits": 1, "act_bits": 3, "act_scale": 1,
//	   "thresholds": true, "input_bits": 3, "input_scale": 1,
//	   "fit": {"exact": 64, "constant": 0, "approx": 0, "inverted": 0, "min_margin": 0.083}}, ...]}
type Sidecar struct {
	Format string `json:"format"`
	Model  string `json:"model,omitempty"`
	// FloatActivation is the darknet activation of the quantized layers: "relu" when
	// empty, or "lhtan" ([FloatLHTan]; read the model with [LoadExport]).
	FloatActivation string         `json:"float_activation,omitempty"`
	Layers          []SidecarLayer `json:"layers"`
}

// SidecarLayer is one quantized layer.
type SidecarLayer struct {
	// Index is the layer's index in the darknet model (sections after [net], from 0).
	Index int `json:"index"`
	// Name is the name quant/darknet's reader gives the layer ("conv3" for index 3);
	// SourceName its name in the quantized model it was exported from (QNN-MO: "conv2").
	Name       string `json:"name,omitempty"`
	SourceName string `json:"source_name,omitempty"`
	// Filters is the convolution's output channels (a consistency check).
	Filters int `json:"filters"`
	// WeightBits: 1 = bipolar (sign of each weight, times the filter's mean |w|, as
	// darknet's binary=1 computes); 0 = float; 2..8 = signed narrow levels times
	// max |w| / (2^(b-1)-1) per filter (quant weights; pynqctl quant qat with
	// --keep-bits or overrides writes them; darknet has no such layer, so
	// [Requantize] refuses them).
	WeightBits int `json:"weight_bits"`
	// ActBits and ActScale: the output quantizer level = clip(round(y/ActScale), 0,
	// 2^ActBits-1) after the layer's batch norm and bias.
	ActBits  int     `json:"act_bits"`
	ActScale float32 `json:"act_scale"`
	// Thresholds: the layer is computed in integers, from the levels of its input
	// (InputBits, level k meaning k*InputScale), its batch norm folded into integer
	// thresholds ([Requantize]).
	Thresholds bool    `json:"thresholds,omitempty"`
	InputBits  int     `json:"input_bits,omitempty"`
	InputScale float32 `json:"input_scale,omitempty"`
	// Fit records how the export reproduced the thresholds (informational).
	Fit *FitSummary `json:"fit,omitempty"`
}

// FitSummary counts a threshold layer's channels by fit (see [LayerReport]).
type FitSummary struct {
	Exact     int     `json:"exact"`
	Constant  int     `json:"constant"`
	Approx    int     `json:"approx"`
	Inverted  int     `json:"inverted"`
	MinMargin float64 `json:"min_margin"`
}

// SidecarPath is where the sidecar of a cfg goes: M.cfg -> M.quant.json.
func SidecarPath(cfgPath string) string {
	return strings.TrimSuffix(cfgPath, ".cfg") + ".quant.json"
}

// Marshal encodes the sidecar as indented JSON.
func (s *Sidecar) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode quant sidecar: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseSidecar decodes and checks a sidecar. name is used in errors.
func ParseSidecar(data []byte, name string) (*Sidecar, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Sidecar
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("quant sidecar %s: %w", name, jsonOffset(data, err))
	}
	if s.Format != SidecarFormat {
		return nil, fmt.Errorf("quant sidecar %s: format %q, want %q (not written by pynqctl quant export-darknet?)", name, s.Format, SidecarFormat)
	}
	if a := s.FloatActivation; a != "" && a != FloatReLU && a != FloatLHTan {
		return nil, fmt.Errorf("quant sidecar %s: float_activation %q (want %s or %s)", name, a, FloatReLU, FloatLHTan)
	}
	seen := map[int]bool{}
	for i, l := range s.Layers {
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("quant sidecar %s: layers[%d] (index %d): %w", name, i, l.Index, err)
		}
		if seen[l.Index] {
			return nil, fmt.Errorf("quant sidecar %s: layers[%d]: index %d is listed twice", name, i, l.Index)
		}
		seen[l.Index] = true
	}
	return &s, nil
}

// ReadSidecar reads and checks the sidecar at path.
func ReadSidecar(path string) (*Sidecar, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read quant sidecar: %w", err)
	}
	return ParseSidecar(data, path)
}

func (l SidecarLayer) check() error {
	scaleOK := func(s float32) bool { return s > 0 && !math.IsInf(float64(s), 0) }
	switch {
	case l.Index < 0 || l.Filters < 0:
		return fmt.Errorf("negative layer index or filters")
	case l.WeightBits < 0 || l.WeightBits > 8:
		return fmt.Errorf("weight_bits %d (0 float, 1 bipolar, 2..8 signed)", l.WeightBits)
	case l.ActBits < 0 || l.ActBits > 16:
		return fmt.Errorf("act_bits %d (0..16)", l.ActBits)
	case l.ActBits > 0 && !scaleOK(l.ActScale):
		return fmt.Errorf("act_scale %g must be positive", l.ActScale)
	case l.Thresholds && (l.ActBits == 0 || l.InputBits <= 0 || l.InputBits > 16 || !scaleOK(l.InputScale)):
		return fmt.Errorf("a threshold layer needs act_bits, input_bits 1..16 and a positive input_scale")
	}
	return nil
}

// jsonOffset adds the byte offset to a JSON syntax or type error.
func jsonOffset(data []byte, err error) error {
	var off int64 = -1
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off = e.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	return fmt.Errorf("line %d (byte %d): %w", line, off, err)
}
