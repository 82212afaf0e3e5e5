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

	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

// qatReport is qat_report.json: the float model, its post-training quantization and
// the quantization-aware-trained model on one validation set.
type qatReport struct {
	Format   int            `json:"format"`
	Created  string         `json:"created"`
	Model    string         `json:"model"`
	Dataset  verifyDataset  `json:"dataset"`
	Metric   mapeval.Metric `json:"metric"`
	MaxDrop  float64        `json:"max_drop_points"`
	MAP      qatTriple      `json:"map"`
	Drop     qatPair        `json:"drop_points"` // float mAP - quantized mAP, in points
	Passed   qatPassed      `json:"passed"`
	Classes  []qatClass     `json:"classes"`
	Training qatTraining    `json:"training"`
	Results  qatFiles       `json:"results"` // the two verify results files
	curves   map[string][3]mapeval.ClassAP
}

type qatTriple struct {
	Float float64 `json:"float"`
	PTQ   float64 `json:"ptq"`
	QAT   float64 `json:"qat"`
}

type qatPair struct {
	PTQ float64 `json:"ptq"`
	QAT float64 `json:"qat"`
}

type qatPassed struct {
	PTQ bool `json:"ptq"`
	QAT bool `json:"qat"`
}

type qatFiles struct {
	PTQ string `json:"ptq"`
	QAT string `json:"qat"`
}

type qatClass struct {
	Class   string  `json:"class"`
	Objects int     `json:"objects"`
	FloatAP float64 `json:"float_ap"`
	PTQAP   float64 `json:"ptq_ap"`
	QATAP   float64 `json:"qat_ap"`
}

// qatTraining is what the training did.
type qatTraining struct {
	Iterations   int     `json:"iterations"`
	Images       uint64  `json:"images"`
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_s"`
	AvgLoss      float64 `json:"avg_loss"`
	ClipInit     string  `json:"clip_init"`
	LearnClip    bool    `json:"learn_clip"`
	Weights      string  `json:"weights"`
	Sidecar      string  `json:"sidecar"`
	Cfg          string  `json:"cfg"`
}

func newQATReport(name string, ptq, qat *verifyResult, tr *qatTraining) *qatReport {
	r := &qatReport{Format: 1, Created: time.Now().UTC().Format(time.RFC3339), Model: name, Dataset: ptq.Dataset,
		Metric: ptq.Metric, MaxDrop: ptq.MaxDrop, Training: *tr,
		MAP:     qatTriple{Float: ptq.MAP.Float, PTQ: ptq.MAP.Quantized, QAT: qat.MAP.Quantized},
		Drop:    qatPair{PTQ: ptq.Drop.Points, QAT: 100 * (ptq.MAP.Float - qat.MAP.Quantized)},
		Results: qatFiles{PTQ: ptq.path, QAT: qat.path},
		curves:  map[string][3]mapeval.ClassAP{},
	}
	r.Passed = qatPassed{PTQ: ptq.Passed, QAT: r.Drop.QAT < r.MaxDrop}
	for _, c := range ptq.Classes {
		qc := qatClass{Class: c.Class, Objects: c.Objects, FloatAP: c.FloatAP, PTQAP: c.QuantizedAP}
		for _, d := range qat.Classes {
			if d.Class == c.Class {
				qc.QATAP = d.QuantizedAP
			}
		}
		r.Classes = append(r.Classes, qc)
		p, q := ptq.curves[c.Class], qat.curves[c.Class]
		r.curves[c.Class] = [3]mapeval.ClassAP{p[0], p[1], q[1]}
	}
	return r
}

// writeQATReport writes qat_report.json and .html into dir, prints the comparison, and
// fails with the gate's exit status when the QAT model still loses too much.
func writeQATReport(out io.Writer, dir string, r *qatReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("quant qat: report: %w", err)
	}
	jsonPath, htmlPath := filepath.Join(dir, "qat_report.json"), filepath.Join(dir, "qat_report.html")
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("quant qat: %w", err)
	}
	var page strings.Builder
	if err := writeQATHTML(&page, r); err != nil {
		return fmt.Errorf("quant qat: report: %w", err)
	}
	if err := os.WriteFile(htmlPath, []byte(page.String()), 0o644); err != nil {
		return fmt.Errorf("quant qat: %w", err)
	}
	printQATReport(out, r)
	fmt.Fprintf(out, "report: %s, %s\n", jsonPath, htmlPath)
	if !r.Passed.QAT {
		return &exitError{code: exitGateFailed, err: fmt.Errorf("accuracy gate failed after QAT: mAP dropped %.2f points (limit %g)", r.Drop.QAT, r.MaxDrop)}
	}
	return nil
}

