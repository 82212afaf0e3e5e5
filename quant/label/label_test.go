package label

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// headBox is one anchor of the forced teacher: the raw region outputs before darknet's
// logistic/softmax (x, y, w, h, objectness, chair, table).
type headBox [7]float32

var (
	// sureChair is a centred box half the network's size: x = y = sigmoid(0) = 0.5,
	// w = h = exp(0) * anchor 0.5; score sigmoid(5) * softmax(4, -4) = 0.993.
	sureChair = headBox{0, 0, 0, 0, 5, 4, -4}
	// faintChair sits top left (x = y = sigmoid(-2) = 0.12) and scores
	// sigmoid(0) * softmax(0, ln 1.5) = 0.5 * 0.4 = 0.2: an uncertain box.
	faintChair = headBox{-2, -2, 0, 0, 0, 0, float32(0.4054651)}
	// table is a sure box of the other teacher class, which the target lacks.
	table = headBox{0, 0, 0, 0, 5, -4, 4}
)

// writeTeacher writes a 32x32 darknet model whose 1x1-grid region head emits the given
// boxes whatever the image (the head convolution has zero weights, so its output is its
// bias), with names chair and table; it returns the teacher spec.
func writeTeacher(tb testing.TB, dir, name string, boxes ...headBox) TeacherSpec {
	tb.Helper()
	anchors := strings.TrimSuffix(strings.Repeat("0.5,0.5,", len(boxes)), ",")
	cfg := testutil.WriteFile(tb, dir, name+".cfg", fmt.Sprintf(`[net]
width=32
height=32
channels=3

[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=16
stride=16

[convolutional]
filters=%d
size=1
stride=1
activation=linear

[region]
anchors=%s
classes=2
coords=4
num=%d
softmax=1
`, 7*len(boxes), anchors, len(boxes)))
	m, err := darknet.LoadCfg(cfg, darknet.Options{Dialect: quant.DialectPjreddie})
	if err != nil {
		tb.Fatal(err)
	}
	var head *quant.Conv
	for _, l := range m.Layers {
		if c := l.Conv; c != nil {
			c.Weights = make([]float32, c.Filters*l.In.C*c.Size*c.Size)
			c.Bias = make([]float32, c.Filters)
			head = c
		}
	}
	for i, b := range boxes {
		copy(head.Bias[7*i:], b[:]) // region layout: [anchor][x y w h obj classes...]
	}
	var w bytes.Buffer
	if err := darknet.WriteWeights(&w, m, darknet.Header{Major: 0, Minor: 2}); err != nil {
		tb.Fatal(err)
	}
	weights := testutil.WriteFile(tb, dir, name+".weights", w.String())
	names := testutil.WriteFile(tb, dir, name+".names", "chair\ntable\n")
	return TeacherSpec{Cfg: cfg, Weights: weights, Names: names}
}

// writePhotos writes 40x40 images in1/a.jpg, in2/a.jpg and in2/b.png (a repeated base
// name in two directories, and a PNG) and returns the two directories.
func writePhotos(tb testing.TB, dir string) []string {
	tb.Helper()
	var dirs []string
	for i, files := range [][]string{{"a.jpg"}, {"a.jpg", "b.png"}} {
		d := filepath.Join(dir, fmt.Sprintf("in%d", i+1))
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		for j, f := range files {
			img := image.NewRGBA(image.Rect(0, 0, 40, 40))
			for p := range 40 * 40 {
				img.Set(p%40, p/40, color.RGBA{uint8(p * (i + j + 1)), uint8(p / 7), 90, 255})
			}
			var b bytes.Buffer
			var err error
			if filepath.Ext(f) == ".png" {
				err = png.Encode(&b, img)
			} else {
				err = jpeg.Encode(&b, img, nil)
			}
			if err != nil {
				tb.Fatal(err)
			}
			testutil.WriteFile(tb, d, f, b.String())
		}
		dirs = append(dirs, d)
	}
	return dirs
}

// readLabels reads labels.json of an output directory.
func readLabels(tb testing.TB, out string) labelsFile {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(out, labelsJSON))
	if err != nil {
		tb.Fatal(err)
	}
	var lf labelsFile
	if err := json.Unmarshal(b, &lf); err != nil {
		tb.Fatal(err)
	}
	return lf
}

