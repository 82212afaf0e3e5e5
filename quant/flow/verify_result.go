package flow

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

// VerifyResult is quantization_results.json. AP and mAP are fractions (0..1); drops
// are in percentage points of mAP (absolute) and percent of the float mAP (relative).
type VerifyResult struct {
	Format      int            `json:"format"`
	Created     string         `json:"created"`
	Verdict     string         `json:"verdict"` // "pass" or "fail"
	Passed      bool           `json:"passed"`
	Reason      string         `json:"reason,omitempty"` // why the gate failed
	MaxDrop     float64        `json:"max_drop_points"`
	MinFloat    float64        `json:"min_float_map,omitempty"` // percent
	Models      VerifyModels   `json:"models"`
	Dataset     VerifyDataset  `json:"dataset"`
	Metric      mapeval.Metric `json:"metric"`
	MinOverlap  float64        `json:"min_overlap"`
	Thresh      float32        `json:"thresh"`
	NMS         float32        `json:"nms"`
	MAP         VerifyPair     `json:"map"`
	Drop        VerifyDrop     `json:"drop"`
	Classes     []VerifyClass  `json:"classes"`
	Calibration map[string]any `json:"calibration"`
	Layers      []VerifyLayer  `json:"quantized_layers"`
	Timings     VerifyTimings  `json:"timings"`
	Path        string         `json:"-"` // where the results were written
	curves      map[string][2]mapeval.ClassAP
}

// VerifyLayer is how one convolution of the quantized model is quantized.
type VerifyLayer struct {
	Name       string  `json:"name"`
	Groups     int     `json:"groups,omitempty"` // > 1: grouped / depthwise
	WeightBits int     `json:"weight_bits"`      // 0 = float
	ActBits    int     `json:"act_bits"`         // 0 = float
	ActScale   float32 `json:"act_scale,omitempty"`
	Thresholds bool    `json:"thresholds"` // integer thresholds (runs in integers)
}

// VerifyModels are the two models compared.
type VerifyModels struct {
	Float     VerifyModelInfo `json:"float"`
	Quantized VerifyModelInfo `json:"quantized"`
}

// VerifyModelInfo is one of them.
type VerifyModelInfo struct {
	Path    string `json:"path"`
	Format  string `json:"format"`
	Engine  string `json:"engine"`
	Name    string `json:"name"`
	Classes int    `json:"classes"`
}

// VerifyDataset is the validation set.
type VerifyDataset struct {
	Path       string   `json:"path"`
	Format     string   `json:"format"`
	Images     int      `json:"images"`
	Objects    int      `json:"objects"` // non-difficult objects of the evaluated classes
	Classes    []string `json:"classes_evaluated"`
	NotInModel []string `json:"classes_not_in_model,omitempty"`
}

// VerifyPair is a value for the float and the quantized model.
type VerifyPair struct {
	Float     float64 `json:"float"`
	Quantized float64 `json:"quantized"`
}

// VerifyDrop is how much mAP quantization lost.
type VerifyDrop struct {
	Points   float64 `json:"absolute_points"`  // 100 * (float mAP - quantized mAP)
	Relative float64 `json:"relative_percent"` // 100 * drop / float mAP
}

// VerifyClass is one class's AP on both models.
type VerifyClass struct {
	Class           string  `json:"class"`
	Objects         int     `json:"objects"`
	FloatAP         float64 `json:"float_ap"`
	QuantizedAP     float64 `json:"quantized_ap"`
	DropPoints      float64 `json:"drop_points"`
	FloatDetections int     `json:"float_detections"`
	QuantDetections int     `json:"quantized_detections"`
}

// VerifyTimings are the models' speeds.
type VerifyTimings struct {
	TotalSeconds          float64 `json:"total_s"`
	FloatSeconds          float64 `json:"float_s"`
	QuantizedSeconds      float64 `json:"quantized_s"`
	FloatImagesPerSec     float64 `json:"float_images_per_s"`
	QuantizedImagesPerSec float64 `json:"quantized_images_per_s"`
	ImagesPerSec          float64 `json:"images_per_s"` // validation images through both models, whole command
}

func quantizedLayers(m *quant.Model) []VerifyLayer {
	var out []VerifyLayer
	for _, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		v := VerifyLayer{Name: l.Name}
		if l.Conv.Groups > 1 {
			v.Groups = l.Conv.Groups
		}
		if q := l.Quant; q != nil {
			v.WeightBits, v.ActBits, v.ActScale, v.Thresholds = q.WeightBits, q.ActBits, q.ActScale, len(q.Thresholds) > 0
		}
		out = append(out, v)
	}
	return out
}

