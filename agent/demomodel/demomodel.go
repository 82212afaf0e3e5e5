// Package demomodel owns pynq-agent's built-in chair detector: a one-class
// Tinier-YOLO variant for the QNN engine (224x224 input; conv0 3->16 /2 on the CPU;
// five binary 3x3 layers 16->32->64->64->128->128 with four 2x2 pools on the engine;
// a 1x1 region head with 5 anchors on a 7x7 grid), trained in float and then fine-tuned
// with its quantizers in the loop on synthetic scenes (scripts/make-demo-model.sh has
// the exact commands), as a QNN-MO parameter directory embedded in the binary. With it,
// `pynq-agent -sim` runs from a fresh checkout without any file from outside the
// repository.
//
// Training (2 cores, 4000 synthetic scenes): float from random weights, 1600
// iterations of 32 images in 29 minutes (about 30 images/s forward + backward); then
// quantization-aware fine-tuning (binary conv1..5, 3-bit activations, MSE-initialised
// learned clipping), 800 iterations in 19 minutes. VOC2012 chair AP@0.5 on the 300
// validation scenes, through the QONNX flow (pynqctl quant qat's report): float 33.2 %,
// post-training W1A3 quantization of the float model 0.0 %, after QAT 28.8 %. This
// directory on the QNN engine (`pynqctl detect --model` + `pynqctl eval`, stb_image
// decoding): 29.5 % on 200 held-out scenes of another seed, 28.7 % on the validation
// scenes, 6.6 % on the 21 real photos (18 chairs) of the shared fixtures' chairs/val
// (7.8 % with libjpeg decoding; through the flow: float 15.1 %, PTQ 0.0 %, QAT 8.5 %):
// synthetic rooms are not real rooms.
//
// It also holds the simulation design the demo runs on: a small .hwh written for this
// project that places the BlackBoxJam engine where the QNN-MO overlay has it, and a
// .bit header (no configuration data beyond a sync word) that the FPGA simulation
// accepts. Neither is a real bitstream; on a board use the QNN-MO overlay.
package demomodel

import (
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
)

// Network is the demo model's name and its directory in [FS].
const Network = "chair-demo"

//go:embed chair-demo chair.names sim/demo-sim.hwh
var files embed.FS

// FS returns the embedded files: Network/ (the QNN-MO parameter directory),
// chair.names and sim/demo-sim.hwh.
func FS() fs.FS { return files }

// Load reads the embedded model ([qnn.LoadFS]).
func Load() (*quant.Model, error) { return qnn.LoadFS(files, Network) }

// Part is the FPGA part the simulation design's .bit names (the PYNQ-Z2's).
const Part = "7z020clg400"

// SimBit returns the simulation design's .bit: a header naming the design and the
// PYNQ-Z2 part, and a payload holding just the dummy words and the sync word the
// FPGA manager looks for.
func SimBit() []byte {
	payload := make([]byte, 0, 48)
	for range 8 {
		payload = append(payload, 0xff, 0xff, 0xff, 0xff) // dummy words
	}
	payload = append(payload, 0x00, 0x00, 0x00, 0xbb, 0x11, 0x22, 0x00, 0x44) // bus width detection
	payload = append(payload, 0xaa, 0x99, 0x55, 0x66)                         // sync word
	payload = append(payload, 0x20, 0x00, 0x00, 0x00)                         // NOOP
	b := []byte{0x00, 0x09, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x00, 0x00, 0x01}
	fields := []string{"pynq_agent_demo_sim;UserID=0XFFFFFFFF;Version=2020.2", Part, "2026/11/27", "00:00:00"}
	for i, s := range fields {
		b = append(b, "abcd"[i])
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)+1))
		b = append(append(b, s...), 0)
	}
	b = append(b, 'e')
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// Paths are the files [Extract] wrote.
type Paths struct {
	ModelDir  string // the QNN-MO parameter directory
	Names     string // class names (chair)
	Bitstream string // the simulation design's .bit, its .hwh beside it
}

// Extract writes the model, the names and the simulation design into dir (created if
// needed) for code that takes paths: the agent's config, pynqctl --model.
func Extract(dir string) (Paths, error) {
	p := Paths{
		ModelDir:  filepath.Join(dir, Network),
		Names:     filepath.Join(dir, "chair.names"),
		Bitstream: filepath.Join(dir, "demo-sim.bit"),
	}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if name == "sim/demo-sim.hwh" {
			dst = filepath.Join(dir, "demo-sim.hwh")
		}
		if d.IsDir() {
			if name == "sim" {
				return nil
			}
			return os.MkdirAll(dst, 0o755)
		}
		data, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err == nil {
		err = os.WriteFile(p.Bitstream, SimBit(), 0o644)
	}
	if err != nil {
		return Paths{}, fmt.Errorf("extract demo model: %w", err)
	}
	return p, nil
}
