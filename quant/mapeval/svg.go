package mapeval

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// Series is one precision-recall curve to plot.
type Series struct {
	Label     string
	Color     string // CSS colour
	Recall    []float64
	Precision []float64
}

// CurveOf returns the curve of a class result, thinned by [Thin].
func CurveOf(c ClassAP, label, color string) Series {
	r, p := Thin(c.Recall, c.Precision)
	return Series{Label: label, Color: color, Recall: r, Precision: p}
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
	for i, s := range series {
		if len(s.Recall) > 0 {
			b.WriteString(`<polyline fill="none" stroke-width="1.6" stroke="` + html.EscapeString(s.Color) + `" points="`)
			for j := range s.Recall {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(s.Recall[j]), y(s.Precision[j]))
			}
			b.WriteString(`"/>` + "\n")
		}
		ly := float64(padT + 14 + 14*i)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, x(0.62), ly-4, x(0.70), ly-4, html.EscapeString(s.Color))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x(0.72), ly, html.EscapeString(s.Label))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