func newVerifyResult(o VerifyOptions, ds *dataset.Dataset, fl, q *verifyModel, notInModel []string, total time.Duration) *VerifyResult {
	r := &VerifyResult{
		Format: 1, Created: time.Now().UTC().Format(time.RFC3339), MaxDrop: o.MaxDrop, MinFloat: o.MinFloat,
		Models: VerifyModels{Float: modelInfo(fl), Quantized: modelInfo(q)},
		Metric: fl.res.Metric, MinOverlap: fl.res.MinOverlap, Thresh: o.Thresh, NMS: o.NMS,
		MAP:    VerifyPair{Float: fl.res.MAP, Quantized: q.res.MAP},
		curves: map[string][2]mapeval.ClassAP{},
	}
	r.Layers = quantizedLayers(q.m)
	r.Dataset = VerifyDataset{Path: ds.Path, Format: string(ds.Format), Images: len(ds.Images), NotInModel: notInModel}
	for _, c := range fl.res.Classes {
		qc, _ := q.res.Class(c.Class)
		r.Classes = append(r.Classes, VerifyClass{Class: c.Class, Objects: c.Positives, FloatAP: c.AP, QuantizedAP: qc.AP,
			DropPoints: 100 * (c.AP - qc.AP), FloatDetections: c.Detections, QuantDetections: qc.Detections})
		r.Dataset.Classes = append(r.Dataset.Classes, c.Class)
		r.Dataset.Objects += c.Positives
		r.curves[c.Class] = [2]mapeval.ClassAP{c, qc}
	}
	r.Drop.Points = 100 * (r.MAP.Float - r.MAP.Quantized)
	if r.MAP.Float > 0 {
		r.Drop.Relative = 100 * (r.MAP.Float - r.MAP.Quantized) / r.MAP.Float
	}
	r.gate(o.MaxDrop, o.MinFloat)
	n := float64(len(ds.Images))
	r.Timings = VerifyTimings{TotalSeconds: total.Seconds(), FloatSeconds: fl.busy.Seconds(), QuantizedSeconds: q.busy.Seconds(),
		FloatImagesPerSec: n / fl.busy.Seconds(), QuantizedImagesPerSec: n / q.busy.Seconds(), ImagesPerSec: n / total.Seconds()}
	return r
}

// gate decides the verdict: the drop below maxDrop points, from a float mAP of at
// least minFloat percent.
func (r *VerifyResult) gate(maxDrop, minFloat float64) {
	r.Passed = r.Drop.Points < maxDrop
	switch {
	case 100*r.MAP.Float < minFloat:
		// A float model that finds nothing makes any quantized model "pass".
		r.Passed = false
		r.Reason = fmt.Sprintf("the float model's mAP %.2f %% is below --min-float-map %g: it finds almost nothing on this dataset, so there is no accuracy to keep (check --names, the labels, the float model; an export-darknet --float-activation=relu model of a W1A3 network computes something else)", 100*r.MAP.Float, minFloat)
	case !r.Passed:
		r.Reason = fmt.Sprintf("mAP dropped %.2f points (limit %g)", r.Drop.Points, maxDrop)
	}
	r.Verdict = map[bool]string{true: "pass", false: "fail"}[r.Passed]
}

// GateError is the failed gate as an error ("accuracy gate failed: ..."), nil when
// the gate passed.
func (r *VerifyResult) GateError() error {
	if r.Passed {
		return nil
	}
	return fmt.Errorf("accuracy gate failed: %s", r.Reason)
}

func modelInfo(v *verifyModel) VerifyModelInfo {
	return VerifyModelInfo{Path: v.path, Format: v.kind, Engine: v.engine, Name: v.m.Name, Classes: v.m.Classes()}
}

// write writes the results as JSON to path and the HTML report to report (default:
// path with .html).
func (r *VerifyResult) write(path, report string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("verify: encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if report == "" {
		report = strings.TrimSuffix(path, filepath.Ext(path)) + ".html"
	}
	rf, err := os.Create(report)
	if err != nil {
		return fmt.Errorf("verify: report: %w", err)
	}
	if err := r.WriteHTML(rf); err != nil {
		rf.Close()
		return fmt.Errorf("verify: report %s: %w", report, err)
	}
	return rf.Close()
}
