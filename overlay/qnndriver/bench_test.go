package qnndriver_test

import (
	"context"
	"testing"

	"github.com/fpgadetector/pynq-agent/overlay/sim"
)

// BenchmarkEngineLayers compares the engine layers of Tinier-YOLO (one frame, dog.jpg)
// on the host reference engine and through the driver on the FPGA simulation, in the
// same run:
//
//	go test -run '^$' -bench EngineLayers -benchtime 20x ./overlay/qnndriver
func BenchmarkEngineLayers(b *testing.B) {
	f := loadFixture(b)
	in := f.inputs["dog.jpg"]
	b.Run("host", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.det.Engine.Run(in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
	b.Run("sim", func(b *testing.B) {
		m := board(b, f, sim.Config{})
		d := openDriver(b, f, m, true, 0)
		for b.Loop() {
			if _, err := d.Run(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
}
