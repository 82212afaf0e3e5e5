package synth

import (
	"bytes"
	"context"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
)

func TestRenderDeterministic(t *testing.T) {
	for _, seed := range []int64{0, 7, -3} {
		a, ba := Render(seed, 160, 120)
		b, bb := Render(seed, 160, 120)
		if !bytes.Equal(a.Pix, b.Pix) {
			t.Errorf("seed %d: two renders differ", seed)
		}
		if len(ba) != len(bb) {
			t.Fatalf("seed %d: %d vs %d boxes", seed, len(ba), len(bb))
		}
		for i := range ba {
			if ba[i] != bb[i] {
				t.Errorf("seed %d box %d: %+v vs %+v", seed, i, ba[i], bb[i])
			}
		}
	}
	c, _ := Render(8, 160, 120)
	a, _ := Render(7, 160, 120)
	if bytes.Equal(a.Pix, c.Pix) {
		t.Error("seeds 7 and 8 render the same image")
	}
}

func TestSceneStream(t *testing.T) {
	s1, s2 := NewScene(5, 96, 72), NewScene(5, 96, 72)
	s1.RoomFrames, s2.RoomFrames = 4, 4
	var prev *image.RGBA
	for i := range 6 {
		a, _ := s1.Next()
		b, _ := s2.Next()
		if !bytes.Equal(a.Pix, b.Pix) {
			t.Fatalf("frame %d differs between two streams with the same seed", i)
		}
		if prev != nil && bytes.Equal(prev.Pix, a.Pix) {
			t.Errorf("frame %d equals frame %d: the camera should move", i, i-1)
		}
		prev = a
	}
	if s1.Frame() != 6 {
		t.Errorf("Frame() = %d, want 6", s1.Frame())
	}
}

// renderWithOwners renders a scene and returns the ownership buffer with the boxes.
func renderWithOwners(sc *scene, opt Options) (*canvas, []Box) {
	rd := newRenderer(sc.w, sc.h)
	cam := sc.camera()
	_, boxes := rd.render(sc, cam, opt.withDefaults())
	return rd.c, boxes
}

// checkTight asserts that a box is the bounding rectangle of its object's pixels:
// each border row and column holds one of them and none lies outside.
func checkTight(t *testing.T, c *canvas, b Box, what string) {
	t.Helper()
	rowHas := func(y int) bool {
		for x := b.Min.X; x < b.Max.X; x++ {
			if c.owner[y*c.w+x] == b.id {
				return true
			}
		}
		return false
	}
	colHas := func(x int) bool {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if c.owner[y*c.w+x] == b.id {
				return true
			}
		}
		return false
	}
	if !rowHas(b.Min.Y) || !rowHas(b.Max.Y-1) || !colHas(b.Min.X) || !colHas(b.Max.X-1) {
		t.Errorf("%s: box %v-%v has a border row or column without object pixels", what, b.Min, b.Max)
	}
	for y := 0; y < c.h; y++ {
		for x := 0; x < c.w; x++ {
			if c.owner[y*c.w+x] == b.id && !image.Pt(x, y).In(image.Rectangle{b.Min, b.Max}) {
				t.Fatalf("%s: object pixel (%d,%d) outside its box %v-%v", what, x, y, b.Min, b.Max)
			}
		}
	}
}

func TestBoxesTight(t *testing.T) {
	scenes := int64(40)
	if testing.Short() {
		scenes = 8 // 40 scenes take 20 s under qemu
	}
	n := 0
	for seed := range scenes {
		sc := newSceneDesc(seed, 128, 96)
		c, boxes := renderWithOwners(sc, Options{AllClasses: true})
		for _, b := range boxes {
			checkTight(t, c, b, b.Class.String())
			if b.Visible < 0.25 || b.Visible > 1.0001 {
				t.Errorf("seed %d: %s visible %.3f outside [0.25, 1]", seed, b.Class, b.Visible)
			}
			n++
		}
	}
	if n < int(scenes) {
		t.Errorf("only %d boxes in %d scenes", n, scenes)
	}
}

