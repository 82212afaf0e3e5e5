//go:build darknet && cgo

package darknetref

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
)

// exportQNN exports the published QNN-MO model with `quant export-darknet`'s code.
func exportQNN(tb testing.TB, opt todarknet.Options) (orig *quant.Model, res *todarknet.Result, cfg, weights string) {
	tb.Helper()
	orig, err := qnnmo.LoadDir(testutil.Fixture(tb, "qnn-mo-pynq", "params"))
	if err != nil {
		tb.Fatal(err)
	}
	res, err = todarknet.ExportWith(orig, opt)
	if err != nil {
		tb.Fatal(err)
	}
	// With the published cfg's training options, as pynqctl writes it.
	if res.TrainingCfg, err = os.ReadFile(testutil.Fixture(tb, "qnn-mo-pynq", "params", "tinier-yolo-bwn-3bit-relu-nomaxpool.cfg")); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cfg, weights = filepath.Join(dir, "tinier-yolo.cfg"), filepath.Join(dir, "tinier-yolo.weights")
	if err := res.WriteFiles(cfg, weights); err != nil {
		tb.Fatal(err)
	}
	return orig, res, cfg, weights
}

// TestExportedTinierYoloMatchesDarknet loads the float Tinier-YOLO exported from the
// QNN-MO model into libdarknet and into the float engine (through the darknet reader)
// and compares every layer's output on dog.jpg: darknet reads the exported cfg, weights,
// binary=1 layers and batch norms as the IR means them.
func TestExportedTinierYoloMatchesDarknet(t *testing.T) {
	_, _, cfg, weights := exportQNN(t, todarknet.Options{})
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	worst, worstLayer, im := dogLayerDrift(t, m, ref)
	t.Logf("exported Tinier-YOLO, %d layers: worst relative difference to darknet %.2g (layer %d)", len(m.Layers), worst, worstLayer)
	// For the record: what the float model (relu without clip or rounding) detects.
	names, err := boxes.LoadNames(testutil.Fixture(t, "qnn-mo-pynq", "voc.names"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range boxes.Objects(ref.Boxes(im.W, im.H, 0.3, nmsIoU), 0.3, names, im.W, im.H) {
		t.Logf("float model in darknet: %s %.0f%% %v", o.Name, 100*o.Score, o.Box)
	}
	if worst > 1e-4 {
		t.Errorf("layer %d (%s) differs from darknet by %.2g of its range", worstLayer, m.Layers[worstLayer].Name, worst)
	}
}

// TestExportedBatchNormsGiveThresholdsInDarknet runs single exported hidden layers in
// libdarknet on input levels times their scale (the network input stands in for the
// previous layer) and quantizes darknet's float output with the sidecar's scale: every
// level must equal the published model's integer thresholds applied to the integer acc.
// conv1 reads conv0's real levels of dog.jpg; conv7 (the largest acc range) random
// levels. Both with the export's default batch norms (mean 0) and with rolling
// statistics measured on dog.jpg (large means and variances: float32 rounding in
// darknet's normalization must not move a level).
func TestExportedBatchNormsGiveThresholdsInDarknet(t *testing.T) {
	orig, res, _, _ := exportQNN(t, todarknet.Options{})
	_, lres, _, _ := exportQNN(t, todarknet.Options{FloatActivation: todarknet.FloatLHTan})
	img, err := imageio.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := qnnmo.NewFirstLayer(orig, 0)
	if err != nil {
		t.Fatal(err)
	}
	lb := imageio.Letterbox(img, orig.Input.W, orig.Input.H).Data
	dogLevels, err := first.Levels(lb)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	random := make([]uint8, orig.Layers[12].In.Size())
	for i := range random {
		random[i] = uint8(r.IntN(8))
	}
	for _, v := range []struct {
		name       string
		res        *todarknet.Result
		calibrated bool
	}{{"relu", res, false}, {"relu, calibrated batch norm", res, true}, {"lhtan", lres, false}} {
		calibrated := v.calibrated
		if calibrated {
			if _, err := v.res.CalibrateBN([][]float32{lb}, 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			index  int
			levels []uint8
		}{{1, dogLevels}, {12, random}} {
			l := orig.Layers[c.index]
			sl := sidecarLayer(t, v.res.Sidecar, c.index)
			y := runSingleLayer(t, v.res.Model, c.index, c.levels, sl.InputScale, v.res.Sidecar.FloatActivation)
			acc := levelConv(l, c.levels)
			hw := l.Out.H * l.Out.W
			bad := 0
			for i, a := range acc {
				o := i / hw
				want := todarknet.Level(l.Quant.Thresholds[o], l.Quant.Invert[o], a)
				got := int(math.RoundToEven(max(0, min(7, float64(y[i])/float64(sl.ActScale)))))
				if got != want {
					if bad++; bad <= 3 {
						t.Errorf("%s (%s) channel %d acc %d: darknet y=%g -> level %d, thresholds %v give %d", l.Name, v.name, o, a, y[i], got, l.Quant.Thresholds[o], want)
					}
				}
			}
			t.Logf("%s in darknet (%s): %d of %d levels equal the thresholds'", l.Name, v.name, len(acc)-bad, len(acc))
		}
	}
}

// TestExportedLHTanDetectsLikeW1A3: the lhtan export, run as a float model in libdarknet,
// finds on dog.jpg what the W1A3 model finds (dog, car, bicycle), scores within 10
// points of the published ones: a float model close enough to fine-tune from.
func TestExportedLHTanDetectsLikeW1A3(t *testing.T) {
	_, _, cfg, weights := exportQNN(t, todarknet.Options{FloatActivation: todarknet.FloatLHTan})
	ref, err := Load(cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	names, err := boxes.LoadNames(testutil.Fixture(t, "qnn-mo-pynq", "voc.names"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := LoadImageColor(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	w, h, _ := ref.Input()
	if err := ref.Predict(Letterbox(im, w, h).Data); err != nil {
		t.Fatal(err)
	}
	best := map[string]float32{}
	for _, o := range boxes.Objects(ref.Boxes(im.W, im.H, 0.3, nmsIoU), 0.3, names, im.W, im.H) {
		t.Logf("lhtan float model in darknet: %s %.0f%% %v", o.Name, 100*o.Score, o.Box)
		best[o.Name] = max(best[o.Name], o.Score)
	}
	published := map[string]float32{"dog": 0.86, "car": 0.86, "bicycle": 0.78}
	for name, p := range published {
		if math.Abs(float64(best[name]-p)) > 0.1 {
			t.Errorf("%s: %.2f, the W1A3 model %.2f", name, best[name], p)
		}
	}
	for name := range best {
		if _, ok := published[name]; !ok {
			t.Errorf("unexpected %s %.2f", name, best[name])
		}
	}
}

func sidecarLayer(tb testing.TB, sc *todarknet.Sidecar, index int) todarknet.SidecarLayer {
	tb.Helper()
	for _, sl := range sc.Layers {
		if sl.Index == index {
			return sl
		}
	}
	tb.Fatalf("sidecar has no layer %d", index)
	return todarknet.SidecarLayer{}
}

// runSingleLayer writes layer index of the exported model as a one-layer darknet model
// reading the network input (with activation act, "" for the layer's own), runs
// libdarknet on levels*scale and returns its output.
func runSingleLayer(tb testing.TB, exported *quant.Model, index int, levels []uint8, scale float32, act string) []float32 {
	tb.Helper()
	l := *exported.Layers[index]
	l.Inputs = []int{-1}
	m := &quant.Model{Name: l.Name, Input: l.In, Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6, Layers: []*quant.Layer{&l}}
	dir := tb.TempDir()
	cfg, weights := filepath.Join(dir, "one.cfg"), filepath.Join(dir, "one.weights")
	for _, f := range []struct {
		path  string
		write func(*os.File) error
	}{
		{cfg, func(f *os.File) error {
			var b strings.Builder
			if err := darknet.WriteCfg(&b, m); err != nil {
				return err
			}
			text := b.String()
			if act != "" {
				text = strings.ReplaceAll(text, "activation="+string(l.Conv.Activation), "activation="+act)
			}
			_, err := f.WriteString(text)
			return err
		}},
		{weights, func(f *os.File) error { return darknet.WriteWeights(f, m, todarknet.WeightsHeader) }},
	} {
		file, err := os.Create(f.path)
		if err != nil {
			tb.Fatal(err)
		}
		if err := f.write(file); err != nil {
			tb.Fatal(err)
		}
		if err := file.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	net, err := Load(cfg, weights)
	if err != nil {
		tb.Fatal(err)
	}
	defer net.Close()
	in := make([]float32, len(levels))
	for i, v := range levels {
		in[i] = float32(v) * scale
	}
	if err := net.Predict(in); err != nil {
		tb.Fatal(err)
	}
	out, _, _, _, err := net.Output(0)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// levelConv is the integer convolution of input levels with a +1/-1 layer (zero
// padding), CHW, as the engine computes acc.
func levelConv(l *quant.Layer, lv []uint8) []int64 {
	c, in, out := l.Conv, l.In, l.Out
	k := c.Size
	acc := make([]int64, out.Size())
	for o := 0; o < out.C; o++ {
		for y := 0; y < out.H; y++ {
			for x := 0; x < out.W; x++ {
				var s int64
				for ch := 0; ch < in.C; ch++ {
					w := c.Weights[(o*in.C+ch)*k*k:]
					plane := lv[ch*in.H*in.W:]
					for ky := 0; ky < k; ky++ {
						yy := y*c.Stride + ky - c.Pad
						if yy < 0 || yy >= in.H {
							continue
						}
						for kx := 0; kx < k; kx++ {
							xx := x*c.Stride + kx - c.Pad
							if xx < 0 || xx >= in.W {
								continue
							}
							v := int64(plane[yy*in.W+xx])
							if w[ky*k+kx] < 0 {
								v = -v
							}
							s += v
						}
					}
				}
				acc[(o*out.H+y)*out.W+x] = s
			}
		}
	}
	return acc
}
