//go:build darknet && cgo

package darknetref

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

const (
	thresh = 0.25
	nmsIoU = 0.45
)

// yoloFastest loads Yolo-Fastest-1.1 twice: into the IR (pjreddie dialect forced, as
// Debian's darknet is pjreddie's) with the float engine, and into libdarknet.
func yoloFastest(tb testing.TB) (*quant.Model, *floatengine.Engine, *Net, []string) {
	tb.Helper()
	dir := testutil.Fixture(tb, "yolo-fastest")
	cfg := filepath.Join(dir, "yolo-fastest-1.1.cfg")
	weights := filepath.Join(dir, "yolo-fastest-1.1.weights")
	m, err := darknet.Load(cfg, weights, darknet.Options{Dialect: quant.DialectPjreddie})
	if err != nil {
		tb.Fatalf("import: %v", err)
	}
	e, err := floatengine.New(m, floatengine.Options{})
	if err != nil {
		tb.Fatalf("engine: %v", err)
	}
	ref, err := Load(cfg, weights)
	if err != nil {
		tb.Fatalf("darknet: %v", err)
	}
	tb.Cleanup(ref.Close)
	if ref.Layers() != len(m.Layers) {
		tb.Fatalf("darknet has %d layers, the IR %d", ref.Layers(), len(m.Layers))
	}
	names, err := boxes.LoadNames(filepath.Join(dir, "coco.names"))
	if err != nil {
		tb.Fatal(err)
	}
	return m, e, ref, names
}

// ourDetections runs the project's pipeline: imageio decode, then detect.Run (letterbox,
// float engine, head decode, NMS, darknet's per-class list).
func ourDetections(tb testing.TB, m *quant.Model, e *floatengine.Engine, names []string, path string) []boxes.Detection {
	tb.Helper()
	im, err := imageio.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	objs, err := detector.Objects(detector.NewFloatWith(m, e, nmsIoU), im, thresh, names)
	if err != nil {
		tb.Fatal(err)
	}
	return objs
}

// TestYoloFastestMatchesDarknet compares, on every fixture photo, (1) the raw head
// tensors of the float engine and darknet on the same (darknet-letterboxed) input and
// (2) the detections of the whole pipelines: ours (imageio, engine, detect) against
// darknet's (load_image_color, letterbox_image, network_predict, get_network_boxes,
// do_nms_sort): same class, score within 0.02, IoU >= 0.95.
func TestYoloFastestMatchesDarknet(t *testing.T) {
	m, e, ref, names := yoloFastest(t)
	var worstHead float64
	var total, matched, borderline int
	st := &matchStats{minIoU: 1}
	var discard matchStats
	images := testutil.FixturePhotos(t)
	if testing.Short() {
		images = images[:6] // darknet takes about half a second per photo on a shared CPU
	}
	for _, path := range images {
		base := filepath.Base(path)
		dnImage, err := LoadImageColor(path)
		if err != nil {
			t.Fatal(err)
		}
		dnIn := Letterbox(dnImage, m.Input.W, m.Input.H)

		// Raw tensors, same input.
		if err := ref.Predict(dnIn.Data); err != nil {
			t.Fatal(err)
		}
		if err := e.Forward(dnIn.Data); err != nil {
			t.Fatal(err)
		}
		for _, i := range m.Heads() {
			want, c, h, w, err := ref.Output(i)
			if err != nil {
				t.Fatal(err)
			}
			if (quant.Shape{C: c, H: h, W: w}) != m.Layers[i].Out {
				t.Fatalf("head %d: darknet %dx%dx%d, IR %v", i, c, h, w, m.Layers[i].Out)
			}
			d := maxAbsDiff(e.Output(i), want)
			worstHead = max(worstHead, d)
			if d > 1e-3 {
				t.Errorf("%s head %d: engine and darknet differ by %g", base, i, d)
			}
		}

		// Whole pipelines.
		theirs := boxes.Objects(ref.Boxes(dnImage.W, dnImage.H, thresh, nmsIoU), thresh, names, dnImage.W, dnImage.H)
		ours := ourDetections(t, m, e, names, path)
		total += len(theirs)
		for _, want := range theirs {
			if st.match(ours, want) {
				matched++
				continue
			}
			if want.Score < thresh+0.02 {
				borderline++ // may fall on either side of the threshold
				continue
			}
			t.Errorf("%s: darknet's %s %.3f %v has no match in ours %s", base, want.Name, want.Score, want.Box, describe(ours))
		}
		for _, got := range ours {
			if !discard.match(theirs, got) && got.Score >= thresh+0.02 {
				t.Errorf("%s: our %s %.3f %v is not in darknet's %s", base, got.Name, got.Score, got.Box, describe(theirs))
			}
		}
	}
	t.Logf("head tensors: max |engine - darknet| = %.3g; detections: %d of darknet's %d matched (%d borderline at the threshold), max score diff %.2g, min IoU %.6f",
		worstHead, matched, total, borderline, st.maxScoreDiff, st.minIoU)
	if total == 0 {
		t.Error("darknet found nothing on any fixture: the comparison checked nothing")
	}
}

