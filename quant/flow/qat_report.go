package flow

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

// QATReport is qat_report.json: the float model, its post-training quantization and
// the quantization-aware-trained model on one validation set.
type QATReport struct {
	Format   int            `json:"format"`
	Created  string         `json:"created"`
	Model    string         `json:"model"`
	Dataset  VerifyDataset  `json:"dataset"`
	Metric   mapeval.Metric `json:"metric"`
	MaxDrop  float64        `json:"max_drop_points"`
	MAP      QATTriple      `json:"map"`
	Drop     QATPair        `json:"drop_points"` // float mAP - quantized mAP, in points
	Passed   QATPassed      `json:"passed"`
	Classes  []QATClass     `json:"classes"`
	Training QATTraining    `json:"training"`
	Results  QATFiles       `json:"results"` // the two verify results files
	JSONPath string         `json:"-"`       // where write wrote the report
	HTMLPath string         `json:"-"`
	curves   map[string][3]mapeval.ClassAP
}

// QATTriple is a value for the float, the PTQ and the QAT model.
type QATTriple struct {
	Float float64 `json:"float"`
	PTQ   float64 `json:"ptq"`
	QAT   float64 `json:"qat"`
}

// QATPair is a value for the PTQ and the QAT model.
type QATPair struct {
	PTQ float64 `json:"ptq"`
	QAT float64 `json:"qat"`
}

// QATPassed are the accuracy gate's verdicts.
type QATPassed struct {
	PTQ bool `json:"ptq"`
	QAT bool `json:"qat"`
}

// QATFiles are the two verify results files.
type QATFiles struct {
	PTQ string `json:"ptq"`
	QAT string `json:"qat"`
}

// QATClass is one class's AP on the three models.
type QATClass struct {
	Class   string  `json:"class"`
	Objects int     `json:"objects"`
	FloatAP float64 `json:"float_ap"`
	PTQAP   float64 `json:"ptq_ap"`
	QATAP   float64 `json:"qat_ap"`
}

// QATTraining is what the training did.
type QATTraining struct {
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

func newQATReport(name string, ptq, qat *VerifyResult, tr *QATTraining) *QATReport {
	r := &QATReport{Format: 1, Created: time.Now().UTC().Format(time.RFC3339), Model: name, Dataset: ptq.Dataset,
		Metric: ptq.Metric, MaxDrop: ptq.MaxDrop, Training: *tr,
		MAP:     QATTriple{Float: ptq.MAP.Float, PTQ: ptq.MAP.Quantized, QAT: qat.MAP.Quantized},
		Drop:    QATPair{PTQ: ptq.Drop.Points, QAT: 100 * (ptq.MAP.Float - qat.MAP.Quantized)},
		Results: QATFiles{PTQ: ptq.Path, QAT: qat.Path},
		curves:  map[string][3]mapeval.ClassAP{},
	}
	r.Passed = QATPassed{PTQ: ptq.Passed, QAT: r.Drop.QAT < r.MaxDrop}
	for _, c := range ptq.Classes {
		qc := QATClass{Class: c.Class, Objects: c.Objects, FloatAP: c.FloatAP, PTQAP: c.QuantizedAP}
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

// write writes qat_report.json and .html into dir.
func (r *QATReport) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("quant qat: report: %w", err)
	}
	r.JSONPath, r.HTMLPath = filepath.Join(dir, "qat_report.json"), filepath.Join(dir, "qat_report.html")
	if err := os.WriteFile(r.JSONPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("quant qat: %w", err)
	}
	var page strings.Builder
	if err := r.WriteHTML(&page); err != nil {
		return fmt.Errorf("quant qat: report: %w", err)
	}
	if err := os.WriteFile(r.HTMLPath, []byte(page.String()), 0o644); err != nil {
		return fmt.Errorf("quant qat: %w", err)
	}
	return nil
}

// GateError is the accuracy gate failed by the QAT model, nil when it passed.
func (r *QATReport) GateError() error {
	if r.Passed.QAT {
		return nil
	}
	return fmt.Errorf("accuracy gate failed after QAT: mAP dropped %.2f points (limit %g)", r.Drop.QAT, r.MaxDrop)
}

// Print writes the comparison per class, the verdicts, the training and the files.
func (r *QATReport) Print(out io.Writer) {
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
	fmt.Fprintf(out, "report: %s, %s\n", r.JSONPath, r.HTMLPath)
}

// WriteHTML writes the comparison as a page with precision-recall curves.
func (r *QATReport) WriteHTML(w io.Writer) error {
	data := struct {
		R      *QATReport
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
