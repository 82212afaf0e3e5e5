package detector_test

import (
	"fmt"
	"log"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// A QNN-MO parameter directory (here the embedded demo chair model; qnnmo.LoadDir reads
// one from disk) becomes a detector in a board's three stages: the CPU's first layer,
// the engine's layers on an accelerator (nil: the host reference; the agent passes the
// board's driver or the simulated one), the CPU's last layer, region decode and NMS.
func ExampleNewQNN() {
	m, err := qnnmo.LoadFS(demomodel.FS(), demomodel.Network)
	if err != nil {
		log.Fatal(err)
	}
	net, err := qnnmo.NewNetwork(m, 0)
	if err != nil {
		log.Fatal(err)
	}
	d, err := detector.NewQNN(net, nil, 0)
	if err != nil {
		log.Fatal(err)
	}
	img := imageio.NewImage(640, 480, 3) // a grey frame; imageio.LoadWith reads a file
	for i := range img.Data {
		img.Data[i] = 0.5
	}
	cands, err := d.Detect(img, 0.3)
	if err != nil {
		log.Fatal(err)
	}
	objs := boxes.Objects(cands, 0.3, []string{"chair"}, img.W, img.H)
	fmt.Printf("%s: %dx%d input, %d chairs in a grey frame\n", m.Name, m.Input.W, m.Input.H, len(objs))
	// Output: tinier-yolo-chair: 416x416 input, 0 chairs in a grey frame
}
