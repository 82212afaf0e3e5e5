package flow

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

// Print writes the per-class table, the verdict and the speeds; after a failed gate,
// the guide's advice.
func (r *VerifyResult) Print(out io.Writer) {
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
	if !r.Passed {
		fmt.Fprintf(out, "\nThe gate failed: %s. Next steps:\n", r.Reason)
		for i, a := range r.Advice() {
			fmt.Fprintf(out, "  %d. %s\n", i+1, a)
		}
	}
}

// Advice is the guide's advice when the gate fails.
func (r *VerifyResult) Advice() []string {
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

// WriteHTML writes the report: the verdict, the per-class table, precision-recall
// curves, the models, the quantized layers and the calibration.
func (r *VerifyResult) WriteHTML(w io.Writer) error {
	data := struct {
		R      *VerifyResult
		Advice []string
		Curves []reportCurve
	}{R: r, Advice: r.Advice()}
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