func statuses(lf labelsFile) map[string]Status {
	m := map[string]Status{}
	for _, rec := range lf.Images {
		m[rec.ID] = rec.Status
	}
	return m
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// checkChairLine checks a label file holding one centred chair half the image's size.
func checkChairLine(tb testing.TB, path string) {
	tb.Helper()
	f := strings.Fields(readFile(tb, path))
	if len(f) != 5 || f[0] != "0" {
		tb.Fatalf("%s: %q, want one chair line", path, f)
	}
	for i, want := range []float64{0.5, 0.5, 0.5, 0.5} {
		if v, err := strconv.ParseFloat(f[i+1], 64); err != nil || v < want-0.02 || v > want+0.02 {
			tb.Errorf("%s: field %d = %s, want %.2f", path, i+2, f[i+1], want)
		}
	}
}

func TestLabelWritesDatasetAndHonoursRejections(t *testing.T) {
	dir := t.TempDir()
	inputs := writePhotos(t, dir)
	teacher := writeTeacher(t, dir, "sure", sureChair, table)
	out := filepath.Join(dir, "out")
	var progress []int
	opt := Options{Target: []string{"chair"}, Teachers: []TeacherSpec{teacher}, Inputs: inputs, Out: out, Threads: 1,
		Progress: func(done, total int) { progress = append(progress, done, total) }}
	res, err := Label(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != 3 || res.Kept != 3 || res.Uncertain != 0 || res.Boxes[0] != 3 || fmt.Sprint(progress) != "[1 3 2 3 3 3]" {
		t.Errorf("result %+v, progress %v", res, progress)
	}
	for _, id := range []string{"in1_a", "in2_a", "b"} {
		checkChairLine(t, filepath.Join(out, id+".txt"))
		if _, err := os.Stat(filepath.Join(out, thumbsDir, id+".jpg")); err != nil {
			t.Error(err)
		}
	}
	if link, err := os.Readlink(filepath.Join(out, "b.png")); err != nil || link != filepath.Join(inputs[1], "b.png") {
		t.Errorf("b.png links to %q (%v)", link, err)
	}
	if got := readFile(t, filepath.Join(out, namesFile)); got != "chair\n" {
		t.Errorf("classes.names %q", got)
	}
	html := readFile(t, filepath.Join(out, indexHTML))
	if n := strings.Count(html, `<div class="card `); n != 3 || !strings.Contains(html, `value="in2_a"`) || strings.Contains(html, "http") {
		t.Errorf("index.html has %d cards (want 3, no external assets):\n%s", n, html)
	}
	lf := readLabels(t, out)
	if len(lf.Images) != 3 || len(lf.Images[0].Boxes) != 1 || lf.Images[0].Boxes[0].Class != "chair" || lf.Images[0].Boxes[0].Teachers[0] != "sure" {
		t.Errorf("labels.json %+v", lf)
	}

	// The reviewer rejects in1_a and the only box of b; the next run into the same
	// directory leaves in1_a out and writes b as a negative, keeping the list file.
	rejFile := testutil.WriteFile(t, out, "rejections.txt", "# review\nin1_a\nb 0\nghost\n")
	if opt.Reject, err = LoadRejections(rejFile); err != nil {
		t.Fatal(err)
	}
	res, err = Label(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != 2 || res.Rejected != 1 || res.Negatives != 1 || res.Boxes[0] != 1 || fmt.Sprint(res.UnusedRejections) != "[ghost]" {
		t.Errorf("result after rejections %+v", res)
	}
	for _, gone := range []string{"in1_a.jpg", "in1_a.txt"} {
		if _, err := os.Lstat(filepath.Join(out, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
	if got := readFile(t, filepath.Join(out, "b.txt")); got != "" {
		t.Errorf("b.txt %q, want empty", got)
	}
	lf = readLabels(t, out)
	if s := statuses(lf); s["in1_a"] != StatusRejected || s["b"] != StatusKept || lf.Images[2].Boxes[0].Status != StatusRejected {
		t.Errorf("statuses %v, boxes of b %+v", s, lf.Images[2].Boxes)
	}
	html = readFile(t, filepath.Join(out, indexHTML))
	if !strings.Contains(html, `value="in1_a" checked`) || !strings.Contains(html, `["b 0","ghost"]`) {
		t.Errorf("contact sheet does not carry the rejections over:\n%s", html)
	}
	if _, err := os.Stat(rejFile); err != nil {
		t.Errorf("the rejection list in the output was removed: %v", err)
	}
}

func TestLabelUncertainImages(t *testing.T) {
	dir := t.TempDir()
	inputs := writePhotos(t, dir)
	opt := Options{Target: []string{"chair"}, Teachers: []TeacherSpec{writeTeacher(t, dir, "faint", sureChair, faintChair)},
		Inputs: inputs[1:], Out: filepath.Join(dir, "drop"), Threads: 1}
	res, err := Label(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uncertain != 2 || res.Kept != 0 || res.Boxes[0] != 0 {
		t.Errorf("result %+v, want both images uncertain and left out", res)
	}
	if m, _ := filepath.Glob(filepath.Join(opt.Out, "*.txt")); len(m) != 0 {
		t.Errorf("uncertain images written: %v", m)
	}
	opt.Out, opt.KeepUncertain = filepath.Join(dir, "keep"), true
	if res, err = Label(context.Background(), opt); err != nil || res.Boxes[0] != 2 {
		t.Fatalf("keep-uncertain: %+v, %v", res, err)
	}
	checkChairLine(t, filepath.Join(opt.Out, "a.txt")) // the uncertain box is no label
	b := readLabels(t, opt.Out).Images[0].Boxes
	if len(b) != 2 || b[1].Status != StatusUncertain || b[1].Score < 0.19 || b[1].Score > 0.21 {
		t.Errorf("boxes %+v, want a sure and an uncertain 0.2 chair", b)
	}
}

// TestLabelObjectCentred: each image keeps its best box even at a low score, and an
// image without a box is left out, not written as a negative.
func TestLabelObjectCentred(t *testing.T) {
	dir := t.TempDir()
	inputs := writePhotos(t, dir)
	opt := Options{Target: []string{"chair"}, Teachers: []TeacherSpec{writeTeacher(t, dir, "faint", faintChair, table)},
		Inputs: inputs[1:], Out: filepath.Join(dir, "centred"), Threads: 1, ObjectCentred: true}
	res, err := Label(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != 2 || res.Negatives != 0 || res.Boxes[0] != 2 {
		t.Errorf("result %+v, want both images kept with their faint chair", res)
	}
	opt.Teachers, opt.Out = []TeacherSpec{writeTeacher(t, dir, "tables", table)}, filepath.Join(dir, "none")
	if res, err = Label(context.Background(), opt); err != nil || res.Kept != 0 || res.Uncertain != 2 {
		t.Fatalf("no chair anywhere: %+v, %v; want both images left out", res, err)
	}
	if m, _ := filepath.Glob(filepath.Join(opt.Out, "*.txt")); len(m) != 0 {
		t.Errorf("images without a box written: %v", m)
	}
}

func TestLabelTwoTeachersTruthAndDeterminism(t *testing.T) {
	dir := t.TempDir()
	inputs := writePhotos(t, dir)
	truth := filepath.Join(dir, "truth")
	if err := os.Mkdir(truth, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, truth, "names.names", "table\nchair\n")
	testutil.WriteFile(t, truth, "a.txt", "1 0.5 0.5 0.5 0.5\n0 0.5 0.5 0.9 0.9\n") // found
	testutil.WriteFile(t, truth, "b.txt", "1 0.1 0.1 0.1 0.1\n")                    // missed, and a false box
	second := writeTeacher(t, dir, "second", sureChair)
	second.Name = "twin"
	opt := Options{Target: []string{"chair"}, Teachers: []TeacherSpec{writeTeacher(t, dir, "first", sureChair), second},
		Inputs: inputs, Out: filepath.Join(dir, "one"), TruthDir: truth, Threads: 1}
	res, err := Label(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Eval; e == nil || e.All[0] != (Counts{TP: 2, FP: 1, FN: 1}) || e.Kept[0] != e.All[0] || e.Images != 3 || e.NoTruth != 0 {
		t.Errorf("eval %+v", res.Eval)
	}
	if b := readLabels(t, opt.Out).Images[0].Boxes[0]; fmt.Sprint(b.Teachers) != "[first twin]" || b.Score < 0.99 {
		t.Errorf("fused box %+v, want both teachers' agreeing box", b)
	}
	opt.Out = filepath.Join(dir, "two")
	if _, err := Label(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{labelsJSON, indexHTML, "b.txt", "thumbs/b.jpg"} {
		if readFile(t, filepath.Join(dir, "one", f)) != readFile(t, filepath.Join(dir, "two", f)) {
			t.Errorf("%s differs between two runs", f)
		}
	}
}

func TestLabelChecksBeforeWork(t *testing.T) {
	dir := t.TempDir()
	inputs := writePhotos(t, dir)
	teacher := writeTeacher(t, dir, "t", sureChair)
	notOurs := filepath.Join(dir, "notours")
	if err := os.Mkdir(notOurs, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, notOurs, "precious.txt", "x")
	base := Options{Target: []string{"chair"}, Teachers: []TeacherSpec{teacher}, Inputs: inputs, Out: filepath.Join(dir, "o")}
	for _, tc := range []struct {
		edit func(o *Options)
		want string
	}{
		{func(o *Options) { o.Out = notOurs }, "not empty"},
		{func(o *Options) { o.Out = inputs[0] }, "holds input images"},
		{func(o *Options) { o.Target = []string{"sofa"} }, "no class name in common"},
		{func(o *Options) { o.Teachers[0].Map = []ClassMap{{"chair", "stool"}} }, `no class "stool"`},
		{func(o *Options) { o.Teachers[0].Names = filepath.Join(dir, "missing.names") }, "missing.names"},
		{func(o *Options) { o.Inputs = []string{filepath.Join(dir, "nowhere")} }, "nowhere"},
		{func(o *Options) { o.Uncertain = 0.5 }, "uncertain threshold"},
		{func(o *Options) { o.TruthDir = filepath.Join(dir, "nowhere") }, "truth directory"},
		{func(o *Options) { o.Teachers[0].Weights = filepath.Join(dir, "none.weights") }, "none.weights"},
	} {
		o := base
		o.Teachers = []TeacherSpec{teacher}
		tc.edit(&o)
		_, err := Label(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(notOurs, "precious.txt")); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Label(ctx, base); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}

func TestUniqueIDs(t *testing.T) {
	got := uniqueIDs([]string{"/x/a.jpg", "/x/a.png", "/y/a.jpg", "/y/b c#1.jpg", "/z/x_a.jpg"})
	want := "[x_a x_a_2 y_a b_c_1 x_a_3]"
	if fmt.Sprint(got) != want {
		t.Errorf("ids %v, want %s", got, want)
	}
}

// TestLabelFixturePhotos runs the tiny teacher on real photos (the chairs fixture's
// validation set, a JPEG of each size there) with their truth: the teacher's one
// centred box per image, compared with the photos' chair labels.
func TestLabelFixturePhotos(t *testing.T) {
	val := testutil.Fixture(t, "chairs", "val")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	res, err := Label(context.Background(), Options{Target: []string{"chair"},
		Teachers: []TeacherSpec{writeTeacher(t, dir, "sure", sureChair)}, Inputs: []string{val}, Out: out, Threads: 1,
		TruthDir: val})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := filepath.Glob(filepath.Join(val, "*.jpg"))
	if res.Images != len(n) || res.Kept != len(n) || res.Boxes[0] != len(n) {
		t.Errorf("result %+v, want each of the %d photos kept with one chair", res, len(n))
	}
	ev := res.Eval
	if ev == nil || ev.All[0].TP+ev.All[0].FP != len(n) || ev.All[0].TP+ev.All[0].FN == 0 {
		t.Fatalf("eval %+v: want %d predictions and the photos' chairs as truth", ev, len(n))
	}
	sheet := readFile(t, filepath.Join(out, "index.html"))
	if c := strings.Count(sheet, `type="checkbox"`); c < len(n) {
		t.Errorf("contact sheet has %d checkboxes for %d photos", c, len(n))
	}
}
