package offload_test

import (
	"fmt"
	"log"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// The engine's runs for a model: what the board's driver writes before each start.
func ExamplePlan() {
	m, err := qnnmo.LoadFS(demomodel.FS(), demomodel.Network)
	if err != nil {
		log.Fatal(err)
	}
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		log.Fatal(err)
	}
	r := runs[0]
	fmt.Printf("%d runs; the first: %dx%d x %d channels in, %d out, pooled to %d\n", len(runs), r.IFMDim, r.IFMDim, r.IFMCh, r.OFMCh, r.OutDim)
	fmt.Printf("engine time at 100 MHz: %v\n", offload.W1A3.EngineTime(runs, 100e6).Round(1e5))
	// Output:
	// 10 runs; the first: 208x208 x 16 channels in, 64 out, pooled to 104
	// engine time at 100 MHz: 21ms
}
