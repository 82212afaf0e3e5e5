//go:build darknet && cgo

package darknetref

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// benchNets are the networks benchmarked: Yolo-Fastest-1.1 with its weights and the
// Tinier-YOLO topology with darknet's random initialisation (timing does not depend on
// the weight values).
func benchNets(b *testing.B) []struct{ name, cfg, weights string } {
	b.Helper()
	dir := testutil.Fixture(b, "yolo-fastest")
	nets := []struct{ name, cfg, weights string }{
		{"yolo-fastest-320", filepath.Join(dir, "yolo-fastest-1.1.cfg"), filepath.Join(dir, "yolo-fastest-1.1.weights")},
	}
	if tinier := testutil.Testdata(b, "tinier-yolo-voc.cfg"); fileExists(tinier) {
		nets = append(nets, struct{ name, cfg, weights string }{"tinier-yolo-416", tinier, ""})
	}
	return nets
}

func benchInput(b *testing.B, w, h int) []float32 {
	b.Helper()
	im, err := imageio.Load(testutil.Fixture(b, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	return imageio.Letterbox(im, w, h).Data
}

// BenchmarkDarknetPredict measures libdarknet's network_predict (Debian's build: CPU,
// BLAS gemm, OpenMP) in images/s.
func BenchmarkDarknetPredict(b *testing.B) {
	for _, n := range benchNets(b) {
		b.Run(n.name, func(b *testing.B) {
			net, err := Load(n.cfg, n.weights)
			if err != nil {
				b.Fatal(err)
			}
			defer net.Close()
			w, h, _ := net.Input()
			in := benchInput(b, w, h)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := net.Predict(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkEngineForward measures the project's float engine on the same networks, so
// one run compares it with darknet.
func BenchmarkEngineForward(b *testing.B) {
	for _, n := range benchNets(b) {
		b.Run(n.name, func(b *testing.B) {
			m, err := loadIR(n.cfg, n.weights)
			if err != nil {
				b.Skipf("import %s: %v", n.name, err)
			}
			e, err := floatengine.New(m, floatengine.Options{})
			if err != nil {
				b.Fatal(err)
			}
			in := benchInput(b, m.Input.W, m.Input.H)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.Forward(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// loadIR imports a cfg (pjreddie dialect) with its weights, or with deterministic
// pseudo-random parameters when there are none.
func loadIR(cfg, weights string) (*quant.Model, error) {
	opt := darknet.Options{Dialect: quant.DialectPjreddie}
	if weights != "" {
		return darknet.Load(cfg, weights, opt)
	}
	m, err := darknet.LoadCfg(cfg, opt)
	if err != nil {
		return nil, err
	}
	fillRandom(m)
	return m, nil
}

// fillRandom gives every convolution deterministic pseudo-random weights scaled by its
// fan-in (so activations keep their size through the layers), small biases and neutral
// batch norm.
func fillRandom(m *quant.Model) {
	seed := uint32(1)
	uniform := func() float32 { // in [-1, 1)
		seed = seed*1664525 + 1013904223
		return float32(seed>>8)/float32(1<<23) - 1
	}
	for _, l := range m.Layers {
		c := l.Conv
		if c == nil {
			continue
		}
		fanIn := l.In.C / c.Groups * c.Size * c.Size
		scale := float32(math.Sqrt(3 / float64(fanIn)))
		c.Weights = make([]float32, c.Filters*fanIn)
		for i := range c.Weights {
			c.Weights[i] = scale * uniform()
		}
		c.Bias = make([]float32, c.Filters)
		for i := range c.Bias {
			c.Bias[i] = 0.5 * uniform()
		}
		if c.BN != nil {
			c.BN.Scale, c.BN.Mean, c.BN.Variance = ones(c.Filters), make([]float32, c.Filters), ones(c.Filters)
		}
	}
}

func ones(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
