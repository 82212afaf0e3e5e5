package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseLabels(f *testing.F) {
	if m, _ := filepath.Glob("../../../shared/fixtures/chairs/val/*.txt"); len(m) > 0 {
		for _, p := range m[:3] {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("0 0.5 0.5 0.1 0.1\n"))
	f.Add([]byte("1 .5 .5 .1\n"))
	f.Add([]byte("-1 1e400 nan inf -0\r\n\n"))
	f.Add([]byte("99999999999999999999 0 0 0 0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := ParseLabels(bytes.NewReader(data), "fuzz.txt", 30)
		if err != nil {
			return
		}
		for _, l := range labels {
			if l.Class < 0 || l.Class >= 30 || l.W < 0 || l.H < 0 {
				t.Fatalf("accepted bad label %+v", l)
			}
		}
	})
}

func FuzzParseVOC(f *testing.F) {
	f.Add([]byte(vocXML))
	f.Add([]byte("<annotation><object><name>a</name></object></annotation>"))
	f.Add([]byte("<annotation><size><width>-1</width></size></annotation>"))
	f.Add([]byte("<annotation><object><name>x</name><difficult>2</difficult><bndbox><xmin>1e999</xmin></bndbox></object>"))
	f.Add([]byte("<a><!DOCTYPE x [<!ENTITY e 'e'>]></a>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := ParseVOC(bytes.NewReader(data), "fuzz.xml")
		if err != nil {
			return
		}
		for _, o := range im.Objects {
			if o.Class == "" {
				t.Fatal("accepted an object without a name")
			}
		}
	})
}
