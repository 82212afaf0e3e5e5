package train

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

func TestParseSources(t *testing.T) {
	got, err := ParseSources("a/coco=3, b ,c=0.5")
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{{"a/coco", 3}, {"b", 1}, {"c", .5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", " , ", "a=x", "a=-1", "a=NaN"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("ParseSources(%q) accepted", bad)
		}
	}
}

func TestParseLayerRates(t *testing.T) {
	got, err := ParseLayerRates("0-8=0,13=10")
	if err != nil {
		t.Fatal(err)
	}
	want := []LayerRate{{0, 8, 0}, {13, 13, 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	s, err := layerScales(append(Freeze(2), got[1]), 14)
	if err != nil {
		t.Fatal(err)
	}
	if s[0] != 0 || s[1] != 0 || s[2] != 1 || s[13] != 10 {
		t.Errorf("scales %v", s)
	}
	if _, err := layerScales(want, 10); err == nil {
		t.Error("a rate past the last layer was accepted")
	}
	for _, bad := range []string{"3", "x=1", "4-2=1", "1=-2", "-1=1"} {
		if _, err := ParseLayerRates(bad); err == nil {
			t.Errorf("ParseLayerRates(%q) accepted", bad)
		}
	}
}

func FuzzParseLayerRates(f *testing.F) {
	for _, s := range []string{"0-8=0,13=10", "1=0.5", "", "2-=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		rates, err := ParseLayerRates(spec)
		if err != nil {
			return
		}
		for _, r := range rates {
			if r.First < 0 || r.Last < r.First || r.Scale < 0 {
				t.Fatalf("%q gave %v", spec, r)
			}
		}
	})
}

// TestWeightedDraws: a source of weight 3 is drawn three times as often per image,
// and weight 0 never.
func TestWeightedDraws(t *testing.T) {
	ld := &loader{samples: []Sample{{Weight: 3}, {Weight: 1}, {Weight: 0}, {Weight: 1}}}
	if err := ld.weighCumulative(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	count := make([]int, 4)
	const n = 50000
	for range n {
		count[ld.pick(rng)]++
	}
	if count[2] != 0 {
		t.Errorf("a weight-0 sample was drawn %d times", count[2])
	}
	if r := float64(count[0]) / float64(count[1]); r < 2.8 || r > 3.2 {
		t.Errorf("draws %v: weight 3 vs 1 ratio %.2f, want about 3", count, r)
	}
	uniform := &loader{samples: make([]Sample, 3)}
	if err := uniform.weighCumulative(); err != nil || uniform.cum != nil {
		t.Errorf("unweighted samples: cum %v, err %v; want the uniform draw", uniform.cum, err)
	}
}

// TestLoadSamplesByName: with the model's names, labels of another class list map by
// name and other classes are dropped.
func TestLoadSamplesByName(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, dir, 4, 1) // red = 0 (images 0, 2), blue = 1
	s, _, err := LoadSamples(dir, 1, []string{"blue"})
	if err != nil {
		t.Fatal(err)
	}
	boxes := 0
	for i, x := range s {
		for _, b := range x.Boxes {
			if b.Class != 0 || i%2 != 1 {
				t.Errorf("image %d: box %+v; want only the blue boxes, as class 0", i, b)
			}
			boxes++
		}
	}
	if boxes != 2 {
		t.Errorf("%d boxes, want the 2 blue ones", boxes)
	}
	if _, _, err := LoadSamples(dir, 1, []string{"chair"}); err == nil || !strings.Contains(err.Error(), "none of the model's classes") {
		t.Errorf("a dataset without the model's class: err %v", err)
	}
}

// TestFreezeAndRates trains a few iterations with the first conv frozen and the head
// at rate 0 ... except the middle conv: the frozen layers keep every parameter and
// their batch-norm statistics; the trained one moves.
func TestFreezeAndRates(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "data"), 4, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	before, err := darknet.LoadCfg(cfg, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	InitWeights(before, 3)
	init := filepath.Join(dir, "init.weights")
	f, err := os.Create(init)
	if err != nil {
		t.Fatal(err)
	}
	if err := darknet.WriteWeights(f, before, darknet.Header{Minor: 2}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: filepath.Join(dir, "data"), Weights: init,
		OutDir: filepath.Join(dir, "out"), MaxBatches: 3, Seed: 1,
		LayerRates: append(Freeze(1), LayerRate{First: 6, Last: 6, Scale: 0})})
	if err != nil {
		t.Fatal(err)
	}
	convs := func(m *quant.Model) []*quant.Conv {
		var c []*quant.Conv
		for _, l := range m.Layers {
			if l.Kind == quant.KindConv {
				c = append(c, l.Conv)
			}
		}
		return c
	}
	b, a := convs(before), convs(res.Model)
	for i, frozen := range []bool{true, false, false, true} {
		same := slices.Equal(b[i].Weights, a[i].Weights) && slices.Equal(b[i].Bias, a[i].Bias)
		if b[i].BN != nil {
			same = same && slices.Equal(b[i].BN.Scale, a[i].BN.Scale) && slices.Equal(b[i].BN.Mean, a[i].BN.Mean) &&
				slices.Equal(b[i].BN.Variance, a[i].BN.Variance)
		}
		if same != frozen {
			t.Errorf("conv %d: unchanged %v, want %v", i, same, frozen)
		}
	}
}