// matchStats collects, over matched pairs, the largest score difference and the
// smallest box IoU.
type matchStats struct {
	maxScoreDiff float64
	minIoU       float64
}

// match looks for want in list: the object of the same class whose box overlaps want's
// most must have IoU >= 0.95 and a score within 0.02.
func (st *matchStats) match(list []boxes.Detection, want boxes.Detection) bool {
	best, bestIoU := -1, float32(-1)
	for i, got := range list {
		iou := boxes.IoU(got.Box, want.Box)
		if sameBox(got.Box, want.Box) {
			iou = 1 // boxes clipped to nothing (off the image) have no area to overlap
		}
		if got.Class == want.Class && iou > bestIoU {
			best, bestIoU = i, iou
		}
	}
	if best < 0 {
		return false
	}
	ds := math.Abs(float64(list[best].Score - want.Score))
	if ds > 0.02 || bestIoU < 0.95 {
		return false
	}
	st.maxScoreDiff = max(st.maxScoreDiff, ds)
	st.minIoU = min(st.minIoU, float64(bestIoU))
	return true
}

// sameBox says whether every corner agrees within a hundredth of a pixel.
func sameBox(a, b [4]float32) bool {
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 0.01 {
			return false
		}
	}
	return true
}

func describe(list []boxes.Detection) string {
	s := "["
	for _, d := range list {
		s += fmt.Sprintf(" %s %.3f %.0f", d.Name, d.Score, d.Box)
	}
	return s + " ]"
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestTinierYoloRegionMatchesDarknet checks the [region] path (YOLOv2 decode, softmax,
// anchors in grid cells) on the Tinier-YOLO topology: deterministic random weights are
// written as a .weights file that both darknet and the importer load, then head tensors
// and detections (at a low threshold, since random weights are not confident) are
// compared on a few photos.
func TestTinierYoloRegionMatchesDarknet(t *testing.T) {
	cfg := testutil.Testdata(t, "tinier-yolo-voc.cfg")
	if !fileExists(cfg) {
		t.Skipf("%s not found", cfg)
	}
	m, err := darknet.LoadCfg(cfg, darknet.Options{Dialect: quant.DialectPjreddie})
	if err != nil {
		t.Fatal(err)
	}
	fillRandom(m)
	weights := filepath.Join(t.TempDir(), "random.weights")
	f, err := os.Create(weights)
	if err != nil {
		t.Fatal(err)
	}
	if err := darknet.WriteWeights(f, m, darknet.Header{Major: 0, Minor: 2}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := floatengine.New(m, floatengine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	names, err := boxes.LoadNames(testutil.Fixture(t, "qnn-mo-pynq", "voc.names"))
	if err != nil {
		t.Fatal(err)
	}
	const lowThresh = 0.05
	head := m.Heads()[0]
	st := &matchStats{minIoU: 1}
	var total, matched int
	for _, path := range testutil.FixturePhotos(t)[:4] {
		ours, err := imageio.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		in := imageio.Letterbox(ours, m.Input.W, m.Input.H)
		if err := ref.Predict(in.Data); err != nil {
			t.Fatal(err)
		}
		if err := e.Forward(in.Data); err != nil {
			t.Fatal(err)
		}
		want, _, _, _, err := ref.Output(head)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(e.Output(head), want); d > 1e-3 {
			t.Errorf("%s: region outputs differ by %g", filepath.Base(path), d)
		}
		theirs := boxes.Objects(ref.Boxes(ours.W, ours.H, lowThresh, nmsIoU), lowThresh, names, ours.W, ours.H)
		cands, err := boxes.Decode(m, map[int][]float32{head: e.Output(head)}, ours.W, ours.H, lowThresh)
		if err != nil {
			t.Fatal(err)
		}
		got := boxes.Objects(boxes.NMS(cands, nmsIoU), lowThresh, names, ours.W, ours.H)
		total += len(theirs)
		for _, w := range theirs {
			if st.match(got, w) {
				matched++
			} else {
				t.Errorf("%s: darknet's %s %.3f %v has no match", filepath.Base(path), w.Name, w.Score, w.Box)
			}
		}
		var discard matchStats
		for _, g := range got {
			if !discard.match(theirs, g) {
				t.Errorf("%s: our %s %.3f %v is not in darknet's list", filepath.Base(path), g.Name, g.Score, g.Box)
			}
		}
	}
	t.Logf("region: %d of darknet's %d objects matched, max score diff %.2g, min IoU %.6f", matched, total, st.maxScoreDiff, st.minIoU)
	if total == 0 {
		t.Error("darknet found nothing: the comparison checked nothing")
	}
}

// TestLayerOutputsMatchDarknet compares every layer's output of Yolo-Fastest on one
// photo (the float engine keeping all outputs) with darknet's, relative to the layer's
// largest magnitude, to point at the first layer that drifts if the heads ever differ.
func TestLayerOutputsMatchDarknet(t *testing.T) {
	m, _, ref, _ := yoloFastest(t)
	worst, worstLayer, _ := dogLayerDrift(t, m, ref)
	t.Logf("all %d layers: worst relative difference %.2g (layer %d)", len(m.Layers), worst, worstLayer)
	if worst > 1e-4 {
		t.Errorf("layer %d (%s) differs from darknet by %.2g of its range", worstLayer, m.Layers[worstLayer].Name, worst)
	}
}

// dogLayerDrift runs dog.jpg through darknet and the float engine (keeping every
// layer's output), compares each layer with darknet's and returns the largest difference
// relative to the layer's largest magnitude, that layer (-1 when all agree exactly) and
// the photo. A layer whose size differs is fatal.
func dogLayerDrift(tb testing.TB, m *quant.Model, ref *Net) (worst float64, worstLayer int, im *imageio.Image) {
	tb.Helper()
	e, err := floatengine.New(m, floatengine.Options{KeepAll: true})
	if err != nil {
		tb.Fatal(err)
	}
	im, err = LoadImageColor(testutil.Fixture(tb, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		tb.Fatal(err)
	}
	in := Letterbox(im, m.Input.W, m.Input.H)
	if err := ref.Predict(in.Data); err != nil {
		tb.Fatal(err)
	}
	if err := e.Forward(in.Data); err != nil {
		tb.Fatal(err)
	}
	worstLayer = -1
	for i, l := range m.Layers {
		want, _, _, _, err := ref.Output(i)
		if err != nil {
			tb.Fatal(err)
		}
		got := e.Output(i)
		if len(got) != len(want) {
			tb.Fatalf("layer %d (%s): %d values, darknet %d", i, l.Name, len(got), len(want))
		}
		scale := 1e-6
		for _, v := range want {
			scale = max(scale, math.Abs(float64(v)))
		}
		if rel := maxAbsDiff(got, want) / scale; rel > worst {
			worst, worstLayer = rel, i
		}
	}
	return worst, worstLayer, im
}
