package mapeval

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Series is one precision-recall curve to plot: the raw curve as a thin line and,
// when set, the interpolated envelope (what VOC2012 AP integrates) as a bold step line.
type Series struct {
	Label           string
	Color           string // CSS colour
	Recall          []float64
	Precision       []float64
	EnvRec, EnvPrec []float64
}

// CurveOf returns the curve of a class result, thinned by [Thin], with its envelope.
func CurveOf(c ClassAP, label, color string) Series {
	r, p := Thin(c.Recall, c.Precision)
	er, ep := Envelope(c.Recall, c.Precision)
	return Series{Label: label, Color: color, Recall: r, Precision: p, EnvRec: er, EnvPrec: ep}
}

// Envelope returns the step line of the interpolated precision (VOCap's running
// maximum from the right) from recall 0 to the highest recall reached: the area
// under it is the VOC2012 AP.
func Envelope(rec, prec []float64) ([]float64, []float64) {
	n := len(rec)
	if n == 0 {
		return nil, nil
	}
	env := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		env[i] = prec[i]
		if i+1 < n {
			env[i] = math.Max(env[i], env[i+1])
		}
	}
	var r, p []float64
	prev := 0.0
	for i := range rec {
		if rec[i] != prev || i == 0 {
			r = append(r, prev, rec[i])
			p = append(p, env[i], env[i])
			prev = rec[i]
		}
	}
	return r, p
}

// Thin keeps the points of a PR curve where recall changes (the point before and
// the point at each change) and the last point: the drawn shape is the same, and a
// curve over thousands of low-score detections stays a few hundred points.
func Thin(rec, prec []float64) ([]float64, []float64) {
	var r, p []float64
	for i := range rec {
		last := i == len(rec)-1
		change := i > 0 && rec[i] != rec[i-1]
		before := i+1 < len(rec) && rec[i+1] != rec[i]
		if i == 0 || last || change || before {
			r = append(r, rec[i])
			p = append(p, prec[i])
		}
	}
	return r, p
}

// SVG geometry of one plot.
const (
	svgW, svgH       = 360, 280
	padL, padR, padT = 46, 12, 28
	padB             = 40
)

// WriteSVG draws precision over recall for the series as an inline SVG element
// (no external resources), with axes, a grid at 0.2 steps and a legend.
func WriteSVG(w io.Writer, title string, series []Series) error {
	pw, ph := float64(svgW-padL-padR), float64(svgH-padT-padB)
	x := func(r float64) float64 { return padL + r*pw }
	y := func(p float64) float64 { return padT + (1-p)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	for i := 0; i <= 5; i++ {
		v := float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x(v), y(0), x(v), y(1))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x(0), y(v), x(1), y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>`, x(v), y(0)+14, v)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.1f</text>`+"\n", x(0)-4, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`+"\n", padL, padT, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">recall</text>`, x(0.5), svgH-6)
	fmt.Fprintf(&b, `<text x="12" y="%.1f" text-anchor="middle" transform="rotate(-90 12 %.1f)">precision</text>`+"\n", y(0.5), y(0.5))
	line := func(rec, prec []float64, color, style string) {
		if len(rec) == 0 {
			return
		}
		b.WriteString(`<polyline fill="none" stroke="` + html.EscapeString(color) + `" ` + style + ` points="`)
		for j := range rec {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(rec[j]), y(prec[j]))
		}
		b.WriteString(`"/>` + "\n")
	}
	for i, s := range series {
		line(s.Recall, s.Precision, s.Color, `stroke-width="1" stroke-opacity="0.45"`)
		line(s.EnvRec, s.EnvPrec, s.Color, `stroke-width="2"`)
		ly := float64(padT + 14 + 14*i)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, x(0.62), ly-4, x(0.70), ly-4, html.EscapeString(s.Color))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x(0.72), ly, html.EscapeString(s.Label))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
