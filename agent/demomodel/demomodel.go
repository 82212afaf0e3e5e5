// Package demomodel owns pynq-agent's built-in chair detector, tinier-yolo-chair: the
// Tinier-YOLO W1A3 network of Xilinx's QNN-MO-PYNQ (416x416 input; conv0 on the CPU;
// seven binary 3x3 layers on the engine; a 1x1 region head with 5 anchors on a 13x13
// grid) with a one-class chair head, as a QNN-MO parameter directory embedded in the
// binary. Its engine parameters are the published ones byte for byte, so the published
// W1A3 bitstream runs it on a real board; the head was cut from the published VOC head
// and fine-tuned (scripts/make-chair-model.sh has the whole recipe and README.md the
// measured accuracy). The directory carries QNN-MO's BSD-3 notice (NOTICE), as the
// parameters derive from theirs. With it, `pynq-agent -sim` runs from a fresh
// checkout without any file from outside the repository.
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
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// Network is the demo model's name and its directory in [FS].
const Network = "tinier-yolo-chair"

//go:embed tinier-yolo-chair chair.names sim/demo-sim.hwh
var files embed.FS

// FS returns the embedded files: Network/ (the QNN-MO parameter directory),
// chair.names and sim/demo-sim.hwh.
func FS() fs.FS { return files }

// Load reads the embedded model ([qnnmo.LoadFS]).
func Load() (*quant.Model, error) { return qnnmo.LoadFS(files, Network) }

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
