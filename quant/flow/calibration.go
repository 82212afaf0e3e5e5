package flow

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// readCalibration returns what is known about the quantized model's calibration:
// metadata entries whose key mentions calibration (and a "calibration" member of a
// JSON entry), else a summary of the statistics `quant calibrate` writes beside the
// model (M-w1a3-calibrated.json). nil when there is neither.
func readCalibration(path string) map[string]any {
	out := map[string]any{}
	if data, err := os.ReadFile(path); err == nil {
		if mp, err := onnx.Unmarshal(data); err == nil {
			for _, p := range mp.GetMetadataProps() {
				collectCalibration(out, p)
			}
		}
	}
	// quant calibrate's own entry: its members are the calibration itself.
	if own, ok := out[calib.MetadataKey].(map[string]any); ok && len(out) == 1 {
		own["source"] = "metadata " + calib.MetadataKey + " of " + path
		return own
	}
	if len(out) == 0 {
		out = calibrationSidecar(strings.TrimSuffix(path, filepath.Ext(path)) + ".json")
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// calibrationSidecar summarizes calibrate's statistics file: method, image count and
// each quantizer's scale and clipping.
func calibrationSidecar(path string) map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var st calib.Result // the file is calibrate's Result
	type layer struct {
		Layer   string  `json:"layer"`
		Bits    int     `json:"bits"`
		Scale   float32 `json:"scale"`
		Clip    float64 `json:"clip"`
		Clipped float64 `json:"clipped"`
	}
	if json.Unmarshal(b, &st) != nil || st.Method == "" {
		return nil
	}
	layers := make([]layer, len(st.Layers))
	for i, l := range st.Layers {
		layers[i] = layer{l.Layer, l.Bits, l.Scale, l.Clip, l.Clipped}
	}
	out := map[string]any{"source": path, "method": st.Method, "images": len(st.Images),
		"images_per_s": st.ImagesPerSec, "layers": layers}
	if st.Percentile != 0 {
		out["percentile"] = st.Percentile
	}
	if len(st.Warnings) > 0 {
		out["warnings"] = st.Warnings
	}
	return out
}

func collectCalibration(out map[string]any, p *onnxpb.StringStringEntryProto) {
	var v any
	if json.Unmarshal([]byte(p.GetValue()), &v) != nil {
		v = p.GetValue()
	}
	if strings.Contains(strings.ToLower(p.GetKey()), "calib") {
		out[p.GetKey()] = v
		return
	}
	if obj, ok := v.(map[string]any); ok {
		for k, c := range obj {
			if strings.Contains(strings.ToLower(k), "calib") {
				out[p.GetKey()+"."+k] = c
			}
		}
	}
}
