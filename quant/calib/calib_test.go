package calib

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

func TestHistogramMethods(t *testing.T) {
	h := newHistogram(false)
	// 100000 values uniform on [0, 10) in two batches (the second one 10x larger
	// values grows the histogram), plus one outlier at 100.
	var a, b []float32
	for i := 0; i < 50000; i++ {
		a = append(a, float32(i)/50000) // [0,1)
		b = append(b, 1+9*float32(i)/50000)
	}
	h.add(a)
	h.add(append(b, 100))
	if h.count != 100001 {
		t.Fatalf("count %d", h.count)
	}
	var sum int64
	for _, n := range h.bins {
		sum += n
	}
	if sum != h.count {
		t.Fatalf("bins hold %d values, want %d", sum, h.count)
	}
	mm := h.choose(Options{Method: MinMax}, 3)
	if math.Abs(mm.Clip-100) > 1e-3 {
		t.Errorf("minmax clip %g, want 100", mm.Clip)
	}
	pc := h.choose(Options{Method: Percentile, Percentile: 90}, 3)
	// 90 % of the values are below 1 + 9*0.8 = 8.2.
	if math.Abs(pc.Clip-8.2) > 0.1 {
		t.Errorf("percentile 90 clip %g, want about 8.2", pc.Clip)
	}
	if math.Abs(pc.Clipped-0.1) > 0.01 {
		t.Errorf("percentile 90 clips %g of the values, want 0.1", pc.Clipped)
	}
	ms := h.choose(Options{Method: MSE}, 3)
	if !(ms.Clip > 5 && ms.Clip < 20) || ms.MSE > pc.MSE || ms.MSE > mm.MSE {
		t.Errorf("mse clip %g (error %g; percentile %g, minmax %g)", ms.Clip, ms.MSE, pc.MSE, mm.MSE)
	}
	if got := float64(mm.Scale) * 7; math.Abs(got-mm.Clip) > 1e-9 {
		t.Errorf("scale %g does not give the clip %g", mm.Scale, mm.Clip)
	}
}

func TestListImages(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.PNG", "a.jpg", "c.txt", "d.jpeg"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ListImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.jpg", "b.PNG", "d.jpeg"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if filepath.Base(got[i]) != want[i] {
			t.Errorf("image %d: %s, want %s", i, got[i], want[i])
		}
	}
	list := filepath.Join(dir, "train.txt")
	if err := os.WriteFile(list, []byte("# comment\na.jpg\n\n"+filepath.Join(dir, "b.PNG")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = ListImages(list)
	if err != nil || len(got) != 2 || got[0] != filepath.Join(dir, "a.jpg") {
		t.Errorf("list file: %v, %v", got, err)
	}
	if err := os.WriteFile(list, []byte("a.jpg\nmissing.jpg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ListImages(list); err == nil || !strings.Contains(err.Error(), "train.txt:2") {
		t.Errorf("missing image: %v", err)
	}
	if _, err := ListImages(t.TempDir()); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestCalibrateErrors(t *testing.T) {
	m := &quant.Model{Input: quant.Shape{C: 3, H: 8, W: 8}, Layers: []*quant.Layer{{Kind: quant.KindConv, Name: "conv0", Inputs: []int{-1},
		Conv: &quant.Conv{Filters: 4, Size: 1, Stride: 1, Groups: 1, Activation: quant.ActReLU, Weights: make([]float32, 12)}}}}
	if _, err := Calibrate(m, nil, Options{}); err == nil {
		t.Error("no images accepted")
	}
	if _, err := Calibrate(m, []string{"x.jpg"}, Options{Method: "kl"}); err == nil || !strings.Contains(err.Error(), "kl") {
		t.Errorf("bad method: %v", err)
	}
	if _, err := Calibrate(m, []string{"x.jpg"}, Options{}); err == nil || !strings.Contains(err.Error(), "no activation quantizers") {
		t.Errorf("no quantizers: %v", err)
	}
}

// FuzzListImages parses darknet list files; listed images must exist.
func FuzzListImages(f *testing.F) {
	f.Add([]byte("a.jpg\n# c\n\nb.png\n"))
	f.Add([]byte("/nonexistent/x.jpg\n"))
	f.Add([]byte("\x00\xff\n\n"))
	f.Add([]byte(""))
	dir := f.TempDir()
	for _, n := range []string{"a.jpg", "b.png"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	list := filepath.Join(dir, "list.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(list, data, 0o644); err != nil {
			t.Fatal(err)
		}
		imgs, err := ListImages(list)
		if err != nil {
			return
		}
		for _, p := range imgs {
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				t.Fatalf("listed %q, which is not a file", p)
			}
		}
	})
}