// stagedScene is a plain room with a chair at (0, 3) facing the camera and the
// given extra objects.
func stagedScene(t *testing.T, chairX float64, extra ...func(sc *scene) *object) *scene {
	t.Helper()
	r := newRNG(99, 0)
	sc := &scene{w: 160, h: 120, room: newRoom(r.fork()), camPos: v3(0, 1.2, 0), pitch: 0.15, post: post{gain: 1, tint: rgb{1, 1, 1}, gamma: 1}}
	sc.room.x0, sc.room.x1, sc.room.depth = -5, 5, 10
	sc.f = 160 / 2 / math.Tan(30*math.Pi/180)
	b := &builder{r: newRNG(3, 0)}
	hw, hd := b.sideChair(false)
	sc.objs = append(sc.objs, b.place(Chair, v3(chairX, 0, 3), 0, hw, hd))
	for _, f := range extra {
		sc.objs = append(sc.objs, f(sc))
	}
	return sc
}

func cabinetAt(x, z, w, h float64) func(*scene) *object {
	return func(sc *scene) *object {
		b := &builder{r: newRNG(4, 0)}
		s := b.surf(rgb{0.5, 0.4, 0.3}, matPaint)
		b.slab(v3(-w/2, 0, -0.2), v3(w/2, h, 0.2), s)
		return b.place(Cabinet, v3(x, 0, z), 0, w/2, 0.2)
	}
}

