package train

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// tinierCfg is the QNN-MO Tinier-YOLO topology in float with one class (leaky, as
// darknet trains it), at size x size.
func tinierCfg(size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[net]\nbatch=64\nsubdivisions=1\nwidth=%d\nheight=%d\nchannels=3\n\n", size, size)
	conv := func(f, s, st int, bn bool, act string) {
		fmt.Fprintf(&b, "[convolutional]\nfilters=%d\nsize=%d\nstride=%d\npad=1\nactivation=%s\n", f, s, st, act)
		if bn {
			b.WriteString("batch_normalize=1\n")
		}
		b.WriteString("\n")
	}
	pool := func(st int) { fmt.Fprintf(&b, "[maxpool]\nsize=2\nstride=%d\n\n", st) }
	conv(16, 3, 2, true, "leaky")
	conv(64, 3, 1, true, "leaky")
	pool(2)
	conv(64, 3, 1, true, "leaky")
	pool(2)
	conv(128, 3, 1, true, "leaky")
	pool(2)
	conv(256, 3, 1, true, "leaky")
	pool(2)
	conv(512, 3, 1, true, "leaky")
	pool(1)
	conv(512, 3, 1, true, "leaky")
	conv(512, 3, 1, true, "leaky")
	conv(30, 1, 1, false, "linear")
	b.WriteString("[region]\nanchors=1.08,1.19,3.42,4.41,6.63,11.38,9.42,5.11,16.62,10.52\nbias_match=1\nclasses=1\ncoords=4\nnum=5\nsoftmax=1\njitter=.2\nrescore=1\nobject_scale=5\nnoobject_scale=1\nclass_scale=1\ncoord_scale=1\nthresh=.6\n")
	return b.String()
}

// BenchmarkTrainStep measures forward + backward + update of a Tinier-YOLO-shaped
// model per image (images/s is reported). -benchtime=3x keeps it short.
func BenchmarkTrainStep(b *testing.B) {
	for _, size := range []int{224, 416} {
		for _, batch := range []int{2, 8} {
			b.Run(fmt.Sprintf("size%d/batch%d", size, batch), func(b *testing.B) {
				m, err := darknet.ParseCfg(strings.NewReader(tinierCfg(size)), "tinier.cfg", darknet.Options{})
				if err != nil {
					b.Fatal(err)
				}
				InitWeights(m, 1)
				n, err := NewNet(m, batch, 0, DefaultConfig().Region)
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 1))
				in := randSlice(rng, batch*m.Input.Size(), .3)
				truths := make([][]Box, batch)
				for i := range truths {
					truths[i] = []Box{{X: .4, Y: .5, W: .3, H: .4}}
				}
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for range b.N {
					n.Forward(in, truths, true)
					n.Backward(in)
					n.Update(.001, .9, .0005, batch)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
				// CPU time per image does not depend on what else the machine runs.
				b.ReportMetric(1000*(cpuSeconds()-cpu0)/float64(b.N*batch), "cpu-ms/image")
			})
		}
	}
}

// BenchmarkParallelism compares the two ways of using the cores: images in parallel
// (one goroutine per image, single-threaded GEMMs; the default) and one image at a time
// with parallel GEMMs.
func BenchmarkParallelism(b *testing.B) {
	for _, mode := range []string{"images", "gemm"} {
		b.Run(mode, func(b *testing.B) {
			const batch = 4
			m, err := darknet.ParseCfg(strings.NewReader(tinierCfg(224)), "tinier.cfg", darknet.Options{})
			if err != nil {
				b.Fatal(err)
			}
			InitWeights(m, 1)
			n, err := NewNet(m, batch, 0, DefaultConfig().Region)
			if err != nil {
				b.Fatal(err)
			}
			if mode == "gemm" {
				n.setImageTasks(1)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			in := randSlice(rng, batch*m.Input.Size(), .3)
			truths := make([][]Box, batch)
			b.ResetTimer()
			for range b.N {
				n.Forward(in, truths, true)
				n.Backward(in)
				n.Update(.001, .9, .0005, batch)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
