package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

// verifyResult is quantization_results.json. AP and mAP are fractions (0..1); drops
// are in percentage points of mAP (absolute) and percent of the float mAP (relative).
type verifyResult struct {
	Format      int            `json:"format"`
	Created     string         `json:"created"`
	Verdict     string         `json:"verdict"` // "pass" or "fail"
	Passed      bool           `json:"passed"`
	Reason      string         `json:"reason,omitempty"` // why the gate failed
	MaxDrop     float64        `json:"max_drop_points"`
	MinFloat    float64        `json:"min_float_map,omitempty"` // percent
	Models      verifyModels   `json:"models"`
	Dataset     verifyDataset  `json:"dataset"`
	Metric      mapeval.Metric `json:"metric"`
	MinOverlap  float64        `json:"min_overlap"`
	Thresh      float32        `json:"thresh"`
	NMS         float32        `json:"nms"`
	MAP         verifyPair     `json:"map"`
	Drop        verifyDrop     `json:"drop"`
	Classes     []verifyClass  `json:"classes"`
	Calibration map[string]any `json:"calibration"`
	Layers      []verifyLayer  `json:"quantized_layers"`
	Timings     verifyTimings  `json:"timings"`
	curves      map[string][2]mapeval.ClassAP
	path        string // where the results were written
}

// verifyLayer is how one convolution of the quantized model is quantized.
type verifyLayer struct {
	Name       string  `json:"name"`
	Groups     int     `json:"groups,omitempty"` // > 1: grouped / depthwise
	WeightBits int     `json:"weight_bits"`      // 0 = float
	ActBits    int     `json:"act_bits"`         // 0 = float
	ActScale   float32 `json:"act_scale,omitempty"`
	Thresholds bool    `json:"thresholds"` // integer thresholds (runs in integers)
}

