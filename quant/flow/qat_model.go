package flow

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/todarknet"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

// writeQATModel writes the trained model's sidecar and cfg beside its weights.
func writeQATModel(res *train.Result, dir string) (*QATTraining, error) {
	m := res.Model
	tr := &QATTraining{Iterations: res.Iterations, Images: res.Seen, AvgLoss: res.AvgLoss, Weights: res.Final,
		Sidecar: filepath.Join(dir, m.Name+".quant.json"), Cfg: filepath.Join(dir, m.Name+"-qat.cfg")}
	if err := writeQATSidecar(m, tr.Sidecar); err != nil {
		return nil, err
	}
	return tr, writeQATCfg(m, tr.Cfg)
}

// writeQATCfg writes the network as trained, binary=1 on its bipolar layers (darknet
// then runs their weights as the engine does).
func writeQATCfg(m *quant.Model, path string) error {
	var b bytes.Buffer
	for _, l := range m.Layers {
		if l.Kind == quant.KindConv && l.Quant != nil && l.Quant.WeightBits == 1 {
			l.Conv.Binary = true
		}
	}
	if err := darknet.WriteCfg(&b, m); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write qat cfg: %w", err)
	}
	return nil
}

// qatSidecar lists m's quantized convolutions with their trained scales.
func qatSidecar(m *quant.Model) *todarknet.Sidecar {
	sc := &todarknet.Sidecar{Format: todarknet.SidecarFormat, Model: m.Name}
	for i, l := range m.Layers {
		if l.Kind != quant.KindConv || l.Quant == nil {
			continue
		}
		sc.Layers = append(sc.Layers, todarknet.SidecarLayer{Index: i, Name: l.Name, Filters: l.Conv.Filters,
			WeightBits: l.Quant.WeightBits, ActBits: l.Quant.ActBits, ActScale: l.Quant.ActScale})
	}
	return sc
}

func writeQATSidecar(m *quant.Model, path string) error {
	b, err := qatSidecar(m).Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write quant sidecar: %w", err)
	}
	return nil
}
