package floatengine

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/testmodel"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// BenchmarkSgemm multiplies shapes typical of the detectors' convolutions (filters x
// pixels x filter size). Run: go test -run '^$' -bench . ./quant/floatengine/
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][3]int{{64, 52 * 52, 576}, {256, 13 * 13, 2304}, {512, 512, 512}} {
		m, n, k := s[0], s[1], s[2]
		a, bb, c := randSlice(r, m*k, -1, 1), randSlice(r, k*n, -1, 1), make([]float32, m*n)
		pa := PackA(m, k, a, k)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d/threads=%d", m, n, k, threads), func(b *testing.B) {
				w := NewWorkers(threads)
				cpu0 := cpuTime()
				for b.Loop() {
					SgemmPacked(pa, n, bb, c, w)
				}
				flop := 2 * float64(m*n*k) * float64(b.N)
				b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				// Per CPU-second: the per-core rate, robust when other processes share the cores.
				b.ReportMetric(flop/(cpuTime()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

func benchModel(b *testing.B, m *quant.Model) {
	r := rand.New(rand.NewPCG(2, 2))
	input := randSlice(r, m.Input.Size(), 0, 1)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			e, err := New(m, Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if err := e.Forward(input); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
			// CPU time per image: robust when other processes share the cores.
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// loadYoloFastest loads the Yolo-Fastest-1.1 COCO fixture.
func loadYoloFastest(tb testing.TB) *quant.Model {
	tb.Helper()
	cfg := testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.cfg")
	weights := testutil.Fixture(tb, "yolo-fastest", "yolo-fastest-1.1.weights")
	m, err := darknet.Load(cfg, weights, darknet.Options{})
	if err != nil {
		tb.Fatalf("load yolo-fastest: %v", err)
	}
	return m
}

func BenchmarkYoloFastest(b *testing.B) { benchModel(b, loadYoloFastest(b)) }

// cpuTime is the user+system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTinierYOLO runs the 416x416 Tinier-YOLO-shaped test model (random weights).
func BenchmarkTinierYOLO(b *testing.B) { benchModel(b, testmodel.TinierYOLO(b)) }
