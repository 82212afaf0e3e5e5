package qnnmo

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// BenchmarkFloatHidden runs the same hidden layers (conv1..conv7 and pools, +-1 float
// weights, ReLU instead of thresholds) through the float32 engine, for the speed ratio.
func BenchmarkFloatHidden(b *testing.B) {
	m := loadModel(b)
	first, last, err := offload.EngineLayers(m)
	if err != nil {
		b.Fatal(err)
	}
	sub := &quant.Model{Name: "hidden-float", Input: m.Layers[first].In, Dialect: m.Dialect, BNEpsilon: m.BNEpsilon}
	for i := first; i <= last; i++ {
		l := *m.Layers[i]
		l.Quant, l.Inputs = nil, []int{i - first - 1}
		if l.Conv != nil {
			c := *l.Conv
			c.Activation, c.Bias = quant.ActReLU, make([]float32, c.Filters)
			l.Conv = &c
		}
		sub.Layers = append(sub.Layers, &l)
	}
	if err := sub.InferShapes(); err != nil {
		b.Fatal(err)
	}
	in := randomImage(sub.Input.Size(), 9)
	for i := range in {
		in[i] = float32(int(in[i] * 8))
	}
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			e, err := floatengine.New(sub, floatengine.Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if err := e.Forward(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/frame")
		})
	}
}