func quantizedLayers(m *quant.Model) []verifyLayer {
	var out []verifyLayer
	for _, l := range m.Layers {
		if l.Kind != quant.KindConv {
			continue
		}
		v := verifyLayer{Name: l.Name}
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

type verifyModels struct {
	Float     verifyModelInfo `json:"float"`
	Quantized verifyModelInfo `json:"quantized"`
}

type verifyModelInfo struct {
	Path    string `json:"path"`
	Format  string `json:"format"`
	Engine  string `json:"engine"`
	Name    string `json:"name"`
	Classes int    `json:"classes"`
}

type verifyDataset struct {
	Path       string   `json:"path"`
	Format     string   `json:"format"`
	Images     int      `json:"images"`
	Objects    int      `json:"objects"` // non-difficult objects of the evaluated classes
	Classes    []string `json:"classes_evaluated"`
	NotInModel []string `json:"classes_not_in_model,omitempty"`
}

type verifyPair struct {
	Float     float64 `json:"float"`
	Quantized float64 `json:"quantized"`
}

type verifyDrop struct {
	Points   float64 `json:"absolute_points"`  // 100 * (float mAP - quantized mAP)
	Relative float64 `json:"relative_percent"` // 100 * drop / float mAP
}

type verifyClass struct {
	Class           string  `json:"class"`
	Objects         int     `json:"objects"`
	FloatAP         float64 `json:"float_ap"`
	QuantizedAP     float64 `json:"quantized_ap"`
	DropPoints      float64 `json:"drop_points"`
	FloatDetections int     `json:"float_detections"`
	QuantDetections int     `json:"quantized_detections"`
}

type verifyTimings struct {
	TotalSeconds          float64 `json:"total_s"`
	FloatSeconds          float64 `json:"float_s"`
	QuantizedSeconds      float64 `json:"quantized_s"`
	FloatImagesPerSec     float64 `json:"float_images_per_s"`
	QuantizedImagesPerSec float64 `json:"quantized_images_per_s"`
	ImagesPerSec          float64 `json:"images_per_s"` // validation images through both models, whole command
}

func newVerifyResult(f verifyFlags, ds *dataset.Dataset, fl, q *verifyModel, notInModel []string, total time.Duration) *verifyResult {
	r := &verifyResult{
		Format: 1, Created: time.Now().UTC().Format(time.RFC3339), MaxDrop: f.maxDrop, MinFloat: f.minFloat,
		Models: verifyModels{Float: modelInfo(fl), Quantized: modelInfo(q)},
		Metric: fl.res.Metric, MinOverlap: fl.res.MinOverlap, Thresh: f.thresh, NMS: f.nms,
		MAP:    verifyPair{Float: fl.res.MAP, Quantized: q.res.MAP},
		curves: map[string][2]mapeval.ClassAP{},
	}
	r.Layers = quantizedLayers(q.m)
	r.Dataset = verifyDataset{Path: ds.Path, Format: string(ds.Format), Images: len(ds.Images), NotInModel: notInModel}
	for _, c := range fl.res.Classes {
		qc, _ := q.res.Class(c.Class)
		r.Classes = append(r.Classes, verifyClass{Class: c.Class, Objects: c.Positives, FloatAP: c.AP, QuantizedAP: qc.AP,
			DropPoints: 100 * (c.AP - qc.AP), FloatDetections: c.Detections, QuantDetections: qc.Detections})
		r.Dataset.Classes = append(r.Dataset.Classes, c.Class)
		r.Dataset.Objects += c.Positives
		r.curves[c.Class] = [2]mapeval.ClassAP{c, qc}
	}
	r.Drop.Points = 100 * (r.MAP.Float - r.MAP.Quantized)
	if r.MAP.Float > 0 {
		r.Drop.Relative = 100 * (r.MAP.Float - r.MAP.Quantized) / r.MAP.Float
	}
	r.Passed = r.Drop.Points < f.maxDrop
	switch {
	case 100*r.MAP.Float < f.minFloat:
		// A float model that finds nothing makes any quantized model "pass".
		r.Passed = false
		r.Reason = fmt.Sprintf("the float model's mAP %.2f %% is below --min-float-map %g: it finds almost nothing on this dataset, so there is no accuracy to keep (check --names, the labels, the float model; an export-darknet --float-activation=relu model of a W1A3 network computes something else)", 100*r.MAP.Float, f.minFloat)
	case !r.Passed:
		r.Reason = fmt.Sprintf("mAP dropped %.2f points (limit %g)", r.Drop.Points, f.maxDrop)
	}
	r.Verdict = map[bool]string{true: "pass", false: "fail"}[r.Passed]
	n := float64(len(ds.Images))
	r.Timings = verifyTimings{TotalSeconds: total.Seconds(), FloatSeconds: fl.busy.Seconds(), QuantizedSeconds: q.busy.Seconds(),
		FloatImagesPerSec: n / fl.busy.Seconds(), QuantizedImagesPerSec: n / q.busy.Seconds(), ImagesPerSec: n / total.Seconds()}
	return r
}

func modelInfo(v *verifyModel) verifyModelInfo {
	return verifyModelInfo{Path: v.path, Format: v.kind, Engine: v.engine, Name: v.m.Name, Classes: modelClasses(v.m)}
}

func writeVerifyOutputs(f verifyFlags, r *verifyResult, fl, q *verifyModel) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("verify: encode results: %w", err)
	}
	if err := os.WriteFile(f.output, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	report := f.report
	if report == "" {
		report = strings.TrimSuffix(f.output, filepath.Ext(f.output)) + ".html"
	}
	rf, err := os.Create(report)
	if err != nil {
		return fmt.Errorf("verify: report: %w", err)
	}
	if err := writeVerifyReport(rf, r); err != nil {
		rf.Close()
		return fmt.Errorf("verify: report %s: %w", report, err)
	}
	return rf.Close()
}

func printVerify(out io.Writer, r *verifyResult) {
	w := len("class")
	for _, c := range r.Classes {
		w = max(w, len(c.Class))
	}
	fmt.Fprintf(out, "%-*s %8s %9s %9s %8s\n", w, "class", "objects", "float AP", "quant AP", "drop")
	for _, c := range r.Classes {
		fmt.Fprintf(out, "%-*s %8d %9.2f %9.2f %8.2f\n", w, c.Class, c.Objects, 100*c.FloatAP, 100*c.QuantizedAP, c.DropPoints)
	}
	fmt.Fprintf(out, "%-*s %8d %9.2f %9.2f %8.2f\n", w, "mAP", r.Dataset.Objects, 100*r.MAP.Float, 100*r.MAP.Quantized, r.Drop.Points)
	fmt.Fprintf(out, "%s mAP on %d images: float %.2f %%, quantized %.2f %%, drop %.2f points (%.1f %% relative), limit %g: %s\n",
		r.Metric, r.Dataset.Images, 100*r.MAP.Float, 100*r.MAP.Quantized, r.Drop.Points, r.Drop.Relative, r.MaxDrop, strings.ToUpper(r.Verdict))
	fmt.Fprintf(out, "speed: float %.2f images/s, quantized %.2f images/s; verification %.1f s (%.2f images/s)\n",
		r.Timings.FloatImagesPerSec, r.Timings.QuantizedImagesPerSec, r.Timings.TotalSeconds, r.Timings.ImagesPerSec)
}

// verifyAdvice is the guide's advice when the gate fails.
func verifyAdvice(r *verifyResult) []string {
	if 100*r.MAP.Float < r.MinFloat {
		return []string{
			"Check that --names lists the model's classes in its order and that the dataset's labels use the same names.",
			"Check the float model on a few images (pynqctl detect): a float export of a quantized network must use --float-activation=lhtan.",
			"Verify on a dataset where the float model finds objects; lower --min-float-map only if a tiny mAP is expected.",
		}
	}
	used := ""
	switch n := r.Calibration["images"].(type) {
	case int:
		used = fmt.Sprintf(" (this model was calibrated on %d)", n)
	case float64:
		used = fmt.Sprintf(" (this model was calibrated on %.0f)", n)
	}
	return []string{
		"Use more calibration data: up to 50 representative images" + used + " (pynqctl quant calibrate --dataset).",
		"Try other calibration parameters: --method=percentile with 99.9 or 99.999, --method=mse or minmax; keep the first and last layers at 8 bits or float.",
		"If post-training quantization cannot reach the limit, retrain with quantization-aware training: pynqctl quant qat --weights <float weights> --val <this dataset> --output DIR fine-tunes with binary weights and 3-bit activations in the loop and reports PTQ vs QAT.",
	}
}

func printVerifyAdvice(out io.Writer, r *verifyResult) {
	fmt.Fprintf(out, "\nThe gate failed: %s. Next steps:\n", r.Reason)
	for i, a := range verifyAdvice(r) {
		fmt.Fprintf(out, "  %d. %s\n", i+1, a)
	}
}

// reportCurve is one class's plot in the report.
type reportCurve struct {
	Class string
	SVG   template.HTML
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(v float64) string { return fmt.Sprintf("%.2f", 100*v) },
	"f2":  func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"bits": func(b int) string {
		if b == 0 {
			return "float"
		}
		return fmt.Sprintf("%d-bit", b)
	},
	"js": func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Quantization verification: {{.R.Verdict}}</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}
.curves{display:flex;flex-wrap:wrap;gap:1em}pre{background:#f6f8fa;padding:1em;overflow:auto}
</style></head><body>
<h1>Quantization verification: <span class="{{.R.Verdict}}">{{.R.Verdict}}</span></h1>
<p>{{.R.Metric}} mAP (IoU &ge; {{.R.MinOverlap}}, threshold {{.R.Thresh}}, NMS {{.R.NMS}}) on {{.R.Dataset.Images}} images of <code>{{.R.Dataset.Path}}</code>:
float <b>{{pct .R.MAP.Float}} %</b>, quantized <b>{{pct .R.MAP.Quantized}} %</b>, drop <b>{{f2 .R.Drop.Points}} points</b>
({{f2 .R.Drop.Relative}} % relative); limit {{.R.MaxDrop}} points.</p>
{{if not .R.Passed}}<p>{{.R.Reason}}.</p><h2>What to try</h2><ol>{{range .Advice}}<li>{{.}}</li>{{end}}</ol>{{end}}
<h2>Average precision per class</h2>
<table><tr><th>class</th><th>objects</th><th>float AP %</th><th>quantized AP %</th><th>drop (points)</th><th>float dets</th><th>quantized dets</th></tr>
{{range .R.Classes}}<tr><td>{{.Class}}</td><td>{{.Objects}}</td><td>{{pct .FloatAP}}</td><td>{{pct .QuantizedAP}}</td><td>{{f2 .DropPoints}}</td><td>{{.FloatDetections}}</td><td>{{.QuantDetections}}</td></tr>
{{end}}<tr><th>mAP</th><th>{{.R.Dataset.Objects}}</th><th>{{pct .R.MAP.Float}}</th><th>{{pct .R.MAP.Quantized}}</th><th>{{f2 .R.Drop.Points}}</th><th></th><th></th></tr></table>
{{if .R.Dataset.NotInModel}}<p>Dataset classes the model does not know (not evaluated): {{range .R.Dataset.NotInModel}}{{.}} {{end}}</p>{{end}}
<h2>Precision-recall curves</h2><div class="curves">{{range .Curves}}{{.SVG}}{{end}}</div>
<h2>Models</h2><table><tr><th></th><th>file</th><th>format</th><th>engine</th><th>images/s</th></tr>
<tr><td>float</td><td>{{.R.Models.Float.Path}}</td><td>{{.R.Models.Float.Format}}</td><td>{{.R.Models.Float.Engine}}</td><td>{{f2 .R.Timings.FloatImagesPerSec}}</td></tr>
<tr><td>quantized</td><td>{{.R.Models.Quantized.Path}}</td><td>{{.R.Models.Quantized.Format}}</td><td>{{.R.Models.Quantized.Engine}}</td><td>{{f2 .R.Timings.QuantizedImagesPerSec}}</td></tr></table>
<h2>Quantized layers</h2><table><tr><th>layer</th><th>weights</th><th>activations</th><th>scale</th><th>integer thresholds</th></tr>
{{range .R.Layers}}<tr><td>{{.Name}}{{if .Groups}} (groups {{.Groups}}){{end}}</td><td>{{bits .WeightBits}}</td><td>{{bits .ActBits}}</td><td>{{if .ActScale}}{{.ActScale}}{{end}}</td><td>{{if .Thresholds}}yes{{else}}no{{end}}</td></tr>
{{end}}</table>
<h2>Calibration</h2>{{if .R.Calibration}}<pre>{{js .R.Calibration}}</pre>{{else}}<p>The quantized model's metadata records no calibration.</p>{{end}}
<p>Verification took {{f2 .R.Timings.TotalSeconds}} s; written {{.R.Created}} by pynqctl quant verify.</p>
</body></html>
`))

func writeVerifyReport(w io.Writer, r *verifyResult) error {
	data := struct {
		R      *verifyResult
		Advice []string
		Curves []reportCurve
	}{R: r, Advice: verifyAdvice(r)}
	for _, c := range r.Classes {
		pair := r.curves[c.Class]
		var b strings.Builder
		title := fmt.Sprintf("%s: float %.1f, quantized %.1f", c.Class, 100*c.FloatAP, 100*c.QuantizedAP)
		err := mapeval.WriteSVG(&b, title, []mapeval.Series{
			mapeval.CurveOf(pair[0], "float", "#1f77b4"),
			mapeval.CurveOf(pair[1], "quantized", "#d62728"),
		})
		if err != nil {
			return err
		}
		data.Curves = append(data.Curves, reportCurve{Class: c.Class, SVG: template.HTML(b.String())})
	}
	return reportTmpl.Execute(w, data)
}