// TestKeepBest: with validation every iteration, the run writes the best checkpoint
// and ends on it.
func TestKeepBest(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 12 iterations with validation; skipped in -short (qemu)")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeDataset(t, data, 6, 1)
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	maps := map[int]float64{}
	res, err := Run(context.Background(), Options{Cfg: cfg, Data: data, Val: data, ValEvery: 1, KeepBest: true,
		OutDir: filepath.Join(dir, "out"), MaxBatches: 12, Seed: 2,
		Progress: func(p Progress) { maps[p.Iteration] = p.MAP }})
	if err != nil {
		t.Fatal(err)
	}
	best := -1.0
	for _, v := range maps {
		best = max(best, v)
	}
	if res.BestMAP != best || maps[res.BestIteration] != best {
		t.Errorf("best mAP %g at %d, the run's maps %v", res.BestMAP, res.BestIteration, maps)
	}
	if res.Final != res.Best || !strings.HasSuffix(res.Best, "tiny_best.weights") {
		t.Errorf("final %s, best %s: want the run to end on the best checkpoint", res.Final, res.Best)
	}
	r, err := EvalMAP(res.Model, data, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.MAP != best {
		t.Errorf("the returned model scores %g, the best checkpoint %g", r.MAP, best)
	}
	m, err := darknet.Load(cfg, res.Best, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := EvalMAP(m, data, nil, 1); err != nil || r.MAP != best {
		t.Errorf("the written best checkpoint scores %v (err %v), want %g", r, err, best)
	}
}

// TestKeepClasses cuts a 2-class head to class 1: per anchor, box and objectness
// rows then the kept class's row.
func TestKeepClasses(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", tinyCfg)
	m, err := darknet.LoadCfg(cfg, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	InitWeights(m, 1)
	conv := m.Layers[len(m.Layers)-2].Conv
	orig := slices.Clone(conv.Weights)
	for i := range conv.Bias {
		conv.Bias[i] = float32(i)
	}
	per := len(orig) / conv.Filters
	objRow := func(n int) []float32 { return orig[(n*7+4)*per : (n*7+5)*per] }
	wantObj := slices.Clone(objRow(1)) // anchor 1: obj + .5 * (class 1 - mean(class 0, 1))
	for i := range wantObj {
		c0, c1 := orig[(7+5)*per+i], orig[(7+6)*per+i]
		wantObj[i] += .5 * (c1 - (c0+c1)/2)
	}
	if err := KeepClasses(m, []int{1}, .5); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13} // 2 anchors x (4 coords, obj, class 1) of 7
	if conv.Filters != len(want) || m.Layers[len(m.Layers)-1].Head.Classes != 1 {
		t.Fatalf("filters %d classes %d", conv.Filters, m.Layers[len(m.Layers)-1].Head.Classes)
	}
	for i, r := range want {
		if r%7 == 4 { // objectness, shifted
			continue
		}
		if conv.Bias[i] != float32(r) || !slices.Equal(conv.Weights[i*per:(i+1)*per], orig[r*per:(r+1)*per]) {
			t.Errorf("filter %d is not the original filter %d", i, r)
		}
	}
	for i, v := range conv.Weights[10*per : 11*per] {
		if d := v - wantObj[i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("anchor 1 objectness weight %d: %g, want %g", i, v, wantObj[i])
		}
	}
	if b := conv.Bias[10]; b != 11+.5*(13-(12+13)/2.0) {
		t.Errorf("anchor 1 objectness bias %g", b)
	}
	if m.Layers[len(m.Layers)-1].In.C != len(want) {
		t.Errorf("the head reads %d channels", m.Layers[len(m.Layers)-1].In.C)
	}
	for _, bad := range [][]int{nil, {2}, {0, 0}, {-1}} {
		m, _ := darknet.LoadCfg(cfg, darknet.Options{})
		InitWeights(m, 1)
		if err := KeepClasses(m, bad, 0); err == nil {
			t.Errorf("KeepClasses(%v) accepted", bad)
		}
	}
}

// TestScaleBinaryWeights: rescaling a binary layer's latent weights (with its batch
// norm) leaves what the network computes unchanged, and frozen layers untouched.
func TestScaleBinaryWeights(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "tiny.cfg", strings.Replace(tinyCfg, "filters=16\nsize=3", "filters=16\nbinary=1\nsize=3", 2))
	m, err := darknet.LoadCfg(cfg, darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	InitWeights(m, 4)
	rng := rand.New(rand.NewPCG(4, 4))
	var binary []int
	for i, l := range m.Layers {
		if l.Kind == quant.KindConv && l.Conv.BN != nil {
			for f := range l.Conv.Filters {
				l.Conv.BN.Mean[f], l.Conv.BN.Variance[f] = float32(rng.NormFloat64()), float32(1+rng.Float64())
			}
		}
		if l.Kind == quant.KindConv && l.Conv.Binary {
			binary = append(binary, i)
		}
	}
	if len(binary) != 2 {
		t.Fatalf("binary layers %v, want 2", binary)
	}
	in := randSlice(rng, m.Input.Size(), 1)
	before := forwardHead(t, m, in)
	frozen := slices.Clone(m.Layers[binary[0]].Conv.Weights)
	n, err := ScaleBinaryWeights(m, Freeze(binary[0]+1), .03)
	if err != nil || n != 1 {
		t.Fatalf("scaled %d layers, err %v; want the one that trains", n, err)
	}
	if !slices.Equal(frozen, m.Layers[binary[0]].Conv.Weights) {
		t.Error("a frozen layer was rescaled")
	}
	for _, v := range m.Layers[binary[1]].Conv.Weights {
		if v != .03 && v != -.03 {
			t.Fatalf("weight %g, want +-0.03", v)
		}
	}
	after := forwardHead(t, m, in)
	for i := range before {
		if d := before[i] - after[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("output %d: %g before, %g after rescaling", i, before[i], after[i])
		}
	}
	if _, err := ScaleBinaryWeights(m, nil, 0); err == nil {
		t.Error("magnitude 0 accepted")
	}
}

func forwardHead(t *testing.T, m *quant.Model, in []float32) []float32 {
	t.Helper()
	e, err := floatengine.New(m, floatengine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(in); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(e.Output(len(m.Layers) - 2))
}

func FuzzParseSources(f *testing.F) {
	for _, s := range []string{"a/coco=3,b,c=0.5", "=", "a==1", "x=1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		srcs, err := ParseSources(spec)
		if err != nil {
			return
		}
		for _, s := range srcs {
			if s.Path == "" || s.Weight < 0 || s.Weight != s.Weight {
				t.Fatalf("%q gave %+v", spec, s)
			}
		}
	})
}