func onlyChair(t *testing.T, boxes []Box) Box {
	t.Helper()
	var out []Box
	for _, b := range boxes {
		if b.Class == Chair {
			out = append(out, b)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want one chair box, got %+v", boxes)
	}
	return out[0]
}

func TestOcclusionShrinksBox(t *testing.T) {
	c, boxes := renderWithOwners(stagedScene(t, 0), Options{})
	free := onlyChair(t, boxes)
	checkTight(t, c, free, "unoccluded")
	if free.Visible < 0.95 {
		t.Errorf("unoccluded chair visible %.3f, want about 1", free.Visible)
	}

	// A low cabinet in front hides the chair's legs: the box loses its bottom.
	c, boxes = renderWithOwners(stagedScene(t, 0, cabinetAt(0, 2, 1.2, 0.5)), Options{})
	hid := onlyChair(t, boxes)
	checkTight(t, c, hid, "behind a cabinet")
	if hid.Max.Y >= free.Max.Y-3 || hid.Min.Y != free.Min.Y {
		t.Errorf("occluded box %v-%v, free %v-%v: want the bottom cut, the top kept", hid.Min, hid.Max, free.Min, free.Max)
	}
	if hid.Visible >= free.Visible-0.1 {
		t.Errorf("occluded visible %.3f vs free %.3f", hid.Visible, free.Visible)
	}

	// A tall cabinet hiding all but a sliver drops the box.
	_, boxes = renderWithOwners(stagedScene(t, 0, cabinetAt(0, 2, 1.6, 1.6)), Options{})
	for _, b := range boxes {
		if b.Class == Chair {
			t.Errorf("a fully hidden chair got box %+v", b)
		}
	}

	// Half outside the frame: the box stops at the border and visibility drops.
	edge := stagedScene(t, 0)
	_, boxes = renderWithOwners(edge, Options{})
	_ = boxes
	x := 3 * float64(edge.w) / 2 / edge.f // the right frame edge at the chair's depth
	c, boxes = renderWithOwners(stagedScene(t, x), Options{})
	cut := onlyChair(t, boxes)
	checkTight(t, c, cut, "at the border")
	if cut.Max.X != edge.w || cut.Visible > 0.7 || cut.Visible < 0.25 {
		t.Errorf("chair cut by the border: box %v-%v visible %.3f", cut.Min, cut.Max, cut.Visible)
	}
}

func TestWriteDataset(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a small dataset")
	}
	base := t.TempDir()
	opt := DatasetOptions{Count: 12, Seed: 42, Width: 96, Height: 80, ValFraction: 0.25, AllClasses: true}
	write := func(dir string, workers int) *DatasetResult {
		o := opt
		o.Out, o.Workers = filepath.Join(base, dir), workers
		res, err := WriteDataset(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	r1 := write("a", 1)
	write("b", 3)
	if r1.Train != 9 || r1.Val != 3 {
		t.Errorf("train %d val %d, want 9 and 3", r1.Train, r1.Val)
	}
	// Byte-identical whatever the number of workers.
	filepath.Walk(filepath.Join(base, "a"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(base, "a"), p)
		if rel == dataFile {
			return nil // names its own directory
		}
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(base, "b", rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between 1 and 3 workers (%v)", rel, err)
		}
		return nil
	})

	// Label files parse and the project's dataset readers load the output.
	out := filepath.Join(base, "a")
	d, err := dataset.Open(filepath.Join(out, "train.txt"), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != r1.Train || len(d.Names) != len(ClassNames) || d.Names[0] != "chair" {
		t.Errorf("train.txt: %d images, names %v", len(d.Images), d.Names)
	}
	boxes := 0
	for _, im := range d.Images {
		if im.Width != 96 || im.Height != 80 {
			t.Errorf("%s: %dx%d", im.ID, im.Width, im.Height)
		}
		f, err := os.Open(strings.TrimSuffix(im.Path, ".jpg") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		ls, err := dataset.ParseLabels(f, im.Path, len(d.Names))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.CX-l.W/2 < -1e-6 || l.CX+l.W/2 > 1+1e-6 || l.CY-l.H/2 < -1e-6 || l.CY+l.H/2 > 1+1e-6 || l.W <= 0 || l.H <= 0 {
				t.Errorf("%s:%d: box outside the image: %+v", im.Path, l.Line, l)
			}
		}
		boxes += len(ls)
	}
	v, err := dataset.Open(filepath.Join(out, "val"), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range v.Images {
		boxes += len(im.Objects)
	}
	if boxes != r1.Boxes || len(v.Images) != r1.Val {
		t.Errorf("readers see %d boxes and %d val images; the writer reported %d and %d", boxes, len(v.Images), r1.Boxes, r1.Val)
	}

	// An existing dataset is replaced only when forced.
	o := opt
	o.Out, o.Count = out, 2
	if _, err := WriteDataset(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("writing into a non-empty directory: %v, want a --force hint", err)
	}
	o.Force = true
	if _, err := WriteDataset(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if jpgs, _ := filepath.Glob(filepath.Join(out, "*", "*.jpg")); len(jpgs) != 2 {
		t.Errorf("after --force: %d images, want 2", len(jpgs))
	}
}

func TestDatasetOptionErrors(t *testing.T) {
	for _, o := range []DatasetOptions{
		{Count: 1},
		{Out: t.TempDir()},
		{Out: t.TempDir(), Count: 1, Width: 8, Height: 8},
		{Out: t.TempDir(), Count: 1, ValFraction: 1},
	} {
		if _, err := WriteDataset(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteDataset(ctx, DatasetOptions{Out: t.TempDir(), Count: 50}); err == nil {
		t.Error("a cancelled context wrote the dataset")
	}
}

func TestChairStatistics(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 150 scenes (40 s under qemu); skipped in -short (qemu)")
	}
	// Over many scenes the generator must produce the promised spread: images
	// without chairs, several chairs, small and large chairs, cut-off chairs.
	var empty, many, small, large, partial int
	const n, h = 150, 128
	for seed := range int64(n) {
		sc := newSceneDesc(seed, h, h)
		_, boxes := renderWithOwners(sc, Options{})
		switch {
		case len(boxes) == 0:
			empty++
		case len(boxes) >= 3:
			many++
		}
		for _, b := range boxes {
			f := float64(b.Max.Y-b.Min.Y) / h
			if f < 0.12 {
				small++
			}
			if f > 0.45 {
				large++
			}
			if b.Visible < 0.8 {
				partial++
			}
		}
	}
	t.Logf("%d scenes: %d without chairs, %d with 3+, %d small, %d large, %d partial", n, empty, many, small, large, partial)
	if empty == 0 || many < n/10 || small < n/10 || large < n/20 || partial < n/10 {
		t.Errorf("spread too narrow: %d empty, %d with 3+, %d small, %d large, %d partial", empty, many, small, large, partial)
	}
}

func TestSizes(t *testing.T) {
	for _, sz := range []image.Point{{32, 32}, {640, 480}, {120, 300}} {
		img, boxes := Render(11, sz.X, sz.Y)
		if img.Bounds().Dx() != sz.X || img.Bounds().Dy() != sz.Y {
			t.Errorf("%v: image %v", sz, img.Bounds())
		}
		for _, b := range boxes {
			if b.Min.X < 0 || b.Min.Y < 0 || b.Max.X > sz.X || b.Max.Y > sz.Y || b.Min.X >= b.Max.X || b.Min.Y >= b.Max.Y {
				t.Errorf("%v: box %v-%v outside the frame", sz, b.Min, b.Max)
			}
		}
	}
}