func printQATReport(out io.Writer, r *qatReport) {
	w := len("class")
	for _, c := range r.Classes {
		w = max(w, len(c.Class))
	}
	fmt.Fprintf(out, "\n%-*s %8s %9s %9s %9s\n", w, "class", "objects", "float AP", "PTQ AP", "QAT AP")
	for _, c := range r.Classes {
		fmt.Fprintf(out, "%-*s %8d %9.2f %9.2f %9.2f\n", w, c.Class, c.Objects, 100*c.FloatAP, 100*c.PTQAP, 100*c.QATAP)
	}
	fmt.Fprintf(out, "%-*s %8d %9.2f %9.2f %9.2f\n", w, "mAP", r.Dataset.Objects, 100*r.MAP.Float, 100*r.MAP.PTQ, 100*r.MAP.QAT)
	verdict := func(ok bool) string { return map[bool]string{true: "PASS", false: "FAIL"}[ok] }
	fmt.Fprintf(out, "%s mAP on %d images: float %.2f %%; PTQ %.2f %% (drop %.2f points, %s); QAT %.2f %% (drop %.2f points, %s); limit %g\n",
		r.Metric, r.Dataset.Images, 100*r.MAP.Float, 100*r.MAP.PTQ, r.Drop.PTQ, verdict(r.Passed.PTQ),
		100*r.MAP.QAT, r.Drop.QAT, verdict(r.Passed.QAT), r.MaxDrop)
	t := r.Training
	fmt.Fprintf(out, "training: %d iterations, %d images in %.0f s (%.1f images/s), avg loss %.3f\n",
		t.Iterations, t.Images, t.Seconds, t.ImagesPerSec, t.AvgLoss)
}

func writeQATHTML(w io.Writer, r *qatReport) error {
	data := struct {
		R      *qatReport
		Curves []reportCurve
	}{R: r}
	for _, c := range r.Classes {
		cv := r.curves[c.Class]
		var b strings.Builder
		title := fmt.Sprintf("%s: float %.1f, PTQ %.1f, QAT %.1f", c.Class, 100*c.FloatAP, 100*c.PTQAP, 100*c.QATAP)
		err := mapeval.WriteSVG(&b, title, []mapeval.Series{
			mapeval.CurveOf(cv[0], "float", "#1f77b4"),
			mapeval.CurveOf(cv[1], "PTQ", "#d62728"),
			mapeval.CurveOf(cv[2], "QAT", "#2ca02c"),
		})
		if err != nil {
			return err
		}
		data.Curves = append(data.Curves, reportCurve{Class: c.Class, SVG: template.HTML(b.String())})
	}
	return qatReportTmpl.Execute(w, data)
}

var qatReportTmpl = template.Must(template.New("qat").Funcs(template.FuncMap{
	"pct":     func(v float64) string { return fmt.Sprintf("%.2f", 100*v) },
	"f2":      func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"verdict": func(ok bool) string { return map[bool]string{true: "pass", false: "fail"}[ok] },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PTQ vs QAT: {{.R.Model}}</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}
.curves{display:flex;flex-wrap:wrap;gap:1em}
</style></head><body>
<h1>Post-training vs quantization-aware training: {{.R.Model}}</h1>
<p>{{.R.Metric}} mAP on {{.R.Dataset.Images}} images of <code>{{.R.Dataset.Path}}</code>; accuracy gate: at most {{.R.MaxDrop}} points below the float model.</p>
<table><tr><th>model</th><th>mAP %</th><th>drop (points)</th><th>gate</th><th>verification</th></tr>
<tr><td>float</td><td>{{pct .R.MAP.Float}}</td><td></td><td></td><td></td></tr>
<tr><td>PTQ (post-training)</td><td>{{pct .R.MAP.PTQ}}</td><td>{{f2 .R.Drop.PTQ}}</td><td class="{{verdict .R.Passed.PTQ}}">{{verdict .R.Passed.PTQ}}</td><td><code>{{.R.Results.PTQ}}</code></td></tr>
<tr><td>QAT (quantization-aware)</td><td>{{pct .R.MAP.QAT}}</td><td>{{f2 .R.Drop.QAT}}</td><td class="{{verdict .R.Passed.QAT}}">{{verdict .R.Passed.QAT}}</td><td><code>{{.R.Results.QAT}}</code></td></tr></table>
<h2>Average precision per class</h2>
<table><tr><th>class</th><th>objects</th><th>float AP %</th><th>PTQ AP %</th><th>QAT AP %</th></tr>
{{range .R.Classes}}<tr><td>{{.Class}}</td><td>{{.Objects}}</td><td>{{pct .FloatAP}}</td><td>{{pct .PTQAP}}</td><td>{{pct .QATAP}}</td></tr>
{{end}}</table>
<h2>Precision-recall curves</h2><div class="curves">{{range .Curves}}{{.SVG}}{{end}}</div>
<h2>Training</h2>
<p>{{.R.Training.Iterations}} iterations, {{.R.Training.Images}} images in {{f2 .R.Training.Seconds}} s ({{f2 .R.Training.ImagesPerSec}} images/s);
average loss {{printf "%.3f" .R.Training.AvgLoss}}; activation scales calibrated on the first batch ({{.R.Training.ClipInit}}){{if .R.Training.LearnClip}}, then learned (PACT){{end}}.
Weights <code>{{.R.Training.Weights}}</code>, scales <code>{{.R.Training.Sidecar}}</code>, cfg <code>{{.R.Training.Cfg}}</code>.</p>
<p>Written {{.R.Created}} by pynqctl quant qat.</p>
</body></html>
`))
