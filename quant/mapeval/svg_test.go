package mapeval

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestThin(t *testing.T) {
	rec := []float64{0, 0, 0, .5, .5, .5, .5, 1, 1}
	prec := []float64{0, 0, 0, .25, .2, .15, .1, .2, .18}
	r, p := Thin(rec, prec)
	want := []float64{0, 0, .5, .5, 1, 1} // first, before change, change, before change, change, last
	if len(r) != len(want) {
		t.Fatalf("Thin kept %v (precision %v), want recall %v", r, p, want)
	}
	for i := range want {
		if r[i] != want[i] {
			t.Fatalf("Thin kept %v, want %v", r, want)
		}
	}
}

func TestWriteSVGIsWellFormedXML(t *testing.T) {
	var b strings.Builder
	s := []Series{
		{Label: "float <AP 0.5>", Color: "#1f77b4", Recall: []float64{0, .5, 1}, Precision: []float64{1, .8, .5}},
		{Label: "w1a3 & co", Color: "#d62728"},
	}
	if err := WriteSVG(&b, `chair "AP"`, s); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(b.String()))
	polylines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 1 {
		t.Errorf("%d polylines, want 1 (the empty series draws none)", polylines)
	}
}

func TestEnvelopeAreaIsAP(t *testing.T) {
	rec := []float64{.25, .25, .5, .5, .75}
	prec := []float64{1, .5, 2.0 / 3, .5, .6}
	r, p := Envelope(rec, prec)
	area := 0.0
	for i := 1; i < len(r); i++ {
		area += (r[i] - r[i-1]) * p[i]
	}
	if ap := AP2012(rec, prec); math.Abs(area-ap) > 1e-12 {
		t.Errorf("area under the envelope %v, AP %v (points %v %v)", area, ap, r, p)
	}
}
