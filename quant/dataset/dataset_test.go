package dataset

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func TestChairsFixture(t *testing.T) {
	dir := testutil.Fixture(t, "chairs", "val")
	d, err := Open(dir, Options{NamesFile: filepath.Join(filepath.Dir(dir), "classes.names")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatDarknet || len(d.Names) != 30 || len(d.Images) != 21 {
		t.Fatalf("chairs/val: format %s, %d names, %d images; want darknet, 30, 21", d.Format, len(d.Names), len(d.Images))
	}
	im := d.Images[0]
	if im.ID != "2007_000033" || im.Width != 640 || im.Height != 480 {
		t.Errorf("first image %s %dx%d", im.ID, im.Width, im.Height)
	}
	// First label line: 19 0.064844 0.173958 0.117188 0.293750 (class 19 = pottedplant)
	o := im.Objects[0]
	wantX1 := (0.064844-0.117188/2)*640 + 1
	if o.Class != d.Names[19] || math.Abs(o.Box[0]-wantX1) > 1e-9 {
		t.Errorf("first object %+v, want class %s x1 %v", o, d.Names[19], wantX1)
	}
	if n := d.ObjectCount()["chair"]; n == 0 {
		t.Error("no chairs in chairs/val")
	}
	if len(d.Warnings) != 0 {
		t.Errorf("warnings: %v", d.Warnings)
	}
}

func TestNamesFromParentDir(t *testing.T) {
	dir := testutil.Fixture(t, "chairs", "val")
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Names) != 30 || d.Names[7] != "chair" {
		t.Fatalf("names from chairs/classes.names: %v", d.Names)
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "names") {
		t.Fatalf("dir without names file: err %v, want a hint about the names file", err)
	}
}

// writePNG writes a w x h PNG.
func writePNG(tb testing.TB, path string, w, h int) {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, path, text string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func TestDarknetDirAndList(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "my.names"), "chair\nsofa\n\n")
	writePNG(t, filepath.Join(dir, "a.png"), 100, 50)
	writeFile(t, filepath.Join(dir, "a.txt"), "0 0.5 0.5 0.2 0.4\n\n1 0.1 0.1 0.1 0.1\n")
	writePNG(t, filepath.Join(dir, "b.png"), 10, 10) // no labels: negatives are allowed
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != 2 || len(d.Images[0].Objects) != 2 || len(d.Warnings) != 1 {
		t.Fatalf("images %d, objects %d, warnings %v", len(d.Images), len(d.Images[0].Objects), d.Warnings)
	}
	if got, want := d.Images[0].Objects[0].Box, [4]float64{41, 16, 61, 36}; got != want {
		t.Errorf("pixel box %v, want %v", got, want)
	}

	// darknet layout: data/images/x.png with data/labels/x.txt, in a list file.
	writePNG(t, filepath.Join(dir, "data", "images", "x.png"), 20, 20)
	writeFile(t, filepath.Join(dir, "data", "labels", "x.txt"), "1 0.5 0.5 1 1\n")
	list := filepath.Join(dir, "val.txt")
	writeFile(t, list, "data/images/x.png\n"+filepath.Join(dir, "a.png")+"\n")
	l, err := Open(list, Options{NamesFile: filepath.Join(dir, "my.names")})
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != FormatList || len(l.Images) != 2 || l.Images[0].Objects[0].Class != "sofa" {
		t.Fatalf("list: %+v", l)
	}
	if got := LabelPath("/d/VOC/JPEGImages/1.jpg"); got != "/d/VOC/labels/1.txt" {
		t.Errorf("LabelPath = %s", got)
	}
}

func TestLabelOnlyWithSizes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "classes.names"), "chair\n")
	writeFile(t, filepath.Join(dir, "p.txt"), "0 0.5 0.5 0.5 0.5\n")
	_, err := Open(dir, Options{})
	if err == nil {
		t.Fatal("labels without images or sizes accepted")
	}
	d, err := Open(dir, Options{Size: func(id string) (int, int, bool) { return 200, 100, id == "p" }})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != 1 || d.Images[0].Objects[0].Box != [4]float64{51, 26, 151, 76} {
		t.Fatalf("label-only: %+v", d.Images)
	}
}

func TestBadLabelsReportFileLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "classes.names"), "chair\nsofa\n")
	writePNG(t, filepath.Join(dir, "a.png"), 10, 10)
	for _, c := range []struct{ text, want string }{
		{"0 .5 .5 .1 .1\n1 .5 .5 .1\n", "a.txt:2: want 5 fields"},
		{"\n\n2 .5 .5 .1 .1\n", "a.txt:3: class 2 out of range"},
		{"x .5 .5 .1 .1\n", "a.txt:1: class \"x\""},
		{"0 .5 NaN .1 .1\n", "a.txt:1: field 3"},
		{"0 .5 .5 -.1 .1\n", "a.txt:1: negative box size"},
	} {
		writeFile(t, filepath.Join(dir, "a.txt"), c.text)
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.text, err, c.want)
		}
	}
}

const vocXML = `<annotation>
	<folder>VOC2012</folder>
	<filename>2008_000001.jpg</filename>
	<size><width>500</width><height>375</height><depth>3</depth></size>
	<object>
		<name>chair</name><pose>Left</pose><truncated>0</truncated><difficult>0</difficult>
		<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>110.5</xmax><ymax>220</ymax></bndbox>
	</object>
	<object>
		<name>person</name><difficult>1</difficult>
		<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>
		<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></part>
	</object>
</annotation>
`

func TestVOCTree(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Annotations", "2008_000001.xml"), vocXML)
	writeFile(t, filepath.Join(dir, "Annotations", "2008_000002.xml"),
		`<annotation><filename>2008_000002.jpg</filename><object><name>sofa</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>`)
	writePNG(t, filepath.Join(dir, "JPEGImages", "2008_000002.png"), 30, 40) // size from the image
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatVOC || len(d.Images) != 2 || strings.Join(d.Names, ",") != "chair,person,sofa" {
		t.Fatalf("VOC: format %s, %d images, names %v", d.Format, len(d.Images), d.Names)
	}
	a := d.Images[0]
	if a.ID != "2008_000001" || a.Width != 500 || len(a.Objects) != 2 || a.Objects[0].Box != [4]float64{10, 20, 110.5, 220} || !a.Objects[1].Difficult || a.Objects[0].Difficult {
		t.Errorf("first annotation: %+v", a)
	}
	if b := d.Images[1]; b.Width != 30 || b.Height != 40 || !strings.HasSuffix(b.Path, "2008_000002.png") {
		t.Errorf("second annotation: %+v", b)
	}
	// An image set selects annotations.
	writeFile(t, filepath.Join(dir, "ImageSets", "Main", "val.txt"), "2008_000002\n")
	if v, err := Open(dir, Options{ImageSet: "val"}); err != nil || len(v.Images) != 1 || v.Images[0].ID != "2008_000002" {
		t.Errorf("image set val: %v %+v", err, v)
	}
	writeFile(t, filepath.Join(dir, "ImageSets", "Main", "bad.txt"), "nope 1\n")
	if _, err := Open(dir, Options{ImageSet: "bad"}); err == nil || !strings.Contains(err.Error(), "bad.txt:1:") {
		t.Errorf("image set with a missing id: err %v", err)
	}
	// An XML syntax error names the line.
	writeFile(t, filepath.Join(dir, "Annotations", "2008_000003.xml"), "<annotation>\n<object>\n<name>chair</nme>\n</annotation>")
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "2008_000003.xml:3:") {
		t.Errorf("broken XML: err %v, want file:3", err)
	}
}
